"""The governor's decision: a pure function of the stored state, the time and the settings.

``decide(groups, now, settings)`` reads nothing and writes nothing. It returns one
``ScaleDecision`` per group with a cause an operator can read, like an AWS scaling activity's.
The governor sensor, the alert rule's immediate scale-out, the tests and the simulator all
call this same function.

What it guarantees (the property tests in tests/unit/test_policy_properties.py check each):

* A group's capacity (nodes in service plus nodes being added; see capacity.py) never goes
  above ``max_size`` through a scale-out, and the total number of nodes across all groups
  never goes above ``global_max_nodes`` through a scale-out or repair.
* A scale-in never takes capacity below the group's normal size (``desired``, itself never
  below ``min_size``); it removes in-service nodes only.
* No scale-in while an alert is active, while any node is being added, or while a node is
  still leaving.
* Scale-out at most once per ``scale_out_cooldown`` (critical: ``expand_by`` nodes; warning:
  ``warning_step``), and never while earlier nodes are still being added: booting capacity
  counts. Scale-in at most once per ``scale_in_cooldown``, counted from the last scale-in,
  the last scale-out and the end of the last alert, whichever is latest. A scale-in cooldown
  never delays a scale-out. A scale-in never asks for more nodes than there are in service
  and not protected: a protected node is never a victim.
* Repair (capacity below the normal size) is not held by cooldowns, but like every scale-out
  it waits out the backoff after ``failure_threshold`` failed additions in a row.
* An alert with no update for ``alert_max_age`` counts as over.
* Paused groups get no action; dry-run groups get their decision marked ``dry_run``.
* In doubt, hold: a group with an alert, scaling or node record that cannot be read
  (``GroupState.unreadable``) gets no scale-out and no scale-in, with a cause naming the
  record; only a repair up to its normal size may go on. Unreadable node records count toward
  ``global_max_nodes`` (their VMs may exist).
* Health (only when the governor gives ``GroupState.health``; without it every decision is
  as before): an unhealthy node in service (health.py) is replaced, capacity first: a new
  node (``Action.REPLACE`` with ``replaces``, at most ``replace_surge`` above ``max_size``),
  and once that node is in service the unhealthy one is removed (``Action.REPLACE`` with
  ``remove``). A protected node is never replaced (named in the cause instead). When more than
  ``max_unhealthy_percent`` of the nodes in service are unhealthy the breaker is open
  (``breaker``): nothing is replaced and nothing scaled in; an alert's scale-out still goes.
  Repairs, unreadable records, pauses, backoff and an alert's scale-out come first.
* One group never stops the others: an unexpected error while deciding a group gives that
  group no action (reason ``decision_failed``, the error in the cause).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from typing import Iterable, List, Mapping, Optional, Tuple

from . import capacity as cap
from . import health as hl
from .model import AlertLevel, GroupState, NodeState
from .settings import PolicySettings
from .words import describe_alert, duration, nodes

LOG = logging.getLogger(__name__)


class Action:
    SCALE_OUT = "scale_out"
    SCALE_IN = "scale_in"
    REPAIR = "repair"
    # Health: add ``count`` nodes for ``replaces``, or drain and remove ``remove``.
    REPLACE = "replace"
    NONE = "none"


class Reason:
    """Why a decision was made: a stable code beside the readable cause, for tests and tools."""

    PAUSED = "paused"
    REPAIR = "below_normal_size"
    ALERT_CRITICAL = "critical_alert"
    ALERT_WARNING = "warning_alert"
    OVER_MAX = "above_max"
    RECOVERED = "recovered"
    STEADY = "steady"
    AT_MAX = "at_max"
    GLOBAL_CAP = "global_cap"
    BACKOFF = "backoff"
    SCALE_OUT_COOLDOWN = "scale_out_cooldown"
    SCALE_IN_COOLDOWN = "scale_in_cooldown"
    ADDING = "nodes_being_added"
    LEAVING = "nodes_leaving"
    PROTECTED = "nodes_protected"
    UNREADABLE = "unreadable_record"
    ERROR = "decision_failed"


class HealthReason:
    """Reasons of the health rules (kept apart from Reason, whose every code has an example in
    tests/unit/test_policy_examples.py; these have theirs in test_policy_health.py)."""

    REPLACE = "replacing_unhealthy"
    REMOVE = "removing_replaced"
    WAITING = "replacement_being_added"
    NO_ROOM = "no_room_to_replace"
    BREAKER = "health_breaker"


@dataclass(frozen=True)
class ScaleDecision:
    group: str
    action: str
    count: int
    # The whole story, for the history: why, and what is done ("...: adding 2 nodes (2 → 4,
    # max 5)").
    cause: str
    reason: str
    # Capacity (in service + being added) now, and what it will be once this is carried out.
    current: int = 0
    target: int = 0
    dry_run: bool = False
    # The stored alert is past alert_max_age: whoever acts on this should clear it.
    alert_expired: bool = False
    # For chat, which says what is done itself: why alone ("critical alert ... open for 2
    # min"), and the limit that bounds the change ("max 5", "normal size 2").
    why: str = ""
    limit: str = ""
    # Health: the unhealthy nodes the ``count`` new nodes replace (the governor records each
    # new node's name -> the one it replaces, given back as GroupState.replacements) ...
    replaces: Tuple[str, ...] = ()
    # ... the unhealthy nodes to drain and remove now (their replacements are in service) ...
    remove: Tuple[str, ...] = ()
    # ... and whether the circuit breaker is open: the governor announces it when this
    # changes from its last tick (once), and again when it closes.
    breaker: bool = False
    # Every unhealthy node in service (protected ones too): name -> why.
    unhealthy: Tuple[Tuple[str, str], ...] = ()

    @property
    def acts(self) -> bool:
        return self.action != Action.NONE and self.count > 0

    @property
    def detail(self) -> str:
        """'2 → 4, max 5': the capacity change of a decision that acts ("" otherwise)."""
        return change_detail(self.current, self.target, self.limit) if self.acts else ""

    def as_dict(self) -> dict:
        result = {
            "group": self.group,
            "action": self.action,
            "count": self.count,
            "cause": self.cause,
            "reason": self.reason,
            "current": self.current,
            "target": self.target,
            "dry_run": self.dry_run,
            "alert_expired": self.alert_expired,
            "why": self.why or self.cause,
            "detail": self.detail,
        }
        # Health keys only when there is something to say: the shape stays as before.
        for key in ("replaces", "remove", "unhealthy"):
            if getattr(self, key):
                result[key] = [list(x) if isinstance(x, tuple) else x for x in getattr(self, key)]
        if self.breaker:
            result["breaker"] = True
        return result


def change_detail(current: int, target: int, limit: str = "") -> str:
    """'2 → 4, max 5'."""
    return "%d → %d%s" % (current, target, ", " + limit if limit else "")


def backoff_until(state: GroupState, settings: PolicySettings) -> float:
    """When a group that keeps failing to add nodes may try again (0: not backing off)."""
    failures = state.scaling.consecutive_failures
    if failures < settings.failure_threshold:
        return 0.0
    doublings = failures - settings.failure_threshold
    initial, most = settings.backoff_initial, settings.backoff_max
    if initial > 0 and doublings >= int(most).bit_length():
        # initial * 2**doublings > backoff_max: no need to build a huge number to know it.
        delay = most
    else:
        delay = min(initial * (2 ** doublings), most)
    return state.scaling.last_failure_at + delay


def alert_status(state: GroupState, now: float,
                 settings: PolicySettings) -> Tuple[str, bool, float]:
    """(effective level, expired, when the last alert ended) for a group."""
    alert = state.alert
    if alert.active:
        last_heard = max(alert.updated_at, alert.opened_at)
        if now - last_heard >= settings.alert_max_age:
            return AlertLevel.NONE, True, last_heard + settings.alert_max_age
        return alert.level, False, alert.ended_at
    return AlertLevel.NONE, False, alert.ended_at


def _unreadable(state: GroupState) -> str:
    """'alert record autoscale.asg.web.alert cannot be read (why)', for up to 3 records."""
    parts = []
    for key in sorted(state.unreadable)[:3]:
        kind = "node" if ".node." in key else key.rsplit(".", 1)[-1]
        why = state.unreadable[key]
        if len(why) > 200:
            why = why[:199] + "…"
        parts.append("%s record %s cannot be read (%s)" % (kind, key, why))
    more = len(state.unreadable) - len(parts)
    return "; ".join(parts) + (" and %d more" % more if more > 0 else "")


def _evaluate(state: GroupState, now: float, settings: PolicySettings) -> ScaleDecision:
    """What one group needs, before the global cap is shared out."""
    group = state.group
    adding = state.count(*NodeState.PENDING)
    leaving = state.count(*NodeState.LEAVING)
    capacity = cap.capacity(state)
    normal = cap.normal_size(group)
    level, expired, alert_ended = alert_status(state, now, settings)

    def decision(action: str, count: int, reason: str, cause: str, why: str = "",
                 limit: str = "") -> ScaleDecision:
        delta = count if action in (Action.SCALE_OUT, Action.REPAIR) else -count
        return ScaleDecision(
            group=group.name, action=action, count=count, cause=cause, reason=reason,
            current=capacity, target=capacity + delta, alert_expired=expired,
            why=why or cause, limit=limit,
        )

    def none(reason: str, cause: str) -> ScaleDecision:
        return decision(Action.NONE, 0, reason, cause)

    alert = describe_alert(state.alert.level, state.alert.issue_id, state.alert.title)
    expired_note = ""
    if expired:
        expired_note = "%s expired (no update for %s); " % (
            alert, duration(settings.alert_max_age))

    if group.paused:
        return none(Reason.PAUSED, "%sgroup is paused: the governor leaves it alone"
                    % expired_note)

    resume = backoff_until(state, settings)
    backing_off = now < resume
    backoff_cause = (
        "%d node additions failed in a row (last: %s); not adding nodes for another %s"
        % (state.scaling.consecutive_failures,
           state.scaling.last_failure_cause or "no cause recorded", duration(resume - now))
    )

    unreadable = _unreadable(state) if state.unreadable else ""
    missing = cap.below_normal(group, capacity)
    if missing:
        if backing_off:
            return none(Reason.BACKOFF, expired_note + backoff_cause)
        # A guessed record never blocks a repair: adding back up to the normal size is what
        # the group needs whatever the unreadable record says.
        held = "; %s: only repairs until it is fixed" % unreadable if unreadable else ""
        why = "%s%s in service or starting, below the normal size of %d" % (
            expired_note, nodes(capacity), normal)
        return decision(
            Action.REPAIR, missing, Reason.REPAIR,
            "%s: adding %s%s" % (why, nodes(missing), held), why + held,
        )

    if unreadable:
        # In doubt, hold: an unreadable alert record may hide an open incident, an unreadable
        # scaling record the cooldowns and backoff, an unreadable node record the capacity.
        return none(Reason.UNREADABLE, "%s%s: holding the group, no scale-out or scale-in "
                    "until it is fixed or deleted" % (expired_note, unreadable))

    if level != AlertLevel.NONE:
        age = duration(now - state.alert.opened_at) if state.alert.opened_at else "a while"
        room = cap.room_below_max(group, capacity)
        if not room:
            return none(Reason.AT_MAX, "%s open for %s, but the group is at its maximum of %d"
                        % (alert, age, group.max_size))
        if backing_off:
            return none(Reason.BACKOFF, backoff_cause)
        if adding:
            return none(Reason.ADDING, "%s open for %s; waiting for %s being added before "
                        "adding more" % (alert, age, nodes(adding)))
        since_out = now - state.scaling.last_scale_out_at
        if state.scaling.last_scale_out_at and since_out < group.scale_out_cooldown:
            return none(Reason.SCALE_OUT_COOLDOWN, "%s open for %s; last scale-out %s ago, "
                        "next possible in %s (scale-out cooldown %s)"
                        % (alert, age, duration(since_out),
                           duration(group.scale_out_cooldown - since_out),
                           duration(group.scale_out_cooldown)))
        critical = level == AlertLevel.CRITICAL
        count = cap.clamp(group.expand_by if critical else settings.warning_step, room)
        why = "%s open for %s" % (alert, age)
        return decision(
            Action.SCALE_OUT, count,
            Reason.ALERT_CRITICAL if critical else Reason.ALERT_WARNING,
            "%s: adding %s (%d → %d, max %d)"
            % (why, nodes(count), capacity, capacity + count, group.max_size),
            why, "max %d" % group.max_size,
        )

    if capacity <= normal:
        return none(Reason.STEADY, "%sno alert; %s in service or starting, the normal size"
                    % (expired_note, nodes(capacity)))
    if adding:
        return none(Reason.ADDING, "%sno alert, but %s being added; scale-in waits for them"
                    % (expired_note, nodes(adding)))
    if leaving:
        return none(Reason.LEAVING, "%sno alert; waiting for %s still leaving before removing "
                    "more" % (expired_note, nodes(leaving)))
    # Victims are in-service nodes that are not protected; never ask for more than exist.
    removable = cap.removable(state)
    if not removable:
        return none(Reason.PROTECTED, "%sno alert; %s above the normal size of %d, but every "
                    "node in service is protected: nothing to remove"
                    % (expired_note, nodes(cap.above_normal(group, capacity)), normal))

    def removing(wanted: int) -> Tuple[int, str, str]:
        """(count, '2 nodes (the others are protected)', '; the others are protected')."""
        count = cap.clamp(wanted, removable)
        note = "the others are protected" if count < wanted else ""
        return count, nodes(count) + (" (%s)" % note if note else ""), \
            "; " + note if note else ""

    excess = cap.above_max(group, capacity)
    if excess:
        count, text, note = removing(excess)
        why = "%s%s in service, above the maximum of %d" % (
            expired_note, nodes(capacity), group.max_size)
        return decision(
            Action.SCALE_IN, count, Reason.OVER_MAX, "%s: removing %s" % (why, text),
            why + note, "max %d" % group.max_size,
        )
    quiet_since = max(state.scaling.last_scale_in_at, state.scaling.last_scale_out_at,
                      alert_ended)
    waited = now - quiet_since
    if quiet_since and waited < group.scale_in_cooldown:
        return none(Reason.SCALE_IN_COOLDOWN, "%sno alert; %s above the normal size of %d, "
                    "scale-in in %s (scale-in cooldown %s since the last change)"
                    % (expired_note, nodes(cap.above_normal(group, capacity)), normal,
                       duration(group.scale_in_cooldown - waited),
                       duration(group.scale_in_cooldown)))
    count, text, note = removing(min(group.deflate_by, cap.above_normal(group, capacity)))
    why = expired_note + ("no alert for %s" % duration(waited) if quiet_since else "no alert")
    return decision(
        Action.SCALE_IN, count, Reason.RECOVERED,
        "%s: removing %s (%d → %d, normal size %d)"
        % (why, text, capacity, capacity - count, normal),
        why + note, "normal size %d" % normal,
    )


def _unhealthy(state: GroupState, now: float,
               settings: PolicySettings) -> List[hl.Verdict]:
    """The unhealthy nodes in service, by name."""
    verdicts = (hl.assess(node, state.health.get(node.name), now, settings)
                for node in state.nodes.values() if node.state == NodeState.IN_SERVICE)
    return sorted((v for v in verdicts if not v.healthy), key=lambda v: v.node)


def _with_health(state: GroupState, base: ScaleDecision, now: float,
                 settings: PolicySettings) -> ScaleDecision:
    """``base`` (the decision without health), or the replacement the group needs instead."""
    group = state.group
    # Paused: left alone. Unreadable: in doubt, hold. Repair and backoff: the group is below
    # its normal size or cannot add; a repair adds capacity anyway.
    if group.paused or base.reason in (Reason.UNREADABLE, Reason.REPAIR, Reason.BACKOFF,
                                       Reason.ERROR):
        return base
    sick = _unhealthy(state, now, settings)
    if not sick:
        return base
    listed = tuple((v.node, v.why) for v in sick)
    in_service = state.count(NodeState.IN_SERVICE)
    capacity = cap.capacity(state)

    def unchanged(note: str = "", **changes) -> ScaleDecision:
        return replace(base, cause=base.cause + note, why=base.why + note, unhealthy=listed,
                       **changes)

    def none(reason: str, cause: str, **changes) -> ScaleDecision:
        return ScaleDecision(group=group.name, action=Action.NONE, count=0, cause=cause,
                             reason=reason, current=capacity, target=capacity,
                             alert_expired=base.alert_expired, unhealthy=listed, **changes)

    if hl.breaker_open(len(sick), in_service, settings):
        why = ("%d of %s in service unhealthy (%s), more than %d %%: replacing none, a shared "
               "dependency is likely down" % (len(sick), nodes(in_service),
                                              ", ".join("%s %s" % pair for pair in listed[:3])
                                              + (" …" if len(listed) > 3 else ""),
                                              settings.max_unhealthy_percent))
        if base.action == Action.SCALE_OUT:
            return unchanged("; " + why, breaker=True)
        return none(HealthReason.BREAKER, why, breaker=True)

    protected = {node.name for node in state.nodes.values() if node.protected}
    held = [v for v in sick if v.node in protected]
    note = "".join("; %s %s but is protected: not replacing it" % (v.node, v.why) for v in held)
    todo = [v for v in sick if v.node not in protected]
    if not todo:
        return unchanged(note)
    if base.action == Action.SCALE_OUT:
        # The alert's new nodes come first; the replacement follows on a later tick.
        return unchanged(note + "; replacing %s after this scale-out"
                         % ", ".join(v.node for v in todo))

    # Which new node replaces which unhealthy one (only nodes that still exist and are not
    # failed or leaving count).
    new_for: dict = {}
    for new, old in state.replacements.items():
        node = state.nodes.get(new)
        if node is not None and (node.pending or node.state == NodeState.IN_SERVICE):
            new_for.setdefault(old, []).append(node)
    sick_names = {v.node for v in sick}
    ready = [v for v in todo
             if any(n.state == NodeState.IN_SERVICE and n.name not in sick_names
                    for n in new_for.get(v.node, ()))]
    if ready:
        names = tuple(v.node for v in ready)
        why = "; ".join("%s %s" % (v.node, v.why) for v in ready)
        cause = "%s: replaced, removing %s (%d → %d)%s" % (
            why, ", ".join(names), capacity, capacity - len(names), note)
        return ScaleDecision(group=group.name, action=Action.REPLACE, count=len(names),
                             cause=cause, reason=HealthReason.REMOVE, current=capacity,
                             target=capacity - len(names), alert_expired=base.alert_expired,
                             why=why + note, remove=names, unhealthy=listed)
    waiting = [v for v in todo if new_for.get(v.node)]
    if waiting:
        v = waiting[0]
        return none(HealthReason.WAITING, "%s %s: waiting for %s being added to replace it%s"
                    % (v.node, v.why, ", ".join(sorted(n.name for n in new_for[v.node])), note))

    need = [v for v in todo if not new_for.get(v.node)]
    resume = backoff_until(state, settings)
    if now < resume:
        return none(Reason.BACKOFF, "%s %s, but %d node additions failed in a row; not "
                    "replacing it for another %s%s"
                    % (need[0].node, need[0].why, state.scaling.consecutive_failures,
                       duration(resume - now), note))
    most = group.max_size + settings.replace_surge
    count = cap.clamp(len(need), most - capacity)
    if not count:
        return none(HealthReason.NO_ROOM, "%s %s, but the group has %s, max %d plus %d for "
                    "replacing: no room for a new node before removing it%s"
                    % (need[0].node, need[0].why, nodes(capacity), group.max_size,
                       settings.replace_surge, note))
    chosen = need[:count]
    why = "; ".join("%s %s" % (v.node, v.why) for v in chosen)
    limit = "max %d + %d" % (group.max_size, settings.replace_surge)
    cause = "%s: replacing %s: adding %s first (%d → %d, %s)%s" % (
        why, "it" if count == 1 else "them", nodes(count), capacity, capacity + count, limit,
        note)
    return ScaleDecision(group=group.name, action=Action.REPLACE, count=count, cause=cause,
                         reason=HealthReason.REPLACE, current=capacity,
                         target=capacity + count, alert_expired=base.alert_expired,
                         why=why + ": replacing " + ("it" if count == 1 else "them") + note,
                         limit=limit, replaces=tuple(v.node for v in chosen),
                         unhealthy=listed)


def _evaluate_safely(name: str, state: GroupState, now: float,
                     settings: PolicySettings) -> ScaleDecision:
    try:
        base = _evaluate(state, now, settings)
        return _with_health(state, base, now, settings) if state.health else base
    except Exception as exc:  # one group's trouble must not stop the others
        LOG.exception("autoscale policy: group %s: deciding failed", name)
        return ScaleDecision(group=name, action=Action.NONE, count=0, reason=Reason.ERROR,
                             cause="the governor could not decide (unexpected %s: %s); "
                             "nothing done" % (type(exc).__name__, exc))


def _priority(decision: ScaleDecision) -> Tuple[int, str]:
    # A replacement is a repair: the unhealthy node serves nothing.
    order = {Reason.REPAIR: 0, HealthReason.REPLACE: 0, Reason.ALERT_CRITICAL: 1,
             Reason.ALERT_WARNING: 2}
    return order.get(decision.reason, 3), decision.group


def decide(groups: Mapping[str, GroupState], now: float,
           settings: Optional[PolicySettings] = None) -> List[ScaleDecision]:
    """One decision per group, in group-name order.

    Capacity under ``global_max_nodes`` is shared out repairs first, then critical alerts,
    then warnings, each in group-name order, so one group cannot starve a group below its
    normal size. Every stored node counts toward the cap, leaving and failed ones included:
    their VMs still exist.
    """
    settings = settings or PolicySettings()
    wants = {name: _evaluate_safely(name, state, now, settings)
             for name, state in groups.items()}
    room = cap.room_below_cap(cap.stored_nodes(groups.values()), settings)

    adding = [d for d in wants.values()
              if d.action in (Action.SCALE_OUT, Action.REPAIR)
              or (d.action == Action.REPLACE and not d.remove)]
    for want in sorted(adding, key=_priority):
        dry_run = groups[want.group].group.dry_run
        grant = cap.clamp(want.count, room)
        if grant == 0:
            cause = "%s; but all groups together are at the global cap of %s" % (
                want.cause, nodes(settings.global_max_nodes))
            wants[want.group] = replace(
                want, action=Action.NONE, count=0, target=want.current, reason=Reason.GLOBAL_CAP,
                cause=cause, why=cause, limit="", replaces=(),
            )
            continue
        if grant < want.count:
            capped = "; only %d allowed by the global cap of %s" % (
                grant, nodes(settings.global_max_nodes))
            wants[want.group] = replace(
                want, count=grant, target=want.current + grant, cause=want.cause + capped,
                why=want.why + capped, replaces=want.replaces[:grant],
            )
        # A dry run creates nothing, so it takes no room from groups that do act.
        if not dry_run:
            room -= grant

    result = []
    for name in sorted(wants):
        decision = wants[name]
        if groups[name].group.dry_run and decision.acts:
            decision = replace(decision, dry_run=True, cause="dry run, nothing done: "
                               + decision.cause)
        result.append(decision)
    return result


def decide_one(state: GroupState, others: Iterable[GroupState], now: float,
               settings: Optional[PolicySettings] = None) -> ScaleDecision:
    """The decision for one group, with the other groups counted toward the global cap."""
    groups = {other.group.name: other for other in others}
    groups[state.group.name] = state
    return next(d for d in decide(groups, now, settings) if d.group == state.group.name)
