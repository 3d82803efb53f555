"""Hand-written examples of the governor's policy: one per Reason code, then the edge cases
(alert expiry, the global cap's priorities, dry runs, backoff arithmetic, exact boundaries).

Each ``@example(Reason.X)`` function builds a situation and returns decide()'s decision for it;
its test checks the action, the count and that the cause names the facts an operator needs.
``test_every_reason_has_an_example`` fails when a Reason is added without an example here.
"""


import pytest

from autoscale_core.domain import model, policy, settings, words

Action = policy.Action
Reason = policy.Reason
NodeState = model.NodeState
AlertLevel = model.AlertLevel

NOW = 1_700_000_000.0
DEFAULTS = settings.PolicySettings()  # global cap 100, warning step 1, alerts expire after 6 h
TITLE = "Apdex below 0.7 on web"


def make_state(name="web", in_service=2, pending=(), leaving=(), protected=0, failed=0,
               alert=None, scaling=None, **spec):
    """A group with ``in_service`` nodes (the first ``protected`` of them protected, the
    newest last), nodes in the given pending and leaving states, and ``failed`` failed ones."""
    spec.setdefault("min_size", 1)
    spec.setdefault("max_size", 6)
    spec.setdefault("desired", 2)
    group = model.Group.create(name=name, domain="example.com", **spec)
    states = ([NodeState.IN_SERVICE] * in_service + list(pending) + list(leaving)
              + [NodeState.FAILED] * failed)
    nodes = {}
    for i, state in enumerate(states):
        node = model.Node(name="%s-%06d" % (name, i), group=name, state=state,
                          created_at=NOW - 10000 + i, protected=i < protected)
        nodes[node.name] = node
    return model.GroupState(group=group, alert=alert or model.AlertState(),
                            scaling=scaling or model.ScalingState(), nodes=nodes)


def make_alert(level=AlertLevel.CRITICAL, opened_ago=120, updated_ago=None, title=TITLE):
    opened = NOW - opened_ago
    updated = opened if updated_ago is None else NOW - updated_ago
    return model.AlertState(level=level, issue_id="4711", title=title, opened_at=opened,
                            updated_at=updated)


def decide_for(state, now=NOW, cfg=DEFAULTS, others=()):
    return policy.decide_one(state, others, now, cfg)


def check(decision, action, count, reason):
    assert (decision.action, decision.count, decision.reason) == (action, count, reason), decision
    sign = -1 if action == Action.SCALE_IN else 1
    assert decision.target == decision.current + sign * count
    return decision


# ---------------------------------------------------------------------------------------------
# One example per Reason

EXAMPLES = {}


def example(reason):
    def register(build):
        EXAMPLES[reason] = build
        return build
    return register


@example(Reason.PAUSED)
def paused_group():
    # Below its normal size and under a critical alert: would act twice over, but is paused.
    return decide_for(make_state(in_service=0, desired=3, alert=make_alert(), paused=True))


def test_paused():
    d = check(paused_group(), Action.NONE, 0, Reason.PAUSED)
    assert "paused" in d.cause
    assert not d.dry_run and not d.alert_expired


@example(Reason.REPAIR)
def below_normal_size():
    return decide_for(make_state(in_service=1, desired=3, leaving=[NodeState.DRAINING]))


def test_repair():
    d = check(below_normal_size(), Action.REPAIR, 2, Reason.REPAIR)
    assert (d.current, d.target) == (1, 3)  # the draining node does not count
    assert "1 node in service or starting" in d.cause
    assert "normal size of 3" in d.cause and "adding 2 nodes" in d.cause


@example(Reason.ALERT_CRITICAL)
def critical_alert():
    state = make_state(in_service=2, max_size=6, expand_by=3, alert=make_alert(opened_ago=180),
                       # A recent scale-in does not hold a scale-out back.
                       scaling=model.ScalingState(last_scale_in_at=NOW - 5))
    return decide_for(state)


def test_critical_alert():
    d = check(critical_alert(), Action.SCALE_OUT, 3, Reason.ALERT_CRITICAL)
    assert (d.current, d.target) == (2, 5)
    assert TITLE in d.cause and "4711" in d.cause and "critical" in d.cause
    assert "3 min" in d.cause  # how long the alert has been open
    assert "adding 3 nodes" in d.cause and "2 → 5" in d.cause and "max 6" in d.cause


@example(Reason.ALERT_WARNING)
def warning_alert():
    state = make_state(in_service=2, expand_by=3, alert=make_alert(AlertLevel.WARNING))
    return decide_for(state, cfg=settings.PolicySettings(warning_step=2))


def test_warning_alert():
    d = check(warning_alert(), Action.SCALE_OUT, 2, Reason.ALERT_WARNING)
    assert "warning" in d.cause and TITLE in d.cause and "adding 2 nodes" in d.cause


@example(Reason.OVER_MAX)
def above_max():
    # max_size was lowered to 3 while 5 nodes served; the scale-in cooldown does not apply.
    state = make_state(in_service=5, max_size=3, scale_in_cooldown=900,
                       scaling=model.ScalingState(last_scale_in_at=NOW - 10))
    return decide_for(state)


def test_above_max():
    d = check(above_max(), Action.SCALE_IN, 2, Reason.OVER_MAX)
    assert (d.current, d.target) == (5, 3)
    assert "5 nodes in service" in d.cause and "maximum of 3" in d.cause
    assert "removing 2 nodes" in d.cause


@example(Reason.RECOVERED)
def recovered():
    state = make_state(in_service=4, desired=2, deflate_by=1, scale_in_cooldown=900,
                       scaling=model.ScalingState(last_scale_out_at=NOW - 1000),
                       alert=model.AlertState(ended_at=NOW - 960))
    return decide_for(state)


def test_recovered():
    d = check(recovered(), Action.SCALE_IN, 1, Reason.RECOVERED)
    assert "no alert for 16 min" in d.cause  # since the alert ended, 960 s ago
    assert "4 → 3" in d.cause and "normal size 2" in d.cause


@example(Reason.STEADY)
def steady():
    return decide_for(make_state(in_service=2, desired=2))


def test_steady():
    d = check(steady(), Action.NONE, 0, Reason.STEADY)
    assert "2 nodes in service" in d.cause and "normal size" in d.cause


@example(Reason.AT_MAX)
def at_max():
    return decide_for(make_state(in_service=3, pending=[NodeState.CONFIGURING], max_size=4,
                                 alert=make_alert()))


def test_at_max():
    d = check(at_max(), Action.NONE, 0, Reason.AT_MAX)
    assert TITLE in d.cause and "maximum of 4" in d.cause


@example(Reason.GLOBAL_CAP)
def global_cap():
    # Four stored nodes, a failed one included: its VM still exists, so it counts.
    state = make_state(in_service=3, failed=1, alert=make_alert())
    return decide_for(state, cfg=settings.PolicySettings(global_max_nodes=4))


def test_global_cap():
    d = check(global_cap(), Action.NONE, 0, Reason.GLOBAL_CAP)
    assert (d.current, d.target) == (3, 3)
    assert TITLE in d.cause and "global cap of 4 nodes" in d.cause


@example(Reason.BACKOFF)
def backoff():
    # threshold 3, so the 4th failure in a row backs off 2 x 300 s; the last was 100 s ago.
    state = make_state(in_service=0, desired=2, scaling=model.ScalingState(
        consecutive_failures=4, last_failure_at=NOW - 100,
        last_failure_cause="image ubuntu-22.04 not found"))
    return decide_for(state)


def test_backoff():
    d = check(backoff(), Action.NONE, 0, Reason.BACKOFF)
    assert "4 node additions failed in a row" in d.cause
    assert "image ubuntu-22.04 not found" in d.cause
    assert "another 8 min" in d.cause  # 500 s left


@example(Reason.SCALE_OUT_COOLDOWN)
def scale_out_cooldown():
    state = make_state(in_service=3, scale_out_cooldown=300, alert=make_alert(),
                       scaling=model.ScalingState(last_scale_out_at=NOW - 60))
    return decide_for(state)


def test_scale_out_cooldown():
    d = check(scale_out_cooldown(), Action.NONE, 0, Reason.SCALE_OUT_COOLDOWN)
    assert TITLE in d.cause
    assert "last scale-out 60 s ago" in d.cause
    assert "next possible in 4 min" in d.cause and "cooldown 5 min" in d.cause


@example(Reason.SCALE_IN_COOLDOWN)
def scale_in_cooldown():
    state = make_state(in_service=4, desired=2, scale_in_cooldown=900,
                       scaling=model.ScalingState(last_scale_out_at=NOW - 300))
    return decide_for(state)


def test_scale_in_cooldown():
    d = check(scale_in_cooldown(), Action.NONE, 0, Reason.SCALE_IN_COOLDOWN)
    assert "2 nodes above the normal size of 2" in d.cause
    assert "scale-in in 10 min" in d.cause and "cooldown 15 min" in d.cause


@example(Reason.ADDING)
def nodes_being_added():
    state = make_state(in_service=2, pending=[NodeState.PROVISIONING, NodeState.REGISTERING],
                       alert=make_alert())
    return decide_for(state)


def test_nodes_being_added():
    d = check(nodes_being_added(), Action.NONE, 0, Reason.ADDING)
    assert d.current == 4  # booting capacity counts
    assert TITLE in d.cause and "2 nodes being added" in d.cause


def test_nodes_being_added_also_hold_a_scale_in():
    d = decide_for(make_state(in_service=4, desired=2, pending=[NodeState.CONFIGURING]))
    check(d, Action.NONE, 0, Reason.ADDING)
    assert "1 node being added" in d.cause


@example(Reason.LEAVING)
def nodes_leaving():
    return decide_for(make_state(in_service=4, desired=2, leaving=[NodeState.TERMINATING]))


def test_nodes_leaving():
    d = check(nodes_leaving(), Action.NONE, 0, Reason.LEAVING)
    assert d.current == 4
    assert "1 node still leaving" in d.cause


@example(Reason.PROTECTED)
def nodes_protected():
    return decide_for(make_state(in_service=3, protected=3, desired=1))


def test_nodes_protected():
    d = check(nodes_protected(), Action.NONE, 0, Reason.PROTECTED)
    assert "2 nodes above the normal size of 1" in d.cause and "protected" in d.cause


UNREADABLE_ALERT = {"autoscale.asg.web.alert": "alert record has schema version 2, newer than "
                    "this pack understands (1); upgrade the autoscale pack"}


@example("unreadable_record")  # Reason.UNREADABLE
def unreadable_record():
    # Above its normal size with no alert that can be read: a guess of "no alert" would
    # scale in, maybe in the middle of an incident.
    state = make_state(in_service=4, desired=2)
    state.unreadable = dict(UNREADABLE_ALERT)
    return decide_for(state)


def test_unreadable_record():
    d = check(unreadable_record(), Action.NONE, 0, Reason.UNREADABLE)
    assert "alert record autoscale.asg.web.alert cannot be read (alert record has schema " \
        "version 2" in d.cause
    assert "holding the group, no scale-out or scale-in" in d.cause


@pytest.mark.parametrize("key", ["autoscale.asg.web.alert", "autoscale.asg.web.scaling",
                                 "autoscale.asg.web.node.web-0a0a0a"])
def test_an_unreadable_record_holds_scale_out_and_scale_in_but_not_repair(key):
    why = {key: "it is cut short"}
    for state in (make_state(in_service=2, alert=make_alert()),  # would scale out
                  make_state(in_service=4, desired=2)):  # would scale in
        assert decide_for(state).action in (Action.SCALE_OUT, Action.SCALE_IN)
        state.unreadable = dict(why)
        d = check(decide_for(state), Action.NONE, 0, Reason.UNREADABLE)
        assert key in d.cause and "it is cut short" in d.cause
    low = make_state(in_service=1, desired=3, alert=make_alert())
    low.unreadable = dict(why)
    d = check(decide_for(low), Action.REPAIR, 2, Reason.REPAIR)
    assert "%s cannot be read (it is cut short): only repairs until it is fixed" % key in d.cause


def test_unreadable_node_records_count_toward_the_global_cap():
    cfg = settings.PolicySettings(global_max_nodes=4)
    held = make_state(name="old", in_service=2)
    held.unreadable = {"autoscale.asg.old.node.old-000009": "not valid JSON"}
    low = make_state(name="new", in_service=0, desired=2)
    # 2 readable nodes + 1 unreadable one leave room for 1 node, not 2.
    d = decide_for(low, cfg=cfg, others=[held])
    assert (d.action, d.count) == (Action.REPAIR, 1)


@example("decision_failed")  # Reason.ERROR
def decision_failed():
    # A state built by hand, not read through from_json: a time that is a string.
    state = make_state(in_service=2, alert=make_alert(),
                       scaling=model.ScalingState(last_scale_out_at="yesterday"))
    return decide_for(state)


def test_an_error_deciding_one_group_does_not_stop_the_others():
    d = check(decision_failed(), Action.NONE, 0, Reason.ERROR)
    assert "could not decide (unexpected TypeError" in d.cause and "nothing done" in d.cause
    broken = make_state(name="broken", in_service=2, alert=make_alert(),
                        scaling=model.ScalingState(last_scale_out_at="yesterday"))
    fine = make_state(name="fine", in_service=0, desired=2)
    decisions = {d.group: d for d in policy.decide({"broken": broken, "fine": fine}, NOW)}
    assert decisions["broken"].reason == Reason.ERROR
    assert (decisions["fine"].action, decisions["fine"].count) == (Action.REPAIR, 2)


def test_every_reason_has_an_example():
    reasons = {value for key, value in vars(Reason).items() if not key.startswith("_")}
    assert len(reasons) == len([k for k in vars(Reason) if not k.startswith("_")]), \
        "two Reason attributes share a code"
    missing = sorted(reasons - set(EXAMPLES))
    assert not missing, "no example for reason(s) %s" % ", ".join(missing)
    for reason, build in EXAMPLES.items():
        assert build().reason == reason, build.__name__


# ---------------------------------------------------------------------------------------------
# Alert expiry


def test_an_alert_older_than_alert_max_age_counts_as_over():
    cfg = settings.PolicySettings(alert_max_age=3600)
    state = make_state(in_service=4, desired=2, scale_in_cooldown=600,
                       alert=make_alert(opened_ago=9000, updated_ago=3600 + 700))
    d = decide_for(state, cfg=cfg)
    # It expired 700 s ago, when the scale-in stabilisation started: 600 s have passed.
    check(d, Action.SCALE_IN, 1, Reason.RECOVERED)
    assert d.alert_expired
    assert "expired" in d.cause and TITLE in d.cause and "60 min" in d.cause
    assert "no alert for 11 min" in d.cause
    assert policy.alert_status(state, NOW, cfg) == (AlertLevel.NONE, True, NOW - 700)


def test_an_expired_alert_still_starts_the_scale_in_cooldown():
    cfg = settings.PolicySettings(alert_max_age=3600)
    state = make_state(in_service=4, desired=2, scale_in_cooldown=600,
                       alert=make_alert(opened_ago=4000, updated_ago=3600 + 100))
    d = decide_for(state, cfg=cfg)
    check(d, Action.NONE, 0, Reason.SCALE_IN_COOLDOWN)
    assert d.alert_expired and "expired" in d.cause
    assert "scale-in in 8 min" in d.cause  # 500 s left


def test_an_alert_expires_exactly_at_alert_max_age_and_not_a_second_before():
    cfg = settings.PolicySettings(alert_max_age=3600)
    fresh = make_state(in_service=2, alert=make_alert(opened_ago=5000, updated_ago=3599))
    d = decide_for(fresh, cfg=cfg)
    check(d, Action.SCALE_OUT, 2, Reason.ALERT_CRITICAL)
    assert not d.alert_expired and "expired" not in d.cause
    stale = make_state(in_service=2, alert=make_alert(opened_ago=5000, updated_ago=3600))
    d = decide_for(stale, cfg=cfg)
    check(d, Action.NONE, 0, Reason.STEADY)
    assert d.alert_expired and "expired" in d.cause


def test_an_update_keeps_an_old_alert_alive():
    cfg = settings.PolicySettings(alert_max_age=3600)
    state = make_state(in_service=2, alert=make_alert(opened_ago=50000, updated_ago=60))
    d = decide_for(state, cfg=cfg)
    check(d, Action.SCALE_OUT, 2, Reason.ALERT_CRITICAL)
    assert not d.alert_expired


def test_expiry_is_reported_even_when_the_group_does_nothing_else():
    cfg = settings.PolicySettings(alert_max_age=3600)
    old = make_alert(opened_ago=8000, updated_ago=8000)
    paused = decide_for(make_state(alert=old, paused=True), cfg=cfg)
    check(paused, Action.NONE, 0, Reason.PAUSED)
    assert paused.alert_expired and "expired" in paused.cause
    failing = make_state(in_service=0, alert=old, scaling=model.ScalingState(
        consecutive_failures=3, last_failure_at=NOW - 10))
    backing_off = decide_for(failing, cfg=cfg)
    check(backing_off, Action.NONE, 0, Reason.BACKOFF)
    assert backing_off.alert_expired and "expired" in backing_off.cause


# ---------------------------------------------------------------------------------------------
# The global cap


def test_global_cap_goes_to_repairs_then_critical_then_warning():
    # Names in the opposite order to the priorities, so name order alone would get it wrong.
    warning = make_state("a-warn", in_service=2, alert=make_alert(AlertLevel.WARNING))
    critical = make_state("b-crit", in_service=2, expand_by=2, alert=make_alert())
    repair = make_state("c-repair", in_service=1, desired=3)
    groups = {s.group.name: s for s in (warning, critical, repair)}
    # 5 nodes stored, cap 8: room for 3. The repair takes 2, the critical alert 1, the warning
    # none.
    cfg = settings.PolicySettings(global_max_nodes=8)
    by_name = {d.group: d for d in policy.decide(groups, NOW, cfg)}
    check(by_name["c-repair"], Action.REPAIR, 2, Reason.REPAIR)
    crit = check(by_name["b-crit"], Action.SCALE_OUT, 1, Reason.ALERT_CRITICAL)
    assert "only 1 allowed by the global cap of 8 nodes" in crit.cause
    warn = check(by_name["a-warn"], Action.NONE, 0, Reason.GLOBAL_CAP)
    assert "global cap of 8 nodes" in warn.cause and "warning" in warn.cause
    assert list(by_name) == ["a-warn", "b-crit", "c-repair"]


def test_within_one_priority_the_cap_goes_in_name_order():
    first = make_state("alpha", in_service=2, alert=make_alert())
    second = make_state("beta", in_service=2, alert=make_alert())
    cfg = settings.PolicySettings(global_max_nodes=6)
    a, b = policy.decide({"beta": second, "alpha": first}, NOW, cfg)
    check(a, Action.SCALE_OUT, 2, Reason.ALERT_CRITICAL)
    check(b, Action.NONE, 0, Reason.GLOBAL_CAP)


def test_already_above_the_global_cap_nothing_is_added():
    state = make_state(in_service=1, desired=3, failed=4)
    d = decide_for(state, cfg=settings.PolicySettings(global_max_nodes=3))
    check(d, Action.NONE, 0, Reason.GLOBAL_CAP)


def test_a_dry_run_group_takes_no_room_from_the_others():
    dry = make_state("a-dry", in_service=2, expand_by=3, alert=make_alert(), dry_run=True)
    real = make_state("b-real", in_service=2, expand_by=2, alert=make_alert())
    cfg = settings.PolicySettings(global_max_nodes=6)  # 4 stored: room for 2
    d_dry, d_real = policy.decide({"a-dry": dry, "b-real": real}, NOW, cfg)
    assert d_dry.dry_run and d_dry.cause.startswith("dry run, nothing done")
    # The dry run reports what it would have been allowed ...
    check(d_dry, Action.SCALE_OUT, 2, Reason.ALERT_CRITICAL)
    # ... and the real group still gets the whole room.
    check(d_real, Action.SCALE_OUT, 2, Reason.ALERT_CRITICAL)
    assert not d_real.dry_run


def test_dry_run_marks_only_decisions_that_act():
    repair = decide_for(make_state(in_service=0, desired=2, dry_run=True))
    check(repair, Action.REPAIR, 2, Reason.REPAIR)
    assert repair.dry_run
    quiet = decide_for(make_state(in_service=2, desired=2, dry_run=True))
    check(quiet, Action.NONE, 0, Reason.STEADY)
    assert not quiet.dry_run and not quiet.cause.startswith("dry run")


# ---------------------------------------------------------------------------------------------
# Backoff


def _failing(failures, last_failure_at=NOW):
    return make_state(scaling=model.ScalingState(consecutive_failures=failures,
                                                 last_failure_at=last_failure_at))


def test_backoff_until_doubles_from_the_threshold_and_is_capped():
    cfg = settings.PolicySettings(failure_threshold=3, backoff_initial=300, backoff_max=1800)
    assert policy.backoff_until(_failing(0), cfg) == 0.0
    assert policy.backoff_until(_failing(2), cfg) == 0.0
    assert policy.backoff_until(_failing(3), cfg) == NOW + 300
    assert policy.backoff_until(_failing(4), cfg) == NOW + 600
    assert policy.backoff_until(_failing(5), cfg) == NOW + 1200
    assert policy.backoff_until(_failing(6), cfg) == NOW + 1800
    assert policy.backoff_until(_failing(7), cfg) == NOW + 1800
    assert policy.backoff_until(_failing(10 ** 6), cfg) == NOW + 1800


def test_backoff_until_follows_the_formula_for_long_backoffs():
    # min(initial * 2 ** (failures - threshold), backoff_max), however many doublings.
    cfg = settings.PolicySettings(failure_threshold=1, backoff_initial=1, backoff_max=2 ** 40)
    assert policy.backoff_until(_failing(36), cfg) == NOW + 2 ** 35
    assert policy.backoff_until(_failing(41), cfg) == NOW + 2 ** 40
    assert policy.backoff_until(_failing(100), cfg) == NOW + 2 ** 40
    zero = settings.PolicySettings(failure_threshold=1, backoff_initial=0, backoff_max=600)
    assert policy.backoff_until(_failing(50), zero) == NOW


def test_backoff_holds_alert_scale_outs_and_ends_on_time():
    cfg = settings.PolicySettings(failure_threshold=2, backoff_initial=300, backoff_max=1800)
    scaling = model.ScalingState(consecutive_failures=3, last_failure_at=NOW - 599)
    state = make_state(in_service=2, alert=make_alert(), scaling=scaling)
    check(decide_for(state, cfg=cfg), Action.NONE, 0, Reason.BACKOFF)
    check(decide_for(state, now=NOW + 1, cfg=cfg), Action.SCALE_OUT, 2, Reason.ALERT_CRITICAL)


def test_failures_below_the_threshold_do_not_back_off():
    cfg = settings.PolicySettings(failure_threshold=3)
    state = make_state(in_service=0, desired=2, scaling=model.ScalingState(
        consecutive_failures=2, last_failure_at=NOW))
    check(decide_for(state, cfg=cfg), Action.REPAIR, 2, Reason.REPAIR)


# ---------------------------------------------------------------------------------------------
# Boundaries and negative checks: each fails for a plausible off-by-one or a wrong rule.


def test_scale_in_waits_the_whole_cooldown_and_not_a_second_longer():
    scaling = model.ScalingState(last_scale_in_at=NOW - 900)
    state = make_state(in_service=4, desired=2, scale_in_cooldown=900, scaling=scaling)
    check(decide_for(state, now=NOW - 1), Action.NONE, 0, Reason.SCALE_IN_COOLDOWN)
    check(decide_for(state), Action.SCALE_IN, 1, Reason.RECOVERED)


def test_scale_in_cooldown_counts_from_the_latest_of_scale_in_scale_out_and_alert_end():
    for latest in ("last_scale_in_at", "last_scale_out_at", "ended_at"):
        times = {"last_scale_in_at": NOW - 5000, "last_scale_out_at": NOW - 5000,
                 "ended_at": NOW - 5000}
        times[latest] = NOW - 899
        state = make_state(
            in_service=4, desired=2, scale_in_cooldown=900,
            scaling=model.ScalingState(last_scale_in_at=times["last_scale_in_at"],
                                       last_scale_out_at=times["last_scale_out_at"]),
            alert=model.AlertState(ended_at=times["ended_at"]))
        check(decide_for(state), Action.NONE, 0, Reason.SCALE_IN_COOLDOWN)
        check(decide_for(state, now=NOW + 1), Action.SCALE_IN, 1, Reason.RECOVERED)


def test_scale_out_waits_the_whole_cooldown_and_not_a_second_longer():
    scaling = model.ScalingState(last_scale_out_at=NOW - 300)
    state = make_state(in_service=2, scale_out_cooldown=300, alert=make_alert(),
                       scaling=scaling)
    check(decide_for(state, now=NOW - 1), Action.NONE, 0, Reason.SCALE_OUT_COOLDOWN)
    check(decide_for(state), Action.SCALE_OUT, 2, Reason.ALERT_CRITICAL)


def test_a_scale_in_cooldown_never_delays_a_scale_out():
    scaling = model.ScalingState(last_scale_in_at=NOW - 1, last_scale_out_at=NOW - 301)
    state = make_state(in_service=2, scale_out_cooldown=300, scale_in_cooldown=3600,
                       alert=make_alert(opened_ago=0),
                       scaling=scaling)
    check(decide_for(state), Action.SCALE_OUT, 2, Reason.ALERT_CRITICAL)


def test_no_scale_in_while_an_alert_is_open_even_far_above_normal():
    state = make_state(in_service=6, desired=1, max_size=6,
                       alert=make_alert(AlertLevel.WARNING))
    check(decide_for(state), Action.NONE, 0, Reason.AT_MAX)


def test_booting_nodes_count_toward_the_normal_size():
    state = make_state(in_service=1, desired=3,
                       pending=[NodeState.PROVISIONING, NodeState.CONFIGURING])
    d = check(decide_for(state), Action.NONE, 0, Reason.STEADY)
    assert d.current == 3


def test_leaving_and_failed_nodes_do_not_count_as_capacity():
    state = make_state(in_service=1, desired=3, leaving=[NodeState.DRAINING], failed=1)
    check(decide_for(state), Action.REPAIR, 2, Reason.REPAIR)


def test_repair_restores_the_normal_size_not_the_alert_step():
    state = make_state(in_service=1, desired=2, expand_by=4, alert=make_alert())
    check(decide_for(state), Action.REPAIR, 1, Reason.REPAIR)


def test_a_scale_out_stops_at_max_size():
    state = make_state(in_service=3, max_size=4, expand_by=5, alert=make_alert())
    d = check(decide_for(state), Action.SCALE_OUT, 1, Reason.ALERT_CRITICAL)
    assert d.target == 4


def test_a_warning_adds_the_warning_step_not_expand_by():
    state = make_state(in_service=2, expand_by=4, alert=make_alert(AlertLevel.WARNING))
    check(decide_for(state), Action.SCALE_OUT, 1, Reason.ALERT_WARNING)


def test_a_scale_in_removes_deflate_by_but_never_below_the_normal_size():
    bigger = make_state(in_service=6, desired=2, deflate_by=3)
    check(decide_for(bigger), Action.SCALE_IN, 3, Reason.RECOVERED)
    near = make_state(in_service=3, desired=2, deflate_by=3)
    check(decide_for(near), Action.SCALE_IN, 1, Reason.RECOVERED)


def test_a_scale_in_never_asks_for_a_protected_node():
    # 4 in service, normal 1: three too many, but two of the four are protected.
    state = make_state(in_service=4, protected=2, desired=1, deflate_by=5)
    d = check(decide_for(state), Action.SCALE_IN, 2, Reason.RECOVERED)
    assert "protected" in d.cause
    over = make_state(in_service=5, protected=4, desired=1, max_size=2)
    d = check(decide_for(over), Action.SCALE_IN, 1, Reason.OVER_MAX)
    assert "protected" in d.cause


def test_min_size_zero_group_scales_in_to_zero():
    state = make_state(in_service=1, min_size=0, desired=0)
    check(decide_for(state), Action.SCALE_IN, 1, Reason.RECOVERED)


@pytest.mark.parametrize("level", [AlertLevel.CRITICAL, AlertLevel.WARNING])
def test_an_open_alert_on_a_group_in_cooldown_says_when_it_may_act(level):
    scaling = model.ScalingState(last_scale_out_at=NOW - 100)
    state = make_state(in_service=2, scale_out_cooldown=400, alert=make_alert(level),
                       scaling=scaling)
    d = check(decide_for(state), Action.NONE, 0, Reason.SCALE_OUT_COOLDOWN)
    assert "next possible in 5 min" in d.cause and level in d.cause


def test_decide_one_counts_the_other_groups_toward_the_cap():
    other = make_state("other", in_service=5)
    state = make_state(in_service=2, alert=make_alert())
    cfg = settings.PolicySettings(global_max_nodes=8)
    check(decide_for(state, cfg=cfg, others=[other]), Action.SCALE_OUT, 1,
          Reason.ALERT_CRITICAL)
    check(decide_for(state, cfg=cfg), Action.SCALE_OUT, 2, Reason.ALERT_CRITICAL)


def test_as_dict_carries_every_field():
    d = critical_alert()
    assert d.as_dict() == {
        "group": "web", "action": Action.SCALE_OUT, "count": 3, "cause": d.cause,
        "reason": Reason.ALERT_CRITICAL, "current": 2, "target": 5, "dry_run": False,
        "alert_expired": False, "why": "critical alert 'Apdex below 0.7 on web' (issue 4711) "
        "open for 3 min", "detail": "2 → 5, max 6",
    }


def test_a_decision_says_why_apart_from_what_it_changes():
    """Chat says what is done itself (present/chat.py): ``why`` is the cause without it, and
    ``detail`` the capacity change; the history keeps the whole cause."""
    d = critical_alert()
    assert d.cause == "%s: adding 3 nodes (2 → 5, max 6)" % d.why
    assert "adding" not in d.why and d.detail == "2 → 5, max 6"
    repair = decide_for(make_state(in_service=1, min_size=3, desired=3))
    assert (repair.why, repair.detail) == (
        "1 node in service or starting, below the normal size of 3", "1 → 3")
    calm = decide_for(make_state(in_service=4))
    assert calm.why == "no alert" and calm.detail == "4 → 3, normal size 2"
    capped = decide_for(make_state(in_service=2, alert=make_alert()),
                        cfg=settings.PolicySettings(global_max_nodes=3))
    assert capped.count == 1 and capped.detail == "2 → 3, max 6"
    assert capped.why.endswith("; only 1 allowed by the global cap of 3 nodes")
    steady = decide_for(make_state(in_service=2))
    assert steady.why == steady.cause and steady.detail == ""


@pytest.mark.parametrize("seconds, text", [
    (0, "0 s"), (45, "45 s"), (119, "119 s"), (120, "2 min"), (7199, "119 min"),
    (7200, "2 h"), (7500, "2 h 5 min"), (-5, "0 s"),
])
def test_duration(seconds, text):
    assert words.duration(seconds) == text
