"""The end-to-end tests' sandbox: one World (sandbox.world) per test module, reset before each
test.

A module changes its World with a module-level ``WORLD = {...}`` (keyword arguments of
``sandbox.world.World`` over ``WORLD_DEFAULTS``). ``env`` is the pack over a fresh harness
datastore and a workflow runner (support.world.pack_env); ``pipeline`` adds the pack's rules
(st2harness.reactor), the webhook sensor serving real HTTP and the governor sensor set up —
its indirect parameters update the config's governor section."""

import threading
import urllib.request

import pytest

from sandbox.net import LOOPBACK, free_port
from sandbox.world import World
from support.waiting import wait_until
from support.world import ZONE, pack_env

WORLD_DEFAULTS = {"zone": ZONE, "converge_after": 0}


@pytest.fixture(scope="module")
def world(request):
    options = dict(WORLD_DEFAULTS, **getattr(request.module, "WORLD", {}))
    with World(**options) as started:
        yield started


@pytest.fixture
def env(world):
    return pack_env(world)


def _serving(url):
    try:
        with urllib.request.urlopen(url, timeout=1):
            return True
    except OSError:
        return False


@pytest.fixture
def pipeline(world, request):
    """Webhook sensor serving, governor sensor set up, rules wired to workflows. Indirect
    parameters update the config's governor section."""
    port = free_port()
    governor = {"orphan_scan_interval": 0}
    governor.update(getattr(request, "param", {}))
    config = world.config(webhook={"port": port, "bind_address": LOOPBACK}, governor=governor)
    env = pack_env(world, config=config, reactor=True)
    webhook = env.reactor.sensor("NewRelicWebhookSensor")
    webhook.setup()
    serving = threading.Thread(target=webhook.run, daemon=True, name="webhook-sensor")
    serving.start()
    env.governor = env.reactor.sensor("GovernorSensor")
    env.governor.setup()
    env.webhook = webhook
    base = "http://%s:%d%s" % (LOOPBACK, port, config["webhook"]["path"])
    env.url = base + "?asg=web"
    env.token = config["webhook"]["token"]
    wait_until(lambda: _serving(base + "/health"), what="the webhook sensor to serve")
    try:
        yield env
    finally:
        webhook.cleanup()
        serving.join(timeout=10)
        assert not serving.is_alive(), "the webhook sensor did not stop"
