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
import types

import pytest
from conftest import ROOT

from autoscale_core.model import NodeState
from autoscale_core.store import Store
from sandbox.world import FAILURES, World
from st2harness import Datastore, PackLoader
from st2harness.workflows import WorkflowRunner

ZONE = "example.test"
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


@pytest.fixture(scope="module")
def world():
    with World(zone=ZONE, converge_after=0, boot_timeout=2, converge_timeout=1,
               drain_timeout=1) as started:
        yield started


@pytest.fixture
def env(world):
    world.reset()
    datastore = Datastore()
    service = datastore.service("autoscale", "Tests")
    service.set_value("ssh_pub_key", world.ssh_pub_key, local=False)
    loader = PackLoader(ROOT, datastore, config=world.config())
    return types.SimpleNamespace(world=world, datastore=datastore, store=Store(service),
                                 runner=WorkflowRunner(loader))


@contextlib.contextmanager
def fault(world, what):
    """World.fail for its own names; the others through World's objects."""
    if what == "nova.timeout":
        assert world.openstack is not None
        before = world.openstack.boot_delay
        world.openstack.boot_delay = 3600.0  # BUILD for an hour: past any boot_timeout
        try:
            yield
        finally:
            world.openstack.boot_delay = before
    else:
        with world.failure(what):
            yield


def run(env, ref, **params):
    return env.runner.run("autoscale." + ref, **params)


def nodes(env, group="web"):
    state = env.store.load_group(group)
    return {} if state is None else state.nodes


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
