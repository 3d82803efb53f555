"""The governed wiring: every automatic path that adds or removes nodes asks the governor's
policy again at the moment its workflow plans (``governed: true``), not when it was triggered.

Run as StackStorm runs it: triggers through the pack's rules (st2harness.reactor) to its
workflows and actions, against real BIND9 and HAProxy and fake Nova, Chef and Slack
(sandbox.world).

* ``alert_received`` → ``asg_alert``: a critical alert scales out at once, but never a paused
  or dry-run group, inside the scale-out cooldown, during the backoff, or while nodes are
  already being added (the ``scale_out_now`` task's ``governed: true``).
* ``scale_in`` / ``scale_out`` / ``repair`` → ``asg_deflate`` / ``asg_expand``: the governor's
  dispatch waits in st2's queue; when what it decided no longer holds by the time the
  workflow runs (an alert opened, the group was paused, an operator already added the node),
  it does nothing (each rule's ``governed: true``).

Each test that shows nothing happens has a twin that shows the same set-up does act when the
state has not changed, so "nothing happened" cannot come from a broken set-up.
"""

import time

import pytest

from support.world import ZONE, in_service, nodes, pack_env


@pytest.fixture
def env(world):
    # A backoff far longer than any test: a group that backs off stays backing off.
    config = world.config(governor={"backoff_initial": 3600, "backoff_max": 7200})
    env = pack_env(world, config=config, reactor=True)
    env.governor = env.reactor.sensor("GovernorSensor")
    env.governor.setup()
    return env


# -- helpers -----------------------------------------------------------------------------------


def run(env, ref, **params):
    result = env.runner.run("autoscale." + ref, **params)
    assert result.status == "succeeded", (ref, result.errors, result.output)
    return result


def create(env, **params):
    """web: min 1 (one node in service), max 6, expand_by 2, no cooldowns unless given."""
    params.setdefault("min", 1)
    params.setdefault("max", 6)
    params.setdefault("expand_by", 2)
    params.setdefault("deflate_by", 1)
    params.setdefault("scale_out_cooldown", 0)
    params.setdefault("scale_in_cooldown", 0)
    run(env, "asg_create", name="web", domain=ZONE, **params)
    assert len(in_service(env)) == params["min"]


def pause(env):
    """`!asg pause web` (a python action)."""
    done = env.loader.action("asg_pause").run(asg="web")
    assert done.ok, done
    assert env.store.load_group("web").group.paused


def vms(env):
    return sorted(server["name"] for server in env.world.inventory().servers
                  if not server["deleting"])


def kinds(env):
    return [event.kind for event in env.store.history("web", limit=0)]


def alert(env, state="open", severity="critical", issue_id="issue-1"):
    """An autoscale.alert trigger, as the webhook sensor dispatches it, handled at once."""
    payload = {"asg": "web", "state": state, "severity": severity, "issue_id": issue_id,
               "title": "Error rate", "entities": [], "policy": "", "condition": "",
               "url": "", "family": "workflows", "received_at": time.time()}
    executed = env.reactor.dispatch("autoscale.alert", payload)
    assert executed is not None, env.reactor.dropped
    [(match, result)] = executed
    assert match.rule == "autoscale.alert_received"
    assert result.status == "succeeded", (result.errors, result.output)
    return result.output


def governor_dispatches(env, trigger):
    """One governor tick; its one dispatch stays queued (st2 has not run the rule yet)."""
    report = env.governor.governor.tick(time.time())
    assert [d.trigger for d in report.dispatched] == ["autoscale." + trigger], report
    assert env.reactor.pending == 1


def st2_runs_the_queue(env, rule):
    executed = env.reactor.drain()
    assert [match.rule for match, _ in executed] == ["autoscale." + rule]
    [(_, result)] = executed
    assert result.status == "succeeded", (result.errors, result.output)
    return result.output


def assert_unchanged(env, before_nodes, before_vms):
    assert sorted(nodes(env)) == before_nodes
    assert vms(env) == before_vms
    assert set(env.world.inventory().haproxy["web"]) == set(in_service(env))


# -- asg_alert: a critical alert's immediate scale-out ------------------------------------------


def test_a_critical_alert_scales_out_at_once(env):
    create(env)
    output = alert(env)
    assert output["level"] == "critical"
    assert output["scaled"]["planned"] == 2
    assert len(in_service(env)) == 3 and len(vms(env)) == 3
    assert kinds(env).count("scale_out") == 1


def _held_alert(env, fragment):
    """A critical alert on the group as it is now: recorded, but no node added."""
    before_nodes, before_vms = sorted(nodes(env)), vms(env)
    scale_outs = kinds(env).count("scale_out")
    output = alert(env, issue_id="issue-held")
    assert output["level"] == "critical"
    assert env.store.load_group("web").alert.level == "critical"
    assert output["scaled"]["planned"] == 0, output
    assert fragment in output["scaled"]["cause"], output["scaled"]["cause"]
    assert_unchanged(env, before_nodes, before_vms)
    assert kinds(env).count("scale_out") == scale_outs


def test_a_critical_alert_adds_nothing_to_a_paused_group(env):
    create(env)
    pause(env)
    _held_alert(env, "paused")


def test_a_critical_alert_adds_nothing_to_a_dry_run_group(env):
    create(env, dry_run=True)
    _held_alert(env, "dry run")


def test_a_second_critical_alert_inside_the_scale_out_cooldown_adds_nothing(env):
    create(env, scale_out_cooldown=3600)
    first = alert(env, issue_id="issue-first")
    assert first["scaled"]["planned"] == 2 and len(in_service(env)) == 3
    _held_alert(env, "scale-out cooldown")


def test_a_critical_alert_adds_nothing_while_the_group_backs_off(env):
    create(env)
    with env.world.failure("nova.create"):
        for _ in range(3):  # the World's governor.failure_threshold
            failed = env.runner.run("autoscale.asg_add_node", asg="web")
            assert failed.status == "failed"
    assert env.store.load_group("web").scaling.consecutive_failures == 3
    _held_alert(env, "failed in a row")


def test_a_critical_alert_adds_nothing_while_nodes_are_being_added(env):
    create(env)
    # An `!asg node add` that st2 is still running: its node is booting (provisioning).
    started = env.runner.run("autoscale.asg_add_node", asg="web", stop_after="boot_vm")
    assert started.abandoned
    [booting] = [name for name, node in nodes(env).items() if node.pending]
    _held_alert(env, "being added")
    assert nodes(env)[booting].pending


# -- the governor's dispatches, re-checked when st2 runs them ---------------------------------


def _above_normal(env, **params):
    """web at its normal size of 1, then 3 in service by hand, no alert: time to scale in."""
    create(env, **params)
    run(env, "asg_expand", asg="web", count=2)
    assert len(in_service(env)) == 3


def test_a_queued_scale_in_removes_a_node(env):
    _above_normal(env)
    governor_dispatches(env, "scale_in")
    output = st2_runs_the_queue(env, "scale_in")
    assert output["planned"] == 1 and len(in_service(env)) == 2 and len(vms(env)) == 2


def test_a_queued_scale_in_removes_nothing_once_an_alert_opened(env):
    _above_normal(env)
    governor_dispatches(env, "scale_in")
    # Before st2 gets to the scale-in, New Relic opens an issue (a warning: nothing is added
    # at once, so only the queued scale-in can change the group).
    assert alert(env, severity="warning")["level"] == "warning"
    before_nodes, before_vms = sorted(nodes(env)), vms(env)
    output = st2_runs_the_queue(env, "scale_in")
    assert output["planned"] == 0, output
    assert "warning alert" in output["cause"], output["cause"]
    assert_unchanged(env, before_nodes, before_vms)
    assert "scale_in" not in kinds(env)


def test_a_queued_scale_in_removes_nothing_from_a_group_paused_meanwhile(env):
    _above_normal(env)
    governor_dispatches(env, "scale_in")
    pause(env)
    before_nodes, before_vms = sorted(nodes(env)), vms(env)
    output = st2_runs_the_queue(env, "scale_in")
    assert output["planned"] == 0 and "paused" in output["cause"], output
    assert_unchanged(env, before_nodes, before_vms)
    assert "scale_in" not in kinds(env)


def _warning(env, **params):
    """web at 1 node with a warning open: the governor wants one more."""
    create(env, **params)
    assert alert(env, severity="warning")["scaled"] is None  # a warning waits for the governor


def test_a_queued_scale_out_adds_a_node(env):
    _warning(env)
    governor_dispatches(env, "scale_out")
    output = st2_runs_the_queue(env, "scale_out")
    assert output["planned"] == 1 and len(in_service(env)) == 2 and len(vms(env)) == 2


def test_a_queued_scale_out_adds_nothing_to_a_group_paused_meanwhile(env):
    _warning(env)
    governor_dispatches(env, "scale_out")
    pause(env)
    before_nodes, before_vms = sorted(nodes(env)), vms(env)
    output = st2_runs_the_queue(env, "scale_out")
    assert output["planned"] == 0 and "paused" in output["cause"], output
    assert_unchanged(env, before_nodes, before_vms)


def test_a_queued_scale_out_adds_nothing_once_the_alert_closed(env):
    _warning(env)
    governor_dispatches(env, "scale_out")
    assert alert(env, state="closed", severity="warning")["level"] == "none"
    before_nodes, before_vms = sorted(nodes(env)), vms(env)
    output = st2_runs_the_queue(env, "scale_out")
    assert output["planned"] == 0 and "no alert" in output["cause"], output
    assert_unchanged(env, before_nodes, before_vms)


def test_a_queued_scale_out_adds_nothing_after_the_alerts_own_scale_out(env):
    _warning(env, scale_out_cooldown=3600)
    governor_dispatches(env, "scale_out")
    # The issue turns critical: asg_alert scales out at once, before st2 runs the queue.
    assert alert(env, severity="critical")["scaled"]["planned"] == 2
    before_nodes, before_vms = sorted(nodes(env)), vms(env)
    output = st2_runs_the_queue(env, "scale_out")
    assert output["planned"] == 0 and "scale-out cooldown" in output["cause"], output
    assert_unchanged(env, before_nodes, before_vms)
    assert len(in_service(env)) == 3


def test_a_queued_scale_out_adds_nothing_to_a_group_at_max_meanwhile(env):
    _warning(env, max=3)
    governor_dispatches(env, "scale_out")
    run(env, "asg_expand", asg="web", count=2)  # an operator's `!asg expand`
    before_nodes, before_vms = sorted(nodes(env)), vms(env)
    output = st2_runs_the_queue(env, "scale_out")
    assert output["planned"] == 0 and "maximum" in output["cause"], output
    assert_unchanged(env, before_nodes, before_vms)


def _below_normal(env):
    """web at a normal size of 2 loses a node: the governor wants it back."""
    create(env, min=2)
    run(env, "asg_remove_node", asg="web", name=in_service(env)[0])
    assert len(in_service(env)) == 1


def test_a_queued_repair_adds_the_missing_node(env):
    _below_normal(env)
    governor_dispatches(env, "repair")
    output = st2_runs_the_queue(env, "repair")
    assert output["planned"] == 1 and len(in_service(env)) == 2 and len(vms(env)) == 2


def test_a_queued_repair_adds_nothing_once_an_operator_added_the_node(env):
    _below_normal(env)
    governor_dispatches(env, "repair")
    run(env, "asg_add_node", asg="web")  # `!asg node add` got there first
    before_nodes, before_vms = sorted(nodes(env)), vms(env)
    output = st2_runs_the_queue(env, "repair")
    assert output["planned"] == 0 and "normal size" in output["cause"], output
    assert_unchanged(env, before_nodes, before_vms)
    assert len(in_service(env)) == 2


def test_a_queued_repair_adds_nothing_to_a_group_paused_meanwhile(env):
    _below_normal(env)
    governor_dispatches(env, "repair")
    pause(env)
    before_nodes, before_vms = sorted(nodes(env)), vms(env)
    output = st2_runs_the_queue(env, "repair")
    assert output["planned"] == 0 and "paused" in output["cause"], output
    assert_unchanged(env, before_nodes, before_vms)


# -- what the channel hears --------------------------------------------------------------------


def test_a_close_for_an_issue_never_seen_open_is_not_announced_while_another_is_open(env):
    create(env)
    assert alert(env, severity="warning", issue_id="issue-open")["level"] == "warning"
    heard = len(env.world.slack.messages)
    output = alert(env, state="closed", severity="warning", issue_id="issue-never-seen")
    assert output["level"] == "warning" and not output["changed"]
    assert env.world.slack.messages[heard:] == []
    assert env.store.load_group("web").alert.level == "warning"
    # The open issue's own close does end the alert, and says so.
    assert alert(env, state="closed", severity="warning", issue_id="issue-open")["level"] == \
        "none"
    said = " ".join(m.text for m in env.world.slack.messages[heard:])
    assert "issue-open" in said and "closed" in said, said
