"""Crash recovery: an asg_add_node or asg_remove_node whose execution is abandoned after any
of its steps (st2 restarted, the execution cancelled) leaves a node half-made or half-gone;
within a few governor ticks (time moved past governor.stuck_after) the governor's stuck-node
removal, its repair and its orphan scan bring the group back to a consistent state: every
record in service, nothing the pack made left without a record."""

import time

import pytest

from autoscale_core.domain.model import NodeState
from support.world import create_web, in_service, nodes, succeeded

ADD_STEPS = ["record_node", "boot_vm", "mark_configuring", "wait_for_chef", "mark_registering",
             "register_dns", "add_to_lb", "mark_in_service"]
REMOVE_STEPS = ["choose_node", "mark_draining", "drain", "remove_from_lb", "mark_terminating",
                "delete_chef_node", "delete_dns_record", "destroy_vm"]
STUCK_AFTER = 600  # sandbox.world's governor.stuck_after
# The sandbox World of this module (tests/e2e/conftest.py).
WORLD = {"drain_timeout": 1}


def recover(env, start):
    """Governor ticks, each past stuck_after, running what they dispatch, until quiet."""
    at = start + STUCK_AFTER + 1
    for _ in range(4):
        report = env.governor.governor.tick(at)
        succeeded(env.reactor.drain())
        if not report.dispatched:
            return
        at += 1
    raise AssertionError("the governor did not settle in 4 ticks")


def assert_consistent(env, expected):
    inventory = env.world.inventory()
    recorded = nodes(env)
    assert {n.state for n in recorded.values()} <= {NodeState.IN_SERVICE}
    assert len(recorded) == expected
    live = {s["name"] for s in inventory.servers if not s["deleting"]}
    node_dns = {fqdn.split(".", 1)[0] for fqdn in inventory.dns} - {"web"}
    for kind, names in (("VM", live), ("DNS record", node_dns),
                        ("HAProxy server", set(inventory.haproxy["web"])),
                        ("Chef node", set(inventory.chef_nodes)),
                        ("Chef client", set(inventory.chef_clients))):
        assert names == set(recorded), "%s: %s, records %s" % (kind, names, set(recorded))


@pytest.mark.parametrize("pipeline", [{"orphan_scan_interval": 1, "orphan_grace": 0}],
                         indirect=True)
@pytest.mark.parametrize("step", ADD_STEPS)
def test_an_add_abandoned_after_each_step_is_recovered(pipeline, step):
    env = pipeline
    create_web(env)
    died = env.reactor.runner.run("autoscale.asg_add_node", asg="web", stop_after=step)
    assert died.abandoned
    recover(env, time.time())
    # Finished nodes stay; half-made ones are removed. Either way: consistent.
    assert_consistent(env, expected=len(in_service(env)))
    assert 1 <= len(in_service(env)) <= 2


@pytest.mark.parametrize("pipeline", [{"orphan_scan_interval": 1, "orphan_grace": 0}],
                         indirect=True)
@pytest.mark.parametrize("step", REMOVE_STEPS)
def test_a_removal_abandoned_after_each_step_is_recovered(pipeline, step):
    env = pipeline
    create_web(env)
    (victim,) = in_service(env)
    died = env.reactor.runner.run("autoscale.asg_remove_node", asg="web", name=victim,
                                  force=True, stop_after=step)
    assert died.abandoned
    recover(env, time.time())
    if step == "choose_node":
        # Abandoned before it changed anything: the node simply stays in service.
        assert in_service(env) == [victim]
    else:
        # The half-removed node is finished off and the repair brings the group back to its
        # normal size (min 1).
        assert victim not in nodes(env)
    assert_consistent(env, expected=1)
