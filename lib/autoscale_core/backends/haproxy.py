"""Load balancer: HAProxy's Runtime API (the load balancer role: config section ``haproxy``,
``type: haproxy``).

``HAProxyRuntime`` implements the port (ports/load_balancer.py) with the Runtime API (the
stats socket at ``level admin``, a unix socket or ``host:port``), using dynamic servers
(HAProxy 2.4+; Debian 12 ships 2.6):

* add: ``add server <be>/<srv> <addr>:<port> [check]`` creates the server in maintenance;
  ``enable health`` starts its checks and ``set server ... state ready`` puts it in service.
  The backend must use a dynamic balance algorithm (roundrobin, leastconn, first, random).
* remove: ``state drain`` (no new sessions), wait until its sessions reach zero (``scur`` +
  ``qcur`` of ``show stat``), ``state maint``, then ``del server``, which HAProxy refuses
  unless the server is in maintenance and has no connection left.

The socket runs one command per connection (non-interactive mode): HAProxy answers and
closes. In that mode ``;`` separates commands and a newline ends them, so a name carrying
either could smuggle in another command: every name and address is validated before any I/O,
and the command line itself is checked once more before it is sent. A group's backend name
(``lb_backend``) is checked by the same rule when the group is created (``check_group``).
"""

from __future__ import annotations

import ipaddress
import logging
import re
import socket
import time
from dataclasses import dataclass
from typing import Any, Callable, Dict, List, Mapping, Optional, Tuple, Union

from ..config import backend_section
from ..domain.model import Group
from ..domain.names import validate_domain, validate_node_name
from ..errors import BackendError, ValidationError, retry
from ..ports.load_balancer import (
    LoadBalancer,
    ServerState,
    validate_address,
    validate_port,
    validate_state,
)

LOG = logging.getLogger(__name__)

SYSTEM = "HAProxy"
TITLE = "HAProxy"
MAX_ANSWER = 16 * 1024 * 1024

# srv_admin_state bits (HAProxy management guide, "show servers state").
_ADMF_MAINT = 0x01 | 0x02 | 0x04 | 0x20  # forced, inherited, config, DNS resolution
_ADMF_DRAIN = 0x08 | 0x10  # forced, inherited
# srv_op_state values.
_OP_STATES = {0: "down", 1: "starting", 2: "up", 3: "stopping"}
# srv_check_state bits.
_CHK_CONFIGURED = 0x02
_CHK_ENABLED = 0x04

# HAProxy allows these characters in proxy names (cfgparse.c invalid_char()).
_BACKEND_RE = re.compile(r"[A-Za-z0-9_.:-]{1,64}")
# Only these characters ever reach the socket; see _check_command.
_SAFE_COMMAND = re.compile(r"[A-Za-z0-9 _.:/@\[\]-]+")
_HOST_PORT = re.compile(r"(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.-]+):([0-9]{1,5})")

# HAProxy's answers to the commands used here (src/server.c, src/cli.c in 2.6).
_ADDED = "New server registered."
_DELETED = "Server deleted."
_EXISTS = "Already exists a server with the same name in backend."
_NO_SERVER = "No such server."
_BUSY = "Server still has connections attached to it, cannot remove it."


# -- settings ---------------------------------------------------------------------------------


def validate_backend_name(value: Any) -> str:
    if not isinstance(value, str) or not _BACKEND_RE.fullmatch(value):
        raise ValidationError(
            "load balancer backend %r is not a valid HAProxy backend name: use 1 to 64 of "
            "letters, digits, '-', '_', '.' and ':'" % (value,)
        )
    return value


def check_group(group: Group) -> None:
    """A group's backend (``lb_backend``, by default its name) must be one HAProxy can have."""
    validate_backend_name(group.lb_backend)


@dataclass(frozen=True)
class HAProxySettings:
    runtime_api: str
    backend: str = ""
    server_port: int = 80
    health_checks: bool = True
    drain_timeout: int = 120
    timeout: float = 5.0

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> HAProxySettings:
        section = backend_section(config, "haproxy", ("runtime_api",))
        settings = cls(
            runtime_api=str(section["runtime_api"]),
            backend=section.get("backend") or "",
            server_port=int(section.get("server_port", 80)),
            health_checks=bool(section.get("health_checks", True)),
            drain_timeout=int(section.get("drain_timeout", 120)),
            timeout=float(section.get("timeout", 5)),
        )
        parse_runtime_api(settings.runtime_api)
        if settings.backend:
            _config_check(validate_backend_name, settings.backend, "haproxy.backend")
        _config_check(validate_port, settings.server_port, "haproxy.server_port")
        if settings.timeout <= 0:
            raise ValidationError("config key haproxy.timeout must be more than 0 seconds")
        if settings.drain_timeout < 0:
            raise ValidationError("config key haproxy.drain_timeout must not be negative")
        return settings

    def backend_or_default(self, backend: Optional[str]) -> str:
        name = backend or self.backend
        if not name:
            raise ValidationError(
                "no load balancer backend given and config key haproxy.backend is empty")
        return validate_backend_name(name)


def _config_check(check: Callable[[Any], Any], value: Any, key: str) -> None:
    try:
        check(value)
    except ValidationError as exc:
        raise ValidationError("config key %s: %s" % (key, exc)) from None


def parse_runtime_api(value: Any) -> Union[str, Tuple[str, int]]:
    """A unix socket path (absolute) or ``(host, port)`` for ``host:port`` / ``[v6]:port``."""
    if not isinstance(value, str) or not value:
        raise ValidationError("config key haproxy.runtime_api must be a non-empty string")
    if value.startswith("/"):
        if "\n" in value or "\0" in value:
            raise ValidationError("config key haproxy.runtime_api is not a usable socket path")
        return value
    match = _HOST_PORT.fullmatch(value)
    if not match:
        raise ValidationError(
            "config key haproxy.runtime_api %r must be an absolute unix socket path "
            "(/run/haproxy/admin.sock) or host:port" % (value,))
    host, port = match.group(1), int(match.group(2))
    if host.startswith("["):
        host = str(ipaddress.IPv6Address(host[1:-1]))
    else:
        try:
            host = str(ipaddress.ip_address(host))
        except ValueError:
            host = validate_domain(host, "config key haproxy.runtime_api host")
    _config_check(validate_port, port, "haproxy.runtime_api")
    return host, port


# -- HAProxy ----------------------------------------------------------------------------------


class HAProxyRuntime(LoadBalancer):
    """HAProxy through its Runtime API.

    ``check_inter_ms`` sets the health-check interval of added servers (HAProxy's default,
    2 s, when None). ``attempts``/``first_delay`` bound the retries of a failed connection.
    """

    system = SYSTEM

    def __init__(self, settings: HAProxySettings, check_inter_ms: Optional[int] = None,
                 attempts: int = 3, first_delay: float = 0.3) -> None:
        self.settings = settings
        self.default_backend = settings.backend
        self.server_port = settings.server_port
        self.health_checks = settings.health_checks
        self.drain_timeout = settings.drain_timeout
        self.target = parse_runtime_api(settings.runtime_api)
        if check_inter_ms is not None and (
                isinstance(check_inter_ms, bool) or not isinstance(check_inter_ms, int)
                or not 1 <= check_inter_ms <= 3600000):
            raise ValidationError("check_inter_ms %r must be 1 to 3600000 milliseconds"
                                  % (check_inter_ms,))
        self.check_inter_ms = check_inter_ms
        self.attempts = attempts
        self.first_delay = first_delay

    def check_backend(self, name: Any) -> str:
        return validate_backend_name(name)

    def backend_or_default(self, backend: Optional[str]) -> str:
        return self.settings.backend_or_default(backend)

    # -- transport ----------------------------------------------------------------------------

    @property
    def where(self) -> str:
        if isinstance(self.target, tuple):
            host, port = self.target
            return "%s:%d" % ("[%s]" % host if ":" in host else host, port)
        return self.target

    def _connect(self) -> socket.socket:
        timeout = self.settings.timeout
        if isinstance(self.target, tuple):
            return socket.create_connection(self.target, timeout=timeout)
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.settimeout(timeout)
            sock.connect(self.target)
        except BaseException:
            sock.close()
            raise
        return sock

    def _exchange(self, command: str, operation: str, obj: str) -> str:
        """Send one command on a fresh connection, read the answer until HAProxy closes."""
        try:
            sock = self._connect()
        except OSError as exc:
            raise BackendError(
                SYSTEM, operation, obj, "cannot reach the Runtime API at %s: %s"
                % (self.where, exc.strerror or exc), retryable=True) from None
        deadline = time.monotonic() + self.settings.timeout
        chunks: List[bytes] = []
        size = 0
        try:
            with sock:
                sock.sendall(command.encode("ascii") + b"\n")
                while True:
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        raise socket.timeout()
                    sock.settimeout(remaining)
                    chunk = sock.recv(65536)
                    if not chunk:
                        break
                    chunks.append(chunk)
                    size += len(chunk)
                    if size > MAX_ANSWER:
                        raise BackendError(SYSTEM, operation, obj,
                                           "answer larger than %d bytes" % MAX_ANSWER)
        except socket.timeout:
            raise BackendError(
                SYSTEM, operation, obj, "no complete answer from the Runtime API at %s "
                "within %g s" % (self.where, self.settings.timeout), retryable=True) from None
        except OSError as exc:
            raise BackendError(
                SYSTEM, operation, obj, "Runtime API connection to %s failed: %s"
                % (self.where, exc.strerror or exc), retryable=True) from None
        return b"".join(chunks).decode("utf-8", "replace")

    def command(self, command: str, operation: str, obj: str) -> str:
        """HAProxy's answer to one command, surrounding blank lines removed.

        Transport failures are retried: every command this class sends is idempotent in
        effect (a repeated add meets "already exists" and is checked, a repeated delete meets
        "no such server", states and queries are repeatable)."""
        _check_command(command)
        LOG.debug("HAProxy Runtime API %s <- %s", self.where, command)

        def once() -> str:
            return self._exchange(command, operation, obj)

        answer = retry(once, attempts=self.attempts, first_delay=self.first_delay).strip()
        LOG.debug("HAProxy Runtime API %s -> %s", self.where,
                  answer if len(answer) < 200 else answer[:200] + "...")
        if answer.startswith("Permission denied"):
            raise BackendError(SYSTEM, operation, obj,
                               "Permission denied (the Runtime API socket at %s must be at "
                               "level admin)" % self.where)
        return answer

    @staticmethod
    def _refused(operation: str, obj: str, answer: str) -> BackendError:
        message = " ".join(answer.split()) or "empty answer"
        return BackendError(SYSTEM, operation, obj, message, retryable=(answer == _BUSY))

    # -- primitives ---------------------------------------------------------------------------

    def list_servers(self, backend: str) -> List[ServerState]:
        validate_backend_name(backend)
        operation = "show servers state"
        answer = self.command("show servers state %s" % backend, operation, backend)
        lines = answer.splitlines()
        if len(lines) < 2 or not lines[1].startswith("#"):
            raise self._refused(operation, backend, answer)
        columns = lines[1].lstrip("#").split()
        servers = []
        for line in lines[2:]:
            if not line.strip() or line.startswith("#"):
                continue
            row = dict(zip(columns, line.split()))
            if row.get("be_name") != backend:
                continue
            servers.append(_server_state(row))
        return servers

    def add_server(self, backend: str, name: str, address: str, port: int,
                   health_check: bool = False) -> ServerState:
        validate_backend_name(backend)
        validate_node_name(name)
        address = validate_address(address)
        validate_port(port)
        if not isinstance(health_check, bool):
            raise ValidationError("health_check must be true or false")
        obj = "%s/%s" % (backend, name)
        endpoint = "[%s]:%d" % (address, port) if ":" in address else "%s:%d" % (address, port)
        command = "add server %s %s" % (obj, endpoint)
        if health_check:
            command += " check"
            if self.check_inter_ms:
                command += " inter %dms" % self.check_inter_ms
        answer = self.command(command, "add server", obj)
        if answer == _EXISTS:
            existing = self.get_server(backend, name)
            if existing is None:  # deleted meanwhile: let the caller retry
                raise BackendError(SYSTEM, "add server", obj, answer, retryable=True)
            if (ipaddress.ip_address(existing.address), existing.port) != (
                    ipaddress.ip_address(address), port):
                raise BackendError(
                    SYSTEM, "add server", obj,
                    "already exists with address %s port %d, not %s port %d; remove it first"
                    % (existing.address, existing.port, address, port))
            if health_check and not existing.health_check:
                raise BackendError(SYSTEM, "add server", obj,
                                   "already exists without health checks; remove it first")
            LOG.info("HAProxy server %s already exists at %s", obj, endpoint)
        elif answer != _ADDED:
            raise self._refused("add server", obj, answer)
        else:
            LOG.info("HAProxy server %s added at %s", obj, endpoint)
        if health_check:
            self._simple("enable health %s" % obj, "enable health", obj)
        self.set_state(backend, name, "ready")
        state = self.get_server(backend, name)
        if state is None:
            raise BackendError(SYSTEM, "add server", obj, "server vanished right after adding",
                               retryable=True)
        return state

    def set_state(self, backend: str, name: str, state: str) -> None:
        validate_backend_name(backend)
        validate_node_name(name)
        validate_state(state)
        obj = "%s/%s" % (backend, name)
        self._simple("set server %s state %s" % (obj, state), "set server state %s" % state,
                     obj)

    def sessions(self, backend: str, name: str) -> int:
        validate_backend_name(backend)
        validate_node_name(name)
        obj = "%s/%s" % (backend, name)
        # 4 = servers only, -1 = all of them; rows are still matched by name below because
        # HAProxy falls back to reading a numeric proxy name as an id.
        answer = self.command("show stat %s 4 -1" % backend, "show stat", obj)
        lines = answer.splitlines()
        if not lines or not lines[0].startswith("# pxname,"):
            raise self._refused("show stat", obj, answer)
        columns = lines[0][2:].split(",")
        for line in lines[1:]:
            row = dict(zip(columns, line.split(",")))
            if row.get("pxname") == backend and row.get("svname") == name:
                return _int(row.get("scur")) + _int(row.get("qcur"))
        return 0

    def delete_server(self, backend: str, name: str) -> bool:
        validate_backend_name(backend)
        validate_node_name(name)
        obj = "%s/%s" % (backend, name)
        answer = self.command("del server %s" % obj, "del server", obj)
        if answer == _DELETED:
            LOG.info("HAProxy server %s deleted", obj)
            return True
        if answer == _NO_SERVER:
            return False
        raise self._refused("del server", obj, answer)

    def _simple(self, command: str, operation: str, obj: str) -> None:
        """A command that answers nothing when it succeeds."""
        answer = self.command(command, operation, obj)
        if answer:
            raise self._refused(operation, obj, answer)


def _check_command(command: str) -> None:
    # Defence in depth: the validators already keep ";", "\" and line breaks out, but nothing
    # else may ever reach the socket even if a future caller forgets one.
    if not _SAFE_COMMAND.fullmatch(command):
        raise ValidationError("refusing to send an unsafe Runtime API command: %r" % command)


def _int(value: Optional[str]) -> int:
    try:
        return int(value or 0)
    except ValueError:
        return 0


def _server_state(row: Dict[str, str]) -> ServerState:
    admin = _int(row.get("srv_admin_state"))
    if admin & _ADMF_MAINT:
        admin_state = "maint"
    elif admin & _ADMF_DRAIN:
        admin_state = "drain"
    else:
        admin_state = "ready"
    check = _int(row.get("srv_check_state"))
    return ServerState(
        backend=row.get("be_name", ""),
        name=row.get("srv_name", ""),
        address=row.get("srv_addr", ""),
        port=_int(row.get("srv_port")),
        admin_state=admin_state,
        op_state=_OP_STATES.get(_int(row.get("srv_op_state")), "unknown"),
        health_check=bool(check & _CHK_CONFIGURED),
        check_enabled=bool(check & _CHK_ENABLED),
    )


def load_balancer(settings: HAProxySettings) -> HAProxyRuntime:
    """The load balancer for ``settings``."""
    return HAProxyRuntime(settings)


def new_load_balancer(config: Mapping[str, Any]) -> LoadBalancer:
    """The load balancer for the pack config's ``haproxy`` section."""
    return HAProxyRuntime(HAProxySettings.from_config(config))
