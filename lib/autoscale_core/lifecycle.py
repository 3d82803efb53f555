"""Group and node bookkeeping for the lifecycle workflows and the chat commands.

The workflows (``asg_create``, ``asg_add_node``, ``asg_remove_node``, ``asg_expand``,
``asg_deflate``, ``asg_delete``) never touch the datastore themselves: they call the thin
actions of this module's functions, which read and write the records of ``store``:

    register     asg_register   validate and store a group's spec (a re-run is harmless)
    node_start   node_start     give a new node a unique name and record it (provisioning)
    node_update  node_update    move a node along its lifecycle, with server id and address
    node_forget  node_forget    delete a node's record
    node_pick    node_pick      the node to remove: the one named, or a victim chosen here
    activity     asg_activity   record a history event; update the group's scaling state
    plan_change  asg_plan       how many nodes an expand or deflate may add or remove
    status       asg_status     one group for people (``text``) and for workflows
    list_groups  asg_list       every group in one line each
    set_paused   asg_pause / asg_resume
    forget       asg_forget     delete every key of a group

Each function takes a ``Store`` and returns a JSON-ready dict, or raises ``LifecycleError``
(a refusal: unknown group, impossible step), ``ValidationError`` (bad input) or
``RecordError`` (an unreadable record). ``perform`` turns those into an action's
``(False, {"error": ...})``. Nothing is written before every input has been checked.

The pure helpers (``new_node_name``, ``choose_victim``, ``plan``, ``status_text``,
``list_text``) read nothing and write nothing.
"""

from __future__ import annotations

import ipaddress
import logging
import re
import secrets
import time
from dataclasses import asdict, dataclass, replace
from typing import Any, Callable, Dict, Iterable, List, Mapping, Optional, Tuple

from . import policy
from .failure import masked_traceback, unexpected
from .model import (
    Event,
    Group,
    GroupState,
    Node,
    NodeState,
    RecordError,
    ScalingState,
    TransitionError,
    ValidationError,
    _bool_field,
    _int_field,
    validate_group_name,
    validate_node_name,
)
from .settings import PolicySettings, group_defaults
from .store import (
    DEFAULT_HISTORY_TTL,
    DEFAULT_PAGE_SIZE,
    Store,
    group_key,
    node_key,
    scaling_key,
)

LOG = logging.getLogger(__name__)

# How many history events asg_status shows.
STATUS_EVENTS = 5
# A cause is one line of chat: longer text (a traceback in an error) is cut.
CAUSE_MAX = 1000
# Tries at a node name no other node has before giving up (2**24 names per group).
NAME_TRIES = 20

# asg_register's parameters (the ChatOps words) and the Group fields they set.
REGISTER_FIELDS = {
    "min": "min_size",
    "max": "max_size",
    "desired": "desired",
    "expand_by": "expand_by",
    "deflate_by": "deflate_by",
    "scale_out_cooldown": "scale_out_cooldown",
    "scale_in_cooldown": "scale_in_cooldown",
    "flavor": "flavor",
    "image": "image",
    "network": "network",
    "dns_zone": "dns_zone",
    "lb_backend": "lb_backend",
    "chef_run_list": "chef_run_list",
    "chef_environment": "chef_environment",
    "chat_channel": "chat_channel",
    "dry_run": "dry_run",
    "match_entities": "alert_matchers",
    "match_applications": "alert_matchers",
    "match_servers": "alert_matchers",
    "match_policies": "alert_matchers",
    "match_conditions": "alert_matchers",
}
# asg_register's alert matcher parameters and the matcher kind each sets (see routing.py).
MATCH_FIELDS = {
    "match_entities": "entities",
    "match_applications": "applications",
    "match_servers": "servers",
    "match_policies": "policies",
    "match_conditions": "conditions",
}

# History kinds that change the group's scaling state; every other kind is only recorded.
SCALE_OUT = "scale_out"
SCALE_IN = "scale_in"
NODE_FAILED = "node_failed"
NODE_ADDED = "node_added"
_KIND_RE = re.compile(r"[a-z][a-z0-9_]{0,39}")

OUT = "out"
IN = "in"

# Victim order: failed nodes first, then nodes still being added, then those in service.
_VICTIM_RANK = {NodeState.FAILED: 0, NodeState.PROVISIONING: 1, NodeState.CONFIGURING: 1,
                NodeState.REGISTERING: 1, NodeState.IN_SERVICE: 2}


class LifecycleError(ValueError):
    """A refusal an operator can act on: an unknown group or node, a conflicting spec, a
    protected node, nothing to remove."""


# ---------------------------------------------------------------------------------------------
# Small helpers


def _now(now: Optional[float]) -> float:
    return time.time() if now is None else float(now)


def _nodes(count: int) -> str:
    return "%d node%s" % (count, "" if count == 1 else "s")


def _state_label(state: str) -> str:
    return state.replace("_", " ")


def clean_cause(cause: Any) -> str:
    """A cause as one line of at most CAUSE_MAX characters (error texts may hold newlines)."""
    if cause is None:
        return ""
    text = " ".join(str(cause).split())
    if len(text) > CAUSE_MAX:
        text = text[:CAUSE_MAX - 1] + "…"
    return text


def unknown_group(name: str) -> LifecycleError:
    return LifecycleError("no autoscaling group named %r (see: !asg list)" % name)


def group_dict(group: Group) -> Dict[str, Any]:
    """A group's spec as the actions return it: every Group field."""
    return asdict(group)


def node_dict(node: Node) -> Dict[str, Any]:
    return asdict(node)


def store_for(datastore: Any, config: Optional[Mapping[str, Any]]) -> Store:
    """The Store an action uses: page size and history TTL from the config's governor
    section."""
    governor = (config or {}).get("governor") or {}
    page_size = governor.get("datastore_page_size") or DEFAULT_PAGE_SIZE
    history_ttl = governor.get("history_ttl") or DEFAULT_HISTORY_TTL
    page_size = _int_field(page_size, "config key governor.datastore_page_size", 1)
    history_ttl = _int_field(history_ttl, "config key governor.history_ttl", 1)
    return Store(datastore, page_size=page_size, history_ttl=history_ttl)


def perform(datastore: Any, config: Optional[Mapping[str, Any]],
            function: Callable[..., Dict[str, Any]], /, *args: Any,
            **kwargs: Any) -> Tuple[bool, Dict[str, Any]]:
    """Run one of this module's functions for an action: ``(True, result)``, or
    ``(False, {"error": "<sentence>"})`` for a refusal, bad input, an unreadable record or an
    unexpected failure (so a workflow can always publish ``result().result.error``)."""
    try:
        store = store_for(datastore, config)
        return True, function(store, *args, **kwargs)
    except (LifecycleError, ValidationError, RecordError) as exc:
        return False, {"error": str(exc)}
    except Exception as exc:  # the datastore API, a bug: still a sentence for the workflow
        message = unexpected(function.__name__, exc, config)
        LOG.error("autoscale: %s\n%s", message, masked_traceback(config))
        return False, {"error": message}


def _load_spec(store: Store, name: str) -> Group:
    """One group's spec with one datastore read; LifecycleError when there is none."""
    key = group_key(name)
    raw = store.datastore.get_value(key, local=False)
    if raw is None:
        raise unknown_group(name)
    try:
        return Group.from_json(raw)
    except RecordError as exc:
        raise RecordError("%s: %s (delete it with: !asg delete name=%s)" % (key, exc, name)) \
            from None


def _load_group(store: Store, name: str) -> GroupState:
    validate_group_name(name)
    try:
        state = store.load_group(name)
    except RecordError as exc:
        raise RecordError("%s (delete it with: !asg delete name=%s)" % (exc, name)) from None
    if state is None:
        raise unknown_group(name)
    return state


def _load_node(store: Store, group: str, node: str) -> Node:
    key = node_key(group, node)
    raw = store.datastore.get_value(key, local=False)
    if raw is None:
        raise LifecycleError("group %s has no node named %s (see: !asg status asg=%s)"
                             % (group, node, group))
    try:
        return Node.from_json(raw)
    except RecordError as exc:
        raise RecordError("%s: %s" % (key, exc)) from None


# ---------------------------------------------------------------------------------------------
# asg_register


def _show(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return "[%s]" % ", ".join(value)
    if value == "":
        return "(empty)"
    return str(value)


def register(store: Store, name: Any, domain: Any, config: Optional[Mapping[str, Any]] = None,
             check_only: bool = False, **settings: Any) -> Dict[str, Any]:
    """Validate and store a group, or accept an identical existing one (``check_only``:
    validate and compare, store nothing).

    ``settings`` are asg_register's parameters (``min``, ``max``, ``desired`` ...); None means
    the pack config's ``group_defaults``, then the model's defaults. An existing
    group is identical when every setting given explicitly (and the domain) equals its
    stored value; settings left unset are not compared, so re-running the same command is
    harmless.
    """
    unknown = sorted(set(settings) - set(REGISTER_FIELDS))
    if unknown:
        raise ValidationError("unknown group setting(s): %s; known settings: %s"
                              % (", ".join(unknown), ", ".join(REGISTER_FIELDS)))
    explicit = {REGISTER_FIELDS[key]: value for key, value in settings.items()
                if value is not None and key not in MATCH_FIELDS}
    matchers = {MATCH_FIELDS[key]: value for key, value in settings.items()
                if key in MATCH_FIELDS and value not in (None, "", [])}
    if matchers:
        explicit["alert_matchers"] = matchers
    explicit["domain"] = domain
    group = Group.create(group_defaults(config or {}), name=name, **explicit)
    existing = store.load_group(group.name)
    if existing is not None:
        old = existing.group
        differ = [field for field in sorted(explicit, key=Group.FIELDS.index)
                  if getattr(group, field) != getattr(old, field)]
        if differ:
            raise LifecycleError(
                "group %s exists with %s; delete it first or use the same settings"
                % (group.name, ", ".join("%s %s, not %s" % (field, _show(getattr(old, field)),
                                                             _show(getattr(group, field)))
                                          for field in differ)))
        return {"group": group_dict(old), "fqdn": old.fqdn, "existed": True}
    if check_only:
        return {"group": group_dict(group), "fqdn": group.fqdn, "existed": False}
    store.save_group(group)
    return {"group": group_dict(group), "fqdn": group.fqdn, "existed": False}


def service_name(store: Store, name: Any, domain: Any, dns_zone: Any = None,
                 config: Optional[Mapping[str, Any]] = None) -> Dict[str, Any]:
    """Where asg_create registers a group's service name, found before anything is stored:
    the stored group's name, domain and zone, or those ``register`` would give a new one."""
    validate_group_name(name)
    existing = store.load_group(name)
    if existing is not None:
        group = existing.group
    else:
        group = Group.create(group_defaults(config or {}), name=name, domain=domain,
                             dns_zone=dns_zone)
    return {"name": group.name, "domain": group.domain, "dns_zone": group.dns_zone,
            "fqdn": group.fqdn, "existed": existing is not None}


# ---------------------------------------------------------------------------------------------
# Nodes


def new_node_name(group: str, existing: Iterable[str],
                  token: Optional[Callable[[], str]] = None) -> str:
    """``<group>-<6 lowercase hex>``, different from every name in ``existing``.

    ``token`` returns the 6 characters (default: 3 random bytes from ``secrets``).
    """
    validate_group_name(group)
    token = token or (lambda: secrets.token_hex(3))
    taken = set(existing)
    for _ in range(NAME_TRIES):
        name = "%s-%s" % (group, token())
        if name not in taken:
            return validate_node_name(name)
    raise LifecycleError("could not find a free node name for group %s in %d tries"
                         % (group, NAME_TRIES))


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
    now = _now(now)
    if node:
        validate_node_name(node)
    state = _load_group(store, asg)
    group = state.group
    if node:
        reserved = state.nodes.get(node)
        if reserved is None:
            raise LifecycleError("group %s has no node %s reserved (see: !asg status asg=%s)"
                                 % (group.name, node, group.name))
        if reserved.state != NodeState.PROVISIONING or reserved.server_id:
            raise LifecycleError("node %s of group %s is already %s, not a reservation"
                                 % (node, group.name, _state_label(reserved.state)))
        return _started(group, reserved)
    in_service, adding = state.capacity()
    if in_service + adding >= group.max_size:
        raise LifecycleError(
            "group %s already has %s in service or being added, its maximum (max_size %d); "
            "no node recorded" % (group.name, _nodes(in_service + adding), group.max_size))
    return _started(group, _record_new_node(store, group, set(state.nodes), now, token,
                                            "being added"))


def _record_new_node(store: Store, group: Group, taken: set, now: float,
                     token: Optional[Callable[[], str]], cause: str) -> Node:
    """Write a provisioning record under a fresh name (added to ``taken``)."""
    for _ in range(NAME_TRIES):
        name = new_node_name(group.name, taken, token)
        taken.add(name)
        key = node_key(group.name, name)
        if store.datastore.get_value(key, local=False) is not None:
            continue
        record = Node(name=name, group=group.name, state=NodeState.PROVISIONING,
                      created_at=now, updated_at=now, cause=cause)
        store.save_node(record)
        if store.datastore.get_value(key, local=False) != record.to_json():
            continue  # another start took the same name at the same moment: theirs now
        return record
    raise LifecycleError("could not find a free node name for group %s in %d tries"
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
    now = _now(now)
    validate_group_name(asg)
    validate_node_name(node)
    server_id = _one_line(server_id, "server_id")
    if store.datastore.get_value(group_key(asg), local=False) is None:
        return {"adopted": False, "group_exists": False, "node": node, "group": asg,
                "why": "group %s no longer exists" % asg}
    spec = _load_spec(store, asg)
    if store.datastore.get_value(node_key(asg, node), local=False) is not None:
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


def _one_line(value: Any, what: str, limit: int = 255) -> str:
    if not isinstance(value, str):
        raise ValidationError("%s must be a string, not %r" % (what, value))
    if len(value) > limit or any(ch in value for ch in "\r\n\x00"):
        raise ValidationError("%s must be a single line of at most %d characters"
                              % (what, limit))
    return value


def node_update(store: Store, asg: Any, node: Any, state: Any,
                server_id: Optional[str] = None, address: Optional[str] = None,
                cause: Optional[str] = None, now: Optional[float] = None) -> Dict[str, Any]:
    """Move a node to ``state`` (the same state again is allowed); an empty or unset
    ``server_id`` / ``address`` leaves the stored one unchanged."""
    now = _now(now)
    validate_group_name(asg)
    validate_node_name(node)
    if state not in NodeState.ALL:
        raise ValidationError("node state %r is not one of %s"
                              % (state, ", ".join(NodeState.ALL)))
    changes: Dict[str, Any] = {}
    if server_id:
        changes["server_id"] = _one_line(server_id, "server_id")
    if address:
        try:
            changes["address"] = str(ipaddress.ip_address(_one_line(address, "address")))
        except ValueError:
            raise ValidationError("address %r is not an IPv4 or IPv6 address"
                                  % (address,)) from None
    _load_spec(store, asg)
    current = _load_node(store, asg, node)
    try:
        updated = current.advance(state, now, clean_cause(cause), **changes)
    except TransitionError as exc:
        raise LifecycleError("%s (see: !asg status asg=%s)" % (exc, asg)) from None
    store.save_node(updated)
    return node_dict(updated)


def node_forget(store: Store, asg: Any, node: Any) -> Dict[str, Any]:
    """Delete a node's record. A record already gone is a success (``forgotten: false``)."""
    key = node_key(asg, node)
    if store.datastore.get_value(key, local=False) is None:
        _load_spec(store, asg)  # an unknown group is still an error
        return {"node": node, "group": asg, "forgotten": False}
    # st2's delete_value returns False for any failure, a missing key included: look again.
    if not store.datastore.delete_value(key, local=False) and \
            store.datastore.get_value(key, local=False) is not None:
        raise LifecycleError("could not delete the datastore record %s" % key)
    return {"node": node, "group": asg, "forgotten": True}


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


def _no_victim(state: GroupState) -> str:
    name = state.group.name
    if not state.nodes:
        return "group %s has no nodes to remove" % name
    protected = sum(1 for node in state.nodes.values() if node.protected)
    leaving = state.count(*NodeState.LEAVING)
    parts = []
    if protected:
        parts.append("%s protected" % _nodes(protected))
    if leaving:
        parts.append("%s already leaving" % _nodes(leaving))
    return ("group %s has no node that can be removed (%s); name one to remove it anyway: "
            "!asg node delete name=<node> asg=%s force=true"
            % (name, ", ".join(parts), name))


def node_pick(store: Store, asg: Any, node: Optional[str] = None,
              force: bool = False) -> Dict[str, Any]:
    """The node to remove with what its removal needs: the node's fields (``name``,
    ``state``, ``server_id``, ``address``, ``protected`` ...) plus the group's ``domain``,
    ``dns_zone``, ``lb_backend``, the node's ``fqdn``, ``chosen`` (picked here rather than
    named) and ``why``."""
    force = _bool_field(force if force is not None else False, "force")
    if node:
        validate_node_name(node)
    state = _load_group(store, asg)
    group = state.group
    if node:
        picked = state.nodes.get(node)
        if picked is None:
            raise LifecycleError("group %s has no node named %s (see: !asg status asg=%s)"
                                 % (group.name, node, group.name))
        if picked.protected and not force:
            raise LifecycleError(
                "node %s is protected; to remove it anyway: !asg node delete name=%s asg=%s "
                "force=true" % (node, node, group.name))
        why = "named by the caller"
    else:
        picked = choose_victim(state)
        if picked is None:
            raise LifecycleError(_no_victim(state))
        if picked.state == NodeState.FAILED:
            why = "a failed node goes first"
        elif picked.pending:
            why = "a node still being added goes before nodes in service"
        else:
            why = "the newest node in service"
    result = node_dict(picked)
    result.update(domain=group.domain, dns_zone=group.dns_zone, lb_backend=group.lb_backend,
                  fqdn=group.node_fqdn(picked.name), chosen=not node, why=why)
    return result


# ---------------------------------------------------------------------------------------------
# History and scaling state


def activity(store: Store, asg: Any, kind: Any, cause: Any = "", node: Optional[str] = None,
             count: Optional[int] = None, ok: Optional[bool] = True,
             now: Optional[float] = None) -> Dict[str, Any]:
    """Record a history event and, for ``scale_out``, ``scale_in``, ``node_failed`` and
    ``node_added``, update the group's scaling state (read-modify-write of one record: two
    writers at the same moment may lose one update)."""
    now = _now(now)
    validate_group_name(asg)
    if not isinstance(kind, str) or not _KIND_RE.fullmatch(kind):
        raise ValidationError("event kind %r must be a lowercase word such as scale_out or "
                              "node_failed" % (kind,))
    if node:
        validate_node_name(node)
    count = 0 if count is None else _int_field(count, "count", 0)
    ok = True if ok is None else _bool_field(ok, "ok")
    cause = clean_cause(cause)
    group = _load_spec(store, asg)
    event = Event(group=group.name, at=now, kind=kind, cause=cause, node=node or "",
                  count=count, ok=ok)
    if kind in (SCALE_OUT, SCALE_IN, NODE_FAILED, NODE_ADDED):
        raw = store.datastore.get_value(scaling_key(group.name), local=False)
        scaling = ScalingState.from_json(raw) if raw is not None else ScalingState()
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


# ---------------------------------------------------------------------------------------------
# asg_plan


@dataclass(frozen=True)
class Plan:
    direction: str
    requested: int
    count: int
    cause: str
    # Capacity (in service + being added) now, and once the plan is carried out.
    current: int
    target: int

    def as_dict(self) -> Dict[str, Any]:
        return asdict(self)


def normal_size(group: Group) -> int:
    desired = group.desired if group.desired is not None else group.min_size
    return max(desired, group.min_size)


def plan(state: GroupState, others: Iterable[GroupState], direction: str,
         count: Optional[int], settings: Optional[PolicySettings] = None) -> Plan:
    """How many nodes a manual or governor-driven expand ("out") or deflate ("in") may add or
    remove.

    out: ``count`` (default ``expand_by``) clamped to ``max_size`` (capacity = in service +
    being added) and to ``global_max_nodes`` over every stored node of every group (``others``
    plus this one). in: ``count`` (default ``deflate_by``) clamped so that capacity stays at
    least the normal size (``desired``, never below ``min_size``); failed nodes, which hold
    no capacity, can always be removed and go first (see ``choose_victim``); protected and
    leaving nodes are never counted as removable.
    """
    settings = settings or PolicySettings()
    group = state.group
    if direction not in (OUT, IN):
        raise ValidationError("direction must be 'out' or 'in', not %r" % (direction,))
    default = group.expand_by if direction == OUT else group.deflate_by
    requested = default if count is None else _int_field(count, "count", 1)
    in_service, adding = state.capacity()
    capacity = in_service + adding
    where = "%d in service or being added" % capacity

    if direction == OUT:
        by_max = max(0, group.max_size - capacity)
        total = len(state.nodes) + sum(len(other.nodes) for other in others
                                       if other.group.name != group.name)
        by_cap = max(0, settings.global_max_nodes - total)
        granted = min(requested, by_max, by_cap)
        limits = []
        if by_max < requested:
            limits.append("max %d allows %d" % (group.max_size, by_max))
        if by_cap < requested:
            limits.append("the global cap of %s (%d in all groups) allows %d"
                          % (_nodes(settings.global_max_nodes), total, by_cap))
        if not limits:
            cause = "adding %s (%d → %d, max %d)" % (
                _nodes(granted), capacity, capacity + granted, group.max_size)
        else:
            cause = "requested %d, %s (%s)" % (requested, " and ".join(limits), where)
            if granted == 0:
                cause += "; nothing to add"
        return Plan(OUT, requested, granted, cause, capacity, capacity + granted)

    # Like the governor: no scale-in while nodes are being added. Removing one would pull it
    # from under its own asg_add_node, whose undo then counts as a failed addition.
    if adding:
        return Plan(IN, requested, 0, "%s being added; deflate once they are in service"
                    % _nodes(adding), capacity, capacity)
    normal = normal_size(group)
    failed = sum(1 for node in state.nodes.values()
                 if node.state == NodeState.FAILED and not node.protected)
    movable = sum(1 for node in state.nodes.values()
                  if (node.pending or node.state == NodeState.IN_SERVICE) and not node.protected)
    protected = sum(1 for node in state.nodes.values()
                    if (node.pending or node.state == NodeState.IN_SERVICE) and node.protected)
    by_normal = max(0, capacity - normal)
    from_capacity = min(by_normal, movable)
    granted = min(requested, failed + from_capacity)
    shrink = max(0, granted - failed)
    notes = []
    if failed and granted:
        notes.append("%s first" % ("the failed node" if failed == 1 else
                                   "%d failed nodes" % min(failed, granted)))
    if from_capacity < by_normal:
        notes.append("%s protected" % _nodes(protected))
    note = "; %s" % ", ".join(notes) if notes else ""
    if granted == requested:
        cause = "removing %s (%d → %d, normal size %d)%s" % (
            _nodes(granted), capacity, capacity - shrink, normal, note)
    elif granted == 0:
        cause = "requested %d, but the group is at its normal size of %d (%s)%s; nothing to " \
                "remove" % (requested, normal, where, note)
    else:
        cause = "requested %d, normal size %d allows %d (%s)%s" % (
            requested, normal, granted, where, note)
    return Plan(IN, requested, granted, cause, capacity, capacity - shrink)


_GOVERNED_ACTIONS = {OUT: (policy.Action.SCALE_OUT, policy.Action.REPAIR),
                     IN: (policy.Action.SCALE_IN,)}


def plan_change(store: Store, asg: Any, direction: Any, count: Optional[int] = None,
                config: Optional[Mapping[str, Any]] = None, cause: Any = "",
                governed: Any = False, now: Optional[float] = None,
                token: Optional[Callable[[], str]] = None) -> Dict[str, Any]:
    """Decide and claim an expand ("out") or deflate ("in") of a group, in one step.

    Manual (``governed`` false): ``plan`` over the stored groups (one listing of every group,
    for the global cap). Governed (the governor's triggers and the alert rule): the policy's
    decision for the group now (``policy.decide_one``: cooldowns, alert, backoff, max, global
    cap), whatever the trigger asked for when it was dispatched; nothing when the policy no
    longer wants that direction.

    When nodes are to change, the change is claimed before this returns: for "out" a
    provisioning record is reserved for each node (``nodes``: their names, which
    ``asg_add_node`` takes over) and the scale-out is recorded (starting the cooldown); for
    "in" the scale-in is recorded. The next plan of the group, manual or governed, sees both.
    The datastore has no compare-and-set, so plans of one group must not overlap: the
    ``asg_plan`` action's concurrency policy (policies/) runs them one at a time per group.
    """
    now = _now(now)
    settings = PolicySettings.from_config(config or {})
    validate_group_name(asg)
    if direction not in (OUT, IN):
        raise ValidationError("direction must be 'out' or 'in', not %r" % (direction,))
    governed = _bool_field(governed if governed is not None else False, "governed")
    origin = clean_cause(cause)
    groups, _ = store.load_all()
    # Not listed: say precisely why (unknown, or an unreadable spec).
    state = groups[asg] if asg in groups else _load_group(store, asg)
    others = [other for name, other in groups.items() if name != asg]
    reason = ""
    if governed:
        decision = policy.decide_one(state, others, now, settings)
        reason = decision.reason
        wanted = _GOVERNED_ACTIONS[direction]
        granted = decision.count if decision.action in wanted and not decision.dry_run else 0
        why = decision.cause if granted else "the policy now says: %s" % decision.cause
        if decision.acts and decision.action not in wanted:
            why = "the policy now wants %s, not this: %s" % (
                decision.action.replace("_", " "), decision.cause)
        result = Plan(direction, decision.count, granted, why, decision.current,
                      decision.target if granted else decision.current).as_dict()
    else:
        result = plan(state, others, direction, count, settings).as_dict()
    result.update(group=asg, governed=governed, reason=reason, nodes=[], recorded=False)
    if result["count"] <= 0:
        return result

    group = state.group
    kind = SCALE_OUT if direction == OUT else SCALE_IN
    if direction == OUT:
        taken = set(state.nodes)
        for _ in range(result["count"]):
            record = _record_new_node(store, group, taken, now, token,
                                      "reserved: %s" % (origin or "expand"))
            result["nodes"].append(record.name)
    text = "%s: %s" % (origin, result["cause"]) if origin else result["cause"]
    activity(store, asg, kind, text, count=result["count"], now=now)
    result["recorded"] = True
    return result


# ---------------------------------------------------------------------------------------------
# asg_status and asg_list


def _remaining(since: float, period: float, now: float) -> float:
    return max(0.0, since + period - now) if since else 0.0


def describe(state: GroupState, others: Iterable[GroupState], history: List[Event],
             now: float, settings: Optional[PolicySettings] = None) -> Dict[str, Any]:
    """A group's status as asg_status returns it (``text`` included). Pure."""
    settings = settings or PolicySettings()
    group = state.group
    nodes = []
    for node in sorted(state.nodes.values(), key=lambda n: (n.created_at, n.name)):
        entry = node_dict(node)
        entry["age"] = max(0.0, now - node.created_at) if node.created_at else 0.0
        nodes.append(entry)
    counts = {name: state.count(name) for name in NodeState.ALL if state.count(name)}
    in_service, adding = state.capacity()
    level, expired, ended = policy.alert_status(state, now, settings)
    scaling = state.scaling
    quiet_since = max(scaling.last_scale_in_at, scaling.last_scale_out_at, ended)
    resume = policy.backoff_until(state, settings)
    decision = policy.decide_one(state, others, now, settings)
    result = {
        "name": group.name,
        "fqdn": group.fqdn,
        "group": group_dict(group),
        "nodes": nodes,
        "counts": counts,
        "in_service": in_service,
        "adding": adding,
        "leaving": state.count(*NodeState.LEAVING),
        "failed": state.count(NodeState.FAILED),
        "capacity": in_service + adding,
        "normal_size": normal_size(group),
        "alert": dict(asdict(state.alert), effective_level=level, expired=expired),
        "cooldowns": {
            "scale_out_remaining": _remaining(scaling.last_scale_out_at,
                                              group.scale_out_cooldown, now),
            "scale_in_remaining": _remaining(quiet_since, group.scale_in_cooldown, now),
        },
        "failures": {
            "consecutive": scaling.consecutive_failures,
            "last_at": scaling.last_failure_at,
            "last_cause": scaling.last_failure_cause,
            "backoff_remaining": max(0.0, resume - now) if resume else 0.0,
        },
        "history": [asdict(event) for event in history[-STATUS_EVENTS:]],
        "decision": decision.as_dict(),
    }
    result["text"] = status_text(result, now)
    return result


def _counts_text(counts: Mapping[str, int]) -> str:
    if not counts:
        return "no nodes"
    return ", ".join("%d %s" % (counts[name], _state_label(name))
                     for name in NodeState.ALL if counts.get(name))


def status_text(status: Mapping[str, Any], now: float) -> str:
    """A few lines for Slack: the group, its alert, cooldowns, failures, nodes, the
    governor's view and the last events with their causes."""
    spec = status["group"]
    flags = [flag for flag, on in (("paused", spec["paused"]), ("dry run", spec["dry_run"]))
             if on]
    lines = ["*%s* (%s): %s; normal size %d (min %d, max %d)%s" % (
        status["name"], status["fqdn"], _counts_text(status["counts"]), status["normal_size"],
        spec["min_size"], spec["max_size"], "".join(" · " + flag for flag in flags))]

    alert = status["alert"]
    if alert["level"] == "none":
        lines.append("alert: none")
    else:
        text = "%s" % alert["level"]
        if alert["title"]:
            text += " %r" % alert["title"]
        if alert["issue_id"]:
            text += " (issue %s)" % alert["issue_id"]
        if alert["opened_at"]:
            text += ", open for %s" % policy.duration(now - alert["opened_at"])
        others = len(alert.get("issues") or {}) - 1
        if others > 0:
            text += "; %d more issue%s open" % (others, "" if others == 1 else "s")
        if alert["expired"]:
            text += "; expired (no update for too long), counts as over"
        lines.append("alert: " + text)

    cooldowns = status["cooldowns"]

    def wait(seconds: float) -> str:
        return "in %s" % policy.duration(seconds) if seconds > 0 else "possible now"

    lines.append("cooldowns: scale-out %s; scale-in %s" % (
        wait(cooldowns["scale_out_remaining"]), wait(cooldowns["scale_in_remaining"])))

    failures = status["failures"]
    if failures["consecutive"]:
        text = "failures: %d node addition%s failed in a row" % (
            failures["consecutive"], "" if failures["consecutive"] == 1 else "s")
        if failures["last_cause"]:
            text += " (last: %s)" % failures["last_cause"]
        if failures["backoff_remaining"] > 0:
            text += "; backing off for another %s" % policy.duration(
                failures["backoff_remaining"])
        lines.append(text)

    if status["nodes"]:
        lines.append("nodes:")
        for node in status["nodes"]:
            text = "• %s: %s, age %s" % (node["name"], _state_label(node["state"]),
                                          policy.duration(node["age"]))
            if node["address"]:
                text += ", %s" % node["address"]
            if node["protected"]:
                text += ", protected"
            if node["cause"]:
                text += " — %s" % node["cause"]
            lines.append(text)

    decision = status["decision"]
    if decision["action"] == "none":
        lines.append("governor: nothing to do — %s" % decision["cause"])
    else:
        lines.append("governor: %s %s — %s" % (
            decision["action"].replace("_", "-"), _nodes(decision["count"]), decision["cause"]))

    if status["history"]:
        lines.append("last events:")
        for event in reversed(status["history"]):
            text = "• %s ago %s" % (policy.duration(now - event["at"]),
                                    event["kind"].replace("_", " "))
            if event["node"]:
                text += " %s" % event["node"]
            if event["count"]:
                text += " (%s)" % _nodes(event["count"])
            if not event["ok"]:
                text += " [failed]"
            if event["cause"]:
                text += ": %s" % event["cause"]
            lines.append(text)
    return "\n".join(lines)


def status(store: Store, asg: Any, config: Optional[Mapping[str, Any]] = None,
           now: Optional[float] = None) -> Dict[str, Any]:
    """asg_status: one listing of every group (the governor's view needs the global cap) and
    one of the group's history."""
    now = _now(now)
    settings = PolicySettings.from_config(config or {})
    validate_group_name(asg)
    groups, _ = store.load_all()
    state = groups[asg] if asg in groups else _load_group(store, asg)
    others = [other for name, other in groups.items() if name != asg]
    return describe(state, others, store.history(asg, STATUS_EVENTS), now, settings)


def list_text(entries: List[Mapping[str, Any]], problems: List[str]) -> str:
    if not entries:
        lines = ["no autoscaling groups yet (create one: !asg create name=XXX domain=YYY)"]
    else:
        lines = ["%d autoscaling group%s:" % (len(entries), "" if len(entries) == 1 else "s")]
    for entry in entries:
        flags = [flag for flag, on in (("paused", entry["paused"]),
                                       ("dry run", entry["dry_run"])) if on]
        alert = entry["alert"]
        lines.append("• *%s* (%s): %s; normal %d, max %d; alert %s%s" % (
            entry["name"], entry["fqdn"], _counts_text(entry["counts"]), entry["normal_size"],
            entry["max_size"], alert, "".join(" · " + flag for flag in flags)))
    if problems:
        lines.append("%d unreadable record%s skipped (see the st2 logs)"
                     % (len(problems), "" if len(problems) == 1 else "s"))
    return "\n".join(lines)


def describe_all(groups: Mapping[str, GroupState], problems: List[str], now: float,
                 settings: Optional[PolicySettings] = None) -> Dict[str, Any]:
    """asg_list's result from loaded groups. Pure."""
    settings = settings or PolicySettings()
    entries = []
    for name in sorted(groups):
        state = groups[name]
        group = state.group
        level, _, _ = policy.alert_status(state, now, settings)
        in_service, adding = state.capacity()
        entries.append({
            "name": name,
            "fqdn": group.fqdn,
            "domain": group.domain,
            "counts": {s: state.count(s) for s in NodeState.ALL if state.count(s)},
            "nodes": len(state.nodes),
            "in_service": in_service,
            "adding": adding,
            "capacity": in_service + adding,
            "normal_size": normal_size(group),
            "min_size": group.min_size,
            "max_size": group.max_size,
            "alert": level,
            "paused": group.paused,
            "dry_run": group.dry_run,
        })
    return {"groups": entries, "count": len(entries), "problems": list(problems),
            "text": list_text(entries, problems)}


def list_groups(store: Store, config: Optional[Mapping[str, Any]] = None,
                now: Optional[float] = None) -> Dict[str, Any]:
    settings = PolicySettings.from_config(config or {})
    groups, problems = store.load_all()
    return describe_all(groups, problems, _now(now), settings)


# ---------------------------------------------------------------------------------------------
# asg_pause / asg_resume / asg_forget


def set_paused(store: Store, asg: Any, paused: bool,
               now: Optional[float] = None) -> Dict[str, Any]:
    """Pause or resume the governor for a group; records an event when it changes."""
    now = _now(now)
    validate_group_name(asg)
    group = _load_spec(store, asg)
    changed = group.paused != paused
    if changed:
        store.save_group(replace(group, paused=paused))
        cause = ("paused: the governor leaves the group alone until !asg resume asg=%s" % asg
                 if paused else "resumed: the governor manages the group again")
        store.record_event(Event(group=asg, at=now, kind="paused" if paused else "resumed",
                                 cause=cause))
    word = "paused" if paused else "resumed"
    if changed:
        text = "group %s %s" % (asg, "paused: the governor leaves it alone" if paused
                                else "resumed: the governor manages it again")
    else:
        text = "group %s was already %s" % (asg, "paused" if paused else "running")
    return {"group": asg, "paused": paused, "changed": changed, "action": word, "text": text}


def forget(store: Store, name: Any, force: bool = False) -> Dict[str, Any]:
    """Delete every key of a group (its spec last, history included). Refused while node
    records exist unless ``force``: their VMs, DNS records and LB servers may still exist.
    A group whose spec is unreadable can still be forgotten."""
    validate_group_name(name)
    force = _bool_field(force if force is not None else False, "force")
    prefix = group_key(name)
    keys = [item.name for item in store.datastore.list_values(
        local=False, prefix=prefix + ".node.", limit=store.page_size) or []]
    if keys and not force:
        nodes = sorted(key.rsplit(".", 1)[-1] for key in keys)
        raise LifecycleError(
            "group %s still has %s recorded (%s); remove them first (!asg delete name=%s "
            "drains and removes them), or forget the records anyway with force=true"
            % (name, _nodes(len(nodes)), ", ".join(nodes[:10]) + (" …" if len(nodes) > 10
                                                                   else ""), name))
    existed = store.datastore.get_value(prefix, local=False) is not None
    deleted = store.delete_group(name)
    if not existed and not deleted:
        raise unknown_group(name)
    return {"name": name, "existed": existed, "deleted": deleted, "count": len(deleted)}
