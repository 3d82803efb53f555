"""Virtual machines on OpenStack: Nova through python-novaclient on a keystoneauth1 session
(the compute role's implementation; nova.py is what the registry reads).

Only idempotent calls are retried. Creating a server is not: when a POST may have reached
Nova but its answer was lost (timeout, reset connection, 5xx), the server is looked up by its
name and group metadata instead of being created again; if it does not show up, the error
says so and ``vm_destroy group=<group> node=<node>`` removes it should it appear later.

Nothing secret leaves this module: the user data (it carries the provisioner's validator
key) and the ``adminPass`` Nova answers a create with are masked in keystoneauth's request
and response logs, and every message that quotes a remote answer goes through ``redact``.
"""

from __future__ import annotations

import base64
import ipaddress
import logging
import re
import time
from contextlib import contextmanager
from typing import Any, Callable, Iterator, List, Mapping, Optional, Tuple, TypeVar
from urllib.parse import quote

from keystoneauth1 import exceptions as ks_exc
from keystoneauth1 import session as ks_session
from keystoneauth1.identity import v3
from novaclient import client as nova_client
from novaclient import exceptions as nova_exc

from ..domain.names import validate_group_name, validate_node_name
from ..errors import BackendError, ValidationError, redact, retry
from ..ports.compute import (
    GROUP_KEY,
    NODE_KEY,
    PORT_KEY,
    Boot,
    Compute,
    Server,
    ServerError,
    ServerSpec,
)
from .cloud_init import build_user_data
from .nova import ComputeSettings

LOG = logging.getLogger(__name__)
T = TypeVar("T")

# Nova refuses user_data longer than this once base64-encoded (servers API schema).
USER_DATA_MAX = 65535

_UUID_RE = re.compile(r"[0-9a-fA-F]{8}(-[0-9a-fA-F]{4}){3}-[0-9a-fA-F]{12}")


def validate_server_id(value: Any) -> str:
    if not isinstance(value, str) or not _UUID_RE.fullmatch(value):
        raise ValidationError("server id %r is not a Nova server id (a UUID)" % (value,))
    return value.lower()


def _metadata_port(value: Any) -> Optional[int]:
    try:
        port = int(str(value))
    except (TypeError, ValueError):
        return None
    return port if 0 < port < 65536 else None


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
        self.boot_timeout = settings.boot_timeout
        self._sleep = sleep
        self._nova: Any = None

    def check_server_id(self, value: Any) -> str:
        return validate_server_id(value)

    def user_data(self, ssh_keys: List[str], bootstrap: Mapping[str, Any]) -> str:
        """cloud-init's ``#cloud-config`` (cloud_init.py)."""
        return build_user_data(ssh_keys, bootstrap)

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
        if len(base64.b64encode(spec.user_data.encode("utf-8"))) > USER_DATA_MAX:
            raise ValidationError("user data is %d bytes, more than Nova takes (%d base64)"
                                  % (len(spec.user_data), USER_DATA_MAX))
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


def new_compute(config: Mapping[str, Any]) -> Compute:
    """The compute for the pack config's ``openstack`` section."""
    return NovaCompute(ComputeSettings.from_config(config))
