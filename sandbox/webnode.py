"""A web node: a small HTTP server in its own process, standing in for one of a group's VMs.

It answers every request with its own name, so a test counting responses through the load
balancer knows which node served each one::

    GET /           200  "<name>\\n"            (header X-Node: <name>)
    GET /slow?s=2   200  "<name>\\n" after 2 s  (an in-flight request during a drain)
    GET /health     200  "ok\\n", or 503 after ``set_healthy(False)``

The application can be made sick at run time (``make_sick``/``make_well``): every request but
/health then answers 500 ("errors") or comes late ("slow": ``latency`` seconds added; errors
can be late too). /health stays as it is, as a shallow health check would: HAProxy keeps the
node in rotation and only monitoring notices. The switches live on a second port, the admin
port (127.0.0.1 only), which HAProxy never forwards to::

    POST /sick?mode=errors|slow&latency=S   200, or 400 for a bad mode or latency
    POST /well                              200
    POST /health?ok=0|1                     what /health answers on the public port
    GET  /state                             {"name", "sick", "latency", "healthy", "served",
                                             "checks"}: requests served, /health answered

It speaks HTTP/1.1 with keep-alive, as a real web server does, so HAProxy keeps idle
connections to it, which matters for ``del server``. Run it as a process (``WebNode(name)
.start()``) or directly: ``python sandbox/webnode.py --name web-1 --port 8081
--admin-port 9081``.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Dict, List, Optional
from urllib.parse import parse_qs, urlsplit

LOOPBACK = "127.0.0.1"
MAX_SLOW = 60.0
SICK_MODES = ("errors", "slow")
DEFAULT_LATENCY = {"errors": 0.0, "slow": 1.0}


def check_sickness(mode: str, latency: Optional[float]) -> float:
    """The latency to use for ``mode``; ValueError for an unknown mode or a latency outside
    0..MAX_SLOW seconds."""
    if mode not in SICK_MODES:
        raise ValueError("unknown sickness %r; known: %s" % (mode, ", ".join(SICK_MODES)))
    value = DEFAULT_LATENCY[mode] if latency is None else latency
    try:
        value = float(value)
    except (TypeError, ValueError):
        raise ValueError("latency must be a number of seconds, not %r" % (latency,)) from None
    if not 0.0 <= value <= MAX_SLOW:  # also refuses NaN
        raise ValueError("latency must be 0..%g seconds, not %r" % (MAX_SLOW, latency))
    return value


class _State:
    """What the admin port sets and the public port reads (one lock, few fields)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.healthy = True
        self.sick: Optional[str] = None
        self.latency = 0.0
        self.served = 0
        self.checks = 0


def _handler(name: str, state: _State, admin: bool) -> Any:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def _answer(self, status: int, text: str,
                    content_type: str = "text/plain") -> None:
            body = text.encode("utf-8")
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.send_header("X-Node", name)
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)

        def _public(self) -> None:
            parts = urlsplit(self.path)
            query = parse_qs(parts.query)
            with state.lock:
                healthy, sick, latency = state.healthy, state.sick, state.latency
            if parts.path == "/health":
                with state.lock:
                    state.checks += 1
                self._answer(200 if healthy else 503, "ok\n" if healthy else "unhealthy\n")
                return
            with state.lock:
                state.served += 1
            if sick is not None and latency > 0:
                time.sleep(latency)
            if sick == "errors":
                self._answer(500, "%s: internal server error\n" % name)
                return
            if parts.path == "/slow":
                try:
                    delay = min(float(query.get("s", ["1"])[0]), MAX_SLOW)
                except ValueError:
                    delay = 1.0
                time.sleep(max(delay, 0.0))
            self._answer(200, name + "\n")

        def _admin(self) -> None:
            parts = urlsplit(self.path)
            query = {key: values[0] for key, values in parse_qs(parts.query).items()}
            if self.command == "GET" and parts.path == "/state":
                with state.lock:
                    body = {"name": name, "sick": state.sick, "latency": state.latency,
                            "healthy": state.healthy, "served": state.served,
                            "checks": state.checks}
                self._answer(200, json.dumps(body) + "\n", "application/json")
            elif self.command != "POST":
                self._answer(405, "POST only\n")
            elif parts.path == "/sick":
                try:
                    mode = query.get("mode", "errors")
                    latency = check_sickness(mode, query.get("latency"))
                except ValueError as exc:
                    self._answer(400, "%s\n" % exc)
                    return
                with state.lock:
                    state.sick, state.latency = mode, latency
                self._answer(200, "sick: %s, latency %g s\n" % (mode, latency))
            elif parts.path == "/well":
                with state.lock:
                    state.sick, state.latency = None, 0.0
                self._answer(200, "well\n")
            elif parts.path == "/health":
                ok = query.get("ok", "1") == "1"
                with state.lock:
                    state.healthy = ok
                self._answer(200, "ok\n")
            else:
                self._answer(404, "no such control\n")

        def _serve(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            if length:
                self.rfile.read(length)
            if admin:
                self._admin()
            else:
                self._public()

        do_GET = do_HEAD = do_POST = _serve

        def log_message(self, *args: Any) -> None:
            pass

    return Handler


def serve(name: str, port: int, admin_port: int, host: str = LOOPBACK) -> None:
    """Serve the public port on ``host`` and the admin port on 127.0.0.1 until SIGTERM/SIGINT
    (the child process's main loop)."""
    state = _State()
    server = ThreadingHTTPServer((host, port), _handler(name, state, admin=False))
    server.daemon_threads = True
    # The switches never listen beyond loopback, whatever ``host`` is.
    control = ThreadingHTTPServer((LOOPBACK, admin_port), _handler(name, state, admin=True))
    control.daemon_threads = True

    def _stop(signum: int, frame: Any) -> None:
        # shutdown() waits for serve_forever, which runs in this very thread: do it elsewhere.
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    admin_thread = threading.Thread(target=control.serve_forever, args=(0.1,), daemon=True,
                                    name="admin")
    admin_thread.start()
    print("listening on %s:%d as %s, admin on %s:%d" % (host, port, name, LOOPBACK, admin_port),
          flush=True)
    server.serve_forever(poll_interval=0.1)
    control.shutdown()
    server.server_close()
    control.server_close()


class WebNode:
    """One web node process on 127.0.0.1: ``start()``/``stop()`` or a context manager."""

    def __init__(self, name: str, port: Optional[int] = None,
                 admin_port: Optional[int] = None) -> None:
        self.name = name
        self._port = port
        self._admin_port = admin_port
        self.process: Optional[subprocess.Popen] = None

    @property
    def port(self) -> int:
        assert self._port is not None, "not started"
        return self._port

    @property
    def admin_port(self) -> int:
        assert self._admin_port is not None, "not started"
        return self._admin_port

    @property
    def admin_url(self) -> str:
        """The switches (never behind HAProxy): /sick, /well, /health, /state."""
        return "http://%s:%d" % (LOOPBACK, self.admin_port)

    @property
    def address(self) -> str:
        return LOOPBACK

    @property
    def url(self) -> str:
        return "http://%s:%d" % (LOOPBACK, self.port)

    @property
    def pid(self) -> Optional[int]:
        return self.process.pid if self.process else None

    def start(self, timeout: float = 10.0) -> WebNode:
        # Imported here so that the file also runs as a plain script (python webnode.py).
        from sandbox.net import free_port, wait_for_port
        from sandbox.process import spawn

        if self._port is None:
            self._port = free_port()
        if self._admin_port is None:
            self._admin_port = free_port()
        self.process = spawn(
            [sys.executable, os.path.abspath(__file__), "--name", self.name,
             "--port", str(self._port), "--admin-port", str(self._admin_port)],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        try:
            deadline = time.monotonic() + timeout
            while True:
                if self.process.poll() is not None:
                    err = self.process.stderr.read().decode("utf-8", "replace")
                    raise RuntimeError("web node %s exited with %s: %s"
                                       % (self.name, self.process.returncode, err.strip()))
                try:
                    wait_for_port(self._port, timeout=0.2)
                    wait_for_port(self._admin_port, timeout=0.2)
                    break
                except TimeoutError:
                    if time.monotonic() > deadline:
                        raise
        except BaseException:
            self.stop()
            raise
        return self

    def _control(self, path: str) -> str:
        request = urllib.request.Request(self.admin_url + path, data=b"", method="POST")
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.read().decode("utf-8", "replace")

    def set_healthy(self, ok: bool) -> None:
        """Make /health answer 200 (ok) or 503, as a failing application would."""
        self._control("/health?ok=%d" % (1 if ok else 0))

    def make_sick(self, mode: str = "errors", latency: Optional[float] = None) -> None:
        """Every request but /health answers 500 (``errors``) or ``latency`` seconds late
        (``slow``, default 1 s); ``latency`` also delays the errors. ValueError for a bad mode
        or latency (the node is left as it was)."""
        latency = check_sickness(mode, latency)
        self._control("/sick?mode=%s&latency=%r" % (mode, latency))

    def make_well(self) -> None:
        self._control("/well")

    def state(self) -> Dict[str, Any]:
        """What the node's switches say now, and how many requests it served."""
        with urllib.request.urlopen(self.admin_url + "/state", timeout=5) as response:
            return json.loads(response.read().decode("utf-8"))

    def kill(self) -> None:
        """The VM dies: SIGKILL, no goodbye."""
        from sandbox.process import kill

        kill(self.process)

    def stop(self) -> None:
        if self.process is None:
            return
        from sandbox.process import stop

        stop(self.process)
        if self.process.stderr:
            self.process.stderr.close()
        self.process = None

    def __enter__(self) -> WebNode:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()


def main(argv: Optional[List[str]] = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--name", required=True)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--admin-port", type=int, required=True)
    parser.add_argument("--host", default=LOOPBACK)
    args = parser.parse_args(argv)
    serve(args.name, args.port, args.admin_port, args.host)


if __name__ == "__main__":
    main()
