"""Configuration management of new nodes: Chef Infra Server.

A new VM bootstraps itself: cloud-init's ``chef`` module installs the Chef client, registers
the node with the server with the validator key and runs the node's run list. The pack then
only waits for the node's first converge and, on removal, deletes the node and its API
client.

The Chef Server API is spoken directly with ``requests``: every request is signed with Chef's
signing protocol 1.3 (RSA PKCS#1 v1.5 over SHA-256, via ``cryptography``), exactly as
mixlib-authentication signs it for knife and chef-client and as the server's chef_authn
verifies it. pychef 0.3.0 does not import on Python 3.11.

Only GET and DELETE are sent, and both are retried after a timeout or a 5xx: reading a node
twice or deleting it twice leaves the server as deleting it once does (a 404 on delete is a
success). Secrets (the client key, the validator key) never appear in a message, a log line
or a result; what the server answers is quoted through ``redact``.
"""

from __future__ import annotations

import abc
import base64
import calendar
import hashlib
import logging
import re
import time
from dataclasses import asdict, dataclass, field
from typing import Any, Callable, Dict, List, Mapping, Optional
from urllib.parse import urlsplit

import requests
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from .config import backend_section
from .domain.names import validate_node_name
from .errors import BackendError, ValidationError, redact, retry

LOG = logging.getLogger(__name__)

SYSTEM = "Chef"

# Signing protocol 1.3 (mixlib-authentication SignedHeaderAuth, chef_authn.hrl).
SIGN_VERSION = "1.3"
SIGN_ALGORITHM = "sha256"
# What mixlib-authentication sends (with the trailing ";"); the server splits on ";".
SIGN_DESCRIPTION = "algorithm=%s;version=%s;" % (SIGN_ALGORITHM, SIGN_VERSION)
# Ruby's Base64.encode64 breaks lines every 60 characters; each line is one header.
SIGNATURE_LINE = 60
# X-Ops-Server-API-Version, signed as an integer: older servers take 0-1, current ones 0-2
# (erchef's API_MAX_VER), and any other value is a 406. Nodes and clients read the same in
# 1 and 2.
SERVER_API_VERSION = 1
# X-Chef-Version, which the API docs require; chef-client sends its own release.
CHEF_VERSION = "18.0.0"

# Names of API clients and environments (erchef's chef_regex: letters, digits, "_", "-", ".").
_CHEF_NAME_RE = re.compile(r"[A-Za-z0-9_.-]{1,255}")
# Run list entries: "recipe[cookbook::recipe@1.2.3]", "role[web]", or a bare recipe name.
_RECIPE = r"[A-Za-z0-9_.-]+(?:::[A-Za-z0-9_.-]+)?(?:@[0-9]+(?:\.[0-9]+){0,2})?"
_RUN_LIST_ITEM_RE = re.compile(r"recipe\[%s\]|role\[[A-Za-z0-9_.-]+\]|%s" % (_RECIPE, _RECIPE))


# ---------------------------------------------------------------------------------------------
# Settings


@dataclass(frozen=True)
class ChefSettings:
    server_url: str
    client_name: str
    # repr=False: a settings object in a log line or a traceback must not show a key.
    client_key: str = field(repr=False)
    validation_client_name: str = ""
    validation_key: str = field(default="", repr=False)
    converge_timeout: int = 900
    verify_tls: bool = True
    # Not in the pack config: seconds per request, tries per idempotent request, the first
    # pause between tries, seconds between two looks at a converging node.
    timeout: float = 10.0
    attempts: int = 3
    retry_delay: float = 0.5
    poll_interval: float = 10.0
    server_api_version: int = SERVER_API_VERSION

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> ChefSettings:
        section = backend_section(config, "chef", ("server_url", "client_name", "client_key"))
        return cls(
            server_url=section["server_url"].rstrip("/"),
            client_name=section["client_name"],
            client_key=section["client_key"],
            validation_client_name=section.get("validation_client_name") or "",
            validation_key=section.get("validation_key") or "",
            converge_timeout=int(section.get("converge_timeout", 900)),
            verify_tls=bool(section.get("verify_tls", True)),
        )

    def secrets(self) -> List[str]:
        return [self.client_key, self.validation_key]


# ---------------------------------------------------------------------------------------------
# Cloud-init bootstrap


def validate_run_list(run_list: Any) -> List[str]:
    if not isinstance(run_list, (list, tuple)):
        raise ValidationError("Chef run list must be a list of entries such as role[web], "
                              "not %r" % (run_list,))
    for item in run_list:
        if not isinstance(item, str) or not _RUN_LIST_ITEM_RE.fullmatch(item):
            raise ValidationError("Chef run list entry %r is not recipe[name], "
                                  "recipe[cookbook::recipe@1.0.0], role[name] or a recipe "
                                  "name" % (item,))
    return list(run_list)


def validate_environment(environment: Any) -> str:
    if not isinstance(environment, str) or not _CHEF_NAME_RE.fullmatch(environment):
        raise ValidationError("Chef environment %r is not a Chef name (letters, digits, "
                              "'_', '-', '.')" % (environment,))
    return environment


def cloud_config(settings: ChefSettings, node_name: str, run_list: List[str],
                 environment: str) -> Dict[str, Any]:
    """The ``chef:`` section of a node's cloud-config (cloud-init's cc_chef module).

    The node registers itself with the validator key. The pack's own client key never goes
    onto a VM: it may delete any node, so a VM holding it could too.
    """
    validate_node_name(node_name)
    if not settings.validation_key:
        raise ValidationError(
            "config key chef.validation_key is missing: new nodes need a validator key "
            "to register with the Chef server"
        )
    validate_run_list(run_list)
    if environment:
        validate_environment(environment)
    return {
        "install_type": "omnibus",
        "force_install": False,
        "server_url": settings.server_url,
        "node_name": node_name,
        "environment": environment or "_default",
        "run_list": list(run_list),
        "validation_name": settings.validation_client_name or "chef-validator",
        # cc_chef writes this PEM to /etc/chef/validation.pem.
        "validation_cert": settings.validation_key,
        # cc_chef's client.rb template defaults to :verify_none.
        "ssl_verify_mode": ":verify_peer" if settings.verify_tls else ":verify_none",
        "exec": True,
        "chef_license": "accept",
    }


# ---------------------------------------------------------------------------------------------
# Signing protocol 1.3


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
                 epoch: float, server_api_version: int = SERVER_API_VERSION) -> Dict[str, str]:
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


# ---------------------------------------------------------------------------------------------
# What the pack asks for and gets back


def validate_since(value: Any) -> float:
    """The VM's creation time: epoch seconds, or an ISO 8601 UTC time as Nova reports it."""
    if isinstance(value, bool):
        raise ValidationError("since must be a time in epoch seconds, not %r" % (value,))
    if isinstance(value, (int, float)):
        if value < 0:
            raise ValidationError("since must be a time in epoch seconds, not %r" % (value,))
        return float(value)
    if isinstance(value, str):
        text = value.strip()
        for pattern in ("%Y-%m-%dT%H:%M:%SZ", "%Y-%m-%dT%H:%M:%S.%fZ", "%Y-%m-%dT%H:%M:%S"):
            try:
                return float(calendar.timegm(time.strptime(text, pattern)))
            except ValueError:
                continue
        try:
            return validate_since(float(text))
        except ValueError:
            pass
    raise ValidationError("since must be the VM's creation time in epoch seconds or as "
                          "2024-01-31T12:00:00Z, not %r" % (value,))


def _positive(value: Any, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
        raise ValidationError("%s must be a positive number of seconds, not %r" % (what, value))
    return float(value)


def _seconds(value: float) -> str:
    return "%d" % value if float(value).is_integer() else "%.1f" % value


@dataclass(frozen=True)
class NodeStatus:
    node: str
    registered: bool
    # automatic.ohai_time: when the node's last finished Chef run started (its own clock).
    ohai_time: Optional[float] = None
    environment: str = ""
    run_list: List[str] = field(default_factory=list)

    def converged_since(self, since: float) -> bool:
        return self.registered and self.ohai_time is not None and self.ohai_time >= since

    def as_dict(self) -> Dict[str, Any]:
        result = asdict(self)
        result["ohai_time_iso"] = canonical_time(self.ohai_time) if self.ohai_time else ""
        return result


@dataclass(frozen=True)
class Removal:
    node: str
    # True: this call deleted it; False: it was already gone (a 404).
    node_deleted: bool
    client_deleted: bool

    def as_dict(self) -> Dict[str, Any]:
        return asdict(self)


class ConvergeTimeout(BackendError):
    """A node did not converge in time; ``status`` is the last thing the server said."""

    def __init__(self, node: str, message: str, status: Optional[NodeStatus],
                 retryable: bool = False) -> None:
        self.status = status
        super().__init__(SYSTEM, "wait for converge", node, message, retryable)

    def as_dict(self) -> dict:
        result = super().as_dict()
        result["registered"] = bool(self.status and self.status.registered)
        result["ohai_time"] = self.status.ohai_time if self.status else None
        return result


# ---------------------------------------------------------------------------------------------
# Interface


class Configuration(abc.ABC):
    """The configuration management system that sets up new nodes. Errors are BackendError
    (remote) or ValidationError (bad input, raised before any I/O)."""

    @abc.abstractmethod
    def cloud_config(self, node: str, run_list: List[str], environment: str) -> Dict[str, Any]:
        """The cloud-config section that makes a new VM bootstrap itself as ``node``."""

    @abc.abstractmethod
    def node_status(self, node: str) -> NodeStatus:
        """Whether ``node`` is registered, and when its last finished run began."""

    @abc.abstractmethod
    def wait_converged(self, node: str, since: Any,
                       timeout: Optional[float] = None) -> NodeStatus:
        """Wait until ``node`` has finished a run that began at or after ``since`` (the VM's
        creation time); ConvergeTimeout after ``timeout`` seconds."""

    @abc.abstractmethod
    def delete_node(self, node: str) -> Removal:
        """Delete the node and its API client; either already gone is a success."""

    def node_exists(self, node: str) -> bool:
        return self.node_status(node).registered

    def close(self) -> None:  # noqa: B027 - nothing to release unless overridden
        """Release connections; the object is not used afterwards."""

    def __enter__(self) -> Configuration:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


# ---------------------------------------------------------------------------------------------
# Chef Infra Server


class ChefServer(Configuration):
    """The Chef Server API of one organisation (``server_url`` ends in /organizations/<org>)."""

    def __init__(self, settings: ChefSettings, clock: Callable[[], float] = time.time,
                 session: Optional[requests.Session] = None) -> None:
        parts = urlsplit(settings.server_url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValidationError("config key chef.server_url must be an http(s) URL such as "
                                  "https://chef.example.com/organizations/web, not %r"
                                  % (settings.server_url,))
        if parts.query or parts.fragment:
            raise ValidationError("config key chef.server_url must not have a query or fragment")
        if not _CHEF_NAME_RE.fullmatch(settings.client_name):
            raise ValidationError("config key chef.client_name %r is not a Chef client name "
                                  "(letters, digits, '_', '-', '.')" % (settings.client_name,))
        self.settings = settings
        self._key = load_private_key(settings.client_key)
        self._base = settings.server_url.rstrip("/")
        self._where = "%s://%s" % (parts.scheme, parts.netloc)
        self._clock = clock
        self._session = session or requests.Session()

    def close(self) -> None:
        self._session.close()

    # -- operations ------------------------------------------------------------------------

    def cloud_config(self, node: str, run_list: List[str], environment: str) -> Dict[str, Any]:
        return cloud_config(self.settings, node, run_list, environment)

    def node_status(self, node: str) -> NodeStatus:
        validate_node_name(node)
        operation = "read node"
        response = self._request("GET", "/nodes/%s" % node, operation, node)
        if response.status_code == 404:
            return NodeStatus(node, registered=False)
        if response.status_code != 200:
            raise self._refused(response, operation, node)
        data = self._json(response, operation, node)
        automatic = data.get("automatic") if isinstance(data.get("automatic"), dict) else {}
        ohai_time = automatic.get("ohai_time")
        if isinstance(ohai_time, bool) or not isinstance(ohai_time, (int, float)):
            ohai_time = None
        run_list = data.get("run_list")
        return NodeStatus(
            node=node,
            registered=True,
            ohai_time=float(ohai_time) if ohai_time is not None else None,
            environment=str(data.get("chef_environment") or ""),
            run_list=[str(item) for item in run_list] if isinstance(run_list, list) else [],
        )

    def wait_converged(self, node: str, since: Any,
                       timeout: Optional[float] = None) -> NodeStatus:
        validate_node_name(node)
        since = validate_since(since)
        timeout = _positive(self.settings.converge_timeout if timeout is None else timeout,
                            "converge timeout")
        deadline = time.monotonic() + timeout
        status, unreachable = None, None
        while True:
            try:
                status, unreachable = self.node_status(node), None
            except BackendError as exc:
                if not exc.retryable:
                    raise
                # The server may come back before the deadline; keep looking.
                unreachable = exc
                LOG.info("Chef: %s; still waiting for %s to converge", exc, node)
            else:
                if status.converged_since(since):
                    LOG.info("Chef: node %s converged (ohai_time %s)", node,
                             canonical_time(status.ohai_time or 0))
                    return status
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            time.sleep(min(self.settings.poll_interval, remaining))
        raise self._not_converged(node, since, timeout, status, unreachable)

    def delete_node(self, node: str) -> Removal:
        validate_node_name(node)
        errors = []
        deleted = {}
        # The client too: the node registered it with the validator, and a client left
        # behind could register a new node of that name.
        for kind, operation in (("nodes", "delete node"), ("clients", "delete client")):
            try:
                deleted[kind] = self._delete(kind, node, operation)
            except BackendError as exc:
                errors.append(exc)
        if errors:
            raise errors[0]
        return Removal(node, node_deleted=deleted["nodes"], client_deleted=deleted["clients"])

    # -- helpers ---------------------------------------------------------------------------

    def _delete(self, kind: str, name: str, operation: str) -> bool:
        response = self._request("DELETE", "/%s/%s" % (kind, name), operation, name)
        if response.status_code in (200, 204):
            LOG.info("Chef: %s %s: deleted", operation, name)
            return True
        if response.status_code == 404:
            LOG.info("Chef: %s %s: already gone", operation, name)
            return False
        raise self._refused(response, operation, name)

    def _request(self, method: str, path: str, operation: str, obj: str) -> requests.Response:
        """One signed, bodiless request (GET or DELETE, both idempotent), retried after a
        timeout, a connection failure, a 429 or a 5xx."""
        url = self._base + path
        signed_path = urlsplit(url).path

        def attempt() -> requests.Response:
            # Signed anew on every try: the timestamp must be fresh.
            headers = sign_request(self._key, self.settings.client_name, method, signed_path,
                                   b"", self._clock(), self.settings.server_api_version)
            headers.update({"Accept": "application/json", "X-Chef-Version": CHEF_VERSION})
            try:
                response = self._session.request(
                    method, url, headers=headers, timeout=self.settings.timeout,
                    verify=self.settings.verify_tls, allow_redirects=False)
            except requests.exceptions.SSLError as exc:
                raise BackendError(SYSTEM, operation, obj, "TLS with %s failed: %s"
                                   % (self._where, self._reason(exc))) from None
            except requests.Timeout:
                raise BackendError(SYSTEM, operation, obj, "no answer from %s within %s s"
                                   % (self._where, _seconds(self.settings.timeout)),
                                   retryable=True) from None
            except requests.ConnectionError as exc:
                raise BackendError(SYSTEM, operation, obj, "cannot connect to %s: %s"
                                   % (self._where, self._reason(exc)), retryable=True) from None
            except requests.RequestException as exc:
                raise BackendError(SYSTEM, operation, obj, "request failed: %s"
                                   % self._reason(exc)) from None
            LOG.debug("Chef: %s %s -> %d", method, signed_path, response.status_code)
            if response.status_code >= 500 or response.status_code == 429:
                raise self._refused(response, operation, obj, retryable=True)
            return response

        return retry(attempt, attempts=max(1, self.settings.attempts),
                     first_delay=self.settings.retry_delay)

    def _json(self, response: requests.Response, operation: str, obj: str) -> Dict[str, Any]:
        try:
            data = response.json()
        except ValueError:
            data = None
        if not isinstance(data, dict):
            raise BackendError(SYSTEM, operation, obj, "the server's answer is not a JSON "
                               "object (is chef.server_url the Chef Server API?)")
        return data

    def _reason(self, exc: BaseException) -> str:
        text = str(exc)
        # requests wraps urllib3's wrapper of the socket error: keep the socket error.
        found = re.search(r"\[Errno [^\]]*\][^'\")]*", text)
        return redact(found.group(0).strip() if found else text[:200] or type(exc).__name__,
                      self.settings.secrets())

    def _server_message(self, response: requests.Response) -> str:
        text = ""
        try:
            data = response.json()
        except ValueError:
            data, text = None, response.text
        if isinstance(data, dict):
            error, message = data.get("error"), data.get("message")
            if isinstance(error, list):
                text = "; ".join(str(item) for item in error)
            elif message:
                text = str(message)
            elif error:
                text = str(error)
        text = " ".join(text.split())[:300]
        return redact(text, self.settings.secrets())

    def _refused(self, response: requests.Response, operation: str, obj: str,
                 retryable: bool = False) -> BackendError:
        status = response.status_code
        said = self._server_message(response)
        quoted = "%d %s" % (status, said) if said else "%d" % status
        if status == 401:
            message = ("the server refused the request signature (%s): check chef.client_name, "
                       "chef.client_key and this host's clock" % quoted)
        elif status == 403:
            message = ("client %s may not do this (%s): give it read and delete permission "
                       "on nodes and clients" % (self.settings.client_name, quoted))
        elif status == 406:
            message = "the server does not take API version %d (%s)" % (
                self.settings.server_api_version, quoted)
        elif 300 <= status < 400:
            message = ("redirected to %s (%s): set chef.server_url to the final URL"
                       % (redact(response.headers.get("Location", "?"),
                                 self.settings.secrets()), quoted))
        else:
            message = "HTTP %s" % quoted
        return BackendError(SYSTEM, operation, obj, message, retryable=retryable)

    def _not_converged(self, node: str, since: float, timeout: float,
                       status: Optional[NodeStatus],
                       unreachable: Optional[BackendError]) -> ConvergeTimeout:
        prefix = "no converge within %s s: " % _seconds(timeout)
        if unreachable is not None:
            return ConvergeTimeout(node, prefix + "the Chef server did not answer at the end "
                                   "(%s)" % unreachable.message, status, retryable=True)
        if status is None or not status.registered:
            return ConvergeTimeout(node, prefix + "the node never registered with the Chef "
                                   "server (did cloud-init install and run chef-client? see "
                                   "the VM's /var/log/cloud-init-output.log)", status)
        if status.ohai_time is None:
            return ConvergeTimeout(node, prefix + "the node registered but no Chef run of it "
                                   "has finished yet", status)
        return ConvergeTimeout(node, prefix + "the node registered but its last finished Chef "
                               "run began at %s, before the VM was created (%s)"
                               % (canonical_time(status.ohai_time), canonical_time(since)),
                               status)


def configuration(settings: ChefSettings, **kwargs: Any) -> Configuration:
    """The production implementation for ``settings``."""
    return ChefServer(settings, **kwargs)
