"""Node health in the governor's policy (issue 15 part 1): the unhealthy rule (domain/health.py)
and the replacement decisions (policy.py): capacity first within max_size plus the surge, the
circuit breaker, protected, paused and dry-run groups; without health nothing changes."""

import pytest

from autoscale_core.domain import model, policy, settings
from autoscale_core.domain.health import NodeHealth, VmStatus

Action = policy.Action
Reason = policy.Reason
HealthReason = policy.HealthReason
NodeState = model.NodeState

NOW = 1_700_000_000.0
CFG = settings.PolicySettings()  # unhealthy after 120 s down, startup grace 300 s, 45 %, surge 1
DOWN_500 = NodeHealth(lb_up=False, last_good_at=NOW - 130, check="HTTP 500")


def make_state(in_service=3, pending=(), protected=0, health=None, replacements=None,
               alert=None, **spec):
    spec.setdefault("min_size", 1)
    spec.setdefault("max_size", 6)
    spec.setdefault("desired", in_service)
    group = model.Group.create(name="web", domain="example.com", **spec)
    nodes = {}
    states = [NodeState.IN_SERVICE] * in_service + list(pending)
    for i, state in enumerate(states):
        node = model.Node(name="web-%06d" % i, group="web", state=state,
                          created_at=NOW - 10000 + i, protected=i < protected)
        nodes[node.name] = node
    return model.GroupState(group=group, nodes=nodes, alert=alert or model.AlertState(),
                            health=dict(health or {}), replacements=dict(replacements or {}))


def decide(state, cfg=CFG, now=NOW):
    return policy.decide({"web": state}, now, cfg)[0]


def sick(*indexes, health=DOWN_500):
    return {"web-%06d" % i: health for i in indexes}


# --- the rule ------------------------------------------------------------------------------

def test_down_longer_than_the_grace_is_replaced_capacity_first():
    decision = decide(make_state(health=sick(1)))
    assert (decision.action, decision.count, decision.reason) == \
        (Action.REPLACE, 1, HealthReason.REPLACE)
    assert decision.replaces == ("web-000001",) and decision.remove == ()
    assert (decision.current, decision.target) == (3, 4)
    assert decision.cause.startswith(
        "web-000001 failed its health check for 2 min (HTTP 500): replacing it")
    assert decision.unhealthy == (("web-000001",
                                   "failed its health check for 2 min (HTTP 500)"),)
    assert decision.acts


@pytest.mark.parametrize("down_for, replaced", [(119, False), (120, False), (121, True)])
def test_the_grace_counts_from_the_last_good_check(down_for, replaced):
    health = NodeHealth(lb_up=False, last_good_at=NOW - down_for, check="HTTP 500")
    decision = decide(make_state(health=sick(0, health=health)))
    assert (decision.action == Action.REPLACE) is replaced, decision
    if not replaced:
        assert decision.reason == Reason.STEADY


@pytest.mark.parametrize("in_service_for, replaced", [(100, False), (299, False), (301, True)])
def test_never_during_its_first_minutes_in_service(in_service_for, replaced):
    state = make_state(health=sick(2, health=NodeHealth(lb_up=False, check="L4 timeout")))
    node = state.nodes["web-000002"]
    state.nodes[node.name] = model.Node(name=node.name, group="web", state=NodeState.IN_SERVICE,
                                        created_at=NOW - 900, updated_at=NOW - in_service_for)
    decision = decide(state)
    assert (decision.action == Action.REPLACE) is replaced, decision


@pytest.mark.parametrize("status", [VmStatus.ERROR, VmStatus.SHUTOFF, VmStatus.GONE])
def test_a_vm_in_error_shutoff_or_gone_is_replaced_at_once(status):
    decision = decide(make_state(health=sick(0, health=NodeHealth(lb_up=True, vm_status=status))))
    assert (decision.action, decision.replaces) == (Action.REPLACE, ("web-000000",))
    assert "web-000000 VM is %s: replacing it" % status in decision.cause


@pytest.mark.parametrize("health", [NodeHealth(), NodeHealth(lb_up=True),
                                    NodeHealth(vm_status=VmStatus.ACTIVE),
                                    NodeHealth(lb_up=None, vm_status=VmStatus.UNKNOWN)])
def test_unknown_or_good_health_changes_nothing(health):
    plain = make_state()
    assert decide(make_state(health=sick(0, 1, 2, health=health))) == decide(plain)


def test_only_nodes_in_service_are_judged():
    state = make_state(in_service=2, pending=[NodeState.CONFIGURING],
                       health=sick(2, health=NodeHealth(vm_status=VmStatus.ERROR)))
    assert decide(state).action != Action.REPLACE


# --- capacity first, then removal -------------------------------------------------------------

def test_waits_for_its_replacement_then_removes_it():
    adding = make_state(in_service=3, pending=[NodeState.PROVISIONING], health=sick(1),
                        replacements={"web-000003": "web-000001"})
    decision = decide(adding)
    assert (decision.action, decision.reason) == (Action.NONE, HealthReason.WAITING)
    assert "waiting for web-000003 being added to replace it" in decision.cause

    ready = make_state(in_service=4, health=sick(1), replacements={"web-000003": "web-000001"})
    decision = decide(ready)
    assert (decision.action, decision.count, decision.reason) == \
        (Action.REPLACE, 1, HealthReason.REMOVE)
    assert decision.remove == ("web-000001",) and decision.replaces == ()
    assert (decision.current, decision.target) == (4, 3)
    assert "removing web-000001" in decision.cause


def test_a_replacement_that_failed_is_tried_again():
    state = make_state(in_service=3, pending=[NodeState.FAILED], health=sick(1),
                       replacements={"web-000003": "web-000001"})
    decision = decide(state)
    assert (decision.action, decision.replaces) == (Action.REPLACE, ("web-000001",))


def test_surge_is_at_most_one_node_above_max_size():
    at_max = make_state(in_service=5, max_size=5, health=sick(0, 1))
    decision = decide(at_max)
    assert (decision.action, decision.count, decision.target) == (Action.REPLACE, 1, 6)
    assert decision.replaces == ("web-000000",)
    assert "max 5 + 1" in decision.cause

    above = make_state(in_service=6, max_size=5, desired=5, health=sick(0))
    decision = decide(above)
    assert (decision.action, decision.reason) == (Action.NONE, HealthReason.NO_ROOM)

    roomy = make_state(in_service=5, max_size=8, health=sick(0, 1))
    assert decide(roomy).count == 2


def test_backoff_holds_the_new_node():
    state = make_state(health=sick(0))
    state.scaling = model.ScalingState(consecutive_failures=3, last_failure_at=NOW - 10)
    decision = decide(state)
    assert (decision.action, decision.reason) == (Action.NONE, Reason.BACKOFF)


def test_the_global_cap_bounds_a_replacement():
    decision = decide(make_state(health=sick(0)), settings.PolicySettings(global_max_nodes=3))
    assert (decision.action, decision.reason, decision.replaces) == \
        (Action.NONE, Reason.GLOBAL_CAP, ())


# --- the circuit breaker --------------------------------------------------------------------

@pytest.mark.parametrize("total, unhealthy, open_", [
    (10, 4, False), (20, 9, False), (20, 10, True), (10, 5, True), (2, 1, True), (3, 1, False),
])
def test_breaker_opens_above_45_percent(total, unhealthy, open_):
    state = make_state(in_service=total, max_size=30, health=sick(*range(unhealthy)))
    decision = decide(state)
    assert decision.breaker is open_
    if open_:
        assert (decision.action, decision.reason) == (Action.NONE, HealthReason.BREAKER)
        assert "more than 45 %: replacing none" in decision.cause
    else:
        assert decision.action == Action.REPLACE


def test_breaker_share_is_a_setting():
    cfg = settings.PolicySettings(max_unhealthy_percent=60)
    assert not decide(make_state(in_service=10, max_size=10, health=sick(*range(5))), cfg).breaker


def test_breaker_lets_an_alert_scale_out_but_holds_a_scale_in():
    alert = model.AlertState(level=model.AlertLevel.CRITICAL, issue_id="1",
                             opened_at=NOW - 60, updated_at=NOW - 60)
    out = decide(make_state(in_service=2, alert=alert, health=sick(0, 1)))
    assert (out.action, out.breaker) == (Action.SCALE_OUT, True)

    above_normal = make_state(in_service=4, desired=2, health=sick(0, 1, 2))
    assert decide(make_state(in_service=4, desired=2)).action == Action.SCALE_IN
    held = decide(above_normal)
    assert (held.action, held.reason, held.breaker) == (Action.NONE, HealthReason.BREAKER, True)


# --- protected, paused, dry run, holds ------------------------------------------------------

def test_a_protected_node_is_never_replaced_but_named():
    state = make_state(protected=1, health=sick(0))
    decision = decide(state)
    assert (decision.action, decision.reason) == (Action.NONE, Reason.STEADY)
    assert "web-000000 failed its health check for 2 min (HTTP 500) but is protected: " \
        "not replacing it" in decision.cause
    assert decision.unhealthy


def test_paused_group_is_left_alone():
    decision = decide(make_state(paused=True, health=sick(0)))
    assert (decision.action, decision.reason) == (Action.NONE, Reason.PAUSED)


def test_dry_run_group_says_what_it_would_do():
    decision = decide(make_state(dry_run=True, health=sick(0)))
    assert (decision.action, decision.dry_run) == (Action.REPLACE, True)
    assert decision.cause.startswith("dry run, nothing done: web-000000 failed")


def test_repair_and_unreadable_records_come_first():
    below = make_state(in_service=2, desired=3, health=sick(0))
    assert decide(below).reason == Reason.REPAIR
    unreadable = make_state(health=sick(0))
    unreadable.unreadable = {"autoscale.asg.web.alert": "not JSON"}
    assert decide(unreadable).reason == Reason.UNREADABLE


def test_an_alert_scale_out_comes_before_a_replacement():
    alert = model.AlertState(level=model.AlertLevel.CRITICAL, issue_id="1",
                             opened_at=NOW - 60, updated_at=NOW - 60)
    decision = decide(make_state(in_service=4, alert=alert, health=sick(0)))
    assert decision.action == Action.SCALE_OUT
    assert "replacing web-000000 after this scale-out" in decision.cause


# --- without health, nothing changes ------------------------------------------------------------

def test_without_health_the_decision_and_its_dict_are_as_before():
    plain = decide(make_state(in_service=4, desired=2))
    assert plain.unhealthy == () and not plain.breaker
    assert set(plain.as_dict()) == {"group", "action", "count", "cause", "reason", "current",
                                    "target", "dry_run", "alert_expired", "why", "detail"}
    assert decide(make_state(in_service=4, desired=2, health={})) == plain
    assert set(decide(make_state(health=sick(0))).as_dict()) >= {"replaces", "unhealthy"}


def test_decide_one_passes_health_through():
    state = make_state(health=sick(0))
    assert policy.decide_one(state, [], NOW, CFG).action == Action.REPLACE
