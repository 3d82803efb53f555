"""The load balancer port: a group's pool of servers (a "backend"), one server per node.

Add a node as a server, in service; drain it (no new sessions, the current ones finish);
take it out (maintenance, then deletion). An implementation provides five primitives
(list, add, set state, sessions, delete); draining and a removal that cuts no session are
built on them here, the same for every load balancer.
"""

from __future__ import annotations

import abc
import ipaddress
import logging
import time
from dataclasses import dataclass
from typing import Any, Dict, List, Optional

from ..domain.names import validate_node_name
from ..errors import BackendError, ValidationError

LOG = logging.getLogger(__name__)

# ready: in service; drain: no new sessions; maint: no traffic at all.
STATES = ("ready", "drain", "maint")


def validate_port(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 65535:
        raise ValidationError("port %r must be an integer from 1 to 65535" % (value,))
    return value


def validate_address(value: Any) -> str:
    """A literal IPv4 or IPv6 address a server can be reached at, in canonical form."""
    if not isinstance(value, str):
        raise ValidationError("server address must be a string, not %s" % type(value).__name__)
    try:
        # "%" (an IPv6 zone) is refused explicitly: Python 3.9+ would accept it.
        if "%" in value:
            raise ValueError(value)
        address = ipaddress.ip_address(value)
    except ValueError:
        raise ValidationError(
            "server address %r is not an IPv4 or IPv6 address" % (value,)) from None
    if address.is_unspecified or address.is_multicast:
        # 0.0.0.0 would make a load balancer (HAProxy does) connect to the client's own
        # destination address.
        raise ValidationError("server address %r cannot be a server's address" % (value,))
    return str(address)


def validate_state(value: Any) -> str:
    if value not in STATES:
        raise ValidationError("server state %r must be one of %s" % (value, ", ".join(STATES)))
    return value


# ---------------------------------------------------------------------------------------------
# Results


@dataclass(frozen=True)
class ServerState:
    """One server of a backend as the load balancer reports it."""

    backend: str
    name: str
    address: str
    port: int
    admin_state: str  # ready, drain or maint
    op_state: str  # up, down, starting, stopping
    health_check: bool  # checks configured for the server
    check_enabled: bool

    def to_dict(self) -> Dict[str, Any]:
        return {
            "backend": self.backend,
            "server": self.name,
            "address": self.address,
            "port": self.port,
            "admin_state": self.admin_state,
            "op_state": self.op_state,
            "health_check": self.health_check,
            "check_enabled": self.check_enabled,
        }


@dataclass(frozen=True)
class DrainResult:
    backend: str
    server: str
    present: bool
    sessions_left: int
    waited: float

    @property
    def drained(self) -> bool:
        return self.sessions_left == 0

    def to_dict(self) -> Dict[str, Any]:
        return {"backend": self.backend, "server": self.server, "present": self.present,
                "sessions_left": self.sessions_left, "drained": self.drained,
                "waited": round(self.waited, 3)}


# ---------------------------------------------------------------------------------------------
# The port


class LoadBalancer(abc.ABC):
    """What the pack needs from a load balancer. An implementation provides the five
    primitives; draining and safe removal are built on them here.

    Every method validates its names before any I/O and raises BackendError on a refusal.
    """

    # How errors name the system ("HAProxy: add server web/web-3f9a1c: ...").
    system = "load balancer"
    poll_interval = 0.2
    # What a caller that does not say uses (the lb_* actions): the pool, the port nodes serve
    # on (unless their VM names its own), health checks on added servers, how long a draining
    # server may keep its sessions.
    default_backend = ""
    server_port = 80
    health_checks = True
    drain_timeout: float = 120

    def check_backend(self, name: Any) -> str:
        """``name`` as a pool of this load balancer, refused (ValidationError) before any
        I/O when it cannot be one."""
        if not isinstance(name, str) or not name or any(ord(ch) < 33 for ch in name):
            raise ValidationError("load balancer backend %r is not a backend name" % (name,))
        return name

    def backend_or_default(self, backend: Optional[str]) -> str:
        """The backend asked for, else the default one."""
        name = backend or self.default_backend
        if not name:
            raise ValidationError("no load balancer backend given and none is configured")
        return self.check_backend(name)

    @abc.abstractmethod
    def list_servers(self, backend: str) -> List[ServerState]:
        """Every server of ``backend``."""

    @abc.abstractmethod
    def add_server(self, backend: str, name: str, address: str, port: int,
                   health_check: bool = False) -> ServerState:
        """Make ``name`` a server of ``backend`` at ``address:port``, in service.

        Idempotent: an existing server with the same address is put in service; one with a
        different address is an error."""

    @abc.abstractmethod
    def set_state(self, backend: str, name: str, state: str) -> None:
        """``ready`` (in service), ``drain`` (no new sessions) or ``maint`` (no traffic)."""

    @abc.abstractmethod
    def sessions(self, backend: str, name: str) -> int:
        """Sessions the server is serving or has queued now; 0 when it does not exist."""

    @abc.abstractmethod
    def delete_server(self, backend: str, name: str) -> bool:
        """Delete a server in maintenance; False when it did not exist."""

    def get_server(self, backend: str, name: str) -> Optional[ServerState]:
        validate_node_name(name)
        for server in self.list_servers(backend):
            if server.name == name:
                return server
        return None

    def wait_drained(self, backend: str, name: str, timeout: float) -> int:
        """Poll until the server has no session or ``timeout`` seconds passed; the sessions
        left (0 = drained)."""
        deadline = time.monotonic() + max(timeout, 0.0)
        while True:
            left = self.sessions(backend, name)
            if left == 0 or time.monotonic() >= deadline:
                return left
            time.sleep(min(self.poll_interval, max(deadline - time.monotonic(), 0.01)))

    def drain_server(self, backend: str, name: str, timeout: float) -> DrainResult:
        """Stop new sessions to the server and wait for the current ones to end. A missing
        server counts as drained (nothing to wait for); one in maintenance stays there."""
        self.check_backend(backend)
        validate_node_name(name)
        started = time.monotonic()
        server = self.get_server(backend, name)
        if server is None:
            return DrainResult(backend, name, False, 0, 0.0)
        if server.admin_state == "ready":
            self.set_state(backend, name, "drain")
        left = self.wait_drained(backend, name, timeout)
        return DrainResult(backend, name, True, left, time.monotonic() - started)

    def remove_server(self, backend: str, name: str, drain_timeout: float,
                      delete_timeout: float = 10.0) -> bool:
        """Drain, wait, maintenance, delete: no session is cut. True when this call deleted
        the server, False when it was already gone. When sessions are still open after
        ``drain_timeout`` the server is left draining and a retryable error raised."""
        drained = self.drain_server(backend, name, drain_timeout)
        if not drained.present:
            return False
        if not drained.drained:
            raise BackendError(
                self.system, "remove server", "%s/%s" % (backend, name),
                "%d session(s) still open after %.0f s of draining; the server stays in "
                "drain, try again later" % (drained.sessions_left, drain_timeout),
                retryable=True)
        self.set_state(backend, name, "maint")
        # A session may have slipped in just before maint (a persistent connection while
        # draining); HAProxy then refuses the delete: wait for it rather than fail at once.
        deadline = time.monotonic() + delete_timeout
        while True:
            try:
                return self.delete_server(backend, name)
            except BackendError as exc:
                if not exc.retryable or time.monotonic() >= deadline:
                    raise
                LOG.info("%s; waiting", exc)
                time.sleep(self.poll_interval)
