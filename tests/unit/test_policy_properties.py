"""Property tests of the governor's policy (``autoscale_core.domain.policy.decide``).

Hypothesis generates random *timelines*: one to four groups with random valid specs and stored
state, random pack settings, then 10 to 30 steps of virtual time (time passes, alerts open,
change and close, nodes boot, fail, finish leaving, an operator adds a node by hand). After
every step ``decide()`` runs and its decisions are carried out by ``Workflows`` below, a small
test double of the pack's workflows (never of the policy). Each test walks such timelines and
checks one guarantee of the policy's module docstring at every tick.

The oracles here are written from the guarantees, not copied from the policy: capacity, the
alert's expiry, the backoff formula and the global-cap room are recomputed from the stored
records.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field, replace
from typing import Dict, List, Optional, Tuple

import hypothesis
from hypothesis import given
from hypothesis import strategies as st

from autoscale_core.domain import model, policy, settings
from support.properties import examples

Action = policy.Action
Reason = policy.Reason
NodeState = model.NodeState
AlertLevel = model.AlertLevel

# Virtual time starts at a realistic epoch: the stored records use 0 for "never".
T0 = 1_700_000_000.0
NAMES = ("g0", "g1", "g2", "g3")
ADDS = (Action.SCALE_OUT, Action.REPAIR)
ALERT_REASONS = (Reason.ALERT_CRITICAL, Reason.ALERT_WARNING)
# The order in which the global cap's room is shared out (docstring of decide()).
RANK = {Reason.REPAIR: 0, Reason.ALERT_CRITICAL: 1, Reason.ALERT_WARNING: 2}
NEXT_STATE = {
    NodeState.PROVISIONING: NodeState.CONFIGURING,
    NodeState.CONFIGURING: NodeState.REGISTERING,
    NodeState.REGISTERING: NodeState.IN_SERVICE,
}


# ---------------------------------------------------------------------------------------------
# Oracles: what the stored records say, computed independently of the policy.


def capacity(state: model.GroupState) -> int:
    return sum(1 for n in state.nodes.values()
               if n.state == NodeState.IN_SERVICE or n.state in NodeState.PENDING)


def pending(state: model.GroupState) -> int:
    return sum(1 for n in state.nodes.values() if n.state in NodeState.PENDING)


def leaving(state: model.GroupState) -> int:
    return sum(1 for n in state.nodes.values() if n.state in NodeState.LEAVING)


def removable(state: model.GroupState) -> List[model.Node]:
    """In-service, unprotected nodes, newest first: what a scale-in may take."""
    nodes = [n for n in state.nodes.values()
             if n.state == NodeState.IN_SERVICE and not n.protected]
    return sorted(nodes, key=lambda n: (n.created_at, n.name), reverse=True)


def normal_size(group: model.Group) -> int:
    return group.desired if group.desired is not None else group.min_size


def total_nodes(groups: Dict[str, model.GroupState]) -> int:
    return sum(len(state.nodes) for state in groups.values())


def effective_alert(state: model.GroupState, now: float,
                    cfg: settings.PolicySettings) -> Tuple[str, bool, float]:
    """(level in force, expired, when the last alert ended)."""
    alert = state.alert
    if alert.level == AlertLevel.NONE:
        return AlertLevel.NONE, False, alert.ended_at
    heard = max(alert.opened_at, alert.updated_at)
    if now >= heard + cfg.alert_max_age:
        return AlertLevel.NONE, True, heard + cfg.alert_max_age
    return alert.level, False, alert.ended_at


def backoff_end(state: model.GroupState, cfg: settings.PolicySettings) -> Optional[float]:
    """When the backoff ends, or None when the group is not over the failure threshold."""
    failures = state.scaling.consecutive_failures
    if failures < cfg.failure_threshold:
        return None
    delay = min(cfg.backoff_initial * 2 ** (failures - cfg.failure_threshold), cfg.backoff_max)
    return state.scaling.last_failure_at + delay


def backing_off(state: model.GroupState, now: float, cfg: settings.PolicySettings) -> bool:
    end = backoff_end(state, cfg)
    return end is not None and now < end


def adds(decision: policy.ScaleDecision) -> bool:
    return decision.action in ADDS and decision.count > 0


# ---------------------------------------------------------------------------------------------
# The workflows' test double


@dataclass
class Tick:
    """One governor pass: the state decide() saw, its decisions, the state after acting."""

    now: float
    before: Dict[str, model.GroupState]
    decisions: List[policy.ScaleDecision]
    after: Dict[str, model.GroupState]
    # What the workflows actually did per group: nodes added, nodes moved to draining.
    added: Dict[str, int] = field(default_factory=dict)
    victims: Dict[str, List[str]] = field(default_factory=dict)
    # repr(before) taken just before decide() ran (only when asked for): the dataclasses'
    # repr shows every field, nested records and containers included, so it is a deep
    # fingerprint, and several times cheaper than a deepcopy.
    snapshot: Optional[str] = None

    def decision(self, name: str) -> policy.ScaleDecision:
        return next(d for d in self.decisions if d.group == name)


class Workflows:
    """Carries out decisions the way the pack's workflows do, and plays the outside world.

    Group states are never mutated in place: every change builds a new GroupState, so a
    Tick's ``before`` is exactly what decide() was given.
    """

    def __init__(self, groups: Dict[str, model.GroupState], cfg: settings.PolicySettings,
                 now: float = T0, snapshot: bool = False):
        self.groups = dict(groups)
        self.settings = cfg
        self.now = now
        self.snapshot = snapshot
        self.serial = 0

    # -- the outside world ------------------------------------------------------------------

    def _pick(self, index: int, wanted=None) -> str:
        """The index-th group (cyclically); given ``wanted``, the first group from there on
        with a node in one of those states, so that few steps are no-ops."""
        names = sorted(self.groups)
        start = index % len(names)
        names = names[start:] + names[:start]
        for name in names if wanted else ():
            if any(node.state in wanted for node in self.groups[name].nodes.values()):
                return name
        return names[0]

    def _new_node(self, group: str, state: str, protected: bool = False) -> model.Node:
        self.serial += 1
        return model.Node(name="%s-%06d" % (group, self.serial), group=group, state=state,
                          created_at=self.now, updated_at=self.now, protected=protected)

    def _set(self, name: str, **changes) -> None:
        self.groups[name] = replace(self.groups[name], **changes)

    def apply_step(self, step: tuple) -> None:
        kind, number, param = step
        if kind == "time":
            self.now += param
            return
        wanted = {"advance": NodeState.PENDING, "boot": NodeState.PENDING,
                  "fail": NodeState.PENDING,
                  "left": NodeState.LEAVING}.get(kind)
        name = self._pick(number, wanted)
        state = self.groups[name]
        if kind == "alert":
            self._alert(name, state, param)
        elif kind in ("advance", "boot"):
            # One pending node, or (boot) every pending node of the group, moves on one state.
            nodes = sorted((n for n in state.nodes.values() if n.pending), key=lambda n: n.name)
            if kind == "advance" and nodes:
                nodes = [nodes[param % len(nodes)]]
            changed = dict(state.nodes)
            scaling = state.scaling
            for node in nodes:
                new = node.advance(NEXT_STATE[node.state], self.now)
                changed[new.name] = new
                if new.state == NodeState.IN_SERVICE:
                    scaling = replace(scaling, consecutive_failures=0)
            self._set(name, nodes=changed, scaling=scaling)
        elif kind == "fail":
            nodes = sorted((n for n in state.nodes.values() if n.pending), key=lambda n: n.name)
            if nodes:
                node = nodes[param % len(nodes)]
                rest = {k: v for k, v in state.nodes.items() if k != node.name}
                scaling = replace(
                    state.scaling, consecutive_failures=state.scaling.consecutive_failures + 1,
                    last_failure_at=self.now, last_failure_cause="Chef run did not converge")
                self._set(name, nodes=rest, scaling=scaling)
        elif kind == "left":
            nodes = sorted((n for n in state.nodes.values() if n.leaving), key=lambda n: n.name)
            if nodes:
                node = nodes[param % len(nodes)]
                self._set(name, nodes={k: v for k, v in state.nodes.items() if k != node.name})
        elif kind == "manual":
            node = self._new_node(name, NodeState.IN_SERVICE, protected=param)
            self._set(name, nodes={**state.nodes, node.name: node})
        else:  # pragma: no cover - a typo in the strategy
            raise AssertionError("unknown step %r" % (step,))

    def _alert(self, name: str, state: model.GroupState, level: str) -> None:
        alert = state.alert
        if level == AlertLevel.NONE:
            if alert.active:
                self._set(name, alert=model.AlertState(ended_at=self.now))
        elif alert.active:
            self._set(name, alert=replace(alert, level=level, updated_at=self.now))
        else:
            self.serial += 1
            self._set(name, alert=model.AlertState(
                level=level, issue_id=str(self.serial), title="Apdex low on %s" % name,
                opened_at=self.now, updated_at=self.now, ended_at=alert.ended_at))

    # -- the governor and the workflows -----------------------------------------------------

    def tick(self) -> Tick:
        before = self.groups
        snap = repr(before) if self.snapshot else None
        decisions = policy.decide(before, self.now, self.settings)
        tick = Tick(self.now, before, decisions, before, snapshot=snap)
        self.groups = dict(before)
        for decision in decisions:
            self._carry_out(tick, decision)
        tick.after = dict(self.groups)
        return tick

    def _carry_out(self, tick: Tick, decision: policy.ScaleDecision) -> None:
        name = decision.group
        state = self.groups[name]
        if decision.alert_expired and state.alert.active:
            # The alert handling closes an expired alert as of when it expired.
            heard = max(state.alert.opened_at, state.alert.updated_at)
            self._set(name, alert=model.AlertState(ended_at=heard + self.settings.alert_max_age))
            state = self.groups[name]
        if not decision.acts or decision.dry_run:
            return
        if decision.action in ADDS:
            nodes = dict(state.nodes)
            for _ in range(decision.count):
                node = self._new_node(name, NodeState.PROVISIONING)
                nodes[node.name] = node
            tick.added[name] = decision.count
            self._set(name, nodes=nodes,
                      scaling=replace(state.scaling, last_scale_out_at=self.now))
        elif decision.action == Action.SCALE_IN:
            victims = removable(state)[:decision.count]
            nodes = dict(state.nodes)
            for node in victims:
                nodes[node.name] = node.advance(NodeState.DRAINING, self.now)
            tick.victims[name] = [node.name for node in victims]
            self._set(name, nodes=nodes,
                      scaling=replace(state.scaling, last_scale_in_at=self.now))

    def run(self, steps):
        yield self.tick()
        for step in steps:
            self.apply_step(step)
            yield self.tick()


# ---------------------------------------------------------------------------------------------
# Strategies
#
# Generation, not the policy, is what costs time here: every strategy is built once, at import,
# and each choice is one draw where possible (a sampled tuple rather than several integers).
# Cooldowns and time steps come partly from lists of round values, so that time often lands
# exactly on a cooldown, an expiry or a backoff boundary.

_SHAPES = st.sampled_from([(lo, hi, desired) for lo in range(4) for hi in range(lo, lo + 7)
                           for desired in range(lo, min(hi, lo + 2) + 1)])
_STEP_SIZES = st.sampled_from([(expand, deflate) for expand in range(1, 5)
                               for deflate in range(1, 4)])
COOLDOWNS = (0, 1, 59, 60, 61, 120, 299, 300, 301, 450, 600, 899, 900, 901, 1200, 1500)
_COOLDOWN = st.sampled_from(COOLDOWNS)
# (paused, dry_run): mostly neither.
_FLAGS = st.sampled_from(((False, False),) * 9 + ((True, False), (False, True), (False, True),
                                                  (True, True)))
# In service, relative to the normal size (clipped at 0): above max_size happens too.
_IN_SERVICE = st.sampled_from((0, 0, -1, 1, -2, 0, 2, 6))
# Nodes on their way in (up to two) and out (up to one); mostly none.
_MOVING = st.sampled_from([()] * 20 + [
    pending + out
    for pending in ((),) + tuple((a,) for a in NodeState.PENDING)
    + tuple((a, b) for a in NodeState.PENDING for b in NodeState.PENDING)
    for out in ((),) + tuple((a,) for a in NodeState.LEAVING)
])
_PROTECTED = st.sampled_from((0, 0, 0, 1, 2))
# Seconds ago; negative: never (the records store 0).
_WHEN = st.integers(-800, 4000)
_AGO = st.integers(0, 4000)
_FAILURES = st.sampled_from((0, 0, 0, 0, 1, 2, 3, 4, 5, 6))
_LEVEL = st.sampled_from((AlertLevel.NONE, AlertLevel.NONE, AlertLevel.WARNING,
                          AlertLevel.CRITICAL))
_OPENED_AGO = st.integers(0, 8000)


def _when(ago: int) -> float:
    return 0.0 if ago < 0 else T0 - ago


@st.composite
def group_states(draw, name: str) -> model.GroupState:
    min_size, max_size, desired = draw(_SHAPES)
    expand_by, deflate_by = draw(_STEP_SIZES)
    paused, dry_run = draw(_FLAGS)
    group = model.Group.create(
        name=name, domain="example.com", min_size=min_size, max_size=max_size, desired=desired,
        expand_by=expand_by, deflate_by=deflate_by, scale_out_cooldown=draw(_COOLDOWN),
        scale_in_cooldown=draw(_COOLDOWN), paused=paused, dry_run=dry_run,
    )
    states = (NodeState.IN_SERVICE,) * max(0, desired + draw(_IN_SERVICE)) + draw(_MOVING)
    protected = draw(_PROTECTED)
    nodes = {}
    for i, state in enumerate(states):
        node = model.Node(name="%s-i%05d" % (name, i), group=name, state=state,
                          created_at=T0 - 5000 + i, updated_at=T0 - 5000 + i,
                          protected=state == NodeState.IN_SERVICE and i < protected)
        nodes[node.name] = node
    failures = draw(_FAILURES)
    scaling = model.ScalingState(
        last_scale_out_at=_when(draw(_WHEN)), last_scale_in_at=_when(draw(_WHEN)),
        consecutive_failures=failures,
        last_failure_at=T0 - draw(_AGO) if failures else 0.0,
        last_failure_cause="image not found" if failures else "",
    )
    level = draw(_LEVEL)
    if level == AlertLevel.NONE:
        alert = model.AlertState(ended_at=_when(draw(_WHEN)))
    else:
        opened = T0 - draw(_OPENED_AGO)
        alert = model.AlertState(level=level, issue_id="42", title="CPU high on %s" % name,
                                 opened_at=opened,
                                 updated_at=min(T0, opened + draw(_OPENED_AGO)))
    return model.GroupState(group=group, alert=alert, scaling=scaling, nodes=nodes)


_GLOBAL = st.integers(0, 24)
_STEP_SIZE = st.integers(1, 3)
_MAX_AGE = st.sampled_from((60, 300, 900, 3600, 21600))
_THRESHOLD = st.integers(1, 4)
_BACKOFF = st.sampled_from((0, 1, 30, 60, 100, 300, 600))
_BACKOFF_MORE = st.integers(0, 3000)


@st.composite
def policy_settings(draw) -> settings.PolicySettings:
    initial = draw(_BACKOFF)
    return settings.PolicySettings(
        global_max_nodes=draw(_GLOBAL), warning_step=draw(_STEP_SIZE),
        alert_max_age=draw(_MAX_AGE), failure_threshold=draw(_THRESHOLD),
        backoff_initial=initial, backoff_max=initial + draw(_BACKOFF_MORE),
    )


# A step is (kind, group number, parameter). The parameter is the seconds that pass, the new
# alert level (none: the alert closes), which pending or leaving node, or whether a manual node
# is protected (one in four). "advance" moves one pending node on one state, "boot" every
# pending node of the group (several workflows progressing between two governor passes).
#
# Steps are decoded from one byte string, two bytes a step: one draw for the whole list keeps
# generation cheap enough for 1000 timelines of 10 to 30 steps per test, and it still shrinks
# well (shorter, then smaller bytes). Time steps are the second byte squared over 7 (0 s to
# about 2.6 h, fine-grained when small) or, for "round", a duration from ROUND that lands
# exactly on cooldown, expiry and backoff boundaries.
KINDS = ("time", "alert", "advance", "round", "boot", "alert", "left", "time",
         "advance", "fail", "alert", "boot", "round", "left", "manual", "advance")
ROUND = (1, 59, 60, 61, 300, 600, 900, 1200, 1500, 1800, 3600)
LEVELS = (AlertLevel.CRITICAL, AlertLevel.WARNING, AlertLevel.NONE)
_STEP_BYTES = st.binary(min_size=20, max_size=60)


def decode_steps(data: bytes) -> List[tuple]:
    steps = []
    for i in range(0, len(data) - 1, 2):
        kind, number, param = KINDS[data[i] % len(KINDS)], data[i] // len(KINDS), data[i + 1]
        if kind == "time":
            param = param * param // 7
        elif kind == "round":
            kind, param = "time", ROUND[param % len(ROUND)]
        elif kind == "alert":
            param = LEVELS[param % len(LEVELS)]
        elif kind == "manual":
            param = param % 4 == 3
        steps.append((kind, number, param))
    return steps


@dataclass
class Timeline:
    groups: Dict[str, model.GroupState]
    settings: settings.PolicySettings
    steps: List[tuple]

    def run(self, snapshot: bool = False):
        return Workflows(self.groups, self.settings, snapshot=snapshot).run(self.steps)


_GROUP_COUNT = st.integers(1, 4)
# The global cap, relative to the nodes there are at the start: sometimes already above it.
_HEADROOM = st.integers(-3, 16)
_GROUP_STATES = {name: group_states(name) for name in NAMES}
_SETTINGS = policy_settings()


@st.composite
def timelines(draw) -> Timeline:
    count = draw(_GROUP_COUNT)
    groups = {name: draw(_GROUP_STATES[name]) for name in NAMES[:count]}
    cap = max(0, total_nodes(groups) + draw(_HEADROOM))
    return Timeline(groups, replace(draw(_SETTINGS), global_max_nodes=cap),
                    decode_steps(draw(_STEP_BYTES)))


def room_before(tick: Tick, cfg: settings.PolicySettings, name: str, rank: int) -> int:
    """The global room left for a group's addition of the given rank, after every addition
    that comes before it (repairs, then critical, then warning; by name) took its share."""
    room = cfg.global_max_nodes - total_nodes(tick.before)
    for d in tick.decisions:
        if adds(d) and not d.dry_run and (RANK[d.reason], d.group) < (rank, name):
            room -= d.count
    return room


# ---------------------------------------------------------------------------------------------
# Properties


@hypothesis.settings(max_examples=examples(1000), deadline=None)
@given(timelines())
def test_scale_out_never_above_max_nor_global_cap(timeline):
    cfg = timeline.settings
    for tick in timeline.run():
        total = total_nodes(tick.before)
        added = sum(tick.added.values())
        if added:
            # Never above the cap because of an addition; already above: nothing is added.
            assert total < cfg.global_max_nodes
            assert total + added <= cfg.global_max_nodes
        assert total_nodes(tick.after) == total + added
        for d in tick.decisions:
            before, after = tick.before[d.group], tick.after[d.group]
            group = before.group
            if adds(d):
                assert d.target <= group.max_size
                if not d.dry_run:
                    assert capacity(after) == capacity(before) + d.count
                    assert capacity(after) <= group.max_size
            elif d.group not in tick.victims:
                assert capacity(after) == capacity(before)
            # A group below its normal size is repaired unless paused, backing off or capped.
            if (not group.paused and capacity(before) < normal_size(group)
                    and not backing_off(before, tick.now, cfg)):
                room = room_before(tick, cfg, d.group, RANK[Reason.REPAIR])
                want = normal_size(group) - capacity(before)
                if room > 0:
                    assert (d.action, d.reason) == (Action.REPAIR, Reason.REPAIR), d
                    assert d.count == min(want, room)
                else:
                    assert (d.action, d.reason) == (Action.NONE, Reason.GLOBAL_CAP), d


@hypothesis.settings(max_examples=examples(1000), deadline=None)
@given(timelines())
def test_scale_in_never_below_normal_size_and_only_in_service(timeline):
    cfg = timeline.settings
    for tick in timeline.run():
        for d in tick.decisions:
            before, after = tick.before[d.group], tick.after[d.group]
            group = before.group
            normal = normal_size(group)
            assert normal >= group.min_size
            takeable = len(removable(before))
            if d.action == Action.SCALE_IN:
                assert d.count > 0
                assert d.target >= normal
                # The workflow must be able to find that many in-service, unprotected nodes.
                assert d.count <= takeable, d
                if d.dry_run:
                    continue
                victims = tick.victims[d.group]
                assert len(victims) == d.count
                for name in victims:
                    assert before.nodes[name].state == NodeState.IN_SERVICE
                    assert not before.nodes[name].protected
                    assert after.nodes[name].state == NodeState.DRAINING
                assert capacity(after) == capacity(before) - d.count >= normal
                assert set(after.nodes) == set(before.nodes)
            # Liveness: a calm group above its normal size does scale in, once it may.
            level, _, ended = effective_alert(before, tick.now, cfg)
            quiet = max(before.scaling.last_scale_in_at, before.scaling.last_scale_out_at, ended)
            if (not group.paused and level == AlertLevel.NONE and capacity(before) > normal
                    and not pending(before) and not leaving(before) and takeable
                    and (capacity(before) > group.max_size
                         or not quiet or tick.now - quiet >= group.scale_in_cooldown)):
                assert d.action == Action.SCALE_IN, d
                expected = min(group.deflate_by, capacity(before) - normal)
                if capacity(before) > group.max_size:
                    expected = capacity(before) - group.max_size
                    assert d.reason == Reason.OVER_MAX
                assert d.count == min(expected, takeable)


@hypothesis.settings(max_examples=examples(1000), deadline=None)
@given(timelines())
def test_no_scale_in_while_nodes_pending_or_leaving_or_alert_active(timeline):
    cfg = timeline.settings
    for tick in timeline.run():
        for d in tick.decisions:
            before = tick.before[d.group]
            level, _, _ = effective_alert(before, tick.now, cfg)
            if d.action == Action.SCALE_IN:
                assert pending(before) == 0, d
                assert leaving(before) == 0, d
                assert level == AlertLevel.NONE, d
            if level != AlertLevel.NONE:
                assert d.action != Action.SCALE_IN


@hypothesis.settings(max_examples=examples(1000), deadline=None)
@given(timelines())
def test_cooldowns_respected(timeline):
    cfg = timeline.settings
    # What the workflows did, per group, seeded from the stored history (0: never).
    last_alert_out = {}
    last_out = {}
    last_in = {}
    for name, state in timeline.groups.items():
        last_alert_out[name] = last_out[name] = state.scaling.last_scale_out_at
        last_in[name] = state.scaling.last_scale_in_at
    for tick in timeline.run():
        now = tick.now
        for d in tick.decisions:
            if not d.acts or d.dry_run:
                continue
            before = tick.before[d.group]
            group = before.group
            if d.reason in ALERT_REASONS:
                if last_alert_out[d.group]:
                    assert now - last_alert_out[d.group] >= group.scale_out_cooldown, d
                last_alert_out[d.group] = now
            if d.action in ADDS:
                last_out[d.group] = now
            if d.action == Action.SCALE_IN:
                if d.reason != Reason.OVER_MAX:
                    _, _, ended = effective_alert(before, now, cfg)
                    for since in (last_in[d.group], last_out[d.group], ended):
                        if since:
                            assert now - since >= group.scale_in_cooldown, (d, since)
                last_in[d.group] = now


@hypothesis.settings(max_examples=examples(1000), deadline=None)
@given(group_states("web"), policy_settings(), st.integers(0, 1500), st.integers(0, 1500),
       st.sampled_from((AlertLevel.CRITICAL, AlertLevel.WARNING)), st.booleans())
def test_scale_in_cooldown_never_delays_scale_out(state, cfg, since_in, since_out, level,
                                                   never_out):
    """A recent scale-in (and a recent alert end), then an alert opens: the group scales out
    as soon as its scale-out cooldown allows, whatever its scale-in cooldown says."""
    group = replace(state.group, paused=False, scale_in_cooldown=since_in + 1 + since_in % 7)
    now = T0
    nodes = {k: n for k, n in state.nodes.items() if not n.pending}
    state = replace(
        state, group=group, nodes=nodes,
        scaling=model.ScalingState(
            last_scale_in_at=now - since_in,
            last_scale_out_at=0.0 if never_out else now - since_out),
        alert=model.AlertState(level=level, title="Apdex low", opened_at=now, updated_at=now,
                               ended_at=now - since_in))
    cfg = replace(cfg, global_max_nodes=1000)
    decision = policy.decide({"web": state}, now, cfg)[0]
    cap = capacity(state)
    if cap < normal_size(group):
        assert decision.reason == Reason.REPAIR
    elif cap >= group.max_size:
        assert decision.reason == Reason.AT_MAX
    elif not never_out and since_out < group.scale_out_cooldown:
        assert decision.reason == Reason.SCALE_OUT_COOLDOWN
        assert decision.action == Action.NONE
    else:
        assert decision.action == Action.SCALE_OUT, decision
        step = group.expand_by if level == AlertLevel.CRITICAL else cfg.warning_step
        assert decision.count == min(step, group.max_size - cap)


@hypothesis.settings(max_examples=examples(1000), deadline=None)
@given(timelines())
def test_backoff_respected(timeline):
    cfg = timeline.settings
    for tick in timeline.run():
        for d in tick.decisions:
            before = tick.before[d.group]
            end = backoff_end(before, cfg)
            assert policy.backoff_until(before, cfg) == (end if end is not None else 0.0)
            if end is not None and tick.now < end:
                assert not adds(d), (d, end)
                if (not before.group.paused and capacity(before) < normal_size(before.group)):
                    assert d.reason == Reason.BACKOFF
                    assert "%d node additions failed" % before.scaling.consecutive_failures \
                        in d.cause


@hypothesis.settings(max_examples=examples(1000), deadline=None)
@given(timelines())
def test_paused_dry_run_and_decision_shape(timeline):
    cfg = timeline.settings
    for tick in timeline.run():
        assert [d.group for d in tick.decisions] == sorted(tick.before)
        for d in tick.decisions:
            before = tick.before[d.group]
            group = before.group
            assert isinstance(d.cause, str) and d.cause.strip()
            assert d.current == capacity(before)
            if d.action == Action.NONE:
                assert d.count == 0 and d.target == d.current
            elif d.action in ADDS:
                assert d.count > 0 and d.target == d.current + d.count
            else:
                assert d.action == Action.SCALE_IN
                assert d.count > 0 and d.target == d.current - d.count
            if group.paused:
                assert (d.action, d.reason, d.count) == (Action.NONE, Reason.PAUSED, 0)
            assert d.dry_run == (group.dry_run and d.acts)
            if d.dry_run:
                assert d.cause.startswith("dry run")
                assert tick.after[d.group].nodes == before.nodes
            _, expired, _ = effective_alert(before, tick.now, cfg)
            assert d.alert_expired == expired
            if expired:
                assert "expired" in d.cause


@hypothesis.settings(max_examples=examples(1000), deadline=None)
@given(timelines())
def test_decide_is_pure(timeline):
    """Same inputs, same decisions; inputs never changed (compared deeply before and after)."""
    cfg = timeline.settings
    for number, tick in enumerate(timeline.run(snapshot=True)):
        if number == 0:
            # A deep copy gives the same answer, and stays equal to the original.
            copied = copy.deepcopy(tick.before)
            assert policy.decide(copied, tick.now, cfg) == tick.decisions
            assert copied == tick.before
        # Asked again, in the other mapping order, and for one group at a time (decide_one,
        # one group per tick in turn), decide() answers as it did the first time.
        assert policy.decide(tick.before, tick.now, cfg) == tick.decisions
        reordered = dict(reversed(list(tick.before.items())))
        assert policy.decide(reordered, tick.now, cfg) == tick.decisions
        names = sorted(tick.before)
        name = names[number % len(names)]
        others = [s for n, s in reordered.items() if n != name]
        assert policy.decide_one(tick.before[name], others, tick.now, cfg) == tick.decision(name)
        # Neither the governor's call nor these changed anything it was given: the snapshot
        # is repr(before) taken just before the governor's call.
        assert repr(tick.before) == tick.snapshot


@hypothesis.settings(max_examples=examples(1000), deadline=None)
@given(timelines())
def test_alert_scale_out_adds_its_step(timeline):
    cfg = timeline.settings
    for tick in timeline.run():
        for d in tick.decisions:
            before = tick.before[d.group]
            group = before.group
            cap = capacity(before)
            level, _, _ = effective_alert(before, tick.now, cfg)
            if d.reason in ALERT_REASONS:
                assert d.action == Action.SCALE_OUT
                want = Reason.ALERT_CRITICAL if level == AlertLevel.CRITICAL else \
                    Reason.ALERT_WARNING
                assert d.reason == want
                step = group.expand_by if level == AlertLevel.CRITICAL else cfg.warning_step
                room = room_before(tick, cfg, d.group, RANK[d.reason])
                expected = min(step, group.max_size - cap, room)
                assert expected > 0 and d.count == expected, (d, room)
                assert before.alert.title in d.cause
            if level == AlertLevel.NONE or group.paused or cap < normal_size(group):
                continue
            # An alert in force on a group at or above its normal size:
            if pending(before):
                assert not adds(d), d
            out_ok = (not before.scaling.last_scale_out_at
                      or tick.now - before.scaling.last_scale_out_at >= group.scale_out_cooldown)
            if (cap < group.max_size and not pending(before) and out_ok
                    and not backing_off(before, tick.now, cfg)):
                rank = RANK[Reason.ALERT_CRITICAL if level == AlertLevel.CRITICAL
                            else Reason.ALERT_WARNING]
                if room_before(tick, cfg, d.group, rank) > 0:
                    assert d.reason in ALERT_REASONS, d
                else:
                    assert d.reason == Reason.GLOBAL_CAP, d
            else:
                assert not adds(d), d
