"""The sandbox's shared pieces: free ports, the fake HTTP service base, and the public
failure-injection and timing API every fake offers (tests and the sandbox use nothing else:
tests/unit/test_fake_boundaries.py)."""

import json
import socket
import urllib.error
import urllib.request

import pytest

from sandbox.fake_chef import FakeChefServer
from sandbox.fake_openstack import FakeOpenStack
from sandbox.fake_slack import FakeSlack
from sandbox.http_fake import Failure, FakeService, Response
from sandbox.net import free_port, free_port_pair, wait_for_port


class Echo(FakeService):
    def handle(self, request):
        if request.path == "/boom":
            raise RuntimeError("bug")
        return Response(201, {"method": request.method, "body": request.json(),
                              "q": request.query}, {"X-Fake": "yes"})


def test_fake_service_records_and_answers():
    with Echo() as fake:
        req = urllib.request.Request(fake.url + "/things?a=1", data=b'{"x": 1}', method="POST",
                                     headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=5) as resp:
            assert resp.status == 201 and resp.headers["X-Fake"] == "yes"
            assert json.loads(resp.read()) == {"method": "POST", "body": {"x": 1},
                                               "q": {"a": ["1"]}}
        with pytest.raises(urllib.error.HTTPError) as err:
            urllib.request.urlopen(fake.url + "/boom", timeout=5)
        assert err.value.code == 500
        assert [r.path for r in fake.requests] == ["/things", "/boom"]
        assert fake.requests[0].headers["content-type"] == "application/json"
        port = fake.port
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", port), timeout=1).close()


def test_free_ports_are_free_and_wait_for_port_times_out():
    port = free_port_pair()
    for kind in (socket.SOCK_STREAM, socket.SOCK_DGRAM):
        with socket.socket(socket.AF_INET, kind) as sock:
            sock.bind(("127.0.0.1", port))
    with pytest.raises(TimeoutError, match="nothing listens"):
        wait_for_port(free_port(), timeout=0.3)


# -- the fakes' public failure-injection and timing API ------------------------------------------


class Flaky(FakeService):
    """Answers 200, unless an injected failure says otherwise."""

    def handle(self, request):
        failure = self._faults.take(request.method, request.path)
        return Response(failure.status if failure else 200, {"ok": failure is None})

    def fail(self, times, status=503, method=None, path=None):
        return self._faults.add(Failure(times, status, method=method, path=path,
                                        matches=None if path is None
                                        else lambda p: p.startswith(path)))


def status(fake, path="/", method="GET"):
    request = urllib.request.Request(fake.url + path, method=method)
    try:
        with urllib.request.urlopen(request, timeout=5) as resp:
            return resp.status
    except urllib.error.HTTPError as error:
        return error.code


def test_a_failure_counts_only_the_requests_it_matches_and_says_what_is_left():
    with Flaky() as fake:
        posts = fake.fail(2, method="POST", path="/servers")
        assert status(fake, "/servers") == 200  # a GET: not this failure's
        assert status(fake, "/flavors", "POST") == 200  # another path
        assert status(fake, "/servers", "POST") == 503 and posts.left == 1
        assert fake.failures() == [posts]
        assert status(fake, "/servers/1", "POST") == 503 and posts.left == 0
        assert status(fake, "/servers", "POST") == 200 and fake.failures() == []


def test_cancel_ends_one_failure_and_heal_ends_them_all():
    with Flaky() as fake:
        mine, theirs = fake.fail(5, path="/a"), fake.fail(5, path="/b")
        mine.cancel()
        assert status(fake, "/a") == 200 and status(fake, "/b") == 503
        assert fake.failures() == [theirs] and theirs.left == 4
        fake.heal()
        assert fake.failures() == [] and status(fake, "/b") == 200


def test_a_started_fake_refuses_a_knob_it_does_not_have():
    with FakeOpenStack() as fake:
        with pytest.raises(AttributeError, match="use its methods"):
            fake.quota_instances = 0  # not a knob: set_quota is
        with pytest.raises(AttributeError):
            fake.boot_delay = 30  # read-only: set_boot_delay is the knob
        fake.set_boot_delay(30)
        assert fake.boot_delay == 30.0


def test_the_nova_fakes_knobs_and_another_client_act_on_its_servers():
    with FakeOpenStack(boot_delay=0.0, delete_delay=0.0) as fake:
        fake.set_boot_fault("No valid host was found.")
        broken = fake.add_server("broken", {"autoscale_group": "web"})
        fake.set_boot_fault(None)
        fine = fake.add_server("fine")
        assert fake.server(broken)["status"] == "ERROR"
        assert fake.server(fine)["status"] == "ACTIVE"
        assert fake.server(broken)["metadata"] == {"autoscale_group": "web"}
        fake.set_delete_delay(60, fine)
        fake.delete_server(fine)
        fake.delete_server(broken)  # the fake's own delay: 0 s
        assert [(s["name"], s["deleting"]) for s in fake.live_servers()] == [("fine", True)]
        fake.set_delete_delay(0, fine)
        assert fake.live_servers() == [] and fake.server(fine) is None


def test_slack_and_chef_failures_are_handles_too():
    with FakeSlack() as slack:
        limited = slack.rate_limit(2, retry_after=3)
        failing = slack.fail(1)
        assert slack.failures() == [limited, failing]  # rate limits answer first
        assert slack.fail(0).left == 0 and slack.failures() == [limited]  # fail(0) ends it
        slack.heal()
        assert slack.failures() == []
    chef = FakeChefServer()
    delayed = chef.delay_next(1, 0.5, method="GET")
    failed = chef.fail_next(2, status=502, path="/nodes")
    assert chef.failures() == [failed, delayed]
    chef.reset()
    assert chef.failures() == [] and failed.left == 0 and delayed.left == 0
