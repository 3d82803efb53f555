"""Which node a scale-in removes (``choose_victim``): never a protected node, never one already
leaving; failed nodes first, then nodes still being added, then the newest in service."""

from __future__ import annotations

from typing import Optional

from .model import GroupState, Node, NodeState

# Victim order: failed nodes first, then nodes still being added, then those in service.
_VICTIM_RANK = {NodeState.FAILED: 0, NodeState.PROVISIONING: 1, NodeState.CONFIGURING: 1,
                NodeState.REGISTERING: 1, NodeState.IN_SERVICE: 2}


def choose_victim(state: GroupState) -> Optional[Node]:
    """The node a scale-in removes: never a protected node, never one already leaving;
    failed nodes first, then nodes still being added, then the newest in service (the
    newest of each kind first; ties by name)."""
    candidates = [node for node in state.nodes.values()
                  if not node.protected and node.state in _VICTIM_RANK]
    if not candidates:
        return None
    return min(candidates,
               key=lambda node: (_VICTIM_RANK[node.state], -node.created_at, node.name))


def why_chosen(node: Node) -> str:
    """Why ``choose_victim`` chose this node, in words."""
    if node.state == NodeState.FAILED:
        return "a failed node goes first"
    if node.pending:
        return "a node still being added goes before nodes in service"
    return "the newest node in service"
