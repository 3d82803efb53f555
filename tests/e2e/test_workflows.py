"""The lifecycle workflows, run by orquesta's WorkflowConductor (st2harness.workflows) with the
pack's real Python actions against real BIND9 and HAProxy and fake Nova, Chef and Slack
(sandbox.world). After every run, what exists in the backends must match the datastore."""


import pytest

from autoscale_core.domain.model import NodeState
from sandbox.world import World
from st2harness import PackLoader
from st2harness.workflows import WorkflowRunner
from support.paths import ROOT
from support.waiting import wait_until
from support.world import ZONE, nodes, pack_env, run


def create(env, name="web", **params):
    params.setdefault("domain", ZONE)
    result = run(env, "asg_create", name=name, **params)
    assert result.status == "succeeded", result.errors
    return result


def assert_consistent(env):
    """Everything the pack made is recorded, and every record's things exist."""
    inventory = env.world.inventory()
    groups, problems = env.store.load_all()
    assert problems == []
    recorded = {name: node for state in groups.values() for name, node in state.nodes.items()}
    servers = {server["name"] for server in inventory.servers if not server["deleting"]}
    node_fqdns = {fqdn.split(".", 1)[0] for fqdn in inventory.dns} - set(groups)
    lb = {name for servers_ in inventory.haproxy.values() for name in servers_}
    for kind, names in (("VM", servers), ("DNS record", node_fqdns), ("HAProxy server", lb),
                        ("Chef node", set(inventory.chef_nodes)),
                        ("Chef client", set(inventory.chef_clients))):
        unrecorded = names - set(recorded)
        assert not unrecorded, "%s without a record: %s" % (kind, sorted(unrecorded))
    for name, node in recorded.items():
        if node.state == NodeState.IN_SERVICE:
            assert name in servers and name in node_fqdns and name in lb, name
    service_names = {fqdn.split(".", 1)[0] for fqdn in inventory.dns} & set(groups)
    assert service_names == set(groups)


def test_create_adds_the_first_nodes_and_the_service_name(env):
    result = create(env, min=2, max=4)
    assert result.output["existed"] is False
    group_nodes = nodes(env)
    assert len(group_nodes) == 2
    assert {node.state for node in group_nodes.values()} == {NodeState.IN_SERVICE}
    inventory = env.world.inventory()
    assert "web." + ZONE in inventory.dns
    assert set(inventory.haproxy["web"]) == set(group_nodes)
    assert_consistent(env)
    again = create(env, min=2, max=4)
    assert again.output["existed"] is True and len(nodes(env)) == 2
    conflict = run(env, "asg_create", name="web", domain=ZONE, min=2, max=3)
    assert conflict.status == "failed"
    assert "max_size" in conflict.output["error"]


def test_the_nodes_of_an_expansion_boot_in_parallel(env):
    create(env, min=1, max=4)
    result = run(env, "asg_expand", asg="web", count=3)
    assert result.status == "succeeded", result.errors
    assert result.output["planned"] == 3 and len(nodes(env)) == 4
    adds = result.records("add_nodes")
    assert len(adds) == 3
    first_end = min(record.ended for record in adds)
    assert all(record.started < first_end for record in adds), "the adds did not overlap"
    capped = run(env, "asg_expand", asg="web", count=2)
    assert capped.status == "succeeded" and capped.output["planned"] == 0
    assert_consistent(env)


def test_deflate_removes_one_node_at_a_time(env):
    """Each removal starts, and picks its victim, only after the previous one has finished
    (asg_deflate's remove_nodes runs with concurrency 1): ordering of the task records, not
    their durations."""
    create(env, min=1, max=5)
    assert run(env, "asg_expand", asg="web", count=3).status == "succeeded"
    result = run(env, "asg_deflate", asg="web", count=3)
    removals = sorted(result.records("remove_nodes"), key=lambda record: record.started)
    assert len(removals) == 3
    for before, after in zip(removals, removals[1:]):
        assert before.ended <= after.started, "two removals overlapped"
        (forgotten,) = before.subworkflow.records("forget_node")
        (chosen,) = after.subworkflow.records("choose_node")
        assert forgotten.ended <= chosen.started, "a victim was chosen before the last left"
    assert result.status == "succeeded", result.errors
    victims = [record.subworkflow.output["node"] for record in removals]
    assert len(set(victims)) == 3 and len(nodes(env)) == 1
    assert_consistent(env)


def test_deflate_and_remove_never_go_below_the_normal_size(env):
    create(env, min=1, max=4)
    assert run(env, "asg_expand", asg="web", count=2).status == "succeeded"
    result = run(env, "asg_deflate", asg="web", count=5)
    assert result.status == "succeeded", result.errors
    assert result.output["planned"] == 2 and len(nodes(env)) == 1
    assert_consistent(env)
    (only,) = nodes(env)
    removed = run(env, "asg_remove_node", asg="web", name=only)
    assert removed.status == "succeeded", removed.errors
    assert nodes(env) == {}
    assert_consistent(env)


@pytest.mark.parametrize("failure, step", [
    ("nova.create", "boot_vm"),
    ("nova.active", "boot_vm"),
    ("chef.converge", "wait_for_chef"),
])
def test_a_failed_add_leaves_nothing_behind(env, failure, step):
    create(env, min=0, max=4)
    with env.world.failure(failure):
        result = run(env, "asg_add_node", asg="web")
    assert result.status == "failed"
    assert [r.status for r in result.records(step)] == ["failed"]
    assert nodes(env) == {}
    assert_consistent(env)
    history = env.store.history("web")
    assert history[-1].kind == "node_failed" and history[-1].cause
    assert env.store.load_group("web").scaling.consecutive_failures == 1
    assert "could not" in env.world.slack.messages[-1].text


@pytest.mark.parametrize("failure, step", [
    ("dns", "register_dns"),
    ("haproxy", "add_to_lb"),
])
def test_an_add_whose_undo_cannot_reach_a_backend_keeps_a_failed_record(env, failure, step):
    """While DNS or HAProxy is down, the undo cannot reach it either: the node stays recorded
    as failed with the cause, and removing it once the backend is back finishes the job."""
    create(env, min=0, max=4)
    with env.world.failure(failure):
        result = run(env, "asg_add_node", asg="web")
    assert result.status == "failed"
    assert [r.status for r in result.records(step)] == ["failed"]
    (node,) = nodes(env).values()
    assert node.state == NodeState.FAILED and "undo stopped" in node.cause
    assert_consistent(env)
    assert env.store.history("web")[-1].kind == "node_failed"
    finished = run(env, "asg_remove_node", asg="web", name=node.name)
    assert finished.status == "succeeded", finished.errors
    assert nodes(env) == {}
    assert_consistent(env)


@pytest.mark.parametrize("failure, step", [
    ("haproxy", "drain"),
    ("chef.delete", "delete_chef_node"),
    ("dns", "delete_dns_record"),
    ("nova.delete", "destroy_vm"),
])
def test_a_failed_removal_keeps_the_node_recorded_and_can_be_finished(env, failure, step):
    create(env, min=1, max=4)
    (name,) = nodes(env)
    with env.world.failure(failure):
        result = run(env, "asg_remove_node", asg="web", name=name)
    assert result.status == "failed"
    assert result.records(step)[-1].status == "failed"
    node = nodes(env)[name]
    assert node.state == NodeState.FAILED and node.cause
    assert_consistent(env)
    finished = run(env, "asg_remove_node", asg="web", name=name)
    assert finished.status == "succeeded", finished.errors
    assert nodes(env) == {}
    assert_consistent(env)


def test_delete_refuses_while_nodes_serve_unless_forced(env):
    create(env, min=2, max=4)
    refused = run(env, "asg_delete", name="web")
    assert refused.status == "failed" and "force=true" in refused.output["error"]
    assert len(nodes(env)) == 2
    deleted = run(env, "asg_delete", name="web", force=True)
    assert deleted.status == "succeeded", deleted.errors
    assert env.datastore.keys() == ["ssh_pub_key"]
    inventory = env.world.inventory()
    assert inventory.servers == [] and inventory.dns == {} and inventory.chef_nodes == []


def test_deflate_under_steady_traffic_fails_no_request():
    """Real web nodes behind the real HAProxy: while asg_deflate drains and removes three of
    four nodes one at a time, a steady stream of requests through the frontend all succeed."""
    import threading

    with World(zone=ZONE, converge_after=0, serve_http=True) as world:
        runner = pack_env(world).runner
        created = runner.run("autoscale.asg_create", name="web", domain=ZONE, min=1, max=4,
                             desired=1)
        assert created.status == "succeeded", created.errors
        expanded = runner.run("autoscale.asg_expand", asg="web", count=3)
        assert expanded.status == "succeeded", expanded.errors
        wait_until(lambda: {s["op_state"] for s in world.lb_servers().values()} == {"up"},
                   what="every server up in HAProxy")

        answers, failures, stop = [], [], threading.Event()

        def load():
            while not stop.is_set():
                try:
                    status, body = world.http_get(timeout=5)
                except OSError as exc:
                    failures.append(repr(exc))
                    continue
                (answers if status == 200 else failures).append((status, body))

        threads = [threading.Thread(target=load) for _ in range(4)]
        for thread in threads:
            thread.start()
        try:
            # Traffic reaches all four nodes before the deflate, and still flows after it.
            wait_until(lambda: len(answers) > 50 and len({body for _, body in answers}) == 4,
                       what="answers from all four nodes")
            deflated = runner.run("autoscale.asg_deflate", asg="web", count=3)
            after = len(answers)
            wait_until(lambda: len(answers) >= after + 20, what="traffic after the deflate")
        finally:
            stop.set()
            for thread in threads:
                thread.join(timeout=10)
        assert deflated.status == "succeeded", deflated.errors
        assert deflated.output["planned"] == 3
        assert failures == []
        served_by = {body for _, body in answers}
        assert len(answers) > 50 and len(served_by) == 4, (len(answers), served_by)
        assert len(world.lb_servers()) == 1


@pytest.fixture
def pack_copy(tmp_path):
    """A copy of the pack (its symlinks kept) whose workflows a test may break."""
    import shutil

    copy = tmp_path / "autoscale"
    shutil.copytree(ROOT, copy, symlinks=True, ignore=shutil.ignore_patterns(
        ".venv", ".git", "tests", "__pycache__", ".hypothesis", "sandbox", "st2harness"))
    return copy


def break_workflow(pack, name, old, new):
    path = pack / "actions" / "workflows" / (name + ".yaml")
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new, 1))


@pytest.mark.parametrize("old, new, message", [
    ("        do: mark_configuring", "        do: mark_configurin", "mark_configurin"),
    ("      state: configuring\n", "      state: configuring\n      colour: blue\n",
     'unexpected input "colour"'),
])
def test_a_broken_workflow_is_refused_before_it_runs(env, pack_copy, old, new, message):
    break_workflow(pack_copy, "asg_add_node", old, new)
    runner = WorkflowRunner(PackLoader(str(pack_copy), env.datastore,
                                       config=env.world.config()))
    errors = runner.inspect("autoscale.asg_add_node")
    assert any(message in str(error) for error in errors), errors
    create(env, min=0, max=4)
    result = runner.run("autoscale.asg_add_node", asg="web")
    assert result.status == "failed" and result.tasks == []
    assert nodes(env) == {}


def test_an_always_true_branch_is_caught_by_the_success_path(env, pack_copy):
    # The VM-failure branch taken on success too: the undo destroys what was just made.
    break_workflow(pack_copy, "asg_add_node",
                   "          <% failed() and not (isDict(result().get('result')) and",
                   "          <% not (isDict(result().get('result')) and")
    runner = WorkflowRunner(PackLoader(str(pack_copy), env.datastore, config=env.world.config()))
    create(env, min=0, max=4)
    result = runner.run("autoscale.asg_add_node", asg="web")
    assert result.status == "failed" or nodes(env) == {}
    assert not [n for n in nodes(env).values() if n.state == NodeState.IN_SERVICE]
