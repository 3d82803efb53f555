"""Chef's request signing, protocol 1.3 (mixlib-authentication SignedHeaderAuth, the server's
chef_authn.hrl): RSA PKCS#1 v1.5 over SHA-256 of a canonical request, via ``cryptography``,
exactly as knife and chef-client sign and as the Chef server verifies. pychef 0.3.0 does not
import on Python 3.11.
"""

from __future__ import annotations

import base64
import hashlib
import re
import time
from typing import Any, Dict

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from ..errors import ValidationError

SIGN_VERSION = "1.3"
SIGN_ALGORITHM = "sha256"
# What mixlib-authentication sends (with the trailing ";"); the server splits on ";".
SIGN_DESCRIPTION = "algorithm=%s;version=%s;" % (SIGN_ALGORITHM, SIGN_VERSION)
# Ruby's Base64.encode64 breaks lines every 60 characters; each line is one header.
SIGNATURE_LINE = 60


def load_private_key(pem: Any, what: str = "config key chef.client_key") -> rsa.RSAPrivateKey:
    """An RSA private key from PEM text. The error never quotes the value."""
    if not isinstance(pem, str) or "-----BEGIN" not in pem:
        raise ValidationError("%s is not a PEM-encoded private key (text starting with "
                              "-----BEGIN)" % what)
    if "\n" not in pem.strip() and "\\n" in pem:
        # Stored on one line with escaped newlines (a common st2 key set mistake).
        pem = pem.replace("\\n", "\n")
    try:
        key = serialization.load_pem_private_key(pem.strip().encode("ascii") + b"\n",
                                                 password=None)
    except (ValueError, TypeError, UnicodeError, UnsupportedAlgorithm):
        raise ValidationError("%s is not a readable, unencrypted PEM private key" % what
                              ) from None
    if not isinstance(key, rsa.RSAPrivateKey):
        raise ValidationError("%s is not an RSA key: Chef signs requests with RSA" % what)
    return key


def canonical_path(path: str) -> str:
    """The path as signed: no query, runs of "/" collapsed, no trailing "/" (but "/")."""
    path = re.sub(r"/+", "/", path.split("?", 1)[0])
    if len(path) > 1:
        path = path.rstrip("/") or "/"
    return path or "/"


def content_hash(body: bytes) -> str:
    return base64.b64encode(hashlib.sha256(body).digest()).decode("ascii")


def canonical_time(epoch: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(epoch))


def canonical_request(method: str, path: str, body_hash: str, timestamp: str, user_id: str,
                      server_api_version: int) -> str:
    """The text that is signed (mixlib-authentication canonicalize_request, version 1.3)."""
    return "\n".join([
        "Method:%s" % method.upper(),
        "Path:%s" % canonical_path(path),
        "X-Ops-Content-Hash:%s" % body_hash,
        "X-Ops-Sign:version=%s" % SIGN_VERSION,
        "X-Ops-Timestamp:%s" % timestamp,
        "X-Ops-UserId:%s" % user_id,
        "X-Ops-Server-API-Version:%d" % server_api_version,
    ])


def sign_request(key: rsa.RSAPrivateKey, user_id: str, method: str, path: str, body: bytes,
                 epoch: float, server_api_version: int) -> Dict[str, str]:
    """The authentication headers of one request. The server refuses them once ``epoch`` is
    15 minutes or more away from its clock (chef_authn's time skew)."""
    timestamp = canonical_time(epoch)
    body_hash = content_hash(body)
    text = canonical_request(method, path, body_hash, timestamp, user_id, server_api_version)
    signature = key.sign(text.encode("utf-8"), padding.PKCS1v15(), hashes.SHA256())
    encoded = base64.b64encode(signature).decode("ascii")
    headers = {
        "X-Ops-Sign": SIGN_DESCRIPTION,
        "X-Ops-Userid": user_id,
        "X-Ops-Timestamp": timestamp,
        "X-Ops-Content-Hash": body_hash,
        "X-Ops-Server-API-Version": str(server_api_version),
    }
    for index in range(0, len(encoded), SIGNATURE_LINE):
        headers["X-Ops-Authorization-%d" % (index // SIGNATURE_LINE + 1)] = (
            encoded[index:index + SIGNATURE_LINE])
    return headers
