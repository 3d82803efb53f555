"""The DNS port: where the pack writes the names of nodes (``<node>.<domain>``) and of groups'
services (``<group>.<domain>``, pointing at the load balancer).

The pack changes only names it owns: a name someone else holds is refused with
``NotOwnedError`` and left as it is. Errors are BackendError (remote), NotOwnedError or
ValidationError (bad input, raised before any I/O).
"""

from __future__ import annotations

import abc
from dataclasses import dataclass
from typing import Dict, List, Optional

from ..errors import BackendError

SYSTEM = "DNS"


@dataclass(frozen=True)
class Record:
    fqdn: str
    type: str
    address: str
    ttl: int
    zone: str
    # created (a new name), updated (already ours), adopted (from before ownership records)
    change: str = "created"


@dataclass(frozen=True)
class Removal:
    fqdn: str
    # deleted (ours), adopted (from before ownership records, then deleted), absent (nothing)
    outcome: str


class NotOwnedError(BackendError):
    """The name is in use and not this installation's: nothing was changed."""

    def __init__(self, operation: str, obj: str, fqdn: str, message: str) -> None:
        self.fqdn = fqdn
        super().__init__(SYSTEM, operation, obj, message)


class Dns(abc.ABC):
    """Where the pack writes node and service names."""

    # What a group's service name points at (the load balancer's address); "" when unset.
    service_address: str = ""

    @abc.abstractmethod
    def add_record(self, name: str, domain: str, address: str, ttl: Optional[int] = None,
                   zone: Optional[str] = None) -> Record:
        """Make ``<name>.<domain>`` resolve to ``address`` (and only to it, for its record
        type), verified on the server, if the name is free, this installation's, or holds
        exactly ``address`` without an ownership record (adopted). Idempotent."""

    @abc.abstractmethod
    def delete_record(self, name: str, domain: str, zone: Optional[str] = None,
                      address: Optional[str] = None) -> Removal:
        """Remove the A and AAAA records of ``<name>.<domain>`` and its ownership record if
        the name is this installation's, or (with ``address``, the one the pack recorded) its
        A or AAAA RRset if that is exactly ``address`` and no ownership record exists. A name
        without address records is a success."""

    @abc.abstractmethod
    def check_record(self, name: str, domain: str, address: Optional[str] = None,
                     zone: Optional[str] = None) -> str:
        """Whether ``add_record`` may write the name, without changing anything: "free",
        "ours" or "adoptable" (``address`` given); NotOwnedError otherwise."""

    @abc.abstractmethod
    def lookup(self, name: str, domain: str, zone: Optional[str] = None) -> Dict[str, List[str]]:
        """The name's addresses as the server answers them: {"A": [...], "AAAA": [...]}."""
