"""The pack over the sandbox World (sandbox.world: real BIND9 and HAProxy, fake Nova, Chef and
Slack on 127.0.0.1): what the end-to-end tests share. The fixtures that start the World and
build these environments are in tests/e2e/conftest.py."""

import types

from autoscale_core.domain.model import NodeState
from autoscale_core.store import Store
from st2harness import Datastore, PackLoader
from st2harness.reactor import Reactor
from st2harness.workflows import WorkflowRunner
from support.paths import ROOT

ZONE = "example.test"
# The scale-out and scale-in cooldowns of create_web's group, in seconds.
COOLDOWN = 3


def pack_env(world, config=None, reactor=False):
    """The World reset, and the pack over a fresh harness datastore that holds the World's SSH
    key: ``world``, ``datastore``, ``store``, ``loader``, ``runner`` (orquesta's conductor);
    with ``reactor``, also ``reactor`` (st2's trigger → rule → action path), whose runner is
    ``runner``."""
    world.reset()
    datastore = Datastore()
    service = datastore.service("autoscale", "Tests")
    service.set_value("ssh_pub_key", world.ssh_pub_key, local=False)
    loader = PackLoader(ROOT, datastore, config=world.config() if config is None else config)
    env = types.SimpleNamespace(world=world, datastore=datastore, store=Store(service),
                                loader=loader, runner=WorkflowRunner(loader))
    if reactor:
        env.reactor = Reactor(loader, env.runner)
    return env


def run(env, ref, **params):
    """The workflow or action ``autoscale.<ref>`` run to its end; its result, whatever it is."""
    return env.runner.run("autoscale." + ref, **params)


def nodes(env, group="web"):
    state = env.store.load_group(group)
    return {} if state is None else state.nodes


def in_service(env, group="web"):
    return sorted(name for name, node in nodes(env, group).items()
                  if node.state == NodeState.IN_SERVICE)


def succeeded(executed):
    """Every (rule match, result) the reactor ran succeeded."""
    failures = [(match.rule, result.status, result.errors) for match, result in executed
                if result.status != "succeeded"]
    assert not failures, failures


def create_web(env):
    """web: min 1 (in service when this returns), max 4, expand by 2, deflate by 1, cooldowns
    of COOLDOWN seconds."""
    result = env.reactor.runner.run(
        "autoscale.asg_create", name="web", domain=ZONE, min=1, max=4, expand_by=2,
        deflate_by=1, scale_out_cooldown=COOLDOWN, scale_in_cooldown=COOLDOWN)
    assert result.status == "succeeded", result.errors
    assert len(in_service(env)) == 1
