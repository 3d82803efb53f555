"""The whole event pipeline, as StackStorm would run it: New Relic POSTs to the pack's webhook
sensor (real HTTP), the sensor's dispatches go through the pack's rules (st2harness.reactor:
st2's criteria and parameter rendering) to its workflows (orquesta's WorkflowConductor) and
actions, against real BIND9 and HAProxy and fake Nova, Chef and Slack (sandbox.world); the
governor sensor ticks on the real clock, with cooldowns of seconds.

critical alert → immediate scale-out → governor ticks add more after the cooldown, never past
max → close → scale-in after its cooldown down to the normal size → nothing left in flight.
"""

import copy
import json
import os
import time
import urllib.request

import pytest

from support.paths import ROOT
from support.waiting import wait_until
from support.world import COOLDOWN, ZONE, create_web, in_service, nodes, succeeded

FIXTURES = os.path.join(ROOT, "tests", "fixtures", "newrelic")
# The sandbox World of this module (tests/e2e/conftest.py).
WORLD = {"drain_timeout": 1}


def fixture(name):
    with open(os.path.join(FIXTURES, name), encoding="utf-8") as handle:
        return json.load(handle)


def post(env, document):
    request = urllib.request.Request(
        env.url, data=json.dumps(document).encode("utf-8"), method="POST",
        headers={"Content-Type": "application/json", "Authorization": "Bearer " + env.token})
    with urllib.request.urlopen(request, timeout=10) as response:
        return response.status, json.loads(response.read().decode("utf-8") or "null")


def issue(state, priority="CRITICAL", issue_id="e2e-1"):
    document = fixture("workflows_activated.json")
    document.update(id=issue_id, state=state, priority=priority,
                    title="Checkout error rate above 5%")
    return document


def decision(env, report=None):
    """The governor's decision for web: from ``report``, or from a look now that dispatches
    nothing (dispatches are queued, and dropped here unless drained)."""
    report = report or env.governor.governor.tick(time.time())
    [found] = [d for d in report.decisions if d.group == "web"]
    return found


def tick(env):
    env.governor.poll()
    done = env.reactor.drain()
    succeeded(done)
    assert len(nodes(env)) <= 4, "above max"
    return done


def test_alert_to_scale_out_to_recovery_to_scale_in(pipeline):
    env = pipeline
    create_web(env)
    creates_before = len([r for r in env.world.openstack.service_requests()
                          if r.method == "POST" and r.path.endswith("/servers")])

    # Critical alert: the rule records it and scales out at once through the policy (how
    # soon is bench/b3_reaction.py's figure).
    status, answer = post(env, issue("ACTIVATED"))
    assert status in (200, 202) and answer["groups"] == ["web"], answer
    handled = env.reactor.drain(timeout=5)
    succeeded(handled)
    assert [match.rule for match, _ in handled] == ["autoscale.alert_received"]
    creates = [r for r in env.world.openstack.service_requests()
               if r.method == "POST" and r.path.endswith("/servers")][creates_before:]
    assert len(creates) == 2
    assert len(in_service(env)) == 3
    assert env.store.load_group("web").alert.level == "critical"

    # The governor agrees there is nothing more to do inside the cooldown: no dispatch.
    assert tick(env) == []
    assert decision(env).reason == "scale_out_cooldown"
    # Once the cooldown is over, with the alert still open: one more step, capped at max (4).
    added = wait_until(lambda: tick(env), what="the governor's next scale-out")
    assert [match.rule for match, _ in added] == ["autoscale.scale_out"]
    assert len(in_service(env)) == 4
    # Nothing past max, not even once this scale-out's cooldown is over.
    later = env.governor.governor.tick(time.time() + COOLDOWN + 1)
    assert later.dispatched == [] and env.reactor.pending == 0, "nothing past max"
    assert decision(env, later).reason == "at_max"

    # A repeated delivery of the same issue and state is dropped by the sensor.
    status, answer = post(env, issue("ACTIVATED"))
    assert status == 200 and answer["status"] == "duplicate"
    assert env.reactor.drain(timeout=0.5) == []

    # Recovery: the alert ends; the group shrinks one drained node per cooldown to min.
    status, _ = post(env, issue("CLOSED"))
    succeeded(env.reactor.drain(timeout=5))
    assert env.store.load_group("web").alert.level == "none"
    assert tick(env) == [], "scale-in waits for its cooldown after the alert ends"
    def at_normal_size():
        tick(env)
        return len(nodes(env)) == 1

    wait_until(at_normal_size, timeout=120, interval=0.5,
               what="the scale-in down to the normal size")
    assert len(in_service(env)) == 1 and len(nodes(env)) == 1

    history = env.store.history("web", limit=0)
    scale_ins = [event.at for event in history if event.kind == "scale_in"]
    assert len(scale_ins) == 3
    assert all(b - a >= COOLDOWN for a, b in zip(scale_ins, scale_ins[1:]))
    assert tick(env) == [] and env.reactor.pending == 0
    inventory = env.world.inventory()
    assert len([s for s in inventory.servers if not s["deleting"]]) == 1
    assert set(inventory.haproxy["web"]) == set(in_service(env))
    transcript = env.world.slack.transcript()
    assert ":rotating_light: *web*: critical alert 'Checkout error rate above 5%' (issue " \
        "e2e-1) opened" in transcript
    assert ":large_green_circle: *web*: alert 'Checkout error rate above 5%' (issue e2e-1) " \
        "closed" in transcript


def test_a_warning_waits_for_the_governor_and_an_unroutable_alert_dispatches_nothing(pipeline):
    env = pipeline
    create_web(env)
    status, _ = post(env, issue("ACTIVATED", priority="HIGH", issue_id="warn-1"))
    succeeded(env.reactor.drain(timeout=5))
    assert env.store.load_group("web").alert.level == "warning"
    assert len(nodes(env)) == 1, "a warning alone adds nothing until the governor looks"
    added = tick(env)
    assert [match.rule for match, _ in added] == ["autoscale.scale_out"]
    assert len(in_service(env)) == 2

    document = issue("ACTIVATED", issue_id="nobody")
    request = urllib.request.Request(
        env.url.replace("?asg=web", ""), data=json.dumps(document).encode("utf-8"),
        method="POST", headers={"Content-Type": "application/json",
                                "Authorization": "Bearer " + env.token})
    with urllib.request.urlopen(request, timeout=10) as response:
        assert response.status == 202
    assert env.reactor.drain(timeout=0.5) == []


def test_the_same_alert_through_st2s_own_webhook(pipeline):
    env = pipeline
    create_web(env)
    document = copy.deepcopy(issue("ACTIVATED", issue_id="st2-1"))
    document["asg"] = "web"
    response = env.reactor.post_webhook("newrelic", document)
    assert response.status == 202
    succeeded(response.results)
    assert env.store.load_group("web").alert.level == "critical"
    assert len(in_service(env)) == 3
    closed = env.reactor.post_webhook("newrelic", dict(document, state="CLOSED"))
    succeeded(closed.results)
    assert env.store.load_group("web").alert.level == "none"
    bad = env.reactor.post_webhook("newrelic", {"hello": "world"})
    assert [result.status for _, result in bad.results] == ["failed"]
    assert "not a New Relic alert" in bad.results[0][1].output["error"]


@pytest.mark.parametrize("pipeline", [{"orphan_scan_interval": 1, "orphan_grace": 5}],
                         indirect=True)
def test_an_orphan_vm_is_reported_then_cleaned_up_with_everything_named_after_it(pipeline):
    """A VM tagged for the group with no node record (a workflow that died after booting it,
    and after registering it in DNS and HAProxy): reported at once, removed after the grace
    period with its DNS record, HAProxy server and Chef node."""
    env = pipeline
    create_web(env)
    orphan = "web-0a0b0c"
    group = env.store.load_group("web").group
    booted = env.loader.action("vm_create").run(
        group="web", node=orphan, flavor=group.flavor, image=group.image,
        network=group.network)
    assert booted.ok, booted
    assert env.loader.action("dns_add_record").run(
        name=orphan, domain=ZONE, address=booted.result["address"]).ok
    assert env.loader.action("lb_add_node").run(
        backend="web", node=orphan, address=booted.result["address"],
        port=booted.result.get("port")).ok

    before = env.world.inventory()
    assert orphan in before.haproxy["web"] and orphan in before.chef_nodes
    now = time.time()
    first = env.governor.governor.tick(now)
    assert [o.node for o in first.orphans] == [orphan]
    assert env.reactor.drain() == [], "not removed before the grace period"
    assert orphan in env.world.slack.transcript()
    assert [e.kind for e in env.store.history("web")].count("orphan") == 1

    later = env.governor.governor.tick(now + 6)
    assert [d.trigger for d in later.dispatched] == ["autoscale.orphan"]
    done = env.reactor.drain()
    succeeded(done)
    assert [match.rule for match, _ in done] == ["autoscale.orphan"]
    inventory = env.world.inventory()
    live = [s["name"] for s in inventory.servers if not s["deleting"]]
    assert orphan not in live and orphan not in inventory.haproxy["web"]
    assert not any(fqdn.startswith(orphan + ".") for fqdn in inventory.dns)
    assert orphan not in inventory.chef_nodes and orphan not in inventory.chef_clients
    assert orphan not in nodes(env) and len(in_service(env)) == 1
    assert env.governor.governor.tick(now + 7).dispatched == []


def test_an_alert_for_a_group_deleted_meanwhile_fails_with_the_reason(pipeline):
    env = pipeline
    payload = {"asg": "ghost", "state": "open", "severity": "critical", "issue_id": "9",
               "title": "", "entities": [], "policy": "", "condition": "", "url": "",
               "family": "workflows", "received_at": time.time()}
    (executed,) = env.reactor.dispatch("autoscale.alert", payload)
    match, result = executed
    assert match.rule == "autoscale.alert_received" and result.status == "failed"
    assert "no autoscaling group named 'ghost'" in result.output["error"]
    assert env.datastore.keys() == ["ssh_pub_key"]


def test_a_node_whose_workflow_died_is_removed(pipeline):
    """st2 lost an `!asg node add` half-way (its execution abandoned right after the VM
    booted): the node stays 'provisioning' with a VM and holds every scale-out. Past
    governor.stuck_after the governor removes it with its VM and its record."""
    env = pipeline
    create_web(env)
    died = env.reactor.runner.run("autoscale.asg_add_node", asg="web", stop_after="boot_vm")
    assert died.abandoned
    (stuck,) = [name for name, node in nodes(env).items() if node.pending]
    assert stuck in [s["name"] for s in env.world.inventory().servers if not s["deleting"]]
    assert env.governor.governor.tick(time.time()).dispatched == [], "not before stuck_after"

    later = time.time() + 601  # the world's governor.stuck_after is 600 s
    report = env.governor.governor.tick(later)
    assert [d.trigger for d in report.dispatched] == ["autoscale.stuck_node"]
    succeeded(env.reactor.drain())
    assert stuck not in nodes(env) and len(in_service(env)) == 1
    inventory = env.world.inventory()
    assert [s["name"] for s in inventory.servers if not s["deleting"]] == in_service(env)
    assert env.governor.governor.tick(later + 1).dispatched == []
