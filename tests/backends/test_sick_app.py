"""The sick application (issue 14): web nodes that answer HTTP 500 or late, one or all, on and
off at run time, seen through a real HAProxy (Debian 12: 2.6). The switches sit on each node's
admin port, which HAProxy's public frontend never reaches."""

import http.client
import json
import os
import time
import urllib.error
import urllib.request

import pytest

from sandbox.haproxy import HAProxy
from sandbox.net import LOOPBACK
from sandbox.process import kill_leftovers
from sandbox.webnode import WebNode
from sandbox.world import World, WorldError
from st2harness import Datastore, PackLoader
from st2harness.loader import LoadedAction
from support.paths import ROOT
from support.waiting import wait_until

pytestmark = pytest.mark.skipif(not os.path.exists("/usr/sbin/haproxy"),
                                reason="needs Debian's haproxy package (make test installs it)")

GROUP = "web"
STARTED_PIDS = []


@pytest.fixture(scope="module", autouse=True)
def no_leftover_processes():
    yield
    assert kill_leftovers(STARTED_PIDS) == [], "processes outlived their tests"


@pytest.fixture
def pair():
    """Two web nodes behind a real HAProxy that health-checks /health."""
    with WebNode("web-a") as a, WebNode("web-b") as b, \
            HAProxy(servers=[("web-a", LOOPBACK, a.port), ("web-b", LOOPBACK, b.port)],
                    httpchk="/health") as lb:
        STARTED_PIDS.extend([a.pid, b.pid, lb.pid])
        wait_until(lambda: all(row["srv_op_state"] == "2"
                               for row in lb.servers_state().values()),
                   what="both servers up in HAProxy")
        yield a, b, lb


def through(port, path="/", method="GET", timeout=10):
    """One request to 127.0.0.1:``port`` (HAProxy's frontend): (status, X-Node, body)."""
    connection = http.client.HTTPConnection(LOOPBACK, port, timeout=timeout)
    try:
        connection.request(method, path, body=b"" if method == "POST" else None)
        response = connection.getresponse()
        return (response.status, response.getheader("X-Node"),
                response.read().decode("utf-8", "replace"))
    finally:
        connection.close()


def answers(port, count=20):
    """node -> set of statuses over ``count`` requests (roundrobin: every node answers)."""
    seen = {}
    for _ in range(count):
        status, node, _ = through(port)
        seen.setdefault(node, set()).add(status)
    return seen


def admin(node, path, method="POST"):
    request = urllib.request.Request(node.admin_url + path, method=method,
                                     data=b"" if method == "POST" else None)
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status, response.read().decode("utf-8")
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode("utf-8")


# -- one node, both, on and off -----------------------------------------------------------------


def test_errors_on_one_node_then_both_then_off(pair):
    a, b, lb = pair
    assert answers(lb.frontend_port) == {"web-a": {200}, "web-b": {200}}

    a.make_sick("errors")
    assert answers(lb.frontend_port) == {"web-a": {500}, "web-b": {200}}
    assert a.state()["sick"] == "errors" and b.state()["sick"] is None

    b.make_sick("errors")
    assert answers(lb.frontend_port) == {"web-a": {500}, "web-b": {500}}

    a.make_well()
    assert answers(lb.frontend_port) == {"web-a": {200}, "web-b": {500}}
    b.make_well()
    assert answers(lb.frontend_port) == {"web-a": {200}, "web-b": {200}}
    assert a.state()["sick"] is b.state()["sick"] is None


def test_slow_adds_latency_to_the_sick_node_only(pair):
    a, b, lb = pair
    a.make_sick("slow", latency=0.5)
    assert a.state()["latency"] == 0.5 and b.state()["latency"] == 0.0
    late = []
    for _ in range(4):
        started = time.monotonic()
        status, node, body = through(lb.frontend_port)
        assert status == 200 and body == node + "\n"
        if node == "web-a":
            late.append(time.monotonic() - started)
    # A lower bound only: the node sleeps before it answers, however busy the machine is.
    assert len(late) == 2 and min(late) >= 0.5

    # Errors can come late too.
    a.make_sick("errors", latency=0.3)
    started = time.monotonic()
    status, node, _ = through(a.port)
    assert (status, node) == (500, "web-a") and time.monotonic() - started >= 0.3

    a.make_well()
    assert a.state()["sick"] is None and a.state()["latency"] == 0.0
    assert through(a.port)[0] == 200


def test_a_sick_node_stays_in_rotation_its_health_check_passing(pair):
    a, _, lb = pair
    a.make_sick("errors")
    checked = a.state()["checks"]
    # HAProxy marks a server down after 3 failed checks (fall 3): let it run more than that.
    wait_until(lambda: a.state()["checks"] >= checked + 4, what="four more health checks")
    assert lb.servers_state()["web-a"]["srv_op_state"] == "2"  # up
    assert answers(lb.frontend_port)["web-a"] == {500}


# -- the switches are not the public's ------------------------------------------------------------


def test_the_switches_are_not_reachable_through_haproxy(pair):
    a, b, lb = pair
    assert a.admin_port != a.port
    # HAProxy sends traffic to the public port of each node, never to its admin port.
    ports = {name: int(row["srv_port"]) for name, row in lb.servers_state().items()}
    assert ports == {"web-a": a.port, "web-b": b.port}

    for path in ("/sick?mode=errors", "/sick?mode=slow&latency=5", "/health?ok=0",
                 "/_control/health?ok=0", "/well"):
        for _ in range(2):  # both nodes (roundrobin)
            status, node, body = through(lb.frontend_port, path, method="POST")
            # The public port answers as it does any request: its name (or /health's "ok").
            assert status == 200 and body in (node + "\n", "ok\n"), path
    status, node, body = through(lb.frontend_port, "/state")
    assert (status, body) == (200, node + "\n")  # the node's name, not its switches

    for node in (a, b):
        state = node.state()
        assert (state["sick"], state["latency"], state["healthy"]) == (None, 0.0, True)
    assert answers(lb.frontend_port) == {"web-a": {200}, "web-b": {200}}


def test_bad_switches_are_refused_and_change_nothing(pair):
    a, _, _ = pair
    a.make_sick("slow", latency=0.2)
    for mode, latency in (("bogus", None), ("slow", -1), ("slow", 61), ("errors", float("nan")),
                          ("slow", "soon")):
        with pytest.raises(ValueError):
            a.make_sick(mode, latency)
    for path in ("/sick?mode=bogus", "/sick?mode=slow&latency=abc",
                 "/sick?mode=slow&latency=-1", "/sick?mode=slow&latency=inf"):
        status, text = admin(a, path)
        assert status == 400 and ("latency" in text or "sickness" in text), (path, text)
    assert admin(a, "/sick", method="GET")[0] == 405
    assert admin(a, "/nothing")[0] == 404
    state = a.state()
    assert (state["sick"], state["latency"]) == ("slow", 0.2)


# -- the World -------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def shared_world():
    with World(serve_http=True, converge_after=0) as world:
        yield world
        STARTED_PIDS.extend(world.pids())


@pytest.fixture
def world(shared_world):
    shared_world.reset()
    yield shared_world
    STARTED_PIDS.extend(shared_world.pids())


_LOADED = {}


def run(world, action, **params):
    """The pack's action as st2 runs it (each file loaded once per module)."""
    store = Datastore()
    store.service("autoscale", "T").set_value("ssh_pub_key", world.ssh_pub_key, local=False)
    loader = PackLoader(ROOT, store, config=world.config())
    if action not in _LOADED:
        _LOADED[action] = loader.action(action)
    return LoadedAction(loader, _LOADED[action].meta, _LOADED[action].cls).run(**params)


def serving(world, node):
    """A VM made through the pack's vm_create, in HAProxy through its lb_add_node."""
    booted = run(world, "vm_create", group=GROUP, node=node, flavor="m1.small",
                 image="ubuntu-24.04", network="private", chef_run_list=["role[web]"],
                 chef_environment="_default")
    assert booted.ok, booted
    added = run(world, "lb_add_node", node=node, address=booted.result["address"],
                port=booted.result["port"])
    assert added.ok, added


def world_answers(world, count=20):
    seen = {}
    for _ in range(count):
        status, node, _ = through(world.haproxy.frontend_port)
        seen.setdefault(node, set()).add(status)
    return seen


def test_world_makes_one_node_or_the_whole_application_sick(world):
    serving(world, "web-1")
    serving(world, "web-2")
    wait_until(lambda: len(world_answers(world, 4)) == 2, what="both nodes serving")

    assert world.make_sick("web-1") == ["web-1"]
    assert world_answers(world) == {"web-1": {500}, "web-2": {200}}
    assert world.sick_nodes() == {"web-1": {"sick": "errors", "latency": 0.0}}
    assert world.make_well("web-1") == ["web-1"]
    assert world_answers(world) == {"web-1": {200}, "web-2": {200}}

    # The whole application: the nodes there, and those started later.
    assert world.make_sick(mode="slow", latency=0.2) == ["web-1", "web-2"]
    serving(world, "web-3")
    assert set(world.sick_nodes()) == {"web-1", "web-2", "web-3"}
    assert world.sick_nodes()["web-3"] == {"sick": "slow", "latency": 0.2}
    world.make_sick(mode="errors")
    assert world_answers(world, 30) == {"web-1": {500}, "web-2": {500}, "web-3": {500}}

    assert world.make_well() == ["web-1", "web-2", "web-3"]
    serving(world, "web-4")
    assert world.sick_nodes() == {}
    wait_until(lambda: len(world_answers(world, 8)) == 4, what="four nodes serving")
    assert set().union(*world_answers(world, 40).values()) == {200}


def test_world_refuses_an_unknown_node_or_mode_and_changes_nothing(world):
    serving(world, "web-1")
    with pytest.raises(WorldError, match="no web node 'web-9'"):
        world.make_sick("web-9")
    with pytest.raises(ValueError, match="unknown sickness"):
        world.make_sick(mode="broken")
    with pytest.raises(ValueError, match="latency"):
        world.make_sick(mode="slow", latency=-1)
    assert world.sick_nodes() == {}
    serving(world, "web-2")  # a failed make_sick(None) left no app-wide sickness behind
    assert world.sick_nodes() == {}


def test_reset_makes_the_application_well_again(world):
    serving(world, "web-1")
    world.make_sick()
    world.reset()
    serving(world, "web-1")
    assert world.sick_nodes() == {}
    assert json.loads(json.dumps(world_answers(world, 4), default=sorted)) == {"web-1": [200]}
