"""A fake Chef Infra Server on loopback that authenticates every request as the real one does.

It knows API clients by their PUBLIC keys only and checks each request in the order erchef
does (oc_chef_wm_base: service_available, malformed_request, is_authorized, forbidden; the
checks themselves are chef_authn's), answering with the real status codes and error JSON:

1. ``X-Ops-Server-API-Version``, when sent, is an integer from 0 to 2 → else 406.
2. ``X-Ops-UserId``, ``X-Ops-Timestamp``, ``X-Ops-Sign`` and ``X-Ops-Content-Hash`` are
   present and not empty → else 400 "missing required authentication header(s) ...".
3. The timestamp reads as YYYY-MM-DDTHH:MM:SSZ → else 401 "bad header(s)"; it lies less than
   15 minutes from the server's clock → else 401 "... Synchronize the clock on your host.".
4. ``X-Ops-Sign`` names a protocol version the server knows → else 400. This fake verifies
   only version 1.3 (sha256) and answers 400 for 1.0-1.2, which the real server would still
   take: a client that falls back to an older protocol fails here.
5. The organisation exists → else 404; the user id is a client of it → else 401 "Failed to
   authenticate as '<name>'. Ensure that your node_name and client key are correct.".
6. The signature: the X-Ops-Authorization-1..N headers joined, base64-decoded, verified
   (RSA PKCS#1 v1.5, SHA-256) over the canonical request the server builds itself: the
   method, the canonical path of the request it received (no query, "//" collapsed, no
   trailing "/"), the SHA-256 of the body it received, the timestamp header as sent, the user
   id and the API version header (0 when absent) → else 401 "Invalid signature for user or
   client '<name>'". Like chef_authn for 1.3, the X-Ops-Content-Hash header's value is
   required but not compared: the signature covers the hash of the real body.
7. The client holds the permission the method needs (read for GET, delete for DELETE) →
   else 403 "missing <perm> permission".

Endpoints (under /organizations/<org>): ``GET nodes``, ``GET|DELETE nodes/<name>``,
``GET clients``, ``GET|DELETE clients/<name>``.

Test knobs: ``add_client`` (a public key, permissions), ``register_node`` (a node as the
server holds it now, with or without ``automatic.ohai_time``), ``boot_node`` (a VM's first
chef-client run: the node and its client appear after ``register_after`` seconds and the
run's ohai_time becomes visible after ``converge_after``, or never), ``fail_next`` (5xx
answers) and ``delay_next`` (slow answers, for client timeouts), each returning its
``Failure``, ``heal()``, ``clock`` (the server's clock). What it holds: ``node``,
``has_client``, ``node_names``, ``client_names``.
"""

from __future__ import annotations

import base64
import binascii
import calendar
import hashlib
import re
import threading
import time
from typing import Any, Callable, Dict, Iterable, List, Optional, Tuple, Union

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from .http_fake import Failure, Failures, FakeService, Request, Response

AUTH_SKEW = 15 * 60  # seconds; erchef's auth_skew default
API_MIN_VERSION, API_MAX_VERSION = 0, 2
REQUIRED_HEADERS = ("X-Ops-UserId", "X-Ops-Timestamp", "X-Ops-Sign", "X-Ops-Content-Hash")
KNOWN_SIGN_VERSIONS = {"1.0": "sha1", "1.1": "sha1", "1.2": "sha1", "1.3": "sha256"}
PERMISSION_FOR = {"GET": "read", "DELETE": "delete", "PUT": "update", "POST": "create"}

PublicKeyLike = Union[rsa.RSAPublicKey, rsa.RSAPrivateKey, str, bytes, None]


def _error(status: int, *messages: str, headers: Optional[Dict[str, str]] = None) -> Response:
    return Response(status, {"error": list(messages)}, headers)


def _public_key(value: PublicKeyLike) -> Optional[rsa.RSAPublicKey]:
    if value is None:
        return None
    if isinstance(value, rsa.RSAPrivateKey):
        return value.public_key()
    if isinstance(value, rsa.RSAPublicKey):
        return value
    data = value.encode("ascii") if isinstance(value, str) else value
    key = serialization.load_pem_public_key(data)
    if not isinstance(key, rsa.RSAPublicKey):
        raise ValueError("Chef clients have RSA keys")
    return key


def server_canonical_path(path: str) -> str:
    """chef_authn:canonical_path/1, regular expression for regular expression."""
    if path == "/":
        return path
    path = re.sub(r"\?.*$", "", path)
    path = re.sub(r"/+/", "/", path)
    path = re.sub(r"/$", "", path, count=1)
    return path or "/"


def _holding(part: Optional[str]) -> Optional[Callable[[str], bool]]:
    """A path test for a failure: the path holds ``part`` (any path when None)."""
    return None if part is None else (lambda path: part in path)


def _request_time(value: str) -> Optional[float]:
    """chef_time_utils:time_iso8601_to_date_time/1: six integers between '-', 'T', ':', 'Z'."""
    parts = [part for part in re.split(r"[-T:Z]", value) if part]
    if len(parts) != 6 or not all(part.isdigit() for part in parts):
        return None
    year, month, day, hour, minute, second = (int(part) for part in parts)
    try:
        time.strptime("%04d-%02d-%02d %02d:%02d:%02d" % (year, month, day, hour, minute,
                                                         second), "%Y-%m-%d %H:%M:%S")
    except ValueError:
        return None
    return float(calendar.timegm((year, month, day, hour, minute, second, 0, 0, 0)))


class FakeChefServer(FakeService):
    """One Chef organisation. ``org_url`` is what the pack's ``chef.server_url`` holds."""

    def __init__(self, org: str = "web", clock: Callable[[], float] = time.time) -> None:
        super().__init__()
        self.org = org
        self.clock = clock
        self._clients: Dict[str, Dict[str, Any]] = {}
        self._nodes: Dict[str, Dict[str, Any]] = {}
        # name -> (register_at, converge_at or None, run_list, environment), epoch seconds
        self._boots: Dict[str, Tuple[float, Optional[float], List[str], str]] = {}
        self._delays = Failures()
        # (user id, method, path, status) of every request, authenticated or not.
        self.log: List[Tuple[str, str, str, int]] = []
        self._state = threading.RLock()

    @property
    def org_url(self) -> str:
        return "%s/organizations/%s" % (self.url, self.org)

    # -- knobs ----------------------------------------------------------------------------------

    def add_client(self, name: str, public_key: PublicKeyLike = None, validator: bool = False,
                   permissions: Iterable[str] = ("read", "delete")) -> None:
        """An API client; without a public key no request of it ever authenticates."""
        with self._state:
            self._clients[name] = {"public_key": _public_key(public_key),
                                  "validator": validator, "permissions": set(permissions)}

    def register_node(self, name: str, ohai_time: Optional[float] = None,
                      run_list: Iterable[str] = (), environment: str = "_default",
                      with_client: bool = True) -> Dict[str, Any]:
        """A node as the server holds it now; ``ohai_time`` None: registered, never run."""
        automatic: Dict[str, Any] = {}
        if ohai_time is not None:
            automatic = {"ohai_time": ohai_time, "fqdn": name, "hostname": name}
        node = {
            "name": name, "chef_environment": environment, "json_class": "Chef::Node",
            "chef_type": "node", "run_list": list(run_list), "automatic": automatic,
            "normal": {"tags": []}, "default": {}, "override": {},
        }
        with self._state:
            self._nodes[name] = node
            if with_client and name not in self._clients:
                # The node's own client: its key stays on the VM, so the fake knows none.
                self.add_client(name, None, permissions=("read",))
        return node

    def boot_node(self, name: str, register_after: float = 0.0,
                  converge_after: Optional[float] = None, run_list: Iterable[str] = (),
                  environment: str = "_default") -> None:
        """A new VM's first chef-client run, from now: it registers its client and node
        after ``register_after`` seconds and saves the node with ``automatic.ohai_time``
        (the run's start) after ``converge_after`` seconds; None: the run never finishes."""
        now = self.clock()
        with self._state:
            self._boots[name] = (now + register_after,
                                 None if converge_after is None else now + converge_after,
                                 list(run_list), environment)

    def fail_next(self, count: int = 1, status: int = 500, method: Optional[str] = None,
                  path: Optional[str] = None) -> Failure:
        """Answer the next ``count`` requests (of ``method``, whose path holds ``path``) with
        ``status`` before anything else."""
        return self._faults.add(Failure(count, status, method=method, path=path,
                                        matches=_holding(path),
                                        message="internal service error"))

    def delay_next(self, count: int, seconds: float, method: Optional[str] = None,
                   path: Optional[str] = None) -> Failure:
        """Hold the next ``count`` matching requests ``seconds`` before answering."""
        return self._delays.add(Failure(count, method=method, path=path,
                                        matches=_holding(path), delay=seconds))

    def _fault_lists(self) -> List[Failures]:
        return [self._faults, self._delays]

    def reset(self) -> None:
        """Forget every client, node, planned run, failure rule and request (a server shared
        by several tests starts each one empty)."""
        with self._state:
            self._clients.clear()
            self._nodes.clear()
            self._boots.clear()
            self.heal()
            self.log.clear()
            self.requests.clear()

    def node(self, name: str) -> Optional[Dict[str, Any]]:
        with self._state:
            self._advance()
            return self._nodes.get(name)

    def has_client(self, name: str) -> bool:
        with self._state:
            self._advance()
            return name in self._clients

    def client(self, name: str) -> Optional[Dict[str, Any]]:
        """An API client as the server knows it (``public_key``, ``validator``,
        ``permissions``), a copy; None when there is none."""
        with self._state:
            self._advance()
            found = self._clients.get(name)
            return None if found is None else dict(found, permissions=set(found["permissions"]))

    def node_names(self) -> List[str]:
        """The nodes the server holds now, sorted."""
        with self._state:
            self._advance()
            return sorted(self._nodes)

    def client_names(self) -> List[str]:
        """The API clients the server knows now, sorted."""
        with self._state:
            self._advance()
            return sorted(self._clients)

    # -- serving --------------------------------------------------------------------------------

    def handle(self, request: Request) -> Response:
        user = request.headers.get("x-ops-userid", "")
        delayed = self._delays.take(request.method, request.path)
        if delayed is not None:
            time.sleep(delayed.delay)
        response = self._handle(request, user)
        with self._state:
            self.log.append((user, request.method, request.path, response.status))
        return response

    def _handle(self, request: Request, user: str) -> Response:
        failure = self._faults.take(request.method, request.path)
        if failure is not None:
            return _error(failure.status, failure.message)
        header = self._header_fun(request)

        # service_available: the API version.
        version = header("X-Ops-Server-API-Version")
        if version is not None:
            try:
                number = int(version)
            except ValueError:
                number = None
            if number is None or not API_MIN_VERSION <= number <= API_MAX_VERSION:
                return Response(406, {
                    "error": "invalid-x-ops-server-api-version",
                    "message": "Specified version %s not supported" % version,
                    "min_version": API_MIN_VERSION, "max_version": API_MAX_VERSION})

        # malformed_request: chef_authn:validate_headers/2.
        missing = [name for name in REQUIRED_HEADERS if header(name) is None]
        if missing:
            return _error(400, "missing required authentication header(s) %s"
                          % ", ".join("'%s'" % name for name in missing))
        sent_time = _request_time(header("X-Ops-Timestamp"))
        if sent_time is None:
            return _error(401, "bad header(s) 'X-Ops-Timestamp'")
        if not abs(self.clock() - sent_time) < AUTH_SKEW:
            return _error(401, "Failed to authenticate as %s. Synchronize the clock on your "
                          "host." % user)
        description = dict(part.split("=", 1) for part in header("X-Ops-Sign").split(";")
                           if part.count("=") == 1)
        sign_version = description.get("version")
        algorithm = description.get("algorithm", KNOWN_SIGN_VERSIONS.get(sign_version))
        if KNOWN_SIGN_VERSIONS.get(sign_version) != algorithm or sign_version != "1.3":
            return _error(400, "Unsupported authentication protocol version")

        match = re.fullmatch(r"/organizations/([^/]+)(/.*)?", request.path)
        if not match:
            return _error(404, "not found")
        if match.group(1) != self.org:
            return _error(404, "organization '%s' does not exist." % match.group(1))

        # is_authorized: the requestor and the signature.
        with self._state:
            self._advance()
            client = self._clients.get(user)
        if client is None:
            return _error(401, "Failed to authenticate as '%s'. Ensure that your node_name "
                          "and client key are correct." % user)
        if not self._signature_ok(request, header, client["public_key"], user):
            return _error(401, "Invalid signature for user or client '%s'" % user,
                          headers={"WWW-Authenticate": 'X-Ops-Sign version="1.0" '
                                                       'version="1.1"'})

        # forbidden: the permission the method needs.
        permission = PERMISSION_FOR.get(request.method, "update")
        if permission not in client["permissions"]:
            return _error(403, "missing %s permission" % permission)
        return self._route(request, match.group(2) or "/")

    @staticmethod
    def _header_fun(request: Request) -> Callable[[str], Optional[str]]:
        def get(name: str) -> Optional[str]:
            value = request.headers.get(name.lower())
            return value if value else None  # erchef treats an empty value as missing
        return get

    def _signature_ok(self, request: Request, header: Callable[[str], Optional[str]],
                      public_key: Optional[rsa.RSAPublicKey], user: str) -> bool:
        parts, index = [], 1
        while header("X-Ops-Authorization-%d" % index) is not None:
            parts.append(header("X-Ops-Authorization-%d" % index))
            index += 1
        api_version = header("X-Ops-Server-API-Version")
        body_hash = base64.b64encode(hashlib.sha256(request.body).digest()).decode("ascii")
        plain = ("Method:%s\nPath:%s\nX-Ops-Content-Hash:%s\nX-Ops-Sign:version=1.3\n"
                 "X-Ops-Timestamp:%s\nX-Ops-UserId:%s\nX-Ops-Server-API-Version:%d" % (
                     request.method.upper(), server_canonical_path(request.path), body_hash,
                     header("X-Ops-Timestamp"), user,
                     int(api_version) if api_version is not None else 0))
        if public_key is None or not parts:
            return False
        try:
            signature = base64.b64decode("".join(parts))
            public_key.verify(signature, plain.encode("utf-8"), padding.PKCS1v15(),
                              hashes.SHA256())
        except (InvalidSignature, binascii.Error, ValueError):
            return False
        return True

    def _route(self, request: Request, rest: str) -> Response:
        parts = [part for part in rest.split("/") if part]
        with self._state:
            self._advance()
            if parts in (["nodes"], ["clients"]) and request.method == "GET":
                store = self._nodes if parts[0] == "nodes" else self._clients
                return Response(200, {name: "%s/%s/%s" % (self.org_url, parts[0], name)
                                      for name in sorted(store)})
            if len(parts) == 2 and parts[0] == "nodes":
                return self._object(request, self._nodes, parts[1],
                                    "node '%s' not found" % parts[1])
            if len(parts) == 2 and parts[0] == "clients":
                return self._object(request, self._clients, parts[1],
                                    "Cannot load client %s" % parts[1])
        return _error(404, "not found")

    def _object(self, request: Request, store: Dict[str, Dict[str, Any]], name: str,
                not_found: str) -> Response:
        if request.method not in ("GET", "DELETE"):
            return Response(405, {"error": ["method not allowed"]}, {"Allow": "GET, DELETE"})
        if name not in store:
            return _error(404, not_found)
        body = self._client_json(name) if store is self._clients else dict(store[name])
        if request.method == "DELETE":
            del store[name]
            self._boots.pop(name, None)
        return Response(200, body)

    def _client_json(self, name: str) -> Dict[str, Any]:
        return {"name": name, "clientname": name, "orgname": self.org,
                "validator": self._clients[name]["validator"],
                "json_class": "Chef::ApiClient", "chef_type": "client"}

    def _advance(self) -> None:
        """Let scheduled first runs happen (called with the state lock held)."""
        now = self.clock()
        for name, (register_at, converge_at, run_list, environment) in list(
                self._boots.items()):
            if now < register_at:
                continue
            if name not in self._nodes:
                self.register_node(name, None, run_list, environment)
            if converge_at is not None and now >= converge_at:
                # ohai_time is taken when the run starts, saved when it ends.
                self.register_node(name, register_at, run_list, environment)
                del self._boots[name]
