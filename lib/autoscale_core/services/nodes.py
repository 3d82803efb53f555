"""Nodes: the bookkeeping of the workflows that add and remove them, and the group's history.

    node_start   node_start     give a new node a unique name and record it (provisioning)
    node_update  node_update    move a node along its lifecycle, with server id and address
    node_forget  node_forget    delete a node's record
    node_adopt   node_adopt     take an orphan VM into the records as a failed node
    node_pick    node_pick      the node to remove: the one named, or a victim chosen here
    activity     asg_activity   record a history event; update the group's scaling state
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import asdict, replace
from typing import Any, Callable, Dict, Optional

from ..domain.fields import bool_field, int_field, one_line
from ..domain.model import Event, Group, GroupState, Node, NodeState, TransitionError
from ..domain.names import NAME_TRIES, new_node_name, validate_group_name, validate_node_name
from ..domain.victims import choose_victim, why_chosen
from ..domain.words import nodes, state_label
from ..errors import Refusal, ValidationError, hinted
from ..store import Store
from .common import (
    clean_cause,
    group_dict,
    load_group,
    load_node,
    load_spec,
    node_dict,
    now_or,
    unknown_node,
)

# History kinds that change the group's scaling state; every other kind is only recorded.
SCALE_OUT = "scale_out"
SCALE_IN = "scale_in"
NODE_FAILED = "node_failed"
NODE_ADDED = "node_added"
_KIND_RE = re.compile(r"[a-z][a-z0-9_]{0,39}")


def _started(group: Group, node: Node) -> Dict[str, Any]:
    return {"node": node.name, "created_at": node.created_at, "fqdn": group.node_fqdn(node.name),
            "state": node.state, "group": group_dict(group)}


def node_start(store: Store, asg: Any, node: Optional[str] = None, now: Optional[float] = None,
               token: Optional[Callable[[], str]] = None) -> Dict[str, Any]:
    """Record a new node (provisioning) under a name no other node of the group has.

    With ``node``: take over the record an expand reserved under that name (provisioning,
    no VM yet); its capacity was counted when it was reserved. Otherwise refused when the
    group already has ``max_size`` nodes in service or being added. The datastore has no
    compare-and-set: the name is checked against the group's listing and its own key,
    written, and read back; with 2**24 names per group two parallel starts picking the same
    one is very unlikely, and the read-back catches the usual case of it.
    """
    now = now_or(now)
    if node:
        validate_node_name(node)
    state = load_group(store, asg)
    group = state.group
    if node:
        reserved = state.nodes.get(node)
        if reserved is None:
            raise hinted(Refusal("group %s has no node %s reserved" % (group.name, node)),
                         "status", asg=group.name)
        if reserved.state != NodeState.PROVISIONING or reserved.server_id:
            raise Refusal("node %s of group %s is already %s, not a reservation"
                          % (node, group.name, state_label(reserved.state)))
        return _started(group, reserved)
    in_service, adding = state.capacity()
    if in_service + adding >= group.max_size:
        raise Refusal(
            "group %s already has %s in service or being added, its maximum (max_size %d); "
            "no node recorded" % (group.name, nodes(in_service + adding), group.max_size))
    return _started(group, record_new_node(store, group, set(state.nodes), now, token,
                                           "being added"))


def record_new_node(store: Store, group: Group, taken: set, now: float,
                    token: Optional[Callable[[], str]], cause: str) -> Node:
    """Write a provisioning record under a fresh name (added to ``taken``)."""
    for _ in range(NAME_TRIES):
        name = new_node_name(group.name, taken, token)
        taken.add(name)
        record = Node(name=name, group=group.name, state=NodeState.PROVISIONING,
                      created_at=now, updated_at=now, cause=cause)
        # False when the name is taken, or another start took it at the same moment.
        if store.reserve_node(record):
            return record
    raise Refusal("could not find a free node name for group %s in %d tries"
                  % (group.name, NAME_TRIES))


def node_adopt(store: Store, asg: Any, node: Any, server_id: Any, cause: Any = "",
               now: Optional[float] = None) -> Dict[str, Any]:
    """Take a VM tagged for the group that no node record knows (an orphan, left by a
    workflow that died half-way) into the records as a failed node, so that
    ``asg_remove_node`` can clean up after it like after any failed node.

    Returns ``{adopted, group_exists, node, ...}``: not adopted when the group no longer
    exists (the caller then only deletes the VM and its Chef node) or when the node has a
    record after all (then it is no orphan).
    """
    now = now_or(now)
    validate_group_name(asg)
    validate_node_name(node)
    server_id = one_line(server_id, "server_id")
    if not store.group_exists(asg):
        return {"adopted": False, "group_exists": False, "node": node, "group": asg,
                "why": "group %s no longer exists" % asg}
    spec = load_spec(store, asg)
    if store.node_exists(asg, node):
        return {"adopted": False, "group_exists": True, "node": node, "group": asg,
                "why": "node %s has a record: not an orphan" % node}
    record = Node(name=node, group=spec.name, state=NodeState.FAILED, created_at=now,
                  updated_at=now, server_id=server_id,
                  cause=clean_cause(cause) or "orphan VM %s adopted for clean-up" % server_id)
    store.save_node(record)
    result = node_dict(record)
    result.update(adopted=True, group_exists=True, node=node,
                  why="adopted as a failed node for clean-up")
    return result


def node_update(store: Store, asg: Any, node: Any, state: Any,
                server_id: Optional[str] = None, address: Optional[str] = None,
                cause: Optional[str] = None, now: Optional[float] = None) -> Dict[str, Any]:
    """Move a node to ``state`` (the same state again is allowed); an empty or unset
    ``server_id`` / ``address`` leaves the stored one unchanged."""
    now = now_or(now)
    validate_group_name(asg)
    validate_node_name(node)
    if state not in NodeState.ALL:
        raise ValidationError("node state %r is not one of %s"
                              % (state, ", ".join(NodeState.ALL)))
    changes: Dict[str, Any] = {}
    if server_id:
        changes["server_id"] = one_line(server_id, "server_id")
    if address:
        try:
            changes["address"] = str(ipaddress.ip_address(one_line(address, "address")))
        except ValueError:
            raise ValidationError("address %r is not an IPv4 or IPv6 address"
                                  % (address,)) from None
    load_spec(store, asg)
    current = load_node(store, asg, node)
    try:
        updated = current.advance(state, now, clean_cause(cause), **changes)
    except TransitionError as exc:
        raise hinted(Refusal(str(exc)), "status", asg=asg) from None
    store.save_node(updated)
    return node_dict(updated)


def node_forget(store: Store, asg: Any, node: Any) -> Dict[str, Any]:
    """Delete a node's record. A record already gone is a success (``forgotten: false``)."""
    if not store.node_exists(asg, node):
        load_spec(store, asg)  # an unknown group is still an error
        return {"node": node, "group": asg, "forgotten": False}
    if not store.delete_node(asg, node):
        raise Refusal("could not delete the datastore record of node %s of group %s"
                      % (node, asg))
    return {"node": node, "group": asg, "forgotten": True}


def _no_victim(state: GroupState) -> str:
    name = state.group.name
    if not state.nodes:
        return "group %s has no nodes to remove" % name
    protected = sum(1 for node in state.nodes.values() if node.protected)
    leaving = state.count(*NodeState.LEAVING)
    parts = []
    if protected:
        parts.append("%s protected" % nodes(protected))
    if leaving:
        parts.append("%s already leaving" % nodes(leaving))
    return ("group %s has no node that can be removed (%s)" % (name, ", ".join(parts)))


def node_pick(store: Store, asg: Any, node: Optional[str] = None,
              force: bool = False) -> Dict[str, Any]:
    """The node to remove with what its removal needs: the node's fields (``name``,
    ``state``, ``server_id``, ``address``, ``protected`` ...) plus the group's ``domain``,
    ``dns_zone``, ``lb_backend``, the node's ``fqdn``, ``chosen`` (picked here rather than
    named) and ``why``."""
    force = bool_field(force if force is not None else False, "force")
    if node:
        validate_node_name(node)
    state = load_group(store, asg)
    group = state.group
    if node:
        picked = state.nodes.get(node)
        if picked is None:
            raise unknown_node(group.name, node)
        if picked.protected and not force:
            raise hinted(Refusal("node %s is protected" % node), "force_remove", node=node,
                         asg=group.name)
        why = "named by the caller"
    else:
        picked = choose_victim(state)
        if picked is None:
            error = Refusal(_no_victim(state))
            raise hinted(error, "name_a_node", asg=group.name) if state.nodes else error
        why = why_chosen(picked)
    result = node_dict(picked)
    result.update(domain=group.domain, dns_zone=group.dns_zone, lb_backend=group.lb_backend,
                  fqdn=group.node_fqdn(picked.name), chosen=not node, why=why)
    return result


def activity(store: Store, asg: Any, kind: Any, cause: Any = "", node: Optional[str] = None,
             count: Optional[int] = None, ok: Optional[bool] = True,
             now: Optional[float] = None) -> Dict[str, Any]:
    """Record a history event and, for ``scale_out``, ``scale_in``, ``node_failed`` and
    ``node_added``, update the group's scaling state (read-modify-write of one record: two
    writers at the same moment may lose one update)."""
    now = now_or(now)
    validate_group_name(asg)
    if not isinstance(kind, str) or not _KIND_RE.fullmatch(kind):
        raise ValidationError("event kind %r must be a lowercase word such as scale_out or "
                              "node_failed" % (kind,))
    if node:
        validate_node_name(node)
    count = 0 if count is None else int_field(count, "count", 0)
    ok = True if ok is None else bool_field(ok, "ok")
    cause = clean_cause(cause)
    group = load_spec(store, asg)
    event = Event(group=group.name, at=now, kind=kind, cause=cause, node=node or "",
                  count=count, ok=ok)
    if kind in (SCALE_OUT, SCALE_IN, NODE_FAILED, NODE_ADDED):
        scaling = store.read_scaling(group.name)
        if kind == SCALE_OUT:
            scaling = replace(scaling, last_scale_out_at=now)
        elif kind == SCALE_IN:
            scaling = replace(scaling, last_scale_in_at=now)
        elif kind == NODE_FAILED:
            scaling = replace(scaling, consecutive_failures=scaling.consecutive_failures + 1,
                              last_failure_at=now, last_failure_cause=cause)
        else:
            scaling = replace(scaling, consecutive_failures=0)
        store.save_scaling(group.name, scaling)
    key = store.record_event(event)
    result = asdict(event)
    result["key"] = key
    return result
