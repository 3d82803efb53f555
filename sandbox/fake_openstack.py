"""A fake OpenStack on loopback: Keystone v3, Nova (compute API v2.1 with microversions), and
the parts of Glance and Neutron that novaclient uses to turn image and network names into ids.

It speaks the real protocol so that the real keystoneauth1 and python-novaclient talk to it,
and it checks what the real services check:

* Keystone: ``POST /identity/v3/auth/tokens`` with a password body (user, domain, project
  scope) or an application credential body (id and secret, no scope); a wrong one is 401.
  A good one gets ``X-Subject-Token`` and a service catalog with compute, image and network
  endpoints for every region and interface (``<url>/<region>/<interface>/compute/v2.1`` ...).
* Every Nova, Glance and Neutron call needs a valid ``X-Auth-Token`` (401 otherwise), and
  every Nova call a microversion (``OpenStack-API-Version: compute 2.79`` or
  ``X-OpenStack-Nova-API-Version: 2.79``) within the fake's range (406 otherwise). Stricter
  than real Nova on one point: a request without any microversion header is refused with
  400, where Nova would quietly serve 2.1, so that a client that forgets it is caught.
* Servers go BUILD → ACTIVE after the boot delay (or ERROR with a fault, see
  ``set_boot_fault``), and after DELETE they answer 404 once the delete delay has passed.
  Listing filters by ``name`` (a regular expression, as Nova does) and ``status``, pages with
  ``limit``/``marker`` and ignores other filters, as Nova does for a non-admin.
* At microversion ≥ 2.36 the image and network proxy APIs answer 404 and at ≥ 2.37 a create
  must name its networks, as in Nova.

Knobs (methods, settable at any time): ``set_boot_delay``, ``set_delete_delay`` (for every
server or one), ``set_boot_fault``, ``set_quota`` (403 "Quota exceeded", or 413),
``set_create_answer`` (the server is created but the answer is late or an error, as when a
proxy times out), ``set_page_limit``, ``inject()`` (transient errors; returns the
``Failure``), ``heal()``, ``expire_tokens()``; ``add_server`` and ``delete_server`` act as
another client of the same project would.

The sandbox demo hooks in with ``on_create(server) -> address`` (start a stand-in for the VM,
return where it listens) and ``on_delete(server)`` (constructor arguments or ``set_hooks``);
without a hook a server gets an address in 127.0.100.0/24.
"""

from __future__ import annotations

import base64
import binascii
import re
import threading
import time
import uuid
from datetime import datetime, timedelta, timezone
from typing import Any, Callable, Dict, List, Optional, Tuple
from urllib.parse import unquote

from .http_fake import Failure, FakeService, Request, Response

INTERFACES = ("public", "internal", "admin")
# How the catalog names its services: (type, name, path below <region>/<interface>/).
SERVICES = (("compute", "nova", "compute/v2.1"), ("image", "glance", "image"),
            ("network", "neutron", "network"))
NOVA_FAULT_KEYS = {400: "badRequest", 401: "unauthorized", 403: "forbidden", 404: "itemNotFound",
                   405: "badMethod", 409: "conflictingRequest", 413: "overLimit",
                   415: "badMediaType", 429: "overLimit", 501: "notImplemented",
                   503: "serviceUnavailable"}
USER_DATA_MAX = 65535

_ROUTE = re.compile(r"/(?P<region>[^/]+)/(?P<iface>public|internal|admin)/"
                    r"(?P<service>compute|image|network)(?P<rest>/.*)?")
_VERSION = re.compile(r"(\d+)\.(\d+)")


def _iso(moment: Optional[datetime] = None, micro: bool = False) -> str:
    moment = moment or datetime.now(timezone.utc)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ" if micro else "%Y-%m-%dT%H:%M:%SZ")


def _version(text: str) -> Optional[Tuple[int, int]]:
    match = _VERSION.fullmatch(text.strip())
    return (int(match.group(1)), int(match.group(2))) if match else None


def nova_error(status: int, message: str, headers: Optional[Dict[str, str]] = None) -> Response:
    """An error as Nova writes it: ``{"badRequest": {"code": 400, "message": ...}}``."""
    key = NOVA_FAULT_KEYS.get(status, "computeFault")
    return Response(status, {key: {"code": status, "message": message}}, headers)


def keystone_error(status: int, title: str, message: str,
                   headers: Optional[Dict[str, str]] = None) -> Response:
    return Response(status, {"error": {"code": status, "title": title, "message": message}},
                    headers)


class FakeOpenStack(FakeService):
    """Keystone + Nova + name lookups of Glance and Neutron, one HTTP server."""

    def __init__(self, *, username: str = "autoscale", password: str = "fake-password",
                 user_domain: str = "Default", project_name: str = "autoscale",
                 project_domain: str = "Default",
                 application_credential_id: str = "0f1e2d3c4b5a69788796a5b4c3d2e1f0",
                 application_credential_secret: str = "fake-app-cred-secret",
                 regions: Tuple[str, ...] = ("RegionOne",), min_version: str = "2.1",
                 max_version: str = "2.96", boot_delay: float = 0.2, delete_delay: float = 0.1,
                 token_ttl: float = 3600.0, max_limit: int = 1000,
                 on_create: Optional[Callable[[Dict[str, Any]], Optional[str]]] = None,
                 on_delete: Optional[Callable[[Dict[str, Any]], None]] = None) -> None:
        super().__init__()
        self.username = username
        self.password = password
        self.user_domain = user_domain
        self.project_name = project_name
        self.project_domain = project_domain
        self.application_credential_id = application_credential_id
        self.application_credential_secret = application_credential_secret
        self.project_id = uuid.uuid4().hex
        self.user_id = uuid.uuid4().hex
        self.regions = tuple(regions)
        self.min_version = _version(min_version)
        self.max_version = _version(max_version)
        self.token_ttl = token_ttl
        self._on_create = on_create
        self._on_delete = on_delete
        self._initial = (boot_delay, delete_delay, max_limit)
        self._state = threading.RLock()
        self.reset()

    def reset(self) -> None:
        """Back to the state just after construction: no servers, tokens, recorded requests or
        failure knobs; the default flavors, image and network (with new ids)."""
        with self._state:
            self._boot_delay, self._delete_delay, self._max_limit = self._initial
            # The knobs' state: see the set_* methods.
            self._boot_fault: Optional[str] = None
            self._quota_instances: Optional[int] = None
            self._quota_status = 403
            self._create_answer_delay = 0.0
            self._create_answer_status: Optional[int] = None
            self.flavors: Dict[str, Dict[str, Any]] = {}
            self.images: Dict[str, Dict[str, Any]] = {}
            self.networks: Dict[str, Dict[str, Any]] = {}
            self._servers: Dict[str, Dict[str, Any]] = {}
            self.tokens: Dict[str, float] = {}
            # (region, interface, service) of every service call, to check endpoint choice.
            self.endpoint_hits: List[Tuple[str, str, str]] = []
            self._faults.clear()
            self._serial = 0
            self._addresses = 0
            self.add_flavor("m1.small", flavor_id="2", vcpus=1, ram=2048, disk=20)
            self.add_flavor("m1.medium", flavor_id="3", vcpus=2, ram=4096, disk=40)
            self.add_image("ubuntu-24.04")
            self.add_network("private")
        with self._lock:
            self.requests.clear()

    # -- set-up --------------------------------------------------------------------------------

    @property
    def auth_url(self) -> str:
        return self.url + "/identity/v3"

    def endpoint(self, service: str = "compute", region: Optional[str] = None,
                 interface: str = "public") -> str:
        path = dict((kind, p) for kind, _, p in SERVICES)[service]
        return "%s/%s/%s/%s" % (self.url, region or self.regions[0], interface, path)

    def add_flavor(self, name: str, flavor_id: Optional[str] = None, vcpus: int = 1,
                   ram: int = 1024, disk: int = 10) -> str:
        flavor_id = flavor_id or str(uuid.uuid4())
        self.flavors[flavor_id] = {"id": flavor_id, "name": name, "vcpus": vcpus, "ram": ram,
                                   "disk": disk}
        return flavor_id

    def add_image(self, name: str, image_id: Optional[str] = None) -> str:
        image_id = image_id or str(uuid.uuid4())
        self.images[image_id] = {"id": image_id, "name": name}
        return image_id

    def add_network(self, name: str, network_id: Optional[str] = None) -> str:
        network_id = network_id or str(uuid.uuid4())
        self.networks[network_id] = {"id": network_id, "name": name,
                                     "subnet_id": str(uuid.uuid4())}
        return network_id

    def expire_tokens(self) -> None:
        """Every token issued so far stops working (a Keystone restart, a revocation)."""
        with self._state:
            self.tokens.clear()

    def inject(self, method: str, path_pattern: str, status: int, times: int = 1,
               message: str = "injected failure") -> Failure:
        """The next ``times`` service calls whose method and path (below the endpoint, e.g.
        ``/servers/<id>``) fully match ``path_pattern`` answer ``status``."""
        pattern = re.compile(path_pattern)
        return self._faults.add(Failure(times, status, method=method, path=path_pattern,
                                        matches=lambda rest: bool(pattern.fullmatch(rest)),
                                        message=message))

    # -- knobs ---------------------------------------------------------------------------------

    @property
    def boot_delay(self) -> float:
        return self._boot_delay

    @property
    def delete_delay(self) -> float:
        return self._delete_delay

    def set_boot_delay(self, seconds: float) -> None:
        """Servers created from now on stay in BUILD for ``seconds``."""
        with self._state:
            self._boot_delay = float(seconds)

    def set_delete_delay(self, seconds: float, server_id: Optional[str] = None) -> None:
        """How long a deleted server is still listed (task_state ``deleting``): for the server
        ``server_id``, or for every server that has no delay of its own."""
        with self._state:
            if server_id is None:
                self._delete_delay = float(seconds)
            else:
                self._servers[server_id]["delete_delay"] = float(seconds)

    def set_boot_fault(self, fault: Optional[str]) -> None:
        """Servers created from now on go to ERROR with this fault message; None: they boot."""
        with self._state:
            self._boot_fault = fault

    def set_quota(self, instances: Optional[int], status: int = 403) -> None:
        """At most ``instances`` servers (None: no limit); a create beyond answers ``status``
        "Quota exceeded" (Nova says 403, older releases 413)."""
        with self._state:
            self._quota_instances, self._quota_status = instances, status

    def set_create_answer(self, delay: float = 0.0, status: Optional[int] = None) -> None:
        """Creates still make their server, but the answer comes ``delay`` seconds late, or
        (``status``) is an HTTP error page, as when a proxy in front of Nova times out."""
        with self._state:
            self._create_answer_delay, self._create_answer_status = delay, status

    def set_page_limit(self, limit: int) -> None:
        """The most servers one listing page holds (Nova's ``max_limit``)."""
        with self._state:
            self._max_limit = limit

    def set_hooks(self, on_create: Optional[Callable[[Dict[str, Any]], Optional[str]]] = None,
                  on_delete: Optional[Callable[[Dict[str, Any]], None]] = None) -> None:
        """Replace the create and delete hooks (see the module's docstring); None: no hook."""
        with self._state:
            self._on_create, self._on_delete = on_create, on_delete

    # -- acting as another client --------------------------------------------------------------

    def add_server(self, name: str, metadata: Optional[Dict[str, str]] = None) -> str:
        """A server someone else made in the project (by hand, another tool): no user data,
        the first flavor, image and network; booting as any other. Its id."""
        with self._state:
            self._serial += 1
            server = self._new_server(name, next(iter(self.flavors)), next(iter(self.images)),
                                      [next(iter(self.networks))], metadata or {}, "")
            self._addresses += 1
            server["address"] = "127.0.100.%d" % (self._addresses % 250 + 1)
            self._servers[server["id"]] = server
            return server["id"]

    def set_metadata(self, server_id: str, key: str, value: str) -> None:
        """Set one metadata item of a server, as ``openstack server set --property`` would;
        nothing when the server is gone."""
        with self._state:
            server = self._servers.get(server_id)
            if server is not None:
                server["metadata"][key] = value

    def set_server_fault(self, server_id: str, fault: str) -> None:
        """The server goes to ERROR with ``fault`` when its BUILD ends (a failed spawn);
        nothing when the server is gone."""
        with self._state:
            server = self._servers.get(server_id)
            if server is not None:
                server["fault"] = fault

    def delete_server(self, server_id: str) -> None:
        """Delete a server as another client would (listed as deleting for its delay)."""
        with self._state:
            server = self._servers[server_id]
            if server["deleted_at"] is None:
                server["deleted_at"] = time.monotonic()

    # -- what tests look at --------------------------------------------------------------------

    def live_servers(self) -> List[Dict[str, Any]]:
        """Every server still listed, as copies; ``status`` (BUILD, ACTIVE, ERROR) and
        ``deleting`` say where each one is."""
        with self._state:
            self._collect()
            return [self._view(s) for s in self._servers.values()]

    def server(self, server_id: str) -> Optional[Dict[str, Any]]:
        """One listed server as ``live_servers`` shows it; None when there is none."""
        with self._state:
            self._collect()
            found = self._servers.get(server_id)
            return None if found is None else self._view(found)

    def user_data(self, server_id: str) -> str:
        with self._state:
            return self._servers[server_id]["user_data"]

    def service_requests(self, service: str = "compute") -> List[Request]:
        found = []
        for request in list(self.requests):
            match = _ROUTE.fullmatch(request.path)
            if match is not None and match["service"] == service:
                found.append(request)
        return found

    # -- dispatch ------------------------------------------------------------------------------

    def handle(self, request: Request) -> Response:
        if request.path.rstrip("/") == "/identity/v3" and request.method == "GET":
            return Response(200, {"version": {
                "id": "v3.14", "status": "stable", "updated": "2020-04-07T00:00:00Z",
                "links": [{"rel": "self", "href": self.auth_url + "/"}],
                "media-types": [{"base": "application/json",
                                 "type": "application/vnd.openstack.identity-v3+json"}]}})
        if request.path == "/identity/v3/auth/tokens":
            if request.method != "POST":
                return keystone_error(405, "Method Not Allowed", "only POST is faked")
            return self._issue_token(request)
        match = _ROUTE.fullmatch(request.path)
        if match is None or match["region"] not in self.regions:
            return Response(404, "404 Not Found: %s" % request.path)
        service, rest = match["service"], match["rest"] or ""
        with self._state:
            self.endpoint_hits.append((match["region"], match["iface"], service))
        if service == "compute":
            if rest in ("", "/"):
                return Response(200, {"versions": self._nova_versions(match)})
            if rest in ("/v2.1", "/v2.1/"):
                return Response(200, {"version": self._nova_versions(match)[1]})
            rest = rest[len("/v2.1"):]
        injected = self._take_injected(request.method, rest)
        if injected is not None:
            return injected
        denied = self._check_token(request)
        if denied is not None:
            return denied
        if service == "image":
            return self._glance(request, rest)
        if service == "network":
            return self._neutron(request, rest)
        version, error = self._microversion(request)
        if error is not None:
            return error
        response = self._nova(request, rest, version)
        headers = dict(response.headers or {})
        text = "%d.%d" % version
        headers.update({"OpenStack-API-Version": "compute " + text,
                        "X-OpenStack-Nova-API-Version": text,
                        "Vary": "OpenStack-API-Version, X-OpenStack-Nova-API-Version",
                        "X-OpenStack-Request-Id": "req-" + str(uuid.uuid4())})
        return Response(response.status, response.body, headers)

    def _take_injected(self, method: str, rest: str) -> Optional[Response]:
        failure = self._faults.take(method, rest)
        return None if failure is None else nova_error(failure.status, failure.message)

    def _view(self, server: Dict[str, Any]) -> Dict[str, Any]:
        view = dict(server)
        view["status"] = self._status(server)[0]
        view["deleting"] = server["deleted_at"] is not None
        if view["delete_delay"] is None:
            view["delete_delay"] = self._delete_delay
        return view

    # -- Keystone ------------------------------------------------------------------------------

    def _issue_token(self, request: Request) -> Response:
        unauthorized = keystone_error(401, "Unauthorized",
                                      "The request you have made requires authentication.")
        try:
            auth = request.json()["auth"]
            identity = auth["identity"]
            methods = identity["methods"]
        except (ValueError, KeyError, TypeError):
            return keystone_error(400, "Bad Request", "Expecting to find auth in request body.")
        if methods == ["password"]:
            user = (identity.get("password") or {}).get("user") or {}
            scope = ((auth.get("scope") or {}).get("project")) or {}
            if not (user.get("name") == self.username
                    and (user.get("domain") or {}).get("name") == self.user_domain
                    and user.get("password") == self.password):
                return unauthorized
            if not (scope.get("name") == self.project_name
                    and (scope.get("domain") or {}).get("name") == self.project_domain):
                return unauthorized
            extra: Dict[str, Any] = {}
        elif methods == ["application_credential"]:
            credential = identity.get("application_credential") or {}
            if "scope" in auth:  # the credential's project is its scope
                return unauthorized
            if not (credential.get("id") == self.application_credential_id
                    and credential.get("secret") == self.application_credential_secret):
                return unauthorized
            extra = {"application_credential": {"id": self.application_credential_id,
                                                "name": "autoscale", "restricted": True}}
        else:
            return unauthorized
        token = uuid.uuid4().hex
        now = datetime.now(timezone.utc)
        with self._state:
            self.tokens[token] = time.monotonic() + self.token_ttl
        body = {"token": dict(
            extra, methods=methods, audit_ids=[uuid.uuid4().hex[:22]],
            issued_at=_iso(now, micro=True),
            expires_at=_iso(now + timedelta(seconds=self.token_ttl), micro=True),
            user={"id": self.user_id, "name": self.username,
                  "domain": {"id": "default", "name": self.user_domain}},
            project={"id": self.project_id, "name": self.project_name,
                     "domain": {"id": "default", "name": self.project_domain}},
            roles=[{"id": uuid.uuid4().hex, "name": "member"}],
            catalog=self._catalog())}
        return Response(201, body, {"X-Subject-Token": token})

    def _catalog(self) -> List[Dict[str, Any]]:
        catalog = [{"type": "identity", "name": "keystone", "id": uuid.uuid4().hex,
                    "endpoints": [{"id": uuid.uuid4().hex, "interface": iface,
                                   "region": region, "region_id": region,
                                   "url": self.url + "/identity"}
                                  for region in self.regions for iface in INTERFACES]}]
        for kind, name, _ in SERVICES:
            catalog.append({"type": kind, "name": name, "id": uuid.uuid4().hex, "endpoints": [
                {"id": uuid.uuid4().hex, "interface": iface, "region": region,
                 "region_id": region, "url": self.endpoint(kind, region, iface)}
                for region in self.regions for iface in INTERFACES]})
        return catalog

    def _check_token(self, request: Request) -> Optional[Response]:
        token = request.headers.get("x-auth-token")
        with self._state:
            expires = self.tokens.get(token or "")
        if expires is None or expires <= time.monotonic():
            return keystone_error(401, "Unauthorized",
                                  "The request you have made requires authentication.",
                                  {"WWW-Authenticate": 'Keystone uri="%s"' % self.auth_url})
        return None

    # -- Nova ----------------------------------------------------------------------------------

    def _nova_versions(self, match: Any) -> List[Dict[str, Any]]:
        base = "%s/%s/%s/compute" % (self.url, match["region"], match["iface"])
        return [
            {"id": "v2.0", "status": "SUPPORTED", "version": "", "min_version": "",
             "updated": "2011-01-21T11:33:21Z", "links": [{"rel": "self", "href": base + "/v2/"}]},
            {"id": "v2.1", "status": "CURRENT", "version": "%d.%d" % self.max_version,
             "min_version": "%d.%d" % self.min_version, "updated": "2013-07-23T11:33:21Z",
             "links": [{"rel": "self", "href": base + "/v2.1/"}]},
        ]

    def _microversion(self, request: Request) -> Tuple[Tuple[int, int], Optional[Response]]:
        new = request.headers.get("openstack-api-version")
        legacy = request.headers.get("x-openstack-nova-api-version")
        text = None
        if new:  # "compute 2.79", possibly among other services'; it wins over the legacy one
            for part in new.split(","):
                words = part.split()
                if len(words) == 2 and words[0].lower() == "compute":
                    text = words[1]
        if text is None and legacy:
            text = legacy
        if text is None:
            return (0, 0), nova_error(400, "No compute microversion header: this fake requires "
                                      "OpenStack-API-Version or X-OpenStack-Nova-API-Version "
                                      "(real Nova would silently serve 2.1)")
        if text.strip().lower() == "latest":
            return self.max_version, None
        version = _version(text)
        if version is None:
            return (0, 0), nova_error(400, "API Version String %s is of invalid format. Must "
                                      "be of format MajorNum.MinorNum." % text)
        if not self.min_version <= version <= self.max_version:
            return (0, 0), nova_error(406, "Version %s is not supported by the API. Minimum is "
                                      "%d.%d and maximum is %d.%d." % ((text,) + self.min_version
                                                                      + self.max_version))
        return version, None

    def _nova(self, request: Request, rest: str, version: Tuple[int, int]) -> Response:
        method = request.method
        parts = [unquote(p) for p in rest.strip("/").split("/") if p]
        if parts[:1] in (["images"], ["os-networks"]) and version >= (2, 36):
            return nova_error(404, "The resource could not be found.")
        if parts[:1] == ["flavors"]:
            if method != "GET":
                return nova_error(405, "method not faked")
            if len(parts) == 1 or parts[1:] == ["detail"]:
                return Response(200, {"flavors": [self._flavor_json(f, version, len(parts) == 2)
                                                  for f in self.flavors.values()]})
            flavor = self.flavors.get(parts[1])
            if flavor is None or len(parts) > 2:
                return nova_error(404, "Flavor %s could not be found." % parts[1])
            return Response(200, {"flavor": self._flavor_json(flavor, version, True)})
        if parts[:1] != ["servers"]:
            return nova_error(404, "The resource could not be found.")
        if len(parts) == 1 and method == "POST":
            return self._create_server(request, version)
        if len(parts) == 1 or parts[1:] == ["detail"]:
            if method != "GET":
                return nova_error(405, "method not faked")
            return self._list_servers(request, version, detail=len(parts) == 2)
        server_id = parts[1]
        with self._state:
            self._collect()
            server = self._servers.get(server_id)
            if server is None:
                return nova_error(404, "Instance %s could not be found." % server_id)
            if len(parts) == 2 and method == "GET":
                return Response(200, {"server": self._server_json(server, version)})
            if len(parts) == 2 and method == "DELETE":
                if server["deleted_at"] is None:
                    server["deleted_at"] = time.monotonic()
                return Response(204, b"")
            if parts[2:] == ["os-interface"] and method == "GET":
                return Response(200, {"interfaceAttachments": self._interfaces(server)})
        return nova_error(404, "The resource could not be found.")

    def _flavor_json(self, flavor: Dict[str, Any], version: Tuple[int, int],
                     detail: bool) -> Dict[str, Any]:
        links = [{"rel": "self", "href": "%s/flavors/%s" % (self.endpoint(), flavor["id"])}]
        if not detail:
            return {"id": flavor["id"], "name": flavor["name"], "links": links}
        body = {"id": flavor["id"], "name": flavor["name"], "vcpus": flavor["vcpus"],
                "ram": flavor["ram"], "disk": flavor["disk"], "swap": 0,
                "OS-FLV-EXT-DATA:ephemeral": 0, "OS-FLV-DISABLED:disabled": False,
                "rxtx_factor": 1.0, "os-flavor-access:is_public": True, "links": links}
        if version >= (2, 55):
            body["description"] = None
        if version >= (2, 61):
            body["extra_specs"] = {}
        return body

    def _create_server(self, request: Request, version: Tuple[int, int]) -> Response:
        try:
            body = request.json()["server"]
            assert isinstance(body, dict)
        except (ValueError, KeyError, TypeError, AssertionError):
            return nova_error(400, "Invalid input: the body must be {\"server\": {...}}")
        name = body.get("name")
        if not isinstance(name, str) or not name.strip() or len(name) > 255:
            return nova_error(400, "Invalid input for field/attribute name.")
        if body.get("imageRef") not in self.images:
            return nova_error(400, "Image %s could not be found." % body.get("imageRef"))
        if body.get("flavorRef") not in self.flavors:
            return nova_error(400, "Flavor %s could not be found." % body.get("flavorRef"))
        networks = body.get("networks")
        if networks is None and version >= (2, 37):
            return nova_error(400, "Invalid input for field/attribute server. Value: ... "
                                   "'networks' is a required property")
        if networks == "auto":
            networks = [{"uuid": next(iter(self.networks))}]
        elif networks in (None, "none"):
            networks = []
        if not isinstance(networks, list):
            return nova_error(400, "Invalid input for field/attribute networks.")
        for net in networks:
            if not isinstance(net, dict) or net.get("uuid") not in self.networks:
                return nova_error(400, "Network %s could not be found."
                                  % (net.get("uuid") if isinstance(net, dict) else net))
        metadata = body.get("metadata") or {}
        if not isinstance(metadata, dict) or not all(
                isinstance(k, str) and isinstance(v, str) and 0 < len(k) <= 255
                and len(v) <= 255 for k, v in metadata.items()):
            return nova_error(400, "Invalid input for field/attribute metadata.")
        user_data = body.get("user_data") or ""
        if len(user_data) > USER_DATA_MAX:
            return nova_error(400, "Invalid input for field/attribute user_data. Value: ... "
                                   "is too long")
        try:
            decoded = base64.b64decode(user_data, validate=True).decode("utf-8")
        except (binascii.Error, ValueError):
            return nova_error(400, "User data needs to be valid base 64.")
        with self._state:
            self._collect()
            used = len(self._servers)
            if self._quota_instances is not None and used + 1 > self._quota_instances:
                message = ("Quota exceeded for instances: Requested 1, but already used %d of "
                           "%d instances" % (used, self._quota_instances))
                return nova_error(self._quota_status, message)
            self._serial += 1
            server = self._new_server(name, body["flavorRef"], body["imageRef"],
                                      [n["uuid"] for n in networks], metadata, decoded)
            self._servers[server["id"]] = server
            on_create = self._on_create
            answer_delay, answer_status = self._create_answer_delay, self._create_answer_status
        address = on_create(dict(server)) if on_create else None
        with self._state:
            if not address:
                self._addresses += 1
                address = "127.0.100.%d" % (self._addresses % 250 + 1)
            server["address"] = address
        if answer_delay:
            time.sleep(answer_delay)
        if answer_status:
            return Response(answer_status,
                            "<html><body><h1>%d Gateway Timeout</h1></body></html>"
                            % answer_status, {"Content-Type": "text/html"})
        links = [{"rel": "self", "href": "%s/servers/%s" % (self.endpoint(), server["id"])}]
        return Response(202, {"server": {
            "id": server["id"], "links": links, "OS-DCF:diskConfig": "MANUAL",
            "security_groups": [{"name": "default"}], "adminPass": server["admin_pass"]}},
            {"Location": links[0]["href"]})

    def _new_server(self, name: str, flavor_id: str, image_id: str, network_ids: List[str],
                    metadata: Dict[str, str], user_data: str) -> Dict[str, Any]:
        """A server record, booting from now (call with the lock held, serial counted)."""
        return {
            "id": str(uuid.uuid4()), "name": name, "flavor_id": flavor_id,
            "image_id": image_id, "network_ids": list(network_ids),
            "metadata": dict(metadata), "user_data": user_data, "serial": self._serial,
            "created": _iso(), "started": time.monotonic(), "boot_delay": self._boot_delay,
            "fault": self._boot_fault, "deleted_at": None,
            # None: the fake's delay at the time (set_delete_delay without a server).
            "delete_delay": None, "address": "",
            "mac": "fa:16:3e:%02x:%02x:%02x" % (self._serial >> 16 & 255,
                                                self._serial >> 8 & 255, self._serial & 255),
            "port_id": str(uuid.uuid4()), "admin_pass": uuid.uuid4().hex[:12],
        }

    def _collect(self) -> None:
        """Forget the servers whose deletion has finished (call with the lock held)."""
        now = time.monotonic()
        for server_id, server in list(self._servers.items()):
            delay = server["delete_delay"]
            if server["deleted_at"] is not None and now >= server["deleted_at"] \
                    + (self._delete_delay if delay is None else delay):
                del self._servers[server_id]
                if self._on_delete:
                    self._on_delete(dict(server))

    def _status(self, server: Dict[str, Any]) -> Tuple[str, str, str]:
        """(status, vm_state, task_state) now."""
        booted = time.monotonic() >= server["started"] + server["boot_delay"]
        if not booted:
            status, vm_state, task = "BUILD", "building", "spawning"
        elif server["fault"]:
            status, vm_state, task = "ERROR", "error", ""
        else:
            status, vm_state, task = "ACTIVE", "active", ""
        if server["deleted_at"] is not None:
            task = "deleting"
        return status, vm_state, task

    def _addresses_of(self, server: Dict[str, Any]) -> Dict[str, List[Dict[str, Any]]]:
        if self._status(server)[0] != "ACTIVE":
            return {}
        return {self.networks[net_id]["name"]: [{
            "version": 6 if ":" in server["address"] else 4, "addr": server["address"],
            "OS-EXT-IPS:type": "fixed", "OS-EXT-IPS-MAC:mac_addr": server["mac"]}]
            for net_id in server["network_ids"]}

    def _interfaces(self, server: Dict[str, Any]) -> List[Dict[str, Any]]:
        if self._status(server)[0] != "ACTIVE":
            return []
        return [{"port_state": "ACTIVE", "port_id": server["port_id"], "net_id": net_id,
                 "mac_addr": server["mac"], "fixed_ips": [
                     {"subnet_id": self.networks[net_id]["subnet_id"],
                      "ip_address": server["address"]}]}
                for net_id in server["network_ids"]]

    def _server_json(self, server: Dict[str, Any], version: Tuple[int, int]) -> Dict[str, Any]:
        status, vm_state, task = self._status(server)
        flavor = self.flavors.get(server["flavor_id"], {})
        links = [{"rel": "self", "href": "%s/servers/%s" % (self.endpoint(), server["id"])}]
        body: Dict[str, Any] = {
            "id": server["id"], "name": server["name"], "status": status,
            "tenant_id": self.project_id, "user_id": self.user_id,
            "metadata": dict(server["metadata"]), "hostId": uuid.uuid5(
                uuid.NAMESPACE_OID, server["id"]).hex, "created": server["created"],
            "updated": _iso(), "addresses": self._addresses_of(server),
            "image": {"id": server["image_id"], "links": []}, "links": links,
            "accessIPv4": "", "accessIPv6": "", "progress": 0, "key_name": None,
            "config_drive": "", "OS-DCF:diskConfig": "MANUAL",
            "OS-EXT-AZ:availability_zone": "nova",
            "OS-EXT-STS:vm_state": vm_state, "OS-EXT-STS:task_state": task or None,
            "OS-EXT-STS:power_state": 1 if status == "ACTIVE" else 0,
            "OS-SRV-USG:launched_at": None, "OS-SRV-USG:terminated_at": None,
            "security_groups": [{"name": "default"}],
            "os-extended-volumes:volumes_attached": [],
        }
        if version >= (2, 47):
            body["flavor"] = {"original_name": flavor.get("name"), "vcpus": flavor.get("vcpus"),
                              "ram": flavor.get("ram"), "disk": flavor.get("disk"),
                              "ephemeral": 0, "swap": 0, "extra_specs": {}}
        else:
            body["flavor"] = {"id": server["flavor_id"], "links": []}
        if version >= (2, 9):
            body["locked"] = False
        if version >= (2, 19):
            body["description"] = None
        if version >= (2, 26):
            body["tags"] = []
        if status == "ERROR":
            body["fault"] = {"code": 500, "created": server["created"],
                             "message": server["fault"]}
        return body

    def _list_servers(self, request: Request, version: Tuple[int, int],
                      detail: bool) -> Response:
        query = {key: values[-1] for key, values in request.query.items()}
        with self._state:
            self._collect()
            servers = sorted(self._servers.values(), key=lambda s: -s["serial"])
            if "name" in query:
                try:
                    pattern = re.compile(query["name"])
                except re.error:
                    return nova_error(400, "Invalid regular expression in name filter")
                servers = [s for s in servers if pattern.search(s["name"])]
            if "status" in query:
                servers = [s for s in servers if self._status(s)[0] == query["status"].upper()]
            if "marker" in query:
                ids = [s["id"] for s in servers]
                if query["marker"] not in ids:
                    return nova_error(400, "marker [%s] not found" % query["marker"])
                servers = servers[ids.index(query["marker"]) + 1:]
            limit = self._max_limit
            if "limit" in query:
                try:
                    limit = min(int(query["limit"]), self._max_limit)
                except ValueError:
                    return nova_error(400, "limit must be an integer")
            page = servers[:limit]
            if detail:
                items = [self._server_json(s, version) for s in page]
            else:
                items = [{"id": s["id"], "name": s["name"], "links": []} for s in page]
        body: Dict[str, Any] = {"servers": items}
        if len(page) == limit and len(servers) > limit:
            body["servers_links"] = [{"rel": "next", "href": "%s/servers%s?limit=%d&marker=%s"
                                      % (self.endpoint(), "/detail" if detail else "", limit,
                                         page[-1]["id"])}]
        return Response(200, body)

    # -- Glance and Neutron (name lookups only) ------------------------------------------------

    def _glance(self, request: Request, rest: str) -> Response:
        parts = [unquote(p) for p in rest.strip("/").split("/") if p]
        if request.method != "GET" or parts[:2] != ["v2", "images"]:
            return Response(404, "404 Not Found\n\nThe resource could not be found.\n\n")
        if len(parts) == 3:
            image = self.images.get(parts[2])
            if image is None:
                return Response(404, "404 Not Found\n\nNo image found with ID %s\n\n" % parts[2])
            return Response(200, self._image_json(image))
        images = list(self.images.values())
        for key in ("name", "id"):
            if key in request.query:
                images = [i for i in images if i[key] == request.query[key][-1]]
        return Response(200, {"images": [self._image_json(i) for i in images],
                              "first": "/v2/images", "schema": "/v2/schemas/images"})

    @staticmethod
    def _image_json(image: Dict[str, Any]) -> Dict[str, Any]:
        return {"id": image["id"], "name": image["name"], "status": "active",
                "visibility": "public", "container_format": "bare", "disk_format": "qcow2",
                "min_disk": 0, "min_ram": 0, "size": 1 << 28, "protected": False, "tags": [],
                "self": "/v2/images/%s" % image["id"],
                "file": "/v2/images/%s/file" % image["id"], "schema": "/v2/schemas/image"}

    def _neutron(self, request: Request, rest: str) -> Response:
        parts = [unquote(p) for p in rest.strip("/").split("/") if p]
        if request.method != "GET" or parts[:2] != ["v2.0", "networks"]:
            return Response(404, {"NeutronError": {"type": "HTTPNotFound", "detail": "",
                                                   "message": "The resource could not be found."}})
        networks = list(self.networks.values())
        if len(parts) == 3:
            networks = [n for n in networks if n["id"] == parts[2]]
            if not networks:
                return Response(404, {"NeutronError": {
                    "type": "NetworkNotFound", "detail": "",
                    "message": "Network %s could not be found." % parts[2]}})
            return Response(200, {"network": self._network_json(networks[0])})
        for key in ("name", "id"):
            if key in request.query:
                networks = [n for n in networks if n[key] == request.query[key][-1]]
        return Response(200, {"networks": [self._network_json(n) for n in networks]})

    def _network_json(self, network: Dict[str, Any]) -> Dict[str, Any]:
        return {"id": network["id"], "name": network["name"], "status": "ACTIVE",
                "admin_state_up": True, "shared": False, "mtu": 1450,
                "subnets": [network["subnet_id"]], "tenant_id": self.project_id,
                "project_id": self.project_id}
