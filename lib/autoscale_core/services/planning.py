"""Expand and deflate: how many nodes a manual or governed change of a group may add or remove,
decided and claimed in one step (``plan_change``, the ``asg_plan`` action).

The limits (max, global cap, normal size) are domain/capacity.py's, the same the governor's
policy applies.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Callable, Dict, Iterable, Mapping, Optional

from ..config import policy_settings
from ..domain import capacity as cap
from ..domain import policy
from ..domain.fields import bool_field, int_field
from ..domain.model import GroupState, NodeState
from ..domain.names import validate_group_name
from ..domain.policy import change_detail
from ..domain.settings import PolicySettings
from ..domain.words import nodes
from ..errors import ValidationError
from ..store import Store
from .common import clean_cause, load_group, now_or
from .nodes import SCALE_IN, SCALE_OUT, activity, record_new_node

OUT = "out"
IN = "in"


@dataclass(frozen=True)
class Plan:
    direction: str
    requested: int
    count: int
    # The whole story, for the history ("adding 2 nodes (2 → 4, max 5)").
    cause: str
    # Capacity (in service + being added) now, and once the plan is carried out.
    current: int
    target: int
    # For chat, which says what is done itself: what else there is to say ("requested 3, max
    # 5 allows 1"; "" when nothing), and the limit that bounds the change ("max 5").
    why: str = ""
    limit: str = ""

    @property
    def detail(self) -> str:
        """'2 → 4, max 5' when the plan changes something."""
        return change_detail(self.current, self.target, self.limit) if self.count > 0 else ""

    def as_dict(self) -> Dict[str, Any]:
        return dict(asdict(self), detail=self.detail)


def plan(state: GroupState, others: Iterable[GroupState], direction: str,
         count: Optional[int], settings: Optional[PolicySettings] = None) -> Plan:
    """How many nodes a manual or governor-driven expand ("out") or deflate ("in") may add or
    remove.

    out: ``count`` (default ``expand_by``) clamped to ``max_size`` (capacity = in service +
    being added) and to ``global_max_nodes`` over every stored node of every group (``others``
    plus this one; unreadable node records count, as in the policy). in: ``count`` (default
    ``deflate_by``) clamped so that capacity stays at least the normal size (``desired``, never
    below ``min_size``); failed nodes, which hold no capacity, can always be removed and go
    first (see ``choose_victim``); protected and leaving nodes are never counted as removable.
    """
    settings = settings or PolicySettings()
    group = state.group
    if direction not in (OUT, IN):
        raise ValidationError("direction must be 'out' or 'in', not %r" % (direction,))
    default = group.expand_by if direction == OUT else group.deflate_by
    requested = default if count is None else int_field(count, "count", 1)
    adding = state.count(*NodeState.PENDING)
    capacity = cap.capacity(state)
    where = "%d in service or being added" % capacity

    if direction == OUT:
        by_max = cap.room_below_max(group, capacity)
        total = cap.stored_nodes([state] + [other for other in others
                                            if other.group.name != group.name])
        by_cap = cap.room_below_cap(total, settings)
        granted = cap.clamp(requested, by_max, by_cap)
        limits = []
        if by_max < requested:
            limits.append("max %d allows %d" % (group.max_size, by_max))
        if by_cap < requested:
            limits.append("the global cap of %s (%d in all groups) allows %d"
                          % (nodes(settings.global_max_nodes), total, by_cap))
        why = ""
        if not limits:
            cause = "adding %s (%d → %d, max %d)" % (
                nodes(granted), capacity, capacity + granted, group.max_size)
        else:
            why = "requested %d, %s" % (requested, " and ".join(limits))
            cause = "%s (%s)" % (why, where)
            if granted == 0:
                cause += "; nothing to add"
        return Plan(OUT, requested, granted, cause, capacity, capacity + granted, why,
                    "max %d" % group.max_size)

    # Like the governor: no scale-in while nodes are being added. Removing one would pull it
    # from under its own asg_add_node, whose undo then counts as a failed addition.
    if adding:
        cause = "%s being added; deflate once they are in service" % nodes(adding)
        return Plan(IN, requested, 0, cause, capacity, capacity, cause)
    normal = cap.normal_size(group)
    failed = sum(1 for node in state.nodes.values()
                 if node.state == NodeState.FAILED and not node.protected)
    movable = sum(1 for node in state.nodes.values()
                  if (node.pending or node.state == NodeState.IN_SERVICE) and not node.protected)
    protected = sum(1 for node in state.nodes.values()
                    if (node.pending or node.state == NodeState.IN_SERVICE) and node.protected)
    by_normal = cap.above_normal(group, capacity)
    from_capacity = min(by_normal, movable)
    granted = min(requested, failed + from_capacity)
    shrink = max(0, granted - failed)
    notes = []
    if failed and granted:
        notes.append("%s first" % ("the failed node" if failed == 1 else
                                   "%d failed nodes" % min(failed, granted)))
    if from_capacity < by_normal:
        notes.append("%s protected" % nodes(protected))
    note = "; %s" % ", ".join(notes) if notes else ""
    if granted == requested:
        cause = "removing %s (%d → %d, normal size %d)%s" % (
            nodes(granted), capacity, capacity - shrink, normal, note)
        why = ", ".join(notes)
    elif granted == 0:
        cause = "requested %d, but the group is at its normal size of %d (%s)%s; nothing to " \
                "remove" % (requested, normal, where, note)
        why = cause
    else:
        cause = "requested %d, normal size %d allows %d (%s)%s" % (
            requested, normal, granted, where, note)
        why = "requested %d, normal size %d allows %d%s" % (requested, normal, granted, note)
    return Plan(IN, requested, granted, cause, capacity, capacity - shrink, why,
                "normal size %d" % normal)


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

    The result is the plan's (``cause`` for the history; ``why`` and ``detail`` for chat,
    which says what is done itself), and when nodes are to change, the change is claimed
    before this returns: for "out" a
    provisioning record is reserved for each node (``nodes``: their names, which
    ``asg_add_node`` takes over) and the scale-out is recorded (starting the cooldown); for
    "in" the scale-in is recorded. The next plan of the group, manual or governed, sees both.
    The datastore has no compare-and-set, so plans of one group must not overlap: the
    ``asg_plan`` action's concurrency policy (policies/) runs them one at a time per group.
    """
    now = now_or(now)
    settings = policy_settings(config)
    validate_group_name(asg)
    if direction not in (OUT, IN):
        raise ValidationError("direction must be 'out' or 'in', not %r" % (direction,))
    governed = bool_field(governed if governed is not None else False, "governed")
    origin = clean_cause(cause)
    groups, _ = store.load_all()
    # Not listed: say precisely why (unknown, or an unreadable spec).
    state = groups[asg] if asg in groups else load_group(store, asg)
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
                      decision.target if granted else decision.current,
                      decision.why if granted else why, decision.limit).as_dict()
    else:
        result = plan(state, others, direction, count, settings).as_dict()
        # Said by hand: the operator's words first.
        result["why"] = "; ".join(part for part in (origin, result["why"]) if part)
    result.update(group=asg, governed=governed, reason=reason, nodes=[], recorded=False)
    if result["count"] <= 0:
        return result

    group = state.group
    kind = SCALE_OUT if direction == OUT else SCALE_IN
    if direction == OUT:
        taken = set(state.nodes)
        for _ in range(result["count"]):
            record = record_new_node(store, group, taken, now, token,
                                     "reserved: %s" % (origin or "expand"))
            result["nodes"].append(record.name)
    text = "%s: %s" % (origin, result["cause"]) if origin else result["cause"]
    activity(store, asg, kind, text, count=result["count"], now=now)
    result["recorded"] = True
    return result
