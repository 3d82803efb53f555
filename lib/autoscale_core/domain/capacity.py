"""Capacity: the one place for a group's limits, used by the governor's policy (policy.py) and
by manual expand and deflate (services/planning.py) alike.

* A group's capacity is its nodes in service plus those being added (booting capacity counts).
* Its normal size is ``desired`` (never below ``min_size``): created with it, repaired back up
  to it, scaled in down to it once an alert is over.
* ``max_size`` bounds every scale-out; ``global_max_nodes`` bounds every node of every group
  together, where every stored node counts (leaving and failed ones too: their VMs still
  exist), and so does every node record that cannot be read (its VM may well exist).
"""

from __future__ import annotations

from typing import Iterable

from .model import Group, GroupState, NodeState
from .settings import PolicySettings


def normal_size(group: Group) -> int:
    desired = group.desired if group.desired is not None else group.min_size
    return max(desired, group.min_size)


def capacity(state: GroupState) -> int:
    """Nodes in service or being added."""
    in_service, adding = state.capacity()
    return in_service + adding


def stored_nodes(states: Iterable[GroupState]) -> int:
    """Every node of these groups that counts toward the global cap."""
    return sum(len(state.nodes) + state.unreadable_nodes for state in states)


def room_below_max(group: Group, current: int) -> int:
    """Nodes a scale-out may add before the group is at ``max_size``."""
    return max(0, group.max_size - current)


def room_below_cap(total: int, settings: PolicySettings) -> int:
    """Nodes all groups together may add before ``global_max_nodes``."""
    return max(0, settings.global_max_nodes - total)


def below_normal(group: Group, current: int) -> int:
    """Nodes missing to the normal size (what a repair adds)."""
    return max(0, normal_size(group) - current)


def above_normal(group: Group, current: int) -> int:
    """Nodes above the normal size (the most a scale-in may remove)."""
    return max(0, current - normal_size(group))


def above_max(group: Group, current: int) -> int:
    """Nodes above ``max_size`` (after max_size was lowered)."""
    return max(0, current - group.max_size)


def removable(state: GroupState) -> int:
    """In-service nodes a scale-in may remove: a protected node is never a victim."""
    return sum(1 for node in state.nodes.values()
               if node.state == NodeState.IN_SERVICE and not node.protected)


def clamp(requested: int, *limits: int) -> int:
    """``requested``, at most every limit, never below 0."""
    return max(0, min((requested,) + limits))
