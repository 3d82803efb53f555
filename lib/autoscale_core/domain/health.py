"""Node health: what the governor saw of each node in one tick, and the rule that calls a node
unhealthy. Pure: the governor reads the load balancer and the compute listing once per tick
and hands the result in (``GroupState.health``); the policy (policy.py) decides replacements.

A node in service is unhealthy when

* its VM is ERROR or SHUTOFF, or gone from a compute listing that did succeed, or
* the load balancer has had it DOWN for longer than ``PolicySettings.unhealthy_after``,
  counted from its last good check (or from when it entered service if it never passed one),
  and never during its first ``startup_grace`` seconds in service.

No observation, or one that says nothing (``lb_up is None``, ``vm_status == ""``), means
healthy: unknown state never leads to removing capacity.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Protocol

from .settings import PolicySettings
from .words import duration


class Node(Protocol):
    """What the rule reads of a node record (model.Node; named here because model imports
    this module for GroupState.health)."""

    name: str
    created_at: float
    updated_at: float


class VmStatus:
    ACTIVE = "ACTIVE"
    ERROR = "ERROR"
    SHUTOFF = "SHUTOFF"
    # Missing from a compute listing that succeeded (a failed listing gives UNKNOWN).
    GONE = "gone"
    UNKNOWN = ""

    BAD = (ERROR, SHUTOFF, GONE)


@dataclass(frozen=True)
class NodeHealth:
    """One node as the load balancer and the compute service saw it this tick."""

    # The LB's view: True UP, False DOWN, None no view (no such server, LB not read).
    lb_up: Optional[bool] = None
    # When the LB's check last passed (0: not seen to pass).
    last_good_at: float = 0.0
    # The failing check as the LB words it: "HTTP 500", "connection refused".
    check: str = ""
    vm_status: str = VmStatus.UNKNOWN
    # Since when the VM has had that status, when known (0: not known).
    vm_since: float = 0.0


@dataclass(frozen=True)
class Verdict:
    """The rule's answer for one node: healthy, or why not and since when."""

    node: str
    healthy: bool = True
    # "failed its health check for 2 min (HTTP 500)", "VM is ERROR".
    why: str = ""
    since: float = 0.0


def in_service_since(node: Node) -> float:
    """When the node entered service: its last state change (a later change of the record
    only moves this later, which only delays a verdict)."""
    return node.updated_at or node.created_at


def assess(node: Node, health: Optional[NodeHealth], now: float,
           settings: PolicySettings) -> Verdict:
    """Whether an in-service node is unhealthy by the rules above."""
    if health is None:
        return Verdict(node.name)
    if health.vm_status in VmStatus.BAD:
        since = health.vm_since or now
        return Verdict(node.name, False, "VM is %s" % health.vm_status, since)
    if health.lb_up is False:
        started = in_service_since(node)
        if now - started < settings.startup_grace:
            return Verdict(node.name)
        down_since = max(health.last_good_at, started)
        down_for = now - down_since
        if down_for > settings.unhealthy_after:
            check = " (%s)" % health.check if health.check else ""
            return Verdict(node.name, False, "failed its health check for %s%s"
                           % (duration(down_for), check), down_since)
    return Verdict(node.name)


def breaker_open(unhealthy: int, total: int, settings: PolicySettings) -> bool:
    """More than ``max_unhealthy_percent`` of a group's nodes in service are unhealthy at once
    (integers: exactly at the share does not open it)."""
    return total > 0 and unhealthy * 100 > settings.max_unhealthy_percent * total
