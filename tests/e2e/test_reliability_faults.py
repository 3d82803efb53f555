"""Reliability, faults (issue 7): every failure point the sandbox can inject, at every step of
adding a node (asg_add_node) and of removing one (asg_remove_node), run by orquesta's
WorkflowConductor against real BIND9 and HAProxy and fake Nova, Chef and Slack.

After each run, whatever its outcome:

* nothing the pack made exists without a record (no orphan VM, DNS record, HAProxy server,
  Chef node or client), and every record matches what exists (``assert_matches_reality``);
* a failure is told: its cause is in the group's history (``Store.history``) and in chat
  (``world.slack.transcript()``) — except when Slack is what fails: then the workflow must
  succeed all the same (chat is never worth failing a scaling workflow for);
* once the fault is healed, the group can be brought back to an empty, consistent state.

The matrix is every name in ``sandbox.world.FAILURES`` (BIND stopped is ``dns``, BIND frozen is
``dns.hang``, the HAProxy Runtime API socket gone is ``haproxy``, Slack 500 is ``slack``) plus
``nova.timeout``: a server that stays in BUILD past the config's boot_timeout, made through
World's own FakeOpenStack (its ``boot_delay``), which World.fail has no name for.
test_workflows.py checks the steps that fail; this file checks the full matrix with the
history, chat and consistency assertions after each cell.
"""

import contextlib
import json

import pytest

from autoscale_core.domain.model import NodeState
from sandbox.world import FAILURES
from st2harness import Datastore, PackLoader
from support.paths import ROOT
from support.world import ZONE, nodes, run

# The sandbox World of this module (tests/e2e/conftest.py).
WORLD = {"boot_timeout": 2, "converge_timeout": 1, "drain_timeout": 1}
# Failures World.fail supports, plus the ones made here through World's own objects.
EXTRA = ("nova.timeout",)
ALL_FAILURES = tuple(FAILURES) + EXTRA

# What each failure does to an add: the step that fails, and what is left of the node
# ("gone": undone and forgotten; "failed": kept, failed, because the undo could not reach the
# backend either), or None when an add never touches what fails.
ADD = {
    "nova.create": ("boot_vm", "gone"),
    "nova.active": ("boot_vm", "gone"),
    "nova.timeout": ("boot_vm", "gone"),
    "chef.converge": ("wait_for_chef", "gone"),
    "dns": ("register_dns", "failed"),
    "dns.hang": ("register_dns", "failed"),
    "haproxy": ("add_to_lb", "failed"),
    "nova.delete": None,
    "chef.delete": None,
    "slack": None,
}
# What each failure does to a removal: the step that fails (the node stays, failed), or None.
REMOVE = {
    "haproxy": "drain",
    "chef.delete": "delete_chef_node",
    "dns": "delete_dns_record",
    "dns.hang": "delete_dns_record",
    "nova.delete": "destroy_vm",
    "nova.create": None,
    "nova.active": None,
    "nova.timeout": None,
    "chef.converge": None,
    "slack": None,
}


def test_the_matrix_covers_every_failure_the_world_can_inject():
    assert set(ADD) == set(ALL_FAILURES) == set(REMOVE)


@contextlib.contextmanager
def fault(world, what):
    """World.fail for its own names; the others through World's objects."""
    if what == "nova.timeout":
        assert world.openstack is not None
        before = world.openstack.boot_delay
        world.openstack.set_boot_delay(3600.0)  # BUILD for an hour: past any boot_timeout
        try:
            yield
        finally:
            world.openstack.set_boot_delay(before)
    else:
        with world.failure(what):
            yield


def create(env, **params):
    result = run(env, "asg_create", name="web", domain=ZONE, **params)
    assert result.status == "succeeded", result.errors
    return result


def assert_matches_reality(env):
    """No orphan of any kind, and every record matches what exists: test_workflows'
    assert_consistent, plus the records' server ids and addresses against Nova, DNS and
    HAProxy, and a failed record always says why."""
    inventory = env.world.inventory()
    groups, problems = env.store.load_all()
    assert problems == []
    recorded = {name: node for state in groups.values() for name, node in state.nodes.items()}
    live = {server["name"]: server for server in inventory.servers if not server["deleting"]}
    node_dns = {fqdn.split(".", 1)[0]: addresses for fqdn, addresses in inventory.dns.items()
                if fqdn.split(".", 1)[0] not in groups}
    lb = {name: server for backend in inventory.haproxy.values()
          for name, server in backend.items()}
    for kind, names in (("VM", set(live)), ("DNS record", set(node_dns)),
                        ("HAProxy server", set(lb)),
                        ("Chef node", set(inventory.chef_nodes)),
                        ("Chef client", set(inventory.chef_clients))):
        unrecorded = names - set(recorded)
        assert not unrecorded, "%s without a record: %s" % (kind, sorted(unrecorded))
    for name, node in recorded.items():
        if node.state == NodeState.FAILED:
            assert node.cause, "failed without a cause: %s" % name
        if node.state == NodeState.IN_SERVICE:
            assert name in live and name in node_dns and name in lb, name
            assert live[name]["id"] == node.server_id, (name, node.server_id)
            assert node_dns[name] == [node.address], (name, node_dns[name], node.address)
            assert lb[name]["address"] == node.address, (name, lb[name])
            assert name in inventory.chef_nodes, name
        if node.server_id and name in live:
            assert live[name]["id"] == node.server_id, (name, node.server_id)
    assert {fqdn.split(".", 1)[0] for fqdn in inventory.dns} & set(groups) == set(groups)


def told(env, kind, node, words):
    """The cause is in the group's history and in chat, both naming the node."""
    events = [e for e in env.store.history("web", limit=0) if e.kind == kind and e.node == node]
    assert events, [(e.kind, e.node) for e in env.store.history("web", limit=0)]
    event = events[-1]
    assert event.cause, event
    assert any(word in event.cause for word in words), event.cause
    transcript = env.world.slack.transcript()
    lines = [line for line in transcript.splitlines() if node in line]
    assert lines, transcript
    assert any(word in line for line in lines for word in words), transcript
    return event


# Words one of which the cause names, per failure (what an operator would look for).
WORDS = {
    "nova.create": ("Quota", "403", "boot"),
    "nova.active": ("No valid host", "ERROR", "boot"),
    "nova.timeout": ("ACTIVE", "timeout", "timed out", "within", "boot"),
    "chef.converge": ("converge", "Chef"),
    "dns": ("DNS",),
    "dns.hang": ("DNS",),
    "haproxy": ("load balancer", "HAProxy"),
    "nova.delete": ("VM", "403"),
    "chef.delete": ("Chef",),
}


@pytest.mark.parametrize("what", ALL_FAILURES)
def test_add_node_under_each_fault(env, what):
    create(env, min=0, max=4)
    messages_before = len(env.world.slack.messages)
    with fault(env.world, what):
        result = run(env, "asg_add_node", asg="web")
    # Everything is healed: what exists is readable again (DNS too).
    assert_matches_reality(env)
    expected = ADD[what]
    if expected is None:
        assert result.status == "succeeded", result.errors
        (node,) = nodes(env).values()
        assert node.state == NodeState.IN_SERVICE
        assert env.store.history("web")[-1].kind == "node_added"
        if what == "slack":
            # Chat failed: nothing reached it, the history still has the add.
            assert len(env.world.slack.messages) == messages_before
        else:
            assert node.name in env.world.slack.transcript()
        return
    step, left = expected
    assert result.status == "failed"
    assert [r.status for r in result.records(step)] == ["failed"], result.errors
    if left == "gone":
        assert nodes(env) == {}
        assert env.store.load_group("web").scaling.consecutive_failures == 1
        names = [e.node for e in env.store.history("web", limit=0) if e.kind == "node_failed"]
        (name,) = names
    else:
        (node,) = nodes(env).values()
        assert node.state == NodeState.FAILED and "undo stopped" in node.cause
        name = node.name
    event = told(env, "node_failed", name, WORDS[what])
    assert "could not" in event.cause
    # Healed, the group empties cleanly whatever was left.
    for leftover in list(nodes(env)):
        finished = run(env, "asg_remove_node", asg="web", name=leftover)
        assert finished.status == "succeeded", finished.errors
    assert nodes(env) == {}
    assert_matches_reality(env)


@pytest.mark.parametrize("what", ALL_FAILURES)
def test_remove_node_under_each_fault(env, what):
    create(env, min=1, max=4)
    (name,) = nodes(env)
    messages_before = len(env.world.slack.messages)
    with fault(env.world, what):
        result = run(env, "asg_remove_node", asg="web", name=name)
    assert_matches_reality(env)
    step = REMOVE[what]
    if step is None:
        assert result.status == "succeeded", result.errors
        assert nodes(env) == {}
        assert env.store.history("web")[-1].kind == "node_removed"
        if what == "slack":
            assert len(env.world.slack.messages) == messages_before
        else:
            assert name in env.world.slack.transcript()
        return
    assert result.status == "failed"
    assert result.records(step)[-1].status == "failed", result.errors
    node = nodes(env)[name]
    assert node.state == NodeState.FAILED and node.cause
    event = told(env, "error", name, WORDS[what])
    assert "could not" in event.cause and name in event.cause
    finished = run(env, "asg_remove_node", asg="web", name=name)
    assert finished.status == "succeeded", finished.errors
    assert nodes(env) == {}
    assert_matches_reality(env)


@pytest.mark.parametrize("what", ["nova.delete", "chef.delete"])
def test_an_add_whose_undo_meets_a_second_fault_keeps_a_failed_record(env, what):
    """Chef never converges, and the undo then cannot delete the Chef node or the VM: the
    record stays, failed, naming both causes, and nothing is left unrecorded."""
    create(env, min=0, max=4)
    with fault(env.world, what), fault(env.world, "chef.converge"):
        result = run(env, "asg_add_node", asg="web")
    assert result.status == "failed"
    assert_matches_reality(env)
    (node,) = nodes(env).values()
    assert node.state == NodeState.FAILED and "undo stopped" in node.cause
    told(env, "node_failed", node.name, ("converge",))
    finished = run(env, "asg_remove_node", asg="web", name=node.name)
    assert finished.status == "succeeded", finished.errors
    assert nodes(env) == {}
    assert_matches_reality(env)


def test_bind_stopped_and_started_by_hand_through_the_world(env):
    """BIND stopped with World's BindServer itself (not World.fail): an add fails at DNS,
    is told, and once BIND is started again the node can be removed with nothing left."""
    create(env, min=0, max=4)
    bind = env.world.bind
    bind.down()
    try:
        assert not bind.running
        result = run(env, "asg_add_node", asg="web")
    finally:
        bind.up()
    assert result.status == "failed"
    assert [r.status for r in result.records("register_dns")] == ["failed"]
    assert_matches_reality(env)
    (node,) = nodes(env).values()
    told(env, "node_failed", node.name, ("DNS",))
    assert run(env, "asg_remove_node", asg="web", name=node.name).status == "succeeded"
    assert_matches_reality(env)


# -- actions that raise or do not import (issue 11) -------------------------------------------
#
# st2's python runner gives a task whose action raised (or whose file did not import) the
# result {"exit_code": 1, "result": "None", "stderr": <traceback>}. The failure branches must
# read that shape too, and still undo, record and announce. "raise" lets the action do its
# work first (a crash after its side effects), "import" never runs it
# (WorkflowRunner.break_action).

# Every step of an add that creates or changes something: (task, action).
ADD_STEPS = [
    ("boot_vm", "vm_create"),
    ("mark_configuring", "node_update"),
    ("wait_for_chef", "chef_wait_converged"),
    ("register_dns", "dns_add_record"),
    ("add_to_lb", "lb_add_node"),
]
# ... and of a removal.
REMOVE_STEPS = [
    ("mark_draining", "node_update"),
    ("drain", "lb_drain_node"),
    ("remove_from_lb", "lb_remove_node"),
    ("delete_chef_node", "chef_delete_node"),
    ("delete_dns_record", "dns_delete_record"),
    ("destroy_vm", "vm_destroy"),
    ("forget_node", "node_forget"),
]
# What the operator reads in the cause, per way of breaking.
BROKEN_WORDS = {"raise": ("crashed after it ran",), "import": ("No module named",)}


@contextlib.contextmanager
def broken(env, action, how):
    ref = "autoscale." + action
    env.runner.break_action(ref, how)
    try:
        yield
    finally:
        env.runner.mend_action(ref)


@pytest.mark.parametrize("how", ["raise", "import"])
@pytest.mark.parametrize("step,action", ADD_STEPS)
def test_add_node_with_an_action_that_raises_or_does_not_import(env, step, action, how):
    create(env, min=0, max=4)
    with broken(env, action, how):
        result = run(env, "asg_add_node", asg="web")
    assert result.status == "failed"
    assert result.records(step)[0].status == "failed", result.errors
    # The failure branch ran to its end: no YAQL error, the output names the cause.
    assert not [e for e in result.errors if "YaqlEvaluationException" in str(e)], result.errors
    assert result.output and any(w in result.output["error"] for w in BROKEN_WORDS[how])
    assert_matches_reality(env)
    assert nodes(env) == {}, nodes(env)
    (name,) = [e.node for e in env.store.history("web", limit=0) if e.kind == "node_failed"]
    event = told(env, "node_failed", name, BROKEN_WORDS[how])
    assert "could not" in event.cause
    assert "Traceback" not in event.cause and "\n" not in event.cause


@pytest.mark.parametrize("how", ["raise", "import"])
@pytest.mark.parametrize("step,action", REMOVE_STEPS)
def test_remove_node_with_an_action_that_raises_or_does_not_import(env, step, action, how):
    create(env, min=1, max=4)
    (name,) = nodes(env)
    with broken(env, action, how):
        result = run(env, "asg_remove_node", asg="web", name=name)
    assert result.status == "failed"
    assert result.records(step)[0].status == "failed", result.errors
    assert not [e for e in result.errors if "YaqlEvaluationException" in str(e)], result.errors
    assert result.output and any(w in result.output["error"] for w in BROKEN_WORDS[how])
    assert_matches_reality(env)
    left = nodes(env)
    if action == "node_forget" and how == "raise":
        assert left == {}  # forgotten, then the crash: nothing left to keep
    elif action == "node_update":
        # The step that records the failure is the broken action itself: the record stays as
        # it was (in service), and the history and chat still tell.
        assert left[name].state in (NodeState.IN_SERVICE, NodeState.FAILED), left[name]
    else:
        assert left[name].state == NodeState.FAILED and left[name].cause, left[name]
    event = told(env, "error", name, BROKEN_WORDS[how])
    assert "could not" in event.cause and "Traceback" not in event.cause
    # Mended, the removal finishes.
    if left:
        finished = run(env, "asg_remove_node", asg="web", name=name, force=True)
        assert finished.status == "succeeded", finished.errors
    assert nodes(env) == {}
    assert_matches_reality(env)


def _python_actions(workflow):
    """The pack's python actions a workflow's tasks call directly."""
    import yaml
    with open("%s/actions/workflows/%s.yaml" % (ROOT, workflow)) as handle:
        tasks = yaml.safe_load(handle)["tasks"]
    metadata = PackLoader(ROOT, Datastore()).action_metadata()
    found = set()
    for task in tasks.values():
        name = str(task.get("action", "")).partition(".")[2]
        if metadata.get(name, {}).get("runner_type") == "python-script":
            found.add(name)
    return sorted(found)


def _orphan(env):
    """A VM tagged for web with no node record: the input of asg_remove_orphan."""
    create(env, min=1, max=4)
    (name,) = nodes(env)
    server_id = nodes(env)[name].server_id
    assert env.runner.loader.action("node_forget").run(asg="web", node=name).ok
    return {"asg": "web", "node": name, "server_id": server_id, "cause": "test orphan"}


def _st2_webhook_body(env):
    """A New Relic issue for web, as posted to st2's own webhook."""
    create(env, min=1, max=4)
    with open("%s/tests/fixtures/newrelic/workflows_activated.json" % ROOT) as handle:
        document = json.load(handle)
    document["asg"] = "web"
    return {"body": document}


# A workflow and how to reach every one of its python tasks (from a fresh world).
SCENARIOS = {
    "asg_create": lambda env: {"name": "web", "domain": ZONE, "min": 1, "max": 4},
    "asg_delete": lambda env: (create(env, min=1, max=4), {"name": "web", "force": True})[1],
    "asg_expand": lambda env: (create(env, min=1, max=4), {"asg": "web", "count": 1})[1],
    "asg_deflate": lambda env: (create(env, min=0, desired=1, max=4),
                                {"asg": "web", "count": 1})[1],
    "asg_alert": lambda env: (create(env, min=1, max=4),
                              {"asg": "web", "state": "open", "severity": "critical",
                               "issue_id": "issue-1", "title": "Error rate"})[1],
    "asg_remove_orphan": _orphan,
    "asg_alert_from_st2_webhook": _st2_webhook_body,
}
WORKFLOW_ACTIONS = [(workflow, action) for workflow in SCENARIOS
                    for action in _python_actions(workflow)]
# Where a broken action leaves something that is recorded but unfinished, on purpose:
KEPT = {
    # The group was stored, then the action crashed: whether it existed before is unknown,
    # so it is kept (in doubt, hold); `!asg create` again finishes it, `!asg delete` ends it.
    ("asg_create", "asg_register", "raise"): "group without its service name",
    # The group's name is unregistered but its keys could not be forgotten: it is kept, and
    # `!asg delete` again finishes.
    ("asg_delete", "asg_forget", "import"): "group without its service name",
    # Nothing ran: the orphan VM is still there for the governor's next orphan scan.
    ("asg_remove_orphan", "node_adopt", "import"): "the orphan VM",
}


@pytest.mark.parametrize("how", ["raise", "import"])
@pytest.mark.parametrize("workflow,action", WORKFLOW_ACTIONS)
def test_every_workflow_copes_with_any_broken_action(env, workflow, action, how):
    """Whatever python action of a workflow raises or does not import: no expression error,
    a failed workflow says why, and nothing is left without a record."""
    params = SCENARIOS[workflow](env)
    with broken(env, action, how):
        result = run(env, workflow, **params)
    for record in result.walk():
        text = str(record.errors) if hasattr(record, "errors") else ""
        assert "YaqlEvaluationException" not in text, text
    assert not [e for e in result.errors if "Yaql" in str(e) or "No method" in str(e)], \
        result.errors
    if result.status == "failed":
        assert result.output and result.output.get("error"), (result.output, result.errors)
    if action == "notify":
        # Chat is never worth failing a workflow for.
        assert result.status == "succeeded", result.errors
    kept = KEPT.get((workflow, action, how))
    if kept is None:
        assert_matches_reality(env)
    elif kept == "the orphan VM":
        live = [s["name"] for s in env.world.inventory().servers if not s["deleting"]]
        assert params["node"] in live and params["node"] not in nodes(env)
    else:
        assert result.status == "failed" and nodes(env) == {}
        assert "web" not in {fqdn.split(".", 1)[0] for fqdn in env.world.inventory().dns}
