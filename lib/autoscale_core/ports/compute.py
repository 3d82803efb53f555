"""The compute port: a cloud's VMs as the pack uses them.

Boot a node's VM and wait until it runs, destroy one and wait until it is gone, list a
group's VMs, list every VM the pack tagged (the governor's orphan scan). Every VM the pack
creates carries its group and node in its metadata (``GROUP_KEY``, ``NODE_KEY``): that is how
the pack knows its own, and how an orphan is found.
"""

from __future__ import annotations

import abc
from dataclasses import asdict, dataclass, field, replace
from typing import Any, Dict, List, Mapping, Optional

from ..domain.names import validate_group_name, validate_node_name
from ..errors import BackendError, ValidationError

GROUP_KEY = "autoscale_group"
NODE_KEY = "autoscale_node"
# A VM that serves on its own port (several services per host) says so in this metadata key;
# without it the node serves on the load balancer's server port.
PORT_KEY = "autoscale_port"


def _ref(value: Any, what: str) -> str:
    """A flavor, image or network name or id: one printable line (it goes into URLs)."""
    if not isinstance(value, str) or not value.strip():
        raise ValidationError("%s must be a name or id, not %r" % (what, value))
    if len(value) > 255 or any(ord(ch) < 32 or ord(ch) == 127 for ch in value):
        raise ValidationError("%s %r must be one line of at most 255 printable characters"
                              % (what, value))
    return value


@dataclass(frozen=True)
class ServerSpec:
    """One node's VM as the pack wants it."""

    group: str
    node: str
    flavor: str
    image: str
    network: str
    # Carries the provisioner's bootstrap secret (a validator key): kept out of repr, logs
    # and results.
    user_data: str = field(default="", repr=False)

    def __post_init__(self) -> None:
        validate_group_name(self.group)
        validate_node_name(self.node)
        # Listing a group asks the cloud for names starting "<group>-" (README: node names
        # are "<group>-<6 characters>"); a node named otherwise would be invisible to it.
        if not self.node.startswith(self.group + "-"):
            raise ValidationError("node name %r must start with its group's name and '-' (%s-)"
                                  % (self.node, self.group))
        _ref(self.flavor, "flavor")
        _ref(self.image, "image")
        _ref(self.network, "network")

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
    # Every address by network name, as the cloud reports them.
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

    # Seconds a boot may take when the caller gives no timeout.
    boot_timeout: float = 600

    @abc.abstractmethod
    def user_data(self, ssh_keys: List[str], bootstrap: Mapping[str, Any]) -> str:
        """A VM's user data, as this cloud's VMs read it: ``ssh_keys`` they accept and the
        provisioner's ``bootstrap`` (cloud-config sections: module name -> settings)."""

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
        """Every server tagged with any group (metadata ``GROUP_KEY``), in one listing: what
        the governor compares with the node records to find orphans."""

    def check_server_id(self, value: Any) -> str:
        """``value`` as this cloud's server id, refused (ValidationError) before any I/O when
        it cannot be one."""
        if not isinstance(value, str) or not value.strip():
            raise ValidationError("server id %r is not a server id" % (value,))
        return value
