"""Load balancer: the HAProxy Runtime API client against a real HAProxy (Debian 12: 2.6) with
real HTTP traffic through its frontend to web node processes (sandbox.webnode).

A unix socket that records what it receives stands in for HAProxy only where HAProxy cannot
show the point: that a hostile name never reaches the socket, and a socket that never
answers."""

import collections
import logging
import os
import shutil
import socket
import tempfile
import threading
import time
import urllib.request

import pytest

from autoscale_core.backends.haproxy import HAProxyRuntime, HAProxySettings, parse_runtime_api
from autoscale_core.errors import BackendError, ValidationError
from autoscale_core.ports.load_balancer import LoadBalancer, ServerState, validate_address
from sandbox.haproxy import HAProxy
from sandbox.process import alive, kill_leftovers
from sandbox.webnode import WebNode
from st2harness import Datastore, PackLoader
from st2harness.loader import LoadedAction
from support.paths import ROOT
from support.waiting import returns

pytestmark = pytest.mark.skipif(not os.path.exists("/usr/sbin/haproxy"),
                                reason="needs Debian's haproxy package (make test installs it)")

SECRETS = {
    "application_credential_secret": "os-app-cred-SECRET-5f1d",
    "client_key": "-----BEGIN RSA PRIVATE KEY-----\nCHEF-SECRET-9a7e\n-----END RSA",
    "validation_key": "-----BEGIN RSA PRIVATE KEY-----\nVALIDATOR-SECRET-33c1\n-----END RSA",
    "tsig_secret": "dHNpZy1TRUNSRVQtYWJjZA==",
    "slack_token": "xoxb-SLACK-SECRET-77aa",
    "webhook_token": "nr-hook-SECRET-0b0b",
}

# Every process a test starts, so the last check can prove none outlived the tests.
STARTED_PIDS = []


# -- fixtures ---------------------------------------------------------------------------------


@pytest.fixture(scope="module", autouse=True)
def no_leftover_processes():
    """Also when only some of these tests run: every process started here is gone after."""
    yield
    assert kill_leftovers(STARTED_PIDS) == [], "processes outlived their tests"


@pytest.fixture
def webnodes():
    started = []

    def start(name):
        node = WebNode(name).start()
        started.append(node)
        STARTED_PIDS.append(node.pid)
        return node

    yield start
    for node in started:
        node.stop()


@pytest.fixture
def haproxies():
    started = []

    def start(**kwargs):
        lb = HAProxy(**kwargs)
        started.append(lb)
        lb.start()
        STARTED_PIDS.append(lb.pid)
        return lb

    yield start
    for lb in started:
        lb.stop()


@pytest.fixture
def one_static(webnodes, haproxies):
    """HAProxy whose backend "web" has one server from its config, static-a."""
    a = webnodes("static-a")
    return haproxies(servers=[("static-a", a.address, a.port)]), a


def config_for(runtime_api, **haproxy):
    """A pack config of config.schema.yaml's shape; the harness checks it against the schema."""
    section = {"runtime_api": runtime_api, "backend": "web", "server_port": 80,
               "health_checks": False, "drain_timeout": 10, "timeout": 2}
    section.update(haproxy)
    return {
        "openstack": {"auth_url": "http://127.0.0.1:1/v3",
                      "application_credential_id": "0f1e2d3c",
                      "application_credential_secret": SECRETS["application_credential_secret"]},
        "chef": {"server_url": "http://127.0.0.1:1/organizations/web", "client_name": "st2",
                 "client_key": SECRETS["client_key"],
                 "validation_key": SECRETS["validation_key"]},
        "dns": {"server": "127.0.0.1", "zone": "example.com", "tsig_key_name": "autoscale",
                "tsig_secret": SECRETS["tsig_secret"]},
        "haproxy": section,
        "slack": {"token": SECRETS["slack_token"]},
        "webhook": {"token": SECRETS["webhook_token"]},
    }


_LOADED = {}


def action(name, runtime_api, **haproxy):
    """The action as st2 runs it, with this config. Its file is loaded (with st2's import
    paths) once per test run; each call gets a fresh loader, datastore and config."""
    loader = PackLoader(ROOT, Datastore(), config=config_for(runtime_api, **haproxy))
    if name not in _LOADED:
        _LOADED[name] = loader.action(name)
    return LoadedAction(loader, _LOADED[name].meta, _LOADED[name].cls)


def runtime(lb, **kwargs):
    settings = HAProxySettings(runtime_api=lb.socket_path, backend="web", timeout=2)
    return HAProxyRuntime(settings, **kwargs)


def get(url, timeout=10):
    with urllib.request.urlopen(url, timeout=timeout) as response:
        return response.status, response.read().decode().strip()


def hits(lb, count=20):
    """Which server answered each of ``count`` requests through the frontend."""
    return collections.Counter(get(lb.url + "/")[1] for _ in range(count))


class Background:
    """Slow requests through the frontend, each in its own thread."""

    def __init__(self, url, count, seconds):
        self.answers = []
        self.errors = []
        self.threads = [threading.Thread(target=self._one, args=("%s/slow?s=%s" % (url, seconds),))
                        for _ in range(count)]
        for thread in self.threads:
            thread.start()

    def _one(self, url):
        try:
            self.answers.append(get(url))
        except Exception as exc:  # reported by join()
            self.errors.append(exc)

    def join(self):
        for thread in self.threads:
            thread.join(timeout=30)
        assert not self.errors, self.errors
        return self.answers


def wait_until(predicate, timeout=5.0, what="condition"):
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("timed out waiting for %s" % what)
        time.sleep(0.05)


class Recorder:
    """A unix socket that records every connection and what it receives; it answers nothing
    (``silent``: it also keeps the connection open)."""

    def __init__(self, silent=False):
        self.directory = tempfile.mkdtemp(prefix="lbrec-")
        self.path = os.path.join(self.directory, "admin.sock")
        self.silent = silent
        self.connections = 0
        self.received = []
        self.server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.server.bind(self.path)
        self.server.listen(8)
        self.server.settimeout(0.1)
        self.running = True
        self.thread = threading.Thread(target=self._loop, daemon=True)
        self.thread.start()

    def _loop(self):
        while self.running:
            try:
                conn, _ = self.server.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            self.connections += 1
            with conn:
                conn.settimeout(0.2)
                data = b""
                try:
                    while not data.endswith(b"\n"):
                        chunk = conn.recv(4096)
                        if not chunk:
                            break
                        data += chunk
                except socket.timeout:
                    pass
                self.received.append(data)
                while self.silent and self.running:  # hold it until the client gives up
                    try:
                        if not conn.recv(4096):
                            break
                    except socket.timeout:
                        continue
                    except OSError:
                        break

    def close(self):
        self.running = False
        self.thread.join(timeout=5)
        self.server.close()
        shutil.rmtree(self.directory, ignore_errors=True)


@pytest.fixture
def recorder():
    rec = Recorder()
    yield rec
    rec.close()


# -- the interface ----------------------------------------------------------------------------


def test_haproxy_runtime_is_a_load_balancer_with_the_documented_primitives():
    assert issubclass(HAProxyRuntime, LoadBalancer)
    assert LoadBalancer.__abstractmethods__ == {
        "list_servers", "add_server", "set_state", "sessions", "delete_server"}


# -- adding a node ----------------------------------------------------------------------------


def test_added_node_gets_real_traffic(one_static, webnodes):
    lb, _ = one_static
    b = webnodes("web-b1")
    assert hits(lb, 6) == {"static-a": 6}
    result = action("lb_add_node", lb.socket_path).run(
        node="web-b1", address="127.0.0.1", port=b.port)
    assert result.ok, result
    assert result.result == {"backend": "web", "server": "web-b1", "address": "127.0.0.1",
                             "port": b.port, "admin_state": "ready", "op_state": "up",
                             "health_check": False, "check_enabled": False}
    row = lb.servers_state()["web-b1"]  # HAProxy's own view, not the library's
    assert (row["srv_addr"], row["srv_port"], row["srv_admin_state"]) == (
        "127.0.0.1", str(b.port), "0")
    assert hits(lb, 20) == {"static-a": 10, "web-b1": 10}  # roundrobin


def test_health_checks_take_a_failing_node_out_and_back(webnodes, haproxies):
    a, b = webnodes("static-a"), webnodes("web-b1")
    lb = haproxies(servers=[("static-a", a.address, a.port)], httpchk="/health")
    client = runtime(lb, check_inter_ms=100)
    state = client.add_server("web", "web-b1", "127.0.0.1", b.port, health_check=True)
    assert (state.health_check, state.check_enabled, state.admin_state) == (True, True, "ready")
    assert lb.servers_state()["web-b1"]["srv_check_state"] == "6"  # configured + enabled
    assert hits(lb, 10) == {"static-a": 5, "web-b1": 5}
    b.set_healthy(False)
    wait_until(lambda: client.get_server("web", "web-b1").op_state == "down", 5,
               "the check to mark web-b1 down")
    assert hits(lb, 10) == {"static-a": 10}
    b.set_healthy(True)
    wait_until(lambda: client.get_server("web", "web-b1").op_state == "up", 5,
               "the check to mark web-b1 up")
    assert hits(lb, 10) == {"static-a": 5, "web-b1": 5}


def test_health_checks_default_to_the_config(one_static, webnodes):
    lb, _ = one_static
    b = webnodes("web-b1")
    result = action("lb_add_node", lb.socket_path, health_checks=True, server_port=b.port).run(
        node="web-b1", address="127.0.0.1")
    assert result.ok, result
    assert (result.result["port"], result.result["health_check"],
            result.result["check_enabled"]) == (b.port, True, True)


def test_add_is_idempotent_and_refuses_another_address(one_static, webnodes):
    lb, _ = one_static
    b = webnodes("web-b1")
    add = action("lb_add_node", lb.socket_path)
    first = add.run(node="web-b1", address="127.0.0.1", port=b.port)
    again = add.run(node="web-b1", address="127.0.0.1", port=b.port)
    assert first.ok and again.ok and first.result == again.result
    assert list(lb.servers_state()) == ["static-a", "web-b1"]
    other = add.run(node="web-b1", address="127.0.0.2", port=b.port)
    assert not other.ok
    assert other.result["error"] == (
        "HAProxy: add server web/web-b1: already exists with address 127.0.0.1 port %d, not "
        "127.0.0.2 port %d; remove it first" % (b.port, b.port))
    assert lb.servers_state()["web-b1"]["srv_addr"] == "127.0.0.1"  # left alone
    assert hits(lb, 10) == {"static-a": 5, "web-b1": 5}


def test_add_finishes_a_half_done_add(one_static, webnodes):
    lb, _ = one_static
    b = webnodes("web-b1")
    # An earlier run died between "add server" and "state ready": the server is in maint.
    assert lb.cli("add server web/web-b1 127.0.0.1:%d" % b.port).strip() == \
        "New server registered."
    assert lb.servers_state()["web-b1"]["srv_admin_state"] == "1"
    assert hits(lb, 4) == {"static-a": 4}
    result = action("lb_add_node", lb.socket_path).run(
        node="web-b1", address="127.0.0.1", port=b.port)
    assert result.ok and result.result["admin_state"] == "ready"
    assert hits(lb, 4) == {"static-a": 2, "web-b1": 2}


def test_ipv6_address_reaches_haproxy_in_brackets(one_static):
    lb, _ = one_static
    state = runtime(lb).add_server("web", "web-v6", "0:0::1", 8080)
    assert (state.address, state.port) == ("::1", 8080)
    assert lb.servers_state()["web-v6"]["srv_addr"] == "::1"


# -- draining and removing --------------------------------------------------------------------


def test_drain_sends_new_requests_elsewhere_while_in_flight_ones_complete(one_static, webnodes):
    lb, _ = one_static
    b = webnodes("web-b1")
    client = runtime(lb)
    client.add_server("web", "web-b1", "127.0.0.1", b.port)
    # roundrobin: two on each server, long enough to be in flight all through the drain's start
    slow = Background(lb.url, 4, 3.0)
    wait_until(lambda: client.sessions("web", "web-b1") == 2, 30, "two sessions on web-b1")
    drain = action("lb_drain_node", lb.socket_path)
    outcome = {}
    waiter = threading.Thread(target=lambda: outcome.update(
        result=drain.run(node="web-b1", drain_timeout=30)))
    waiter.start()
    wait_until(lambda: lb.servers_state()["web-b1"]["srv_admin_state"] == "8", 30,
               "web-b1 in drain")  # 0x08: forced drain
    # Draining began while both slow requests to web-b1 were still in flight ...
    assert [answer for answer in slow.answers if answer[1] == "web-b1"] == []
    assert hits(lb, 10) == {"static-a": 10}  # new requests avoid the draining node
    answers = slow.join()
    waiter.join(timeout=30)
    assert not waiter.is_alive(), "the drain did not return"
    assert sorted(answers) == [(200, "static-a")] * 2 + [(200, "web-b1")] * 2
    result = outcome["result"]
    assert result.ok, result
    # ... and it returned drained, with no session left: it waited for them to end.
    assert result.result["sessions_left"] == 0 and result.result["drained"] is True
    assert result.result["present"] is True
    assert client.get_server("web", "web-b1").admin_state == "drain"


def test_wait_for_zero_sessions_times_out_with_the_count(webnodes, haproxies):
    b = webnodes("web-b1")
    lb = haproxies()
    client = runtime(lb)
    client.add_server("web", "web-b1", "127.0.0.1", b.port)
    # Far longer than the drain's timeout: still in flight when the drain gives up.
    slow = Background(lb.url, 1, 3.0)
    wait_until(lambda: client.sessions("web", "web-b1") == 1, 30, "a session on web-b1")
    result = returns(lambda: client.drain_server("web", "web-b1", 0.3))
    # It gave up with the session still there, not when the request ended.
    assert (result.present, result.sessions_left, result.drained) == (True, 1, False)
    assert slow.answers == []
    assert client.wait_drained("web", "web-b1", 30) == 0
    assert slow.join() == [(200, "web-b1")]


def test_remove_waits_for_in_flight_requests_then_deletes(one_static, webnodes):
    lb, _ = one_static
    b = webnodes("web-b1")
    client = runtime(lb)
    client.add_server("web", "web-b1", "127.0.0.1", b.port)
    slow = Background(lb.url, 2, 1.0)
    wait_until(lambda: client.sessions("web", "web-b1") == 1, 5, "a session on web-b1")
    remove = action("lb_remove_node", lb.socket_path)
    result = remove.run(node="web-b1", drain_timeout=10)
    assert result == (True, {"backend": "web", "server": "web-b1", "removed": True}, "")
    assert sorted(slow.join()) == [(200, "static-a"), (200, "web-b1")]  # nothing cut
    assert "web-b1" not in lb.servers_state()
    assert "web-b1" not in lb.cli("show stat web 4 -1")
    assert b.process.poll() is None  # still up and serving, yet gets nothing
    assert get(b.url + "/") == (200, "web-b1")
    assert hits(lb, 10) == {"static-a": 10}
    # Removing again is fine: it is already gone.
    assert remove.run(node="web-b1", drain_timeout=10) == (
        True, {"backend": "web", "server": "web-b1", "removed": False}, "")


def test_remove_with_sessions_left_after_the_timeout_keeps_the_server_draining(
        webnodes, haproxies):
    b = webnodes("web-b1")
    lb = haproxies()
    client = runtime(lb)
    client.add_server("web", "web-b1", "127.0.0.1", b.port)
    slow = Background(lb.url, 1, 1.0)
    wait_until(lambda: client.sessions("web", "web-b1") == 1, 5, "a session on web-b1")
    with pytest.raises(BackendError) as err:
        client.remove_server("web", "web-b1", drain_timeout=0.2)
    assert str(err.value) == ("HAProxy: remove server web/web-b1: 1 session(s) still open "
                              "after 0 s of draining; the server stays in drain, try again later")
    assert err.value.retryable
    assert lb.servers_state()["web-b1"]["srv_admin_state"] == "8"
    assert slow.join() == [(200, "web-b1")]
    assert client.remove_server("web", "web-b1", drain_timeout=5) is True
    assert "web-b1" not in lb.servers_state()


def test_drain_and_remove_of_a_missing_node_succeed(one_static):
    lb, _ = one_static
    drain = action("lb_drain_node", lb.socket_path).run(node="web-zz", drain_timeout=1)
    assert drain.ok and drain.result == {"backend": "web", "server": "web-zz", "present": False,
                                         "sessions_left": 0, "drained": True, "waited": 0.0}
    remove = action("lb_remove_node", lb.socket_path).run(node="web-zz")
    assert remove == (True, {"backend": "web", "server": "web-zz", "removed": False}, "")
    assert list(lb.servers_state()) == ["static-a"]


# -- HAProxy refusing -------------------------------------------------------------------------


def test_haproxy_refusals_are_reported_with_its_message(webnodes, haproxies):
    lb = haproxies(extra_backends={"sticky": "source"})
    client = runtime(lb)
    cases = [
        (lambda: client.add_server("nope", "web-x1", "127.0.0.1", 8080),
         "HAProxy: add server nope/web-x1: No such backend."),
        (lambda: client.add_server("sticky", "web-x1", "127.0.0.1", 8080),
         "HAProxy: add server sticky/web-x1: Backend must use a dynamic load balancing to "
         "support dynamic servers."),
        (lambda: client.list_servers("nope"),
         "HAProxy: show servers state nope: Can't find backend."),
        (lambda: client.set_state("web", "web-x1", "drain"),
         "HAProxy: set server state drain web/web-x1: No such server."),
    ]
    for call, message in cases:
        with pytest.raises(BackendError) as err:
            call()
        assert str(err.value) == message
        assert not err.value.retryable
    client.add_server("web", "web-x1", "127.0.0.1", 8080)
    with pytest.raises(BackendError) as err:
        client.delete_server("web", "web-x1")  # still in service
    assert str(err.value) == ("HAProxy: del server web/web-x1: Only servers in maintenance "
                              "mode can be deleted.")
    assert "web-x1" in lb.servers_state()


def test_a_socket_below_level_admin_is_named(haproxies):
    lb = haproxies(level="operator")
    with pytest.raises(BackendError) as err:
        runtime(lb).add_server("web", "web-x1", "127.0.0.1", 8080)
    assert str(err.value) == (
        "HAProxy: add server web/web-x1: Permission denied (the Runtime API socket at %s must "
        "be at level admin)" % lb.socket_path)


# -- nothing but validated names reaches the socket -------------------------------------------

HOSTILE_NODES = ["web-1\nshutdown frontend fe", "web-1;del server web/static-a", "web 1",
                 "web-1\\", "WEB-1", "web/1", "", "-web", "w" * 64, None, 7, "wéb-1",
                 "web-1\r", "web-1#"]
HOSTILE_BACKENDS = ["web;show info", "web\nshutdown frontend fe", "web static", "web/x", "",
                    "w" * 65, "web#1", None]
HOSTILE_ADDRESSES = ["127.0.0.1;show info", "127.0.0.1 check", "127.0.0.1\n", "localhost",
                     "127.0.0.1:80", "fe80::1%eth0", "0.0.0.0", "224.0.0.1", "", None,
                     "1.2.3", "[::1]"]
HOSTILE_PORTS = [0, 65536, "80", True, -1, 80.0, None]


def hostile_calls(client):
    for node in HOSTILE_NODES:
        yield lambda n=node: client.add_server("web", n, "127.0.0.1", 80)
        yield lambda n=node: client.set_state("web", n, "maint")
        yield lambda n=node: client.sessions("web", n)
        yield lambda n=node: client.delete_server("web", n)
        yield lambda n=node: client.drain_server("web", n, 1)
        yield lambda n=node: client.remove_server("web", n, 1)
        yield lambda n=node: client.get_server("web", n)
    for backend in HOSTILE_BACKENDS:
        yield lambda b=backend: client.add_server(b, "web-1", "127.0.0.1", 80)
        yield lambda b=backend: client.list_servers(b)
        yield lambda b=backend: client.remove_server(b, "web-1", 1)
        yield lambda b=backend: client.sessions(b, "web-1")
    for address in HOSTILE_ADDRESSES:
        yield lambda a=address: client.add_server("web", "web-1", a, 80)
    for port in HOSTILE_PORTS:
        yield lambda p=port: client.add_server("web", "web-1", "127.0.0.1", p)
    yield lambda: client.add_server("web", "web-1", "127.0.0.1", 80, health_check="yes")
    yield lambda: client.set_state("web", "web-1", "maint; show info")
    yield lambda: client.set_state("web", "web-1", "up")
    # The last line of defence: a raw command outside the safe characters.
    yield lambda: client.command("show info;show stat", "show info", "")
    yield lambda: client.command("show info\nshow stat", "show info", "")


def test_hostile_names_are_refused_before_any_io(recorder):
    client = HAProxyRuntime(HAProxySettings(runtime_api=recorder.path, timeout=0.5), attempts=1)
    count = 0
    for call in hostile_calls(client):
        with pytest.raises(ValidationError):
            call()
        count += 1
    assert count > 150
    assert recorder.connections == 0 and recorder.received == []
    # The recorder does record: a valid command reaches it (and its empty answer is an error).
    with pytest.raises(BackendError, match="empty answer"):
        client.add_server("web", "web-3f9a1c", "10.0.0.5", 80)
    assert recorder.received == [b"add server web/web-3f9a1c 10.0.0.5:80\n"]


def test_hostile_names_are_refused_by_the_actions_before_any_io(recorder):
    add = action("lb_add_node", recorder.path)
    drain = action("lb_drain_node", recorder.path)
    remove = action("lb_remove_node", recorder.path)
    for node in ["web-1\nshutdown frontend fe", "web-1;del server web/a", "web 1"]:
        for result in (add.run(node=node, address="127.0.0.1"), drain.run(node=node),
                       remove.run(node=node)):
            assert not result.ok
            assert "node name" in result.result["error"] and "not a DNS label" in \
                result.result["error"]
    result = add.run(node="web-1", address="127.0.0.1", backend="web;show info")
    assert not result.ok and "not a valid HAProxy backend name" in result.result["error"]
    result = add.run(node="web-1", address="127.0.0.1 check")
    assert not result.ok and "not an IPv4 or IPv6 address" in result.result["error"]
    assert recorder.connections == 0


# -- the socket failing -----------------------------------------------------------------------


def test_socket_gone_is_a_clear_retryable_error(one_static):
    lb, _ = one_static
    lb.remove_socket()
    with pytest.raises(BackendError) as err:
        runtime(lb, attempts=2, first_delay=0.01).add_server("web", "web-b1", "127.0.0.1", 80)
    assert str(err.value) == ("HAProxy: add server web/web-b1: cannot reach the Runtime API at "
                              "%s: No such file or directory" % lb.socket_path)
    assert err.value.retryable
    result = action("lb_remove_node", lb.socket_path).run(node="web-b1")
    assert not result.ok
    assert result.result["error"].startswith(
        "HAProxy: show servers state web: cannot reach the Runtime API at ")
    assert hits(lb, 2) == {"static-a": 2}  # HAProxy itself still serves


def test_haproxy_gone_over_tcp_is_a_clear_error(haproxies):
    lb = haproxies(tcp_api=True)
    client = HAProxyRuntime(HAProxySettings(runtime_api=lb.tcp_api, timeout=1), attempts=2,
                            first_delay=0.01)
    assert client.list_servers("web") == []
    lb.kill()
    with pytest.raises(BackendError) as err:
        client.list_servers("web")
    assert str(err.value) == ("HAProxy: show servers state web: cannot reach the Runtime API "
                              "at %s: Connection refused" % lb.tcp_api)


def test_a_socket_that_never_answers_times_out():
    silent = Recorder(silent=True)
    try:
        client = HAProxyRuntime(HAProxySettings(runtime_api=silent.path, timeout=0.3),
                                attempts=2, first_delay=0.01)
        with pytest.raises(BackendError) as err:
            returns(lambda: client.sessions("web", "web-b1"))
        assert str(err.value) == ("HAProxy: show stat web/web-b1: no complete answer from the "
                                  "Runtime API at %s within 0.3 s" % silent.path)
        assert err.value.retryable
        assert silent.received == [b"show stat web 4 -1\n"] * 2  # retried once
    finally:
        silent.close()


# -- the TCP form of the Runtime API ----------------------------------------------------------


def test_tcp_host_port_form_works_end_to_end(webnodes, haproxies):
    a, b = webnodes("static-a"), webnodes("web-b1")
    lb = haproxies(servers=[("static-a", a.address, a.port)], tcp_api=True)
    add = action("lb_add_node", lb.tcp_api).run(node="web-b1", address="127.0.0.1", port=b.port)
    assert add.ok, add
    assert hits(lb, 10) == {"static-a": 5, "web-b1": 5}
    assert action("lb_drain_node", lb.tcp_api).run(node="web-b1").result["drained"] is True
    assert action("lb_remove_node", lb.tcp_api).run(node="web-b1").result["removed"] is True
    assert list(lb.servers_state()) == ["static-a"]


# -- settings ---------------------------------------------------------------------------------


def test_settings_from_config():
    settings = HAProxySettings.from_config({"haproxy": {"runtime_api": "/run/h.sock"}})
    assert settings == HAProxySettings(runtime_api="/run/h.sock")
    full = HAProxySettings.from_config(config_for("127.0.0.1:9999", server_port=8080))
    assert full == HAProxySettings(runtime_api="127.0.0.1:9999", backend="web", server_port=8080,
                                   health_checks=False, drain_timeout=10, timeout=2.0)
    assert settings.backend_or_default("api") == "api"
    with pytest.raises(ValidationError, match="config key haproxy.backend is empty"):
        settings.backend_or_default(None)
    with pytest.raises(ValidationError, match="config key haproxy is missing"):
        HAProxySettings.from_config({})
    with pytest.raises(ValidationError, match="config key haproxy.runtime_api is missing"):
        HAProxySettings.from_config({"haproxy": {"backend": "web"}})
    with pytest.raises(ValidationError, match="config key haproxy.backend"):
        HAProxySettings.from_config({"haproxy": {"runtime_api": "/s", "backend": "a b"}})
    with pytest.raises(ValidationError, match="config key haproxy.server_port"):
        HAProxySettings.from_config({"haproxy": {"runtime_api": "/s", "server_port": 0}})
    with pytest.raises(ValidationError, match="config key haproxy.timeout"):
        HAProxySettings.from_config({"haproxy": {"runtime_api": "/s", "timeout": 0}})


@pytest.mark.parametrize("value,parsed", [
    ("/run/haproxy/admin.sock", "/run/haproxy/admin.sock"),
    ("127.0.0.1:9999", ("127.0.0.1", 9999)),
    ("[::1]:9999", ("::1", 9999)),
    ("LB.example.com:9999", ("lb.example.com", 9999)),
])
def test_runtime_api_forms(value, parsed):
    assert parse_runtime_api(value) == parsed


@pytest.mark.parametrize("value", ["run/admin.sock", "lb", "lb:0", "lb:99999", "::1:9999",
                                   "lb:80;x", "", None, "lb_1:80"])
def test_runtime_api_bad_forms(value):
    with pytest.raises(ValidationError, match="haproxy.runtime_api"):
        parse_runtime_api(value)


def test_addresses_are_canonical():
    assert validate_address("10.0.0.5") == "10.0.0.5"
    assert validate_address("2001:DB8:0::1") == "2001:db8::1"


def test_server_state_as_a_result():
    state = ServerState("web", "web-1", "10.0.0.5", 80, "ready", "up", True, True)
    assert state.to_dict() == {"backend": "web", "server": "web-1", "address": "10.0.0.5",
                               "port": 80, "admin_state": "ready", "op_state": "up",
                               "health_check": True, "check_enabled": True}


# -- secrets ----------------------------------------------------------------------------------


def test_no_secret_in_logs_results_or_errors(caplog, one_static, webnodes):
    caplog.set_level(logging.DEBUG)
    lb, _ = one_static
    b = webnodes("web-b1")
    results = [
        action("lb_add_node", lb.socket_path).run(node="web-b1", address="127.0.0.1",
                                                  port=b.port),
        action("lb_drain_node", lb.socket_path).run(node="web-b1"),
        action("lb_remove_node", lb.socket_path).run(node="web-b1"),
        action("lb_add_node", lb.socket_path).run(node="web-b1", address="127.0.0.1",
                                                  backend="nope"),
        action("lb_add_node", lb.socket_path).run(node="web b1", address="127.0.0.1"),
    ]
    lb.remove_socket()
    results.append(action("lb_remove_node", lb.socket_path).run(node="web-b1"))
    assert [r.ok for r in results] == [True, True, True, False, False, False]
    assert any("HAProxy Runtime API" in r.getMessage() for r in caplog.records)  # logs exist
    texts = [r.getMessage() for r in caplog.records] + [repr(r) for r in results]
    for text in texts:
        assert "SECRET-" not in text
        for secret in SECRETS.values():
            assert secret not in text


# -- nothing left behind ----------------------------------------------------------------------


def test_zz_no_haproxy_or_web_node_outlives_its_test():
    assert STARTED_PIDS, "the tests above started no process"
    assert [pid for pid in STARTED_PIDS if alive(pid)] == []


def test_list_nodes_action_lists_a_backend_and_names_a_missing_one(one_static):
    lb, _ = one_static
    listed = action("lb_list_nodes", lb.socket_path).run(backend="web")
    assert listed.ok, listed
    assert listed.result["backend"] == "web"
    assert [server["server"] for server in listed.result["servers"]] == ["static-a"]
    missing = action("lb_list_nodes", lb.socket_path).run(backend="nope")
    assert not missing.ok
    assert missing.result["error"].startswith("HAProxy: show servers state nope:")
