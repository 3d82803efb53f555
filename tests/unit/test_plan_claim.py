"""asg_plan decides and claims in one step: governed plans follow the governor's policy at the
moment they run, and every plan that changes nodes records its claim (reserved node records,
the scale-out or scale-in) before the next plan of the group can read it."""

import pytest

from autoscale_core.domain.model import AlertState, NodeState, ScalingState
from autoscale_core.services import planning
from support.pack import Pack

NOW = 1_700_000_000.0
IN_SERVICE = NodeState.IN_SERVICE


def in_service(pack, group, count, start=0):
    for index in range(count):
        pack.node(group, "%s-%06d" % (group, start + index), IN_SERVICE, NOW - 3600 + index)


def critical(pack, group, opened=NOW - 60):
    pack.store.save_alert(group, AlertState(level="critical", issue_id="7", title="CPU",
                                            opened_at=opened, updated_at=opened))


def plan(pack, direction, governed=True, at=NOW, **extra):
    return planning.plan_change(pack.store, "web", direction, config=pack.loader.config,
                                 governed=governed, now=at, **extra)


@pytest.fixture
def web():
    pack = Pack()
    pack.group("web", min=2, max=6, expand_by=2, deflate_by=1, scale_out_cooldown=300,
               scale_in_cooldown=600)
    in_service(pack, "web", 2)
    return pack


def test_a_governed_scale_out_reserves_nodes_and_starts_the_cooldown(web):
    critical(web, "web")
    first = plan(web, "out", cause="New Relic critical alert")
    assert first["count"] == 2 and first["reason"] == "critical_alert" and first["recorded"]
    state = web.store.load_group("web")
    reserved = sorted(n for n, node in state.nodes.items() if node.state == "provisioning")
    assert reserved == sorted(first["nodes"]) and len(reserved) == 2
    assert state.scaling.last_scale_out_at == NOW
    history = web.store.history("web")
    assert history[-1].kind == "scale_out" and history[-1].count == 2
    assert history[-1].cause.startswith("New Relic critical alert: critical alert 'CPU'")
    # The same need, asked again (a governor tick racing the alert): nothing more.
    second = plan(web, "out", at=NOW + 1)
    assert second["count"] == 0 and second["nodes"] == [] and not second["recorded"]
    assert "being added" in second["cause"]
    assert len(web.store.load_group("web").nodes) == 4


def test_a_governed_plan_after_the_cooldown_adds_again_but_never_past_max(web):
    critical(web, "web")
    plan(web, "out")
    for name, node in web.store.load_group("web").nodes.items():
        if node.state == "provisioning":
            web.node("web", name, IN_SERVICE, NOW)
    assert plan(web, "out", at=NOW + 299)["reason"] == "scale_out_cooldown"
    later = plan(web, "out", at=NOW + 301)
    assert later["count"] == 2 and later["target"] == 6
    for name, node in web.store.load_group("web").nodes.items():
        if node.state == "provisioning":
            web.node("web", name, IN_SERVICE, NOW + 301)
    at_max = plan(web, "out", at=NOW + 900)
    assert at_max["count"] == 0 and at_max["reason"] == "at_max"
    assert len(web.store.load_group("web").nodes) == 6


def test_reservations_count_against_max_for_plans_by_hand_too(web):
    critical(web, "web")
    plan(web, "out")                                   # 2 in service + 2 reserved
    manual = plan(web, "out", governed=False, count=5)
    assert manual["count"] == 2 and len(manual["nodes"]) == 2
    assert plan(web, "out", governed=False, count=1)["count"] == 0
    assert len(web.store.load_group("web").nodes) == 6


def test_without_an_alert_a_governed_scale_out_does_nothing_and_writes_nothing(web):
    before = web.datastore.keys()
    result = plan(web, "out")
    assert result["count"] == 0 and result["reason"] == "steady"
    assert "the policy now says" in result["cause"]
    assert web.datastore.keys() == before


def test_a_governed_scale_in_is_recorded_and_held_by_its_cooldown(web):
    in_service(web, "web", 2, start=10)
    web.store.save_alert("web", AlertState(ended_at=NOW - 700))
    web.store.save_scaling("web", ScalingState(last_scale_out_at=NOW - 3600))
    first = plan(web, "in", cause="governor")
    assert first["count"] == 1 and first["reason"] == "recovered" and first["nodes"] == []
    assert web.store.load_group("web").scaling.last_scale_in_at == NOW
    again = plan(web, "in", at=NOW + 30)
    assert again["count"] == 0 and again["reason"] == "scale_in_cooldown"


def test_a_governed_plan_does_not_act_against_the_policy_direction(web):
    in_service(web, "web", 2, start=10)
    web.store.save_alert("web", AlertState(ended_at=NOW - 700))
    result = plan(web, "out")
    assert result["count"] == 0 and "now wants scale in" in result["cause"]
    critical(web, "web")
    assert plan(web, "in")["count"] == 0


def test_a_dry_run_group_is_never_changed_by_a_governed_plan():
    pack = Pack()
    pack.group("web", min=1, max=4, dry_run=True)
    critical(pack, "web")
    before = pack.datastore.keys()
    result = plan(pack, "out")
    assert result["count"] == 0 and "dry run" in result["cause"]
    assert pack.datastore.keys() == before


def test_node_start_takes_over_a_reservation_and_refuses_anything_else(web):
    critical(web, "web")
    name = plan(web, "out")["nodes"][0]
    started = web.ok("node_start", asg="web", node=name)
    assert started["node"] == name and started["state"] == "provisioning"
    assert "already in service" in web.refused("node_start", asg="web", node="web-000000")
    assert "no node web-abcdef reserved" in web.refused("node_start", asg="web",
                                                        node="web-abcdef")


def test_asg_plan_action_passes_cause_and_governed(web):
    critical(web, "web", opened=0.0)  # opened long ago; the action uses the real clock
    web.store.save_alert("web", AlertState(level="critical", issue_id="7", title="CPU",
                                           opened_at=NOW * 2, updated_at=NOW * 2))
    result = web.ok("asg_plan", asg="web", direction="out", governed=True, cause="test")
    assert result["governed"] is True and result["count"] == 2
    assert web.store.history("web")[-1].cause.startswith("test: ")


def test_node_adopt_records_an_orphan_as_a_failed_node(web):
    adopted = web.ok("node_adopt", asg="web", node="web-0a0b0c", server_id="srv-9",
                     cause="orphan VM found by the governor")
    assert adopted["adopted"] and adopted["state"] == "failed"
    node = web.store.load_group("web").nodes["web-0a0b0c"]
    assert (node.state, node.server_id) == ("failed", "srv-9")
    again = web.ok("node_adopt", asg="web", node="web-0a0b0c", server_id="srv-9")
    assert not again["adopted"] and again["group_exists"] and "not an orphan" in again["why"]
    gone = web.ok("node_adopt", asg="db", node="db-0a0b0c", server_id="srv-8")
    assert not gone["adopted"] and not gone["group_exists"]
    before = web.datastore.keys()
    assert "Web_1" in web.refused("node_adopt", asg="web", node="Web_1", server_id="srv-1")
    assert web.datastore.keys() == before


def test_register_takes_alert_matchers():
    pack = Pack()
    spec = pack.group("web", match_entities=["web-*"], match_policies=["Prod", "Staging"])["group"]
    assert spec["alert_matchers"] == {"entities": ["web-*"], "policies": ["Prod", "Staging"]}
    again = pack.group("web", match_entities=["web-*"], match_policies=["Prod", "Staging"])
    assert again["existed"] is True
    assert "alert_matchers" in pack.refused("asg_register", name="web", domain="example.com",
                                            max=10, match_entities=["api-*"])
