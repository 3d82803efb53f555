"""Virtual machines: OpenStack Nova through python-novaclient on a keystoneauth1 session.

``Compute`` is what the pack needs from a cloud: boot a node's VM and wait until it runs,
destroy one and wait until it is gone, list a group's VMs, list every VM the pack tagged (the
governor's orphan scan). ``NovaCompute`` implements it; another cloud implements the same four
methods.

Only idempotent calls are retried. Creating a server is not: when a POST may have reached
Nova but its answer was lost (timeout, reset connection, 5xx), the server is looked up by its
name and group metadata instead of being created again; if it does not show up, the error
says so and ``vm_destroy group=<group> node=<node>`` removes it should it appear later.

Nothing secret leaves this module: the user data (it carries the Chef validator key) and the
``adminPass`` Nova answers a create with are masked in keystoneauth's request and response
logs, and every message that quotes a remote answer goes through ``redact``.
"""

from __future__ import annotations

import abc
import base64
import ipaddress
import json
import logging
import re
import time
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, replace
from typing import Any, Callable, Dict, Iterator, List, Mapping, Optional, Tuple, TypeVar
from urllib.parse import quote

from keystoneauth1 import exceptions as ks_exc
from keystoneauth1 import session as ks_session
from keystoneauth1.identity import v3
from novaclient import client as nova_client
from novaclient import exceptions as nova_exc

from .config import backend_section
from .domain.names import validate_group_name, validate_node_name
from .errors import BackendError, ValidationError, redact, retry

LOG = logging.getLogger(__name__)
T = TypeVar("T")

GROUP_KEY = "autoscale_group"
NODE_KEY = "autoscale_node"
# A VM that serves on its own port (several services per host) says so in this metadata key;
# without it the node serves on the config's haproxy.server_port.
PORT_KEY = "autoscale_port"


def _metadata_port(value: Any) -> Optional[int]:
    try:
        port = int(str(value))
    except (TypeError, ValueError):
        return None
    return port if 0 < port < 65536 else None
# Nova refuses user_data longer than this once base64-encoded (servers API schema).
USER_DATA_MAX = 65535
SSH_KEY_DATASTORE_NAME = "ssh_pub_key"

AUTH_TYPES = ("password", "v3applicationcredential")
INTERFACES = ("public", "internal", "admin")

_UUID_RE = re.compile(r"[0-9a-fA-F]{8}(-[0-9a-fA-F]{4}){3}-[0-9a-fA-F]{12}")
_MICROVERSION_RE = re.compile(r"2\.(0|[1-9][0-9]{0,2})")
_SSH_KEY_RE = re.compile(
    r"(ssh-(rsa|dss|ed25519)|ecdsa-sha2-nistp(256|384|521)"
    r"|sk-(ssh-ed25519|ecdsa-sha2-nistp256)@openssh\.com) [A-Za-z0-9+/]+=*( [^\r\n]*)?"
)


# ---------------------------------------------------------------------------------------------
# Settings


@dataclass(frozen=True)
class ComputeSettings:
    auth_url: str
    auth_type: str = "v3applicationcredential"
    username: str = ""
    password: str = field(default="", repr=False)
    user_domain_name: str = "Default"
    project_name: str = ""
    project_domain_name: str = "Default"
    application_credential_id: str = ""
    application_credential_secret: str = field(default="", repr=False)
    region_name: str = ""
    interface: str = "public"
    compute_api_version: str = "2.79"
    verify_tls: bool = True
    boot_timeout: int = 600
    # Not in the pack config: seconds for one HTTP exchange, and how long a server whose
    # create answer was lost gets to show up in a listing.
    request_timeout: float = 30.0
    recover_wait: float = 10.0

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> ComputeSettings:
        section = backend_section(config, "openstack")

        def text(key: str, default: str = "") -> str:
            value = section.get(key, default)
            if value is None:
                return default
            if not isinstance(value, str):
                raise ValidationError("config key openstack.%s must be a string" % key)
            return value

        auth_url = text("auth_url").strip()
        if not auth_url:
            raise ValidationError("config key openstack.auth_url is missing")
        if not auth_url.startswith(("http://", "https://")):
            raise ValidationError("config key openstack.auth_url must be an http(s) URL")
        auth_type = text("auth_type", "v3applicationcredential")
        if auth_type not in AUTH_TYPES:
            raise ValidationError("config key openstack.auth_type must be one of %s, not %r"
                                  % (", ".join(AUTH_TYPES), auth_type))
        needed = (("username", "password", "project_name") if auth_type == "password"
                  else ("application_credential_id", "application_credential_secret"))
        for key in needed:
            if not text(key):
                raise ValidationError("config key openstack.%s is missing (needed with "
                                      "auth_type %s)" % (key, auth_type))
        interface = text("interface", "public")
        if interface not in INTERFACES:
            raise ValidationError("config key openstack.interface must be one of %s, not %r"
                                  % (", ".join(INTERFACES), interface))
        version = str(section.get("compute_api_version") or "2.79")
        if not _MICROVERSION_RE.fullmatch(version):
            raise ValidationError("config key openstack.compute_api_version must be a Nova "
                                  "microversion such as \"2.79\", not %r" % version)
        boot_timeout = section.get("boot_timeout", 600)
        if isinstance(boot_timeout, bool) or not isinstance(boot_timeout, int) \
                or boot_timeout < 1:
            raise ValidationError("config key openstack.boot_timeout must be a whole number "
                                  "of seconds, at least 1")
        verify = section.get("verify_tls", True)
        if not isinstance(verify, bool):
            raise ValidationError("config key openstack.verify_tls must be true or false")
        return cls(
            auth_url=auth_url.rstrip("/"),
            auth_type=auth_type,
            username=text("username"),
            password=text("password"),
            user_domain_name=text("user_domain_name", "Default") or "Default",
            project_name=text("project_name"),
            project_domain_name=text("project_domain_name", "Default") or "Default",
            application_credential_id=text("application_credential_id"),
            application_credential_secret=text("application_credential_secret"),
            region_name=text("region_name"),
            interface=interface,
            compute_api_version=version,
            verify_tls=verify,
            boot_timeout=boot_timeout,
        )

    def secrets(self) -> List[str]:
        return [s for s in (self.password, self.application_credential_secret) if s]


# ---------------------------------------------------------------------------------------------
# What the pack asks for and gets back


def _ref(value: Any, what: str) -> str:
    """A flavor, image or network name or id: one printable line (it goes into URLs)."""
    if not isinstance(value, str) or not value.strip():
        raise ValidationError("%s must be a name or id, not %r" % (what, value))
    if len(value) > 255 or any(ord(ch) < 32 or ord(ch) == 127 for ch in value):
        raise ValidationError("%s %r must be one line of at most 255 printable characters"
                              % (what, value))
    return value


def validate_server_id(value: Any) -> str:
    if not isinstance(value, str) or not _UUID_RE.fullmatch(value):
        raise ValidationError("server id %r is not a Nova server id (a UUID)" % (value,))
    return value.lower()


@dataclass(frozen=True)
class ServerSpec:
    """One node's VM as the pack wants it."""

    group: str
    node: str
    flavor: str
    image: str
    network: str
    # Carries the Chef validator key: kept out of repr, logs and results.
    user_data: str = field(default="", repr=False)

    def __post_init__(self) -> None:
        validate_group_name(self.group)
        validate_node_name(self.node)
        # Listing a group asks Nova for names starting "<group>-" (README: node names are
        # "<group>-<6 characters>"); a node named otherwise would be invisible to it.
        if not self.node.startswith(self.group + "-"):
            raise ValidationError("node name %r must start with its group's name and '-' (%s-)"
                                  % (self.node, self.group))
        _ref(self.flavor, "flavor")
        _ref(self.image, "image")
        _ref(self.network, "network")
        if len(base64.b64encode(self.user_data.encode("utf-8"))) > USER_DATA_MAX:
            raise ValidationError("user data is %d bytes, more than Nova takes (%d base64)"
                                  % (len(self.user_data), USER_DATA_MAX))

    @property
    def metadata(self) -> Dict[str, str]:
        return {GROUP_KEY: self.group, NODE_KEY: self.node}

    def with_user_data(self, user_data: str) -> ServerSpec:
        return replace(self, user_data=user_data)


@dataclass(frozen=True)
class Server:
    id: str
    name: str
    status: str
    group: str = ""
    node: str = ""
    task_state: str = ""
    # Every address by network name, as Nova reports them.
    addresses: Dict[str, List[str]] = field(default_factory=dict)
    # The address on the configured network (IPv4 preferred), once the server is ACTIVE.
    address: str = ""
    fault: str = ""
    created: str = ""
    # The port the node serves on, when its metadata names one (PORT_KEY).
    port: Optional[int] = None

    def as_dict(self) -> Dict[str, Any]:
        return asdict(self)

    def listing(self) -> Dict[str, Any]:
        """As a listing shows it: without ``address``, which needs the node's network."""
        result = self.as_dict()
        del result["address"]
        return result


@dataclass(frozen=True)
class Boot:
    server: Server
    # "created": this call created it; "existing": the node's server already existed;
    # "recovered": the create answer was lost and the server was found by name and metadata.
    origin: str

    def as_dict(self) -> Dict[str, Any]:
        result = self.server.as_dict()
        result.update(server_id=self.server.id, origin=self.origin)
        return result


class ServerError(BackendError):
    """A BackendError about a server that exists: the caller may have to remove it."""

    def __init__(self, system: str, operation: str, obj: str, message: str,
                 retryable: bool = False, server_id: str = "") -> None:
        self.server_id = server_id
        super().__init__(system, operation, obj, message, retryable)

    def as_dict(self) -> dict:
        result = super().as_dict()
        result["server_id"] = self.server_id
        return result


class Compute(abc.ABC):
    """A cloud's VMs, as the pack uses them."""

    @abc.abstractmethod
    def boot(self, spec: ServerSpec, timeout: float) -> Boot:
        """Create the node's server (never twice), wait until it runs, read its address.

        A server that fails to boot is left for the caller to destroy: the ServerError names it.
        """

    @abc.abstractmethod
    def destroy(self, server_id: str, group: str, timeout: float) -> bool:
        """Delete a server of ``group`` and wait until it is gone; False if it already was."""

    @abc.abstractmethod
    def servers(self, group: str, node: Optional[str] = None) -> List[Server]:
        """The servers tagged with ``group`` (and ``node``), for orphan detection."""

    @abc.abstractmethod
    def managed_servers(self) -> List[Server]:
        """Every server tagged with any group (metadata ``autoscale_group``), in one listing:
        what the governor compares with the node records to find orphans."""


def remove_servers(compute: Compute, group: str, node: Optional[str] = None,
                   server_id: Optional[str] = None, timeout: float = 300) -> List[str]:
    """Destroy server ``server_id`` and every server tagged with ``node`` (a lost create answer
    may have left one nobody heard of); the ids deleted, [] when all were already gone."""
    validate_group_name(group)
    if not node and not server_id:
        raise ValidationError("give the node, the server id, or both")
    ids = [validate_server_id(server_id)] if server_id else []
    if node:
        validate_node_name(node)
        ids += [s.id for s in compute.servers(group, node) if s.id not in ids]
    return [sid for sid in ids if compute.destroy(sid, group, timeout)]


# ---------------------------------------------------------------------------------------------
# Cloud-init user data


def ssh_public_keys(value: Any) -> List[str]:
    """The datastore's ``ssh_pub_key``: one or more OpenSSH public keys, one per line."""
    hint = ('set it with: st2 key set %s "$(cat ~/.ssh/id_ed25519.pub)"'
            % SSH_KEY_DATASTORE_NAME)
    if value is None or (isinstance(value, str) and not value.strip()):
        raise ValidationError("datastore key %s is not set: new nodes need an SSH public key; %s"
                              % (SSH_KEY_DATASTORE_NAME, hint))
    if not isinstance(value, str):
        raise ValidationError("datastore key %s must be a string" % SSH_KEY_DATASTORE_NAME)
    keys = [line.strip() for line in value.splitlines() if line.strip()]
    for key in keys:
        if not _SSH_KEY_RE.fullmatch(key):
            raise ValidationError(
                "datastore key %s does not hold an OpenSSH public key (\"ssh-ed25519 AAAA... "
                "comment\"); was it stored encrypted, or is it a private key? %s"
                % (SSH_KEY_DATASTORE_NAME, hint))
    return keys


def build_user_data(ssh_keys: List[str], chef: Mapping[str, Any]) -> str:
    """A ``#cloud-config`` document: the SSH keys and cloud-init's ``chef:`` section.

    The body is JSON, which YAML reads as it is: no YAML library is needed at runtime and no
    value (a PEM key, a run list entry) can break out of its string.
    """
    for entry in chef.get("run_list") or []:
        if not isinstance(entry, str) or not entry.strip() or any(
                ord(ch) < 32 for ch in entry):
            raise ValidationError("Chef run list entry %r must be one line of text" % (entry,))
    document = {"ssh_authorized_keys": list(ssh_keys), "chef": dict(chef)}
    return "#cloud-config\n" + json.dumps(document, indent=2, sort_keys=True) + "\n"


# ---------------------------------------------------------------------------------------------
# Logging: keystoneauth logs whole request and response bodies at DEBUG


_BODY_SECRET_RE = re.compile(r'("(?:user_data|adminPass|password|secret)"\s*:\s*)"[^"]*"')


class _MaskBodies(logging.Filter):
    autoscale_mask = True

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        masked = _BODY_SECRET_RE.sub(r'\1"[redacted]"', message)
        if masked != message:
            record.msg, record.args = masked, None
        return True


# novaclient hands this logger to keystoneauth for every request it makes; the filter masks the
# user data going out and the root password Nova answers a create with.
HTTP_LOG = logging.getLogger(__name__ + ".http")
if not any(getattr(f, "autoscale_mask", False) for f in HTTP_LOG.filters):
    HTTP_LOG.addFilter(_MaskBodies())


# ---------------------------------------------------------------------------------------------
# Nova


def _describe(exc: BaseException) -> Tuple[str, Optional[int]]:
    code = getattr(exc, "code", None) or getattr(exc, "http_status", None)
    message = getattr(exc, "message", None) or str(exc) or type(exc).__name__
    return str(message), code if isinstance(code, int) else None


@contextmanager
def _no_file_cache() -> Iterator[None]:
    yield


class NovaCompute(Compute):
    """Nova (servers), with Glance and Neutron for image and network names, through one
    keystoneauth session and novaclient at the configured microversion."""

    def __init__(self, settings: ComputeSettings,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        self.settings = settings
        self._sleep = sleep
        self._nova: Any = None

    # -- connection ----------------------------------------------------------------------------

    def _error(self, exc: BaseException, system: str, operation: str, obj: str,
               server_id: str = "") -> BackendError:
        """A BackendError for a keystoneauth or novaclient exception, secrets masked."""

        message, code = _describe(exc)
        message = redact(message, self.settings.secrets())
        if isinstance(exc, ks_exc.SSLError):
            retryable = False
            message = "TLS failed (%s); check the CA or openstack.verify_tls" % message
        elif isinstance(exc, (ks_exc.ConnectFailure, ks_exc.ConnectTimeout)):
            retryable = True
        elif code is not None:
            message = "%s (HTTP %d)" % (message, code)
            quota = "quota" in message.lower()
            retryable = not quota and (code in (409, 429) or code == 413 or code >= 500)
        else:
            retryable = False
        return ServerError(system, operation, obj, message, retryable, server_id)

    def _connect(self) -> Any:

        s = self.settings
        if s.auth_type == "password":
            auth = v3.Password(auth_url=s.auth_url, username=s.username, password=s.password,
                               user_domain_name=s.user_domain_name,
                               project_name=s.project_name,
                               project_domain_name=s.project_domain_name)
            who = "user %s" % s.username
        else:
            auth = v3.ApplicationCredential(
                auth_url=s.auth_url, application_credential_id=s.application_credential_id,
                application_credential_secret=s.application_credential_secret)
            who = "application credential %s" % s.application_credential_id
        session = ks_session.Session(auth=auth, verify=s.verify_tls, timeout=s.request_timeout,
                                     split_loggers=False)
        region = s.region_name or None
        where = "compute endpoint (interface %s%s)" % (
            s.interface, ", region %s" % region if region else "")
        try:
            # Authenticates and picks the endpoint now, so that a refused credential or a
            # catalog without Nova is reported as such rather than as a failed server call.
            endpoint = session.get_endpoint(service_type="compute", interface=s.interface,
                                            region_name=region)
        except ks_exc.http.Unauthorized as exc:
            message, _ = _describe(exc)
            raise BackendError("Keystone", "authenticate", who,
                               "credentials refused: %s; check openstack.auth_type and its "
                               "credentials" % redact(message, s.secrets())) from None
        except ks_exc.EndpointNotFound:
            raise BackendError("Keystone", "find", where,
                               "the service catalog has none; check openstack.region_name "
                               "and openstack.interface") from None
        except ks_exc.ClientException as exc:
            raise self._error(exc, "Keystone", "authenticate", who) from None
        if not endpoint:
            raise BackendError("Keystone", "find", where, "the service catalog has none")
        try:
            nova = nova_client.Client(s.compute_api_version, session=session,
                                      region_name=region, endpoint_type=s.interface,
                                      logger=HTTP_LOG)
        except nova_exc.UnsupportedVersion as exc:
            raise ValidationError("config key openstack.compute_api_version: %s" % exc) from None
        # novaclient opens tab-completion cache files under ~/.novaclient on every listing and
        # create (base.Manager.completion_cache, whatever os_cache says): not on a server.
        for manager in (nova.servers, nova.flavors, nova.glance, nova.neutron):
            manager.completion_cache = lambda *args, **kwargs: _no_file_cache()
        return nova

    def _client(self) -> Any:
        if self._nova is None:
            self._nova = retry(self._connect, sleep=self._sleep)
        return self._nova

    def _call(self, system: str, operation: str, obj: str, call: Callable[[], T],
              idempotent: bool = True, server_id: str = "") -> T:

        def once() -> T:
            try:
                return call()
            except (nova_exc.ClientException, ks_exc.ClientException) as exc:
                raise self._error(exc, system, operation, obj, server_id) from None

        return retry(once, sleep=self._sleep) if idempotent else once()

    # -- lookups -------------------------------------------------------------------------------

    def _flavor_id(self, ref: str) -> str:

        nova = self._client()

        def find() -> str:
            try:  # flavor ids are free-form strings; try the ref as one first
                return nova.flavors.get(quote(ref, safe="")).id
            except nova_exc.NotFound:
                pass
            matches = [f.id for f in nova.flavors.list() if f.name == ref]
            if len(matches) != 1:
                raise BackendError("Nova", "find flavor", ref,
                                   "no flavor has this name or id" if not matches
                                   else "%d flavors have this name; use an id" % len(matches))
            return matches[0]

        return self._call("Nova", "find flavor", ref, find)

    def _image_id(self, ref: str) -> str:
        nova = self._client()
        # GlanceManager puts the name into the query string as it is: quote it here.
        return self._call("Glance", "find image", ref,
                          lambda: nova.glance.find_image(quote(ref, safe="")).id)

    def _network_id(self, ref: str) -> str:
        if _UUID_RE.fullmatch(ref):
            return ref.lower()  # Nova itself refuses an unknown network id (400)
        nova = self._client()
        return self._call("Neutron", "find network", ref,
                          lambda: nova.neutron.find_network(quote(ref, safe="")).id)

    # -- servers -------------------------------------------------------------------------------

    @staticmethod
    def _server(raw: Any, address: str = "") -> Server:
        info = getattr(raw, "_info", {}) or {}
        metadata = info.get("metadata") or {}
        addresses = {
            network: [entry.get("addr", "") for entry in entries or []]
            for network, entries in (info.get("addresses") or {}).items()
        }
        fault = info.get("fault") or {}
        return Server(
            id=info.get("id", ""),
            name=info.get("name", ""),
            status=info.get("status", ""),
            group=metadata.get(GROUP_KEY, ""),
            node=metadata.get(NODE_KEY, ""),
            task_state=info.get("OS-EXT-STS:task_state") or "",
            addresses=addresses,
            address=address,
            fault=str(fault.get("message", "")) if isinstance(fault, dict) else "",
            created=info.get("created", ""),
            port=_metadata_port(metadata.get(PORT_KEY)),
        )

    def _get(self, server_id: str, operation: str) -> Optional[Any]:
        """The server as novaclient has it, or None once Nova answers 404."""

        nova = self._client()

        def get() -> Optional[Any]:
            try:
                return nova.servers.get(server_id)
            except nova_exc.NotFound:
                return None

        return self._call("Nova", operation, server_id, get, server_id=server_id)

    def servers(self, group: str, node: Optional[str] = None) -> List[Server]:
        validate_group_name(group)
        if node is not None:
            validate_node_name(node)
        nova = self._client()
        # Nova filters names by regular expression but not by metadata (for a non-admin):
        # narrow by name there, check the metadata here. limit=-1 follows every page.
        pattern = "^%s$" % node if node else "^%s-" % group
        found = self._call("Nova", "list servers", group, lambda: nova.servers.list(
            search_opts={"name": pattern}, limit=-1))
        servers = [self._server(raw) for raw in found]
        return sorted((s for s in servers if s.group == group and (not node or s.node == node)),
                      key=lambda s: (s.name, s.id))

    def managed_servers(self) -> List[Server]:
        nova = self._client()
        # One listing of the project's servers (limit=-1 follows Nova's pages, 1000 servers
        # each by default); Nova does not filter by metadata for a non-admin, so the group tag
        # is checked here. Servers without it are not the pack's and are left out.
        found = self._call("Nova", "list servers", "all groups",
                           lambda: nova.servers.list(limit=-1))
        servers = [self._server(raw) for raw in found]
        return sorted((s for s in servers if s.group), key=lambda s: (s.group, s.name, s.id))

    def _poll(self, check: Callable[[], Optional[T]], timeout: float) -> Optional[T]:
        """``check()`` until it returns something, or None after ``timeout`` seconds; polls
        quickly at first and then every 5 s."""
        deadline = time.monotonic() + timeout
        delay = 0.25
        while True:
            result = check()
            if result is not None:
                return result
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return None
            self._sleep(min(delay, remaining))
            delay = min(delay * 1.5, 5.0)

    def _live(self, spec: ServerSpec) -> List[Server]:
        """The node's servers that are not being deleted."""
        return [s for s in self.servers(spec.group, spec.node) if s.task_state != "deleting"]

    def _create(self, spec: ServerSpec, flavor: str, image: str, network: str) -> Tuple[str, str]:
        """POST once: (server id, "created"), or (id, "recovered") after a lost answer."""
        nova = self._client()
        try:
            raw = nova.servers.create(spec.node, image, flavor, meta=spec.metadata,
                                      userdata=spec.user_data, nics=[{"net-id": network}])
            return raw.id, "created"
        except (nova_exc.ClientException, ks_exc.ClientException) as exc:
            error = self._error(exc, "Nova", "create server", spec.node)
            code = getattr(exc, "code", None)
            lost = isinstance(exc, (ks_exc.ConnectFailure, ks_exc.ConnectTimeout)) or (
                isinstance(code, int) and code >= 500)
            if not lost or isinstance(exc, ks_exc.SSLError):
                raise error from None
        # The request may have reached Nova: look for the server instead of creating another.
        LOG.warning("create server %s: %s; looking it up before anything else", spec.node,
                    error.message)
        try:
            found = self._poll(lambda: self._live(spec) or None, self.settings.recover_wait)
            seen = "no server of that name exists yet"
        except BackendError as lookup:
            found, seen = None, "looking the server up failed too (%s)" % lookup.message
        if found:
            return found[0].id, "recovered"
        raise BackendError(
            "Nova", "create server", spec.node,
            "%s; %s, but the request may still create one: run vm_destroy group=%s node=%s "
            "to make sure it does not stay" % (error.message, seen, spec.group, spec.node),
            retryable=False) from None

    def _address(self, server_id: str, network_id: str, node: str) -> str:
        nova = self._client()
        interfaces = self._call("Nova", "read addresses of", node,
                                lambda: nova.servers.interface_list(server_id),
                                server_id=server_id)
        found = []
        for interface in interfaces:
            if getattr(interface, "net_id", None) != network_id:
                continue
            for fixed in getattr(interface, "fixed_ips", None) or []:
                try:
                    found.append(ipaddress.ip_address(fixed.get("ip_address", "")))
                except ValueError:
                    continue
        if not found:
            return ""
        found.sort(key=lambda ip: ip.version)  # IPv4 first: A records, HAProxy servers
        return str(found[0])

    def boot(self, spec: ServerSpec, timeout: float) -> Boot:
        if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or timeout <= 0:
            raise ValidationError("boot timeout must be a positive number of seconds, not %r"
                                  % (timeout,))
        existing = self._live(spec)
        network_id = self._network_id(spec.network)
        if existing:
            server_id, origin = existing[0].id, "existing"
        else:
            flavor_id = self._flavor_id(spec.flavor)
            image_id = self._image_id(spec.image)
            server_id, origin = self._create(spec, flavor_id, image_id, network_id)
        obj = "%s (%s)" % (spec.node, server_id)

        def settled() -> Optional[Any]:
            raw = self._get(server_id, "wait for")
            if raw is None:
                raise ServerError("Nova", "boot server", obj,
                                  "the server disappeared while booting", server_id=server_id)
            status = getattr(raw, "status", "")
            return raw if status in ("ACTIVE", "ERROR") else None

        raw = self._poll(settled, timeout)
        if raw is None:
            last = self._get(server_id, "wait for")
            status = getattr(last, "status", "gone") if last is not None else "gone"
            raise ServerError("Nova", "boot server", obj,
                              "still %s after %d s (boot timeout); it is left for vm_destroy"
                              % (status, timeout), server_id=server_id)
        server = self._server(raw)
        if server.status == "ERROR":
            fault = redact(server.fault, self.settings.secrets()) or "Nova gave no fault message"
            raise ServerError("Nova", "boot server", obj, "the server went to ERROR: %s" % fault,
                              server_id=server_id)
        address = self._address(server_id, network_id, spec.node)
        if not address:
            raise ServerError("Nova", "boot server", obj, "the server is ACTIVE but has no "
                              "address on network %s" % spec.network, server_id=server_id)
        return Boot(self._server(raw, address), origin)

    def destroy(self, server_id: str, group: str, timeout: float) -> bool:

        server_id = validate_server_id(server_id)
        validate_group_name(group)
        raw = self._get(server_id, "delete server")
        if raw is None:
            return False
        server = self._server(raw)
        obj = "%s (%s)" % (server.name, server_id)
        if server.group != group:
            # Never delete what the group does not own, whatever id a caller passes.
            raise ServerError("Nova", "delete server", obj,
                              "the server is not in group %s (its %s is %r); not deleting it"
                              % (group, GROUP_KEY, server.group), server_id=server_id)
        nova = self._client()

        def delete() -> bool:
            try:
                nova.servers.delete(server_id)
                return True
            except nova_exc.NotFound:
                return False

        if not self._call("Nova", "delete server", obj, delete, server_id=server_id):
            return False

        def gone() -> Optional[bool]:
            current = self._get(server_id, "wait for deletion of")
            if current is None:
                return True
            if getattr(current, "status", "") == "ERROR" and not self._server(current).task_state:
                fault = redact(self._server(current).fault, self.settings.secrets())
                raise ServerError("Nova", "delete server", obj,
                                  "the server went to ERROR instead of going away: %s"
                                  % (fault or "Nova gave no fault message"), server_id=server_id)
            return None

        if self._poll(gone, timeout) is None:
            raise ServerError("Nova", "delete server", obj,
                              "still there %d s after the delete" % timeout, retryable=True,
                              server_id=server_id)
        return True
