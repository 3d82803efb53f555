"""The sandbox's shared pieces: free ports and the fake HTTP service base."""

import json
import socket
import urllib.request

import pytest

from sandbox.http_fake import FakeService, Response
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
