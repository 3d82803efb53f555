"""The load balancer seam (issue 13): a second load balancer type, a test double defined here,
is selected by the pack config alone (``haproxy.type``) and the real workflows add, drain and
remove nodes in it, through the pack's actions as st2 runs them (st2harness), with a real
BIND9 and the fake Nova, Chef and Slack of the sandbox World for everything else. Nothing of
the pack changes for it: the config schema takes the type as it is, and the double comes in
through the registry's public ``register``.

The group's load balancer setting is the selected type's to check: the double takes a pool
name HAProxy would refuse and refuses one HAProxy would take.
"""

import threading
import types

import pytest

from autoscale_core import backends
from autoscale_core.domain.model import NodeState
from autoscale_core.errors import BackendError, ValidationError
from autoscale_core.ports.load_balancer import LoadBalancer, ServerState
from st2harness import Datastore, PackLoader
from support.paths import ROOT
from support.world import ZONE, pack_env

POOL = "pool/web"  # "/" is no character of an HAProxy backend name


class MemoryPools(LoadBalancer):
    """A load balancer kept in memory: pools of servers, and every call in order."""

    system = "memory LB"
    poll_interval = 0.01
    default_backend = POOL

    def __init__(self, pools, calls, lock):
        self.pools, self.calls, self.lock = pools, calls, lock

    def check_backend(self, name):
        if not isinstance(name, str) or not name.startswith("pool/"):
            raise ValidationError("%r is not a memory pool (pool/<name>)" % (name,))
        return name

    def _pool(self, backend, operation):
        self.check_backend(backend)
        if backend not in self.pools:
            raise BackendError(self.system, operation, backend, "no such pool")
        return self.pools[backend]

    def _state(self, backend, name, server):
        return ServerState(backend, name, server["address"], server["port"], server["state"],
                           "up", server["check"], server["check"])

    def list_servers(self, backend):
        with self.lock:
            return [self._state(backend, name, server)
                    for name, server in sorted(self._pool(backend, "list").items())]

    def add_server(self, backend, name, address, port, health_check=False):
        with self.lock:
            pool = self._pool(backend, "add server")
            pool[name] = {"address": address, "port": port, "state": "ready",
                          "check": health_check}
            self.calls.append(("add", name))
            return self._state(backend, name, pool[name])

    def set_state(self, backend, name, state):
        with self.lock:
            self._pool(backend, "set state")[name]["state"] = state
            self.calls.append((state, name))

    def sessions(self, backend, name):
        return 0

    def delete_server(self, backend, name):
        with self.lock:
            pool = self._pool(backend, "delete server")
            if name not in pool:
                return False
            if pool[name]["state"] != "maint":
                raise BackendError(self.system, "delete server", name, "not in maintenance")
            del pool[name]
            self.calls.append(("delete", name))
            return True


def check_group(group):
    """The double's rule for a group's pool: "pool/<name>"."""
    MemoryPools.check_backend(None, group.lb_backend)


@pytest.fixture
def memory():
    state = types.SimpleNamespace(pools={POOL: {}}, calls=[], lock=threading.Lock())
    backends.register("load_balancer", "memory",
                      lambda config: MemoryPools(state.pools, state.calls, state.lock),
                      check_group=check_group, title="memory LB")
    yield state
    backends.unregister("load_balancer", "memory")


@pytest.fixture
def env(world, memory):
    # The config alone selects the second type; every other section is the World's.
    env = pack_env(world, config=world.config(haproxy={"type": "memory"}))
    env.memory = memory
    return env


def run(env, ref, **params):
    result = env.runner.run("autoscale." + ref, **params)
    assert result.status == "succeeded", result.errors
    return result


def in_service(env):
    return {name: node for name, node in env.store.load_group("web").nodes.items()
            if node.state == NodeState.IN_SERVICE}


def test_the_config_selects_a_second_load_balancer_and_the_workflows_use_it(env):
    run(env, "asg_create", name="web", domain=ZONE, min=1, max=3, lb_backend=POOL)
    run(env, "asg_add_node", asg="web")
    nodes = in_service(env)
    assert len(nodes) == 2
    pool = env.memory.pools[POOL]
    assert {name: server["address"] for name, server in pool.items()} == {
        name: node.address for name, node in nodes.items()}
    assert all(server["state"] == "ready" for server in pool.values())

    leaving = sorted(nodes)[0]
    run(env, "asg_remove_node", asg="web", name=leaving)
    assert sorted(in_service(env)) == sorted(nodes)[1:]
    assert sorted(pool) == sorted(nodes)[1:]
    # Drained before it was taken out: no session cut.
    assert [call for call, name in env.memory.calls if name == leaving] == [
        "add", "drain", "maint", "delete"]

    # The rest of the World is the real thing; HAProxy, not selected, saw nothing.
    inventory = env.world.inventory()
    assert sorted(s["name"] for s in inventory.servers if not s["deleting"]) == sorted(
        nodes)[1:]
    assert all(servers == {} for servers in inventory.haproxy.values())
    assert "%s.%s" % (leaving, ZONE) not in inventory.dns


def test_the_selected_type_checks_the_groups_pool(env):
    # HAProxy would take "web"; the double refuses it. It takes "pool/web" (above).
    refused = env.runner.run("autoscale.asg_create", name="web", domain=ZONE, min=1, max=2,
                             lb_backend="web")
    assert refused.status == "failed"
    # Refused by its first task (asg_register, check only), before any DNS, VM or pool step.
    assert [record.task_id for record in refused.tasks] == ["validate_settings"]
    assert "'web' is not a memory pool" in refused.output["error"]
    assert env.memory.calls == [] and env.store.load_group("web") is None


def test_an_unknown_type_is_refused_by_key(world):
    loader = PackLoader(ROOT, Datastore(), config=world.config(haproxy={"type": "octavia"}))
    result = loader.action("lb_list_nodes").run(backend="web")
    assert not result.ok
    assert result.result["error"] == ("config key haproxy.type: no load balancer type "
                                      "'octavia' (known: haproxy)")
