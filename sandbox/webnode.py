"""A web node: a small HTTP server in its own process, standing in for one of a group's VMs.

It answers every request with its own name, so a test counting responses through the load
balancer knows which node served each one::

    GET /           200  "<name>\\n"            (header X-Node: <name>)
    GET /slow?s=2   200  "<name>\\n" after 2 s  (an in-flight request during a drain)
    GET /health     200  "ok\\n", or 503 after ``set_healthy(False)``

It speaks HTTP/1.1 with keep-alive, as a real web server does, so HAProxy keeps idle
connections to it, which matters for ``del server``. Run it as a process (``WebNode(name)
.start()``) or directly: ``python sandbox/webnode.py --name web-1 --port 8081``.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, List, Optional
from urllib.parse import parse_qs, urlsplit

LOOPBACK = "127.0.0.1"
MAX_SLOW = 60.0


def serve(name: str, port: int, host: str = LOOPBACK) -> None:
    """Serve until SIGTERM/SIGINT (the child process's main loop)."""
    healthy = threading.Event()
    healthy.set()

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def _answer(self, status: int, text: str) -> None:
            body = text.encode("utf-8")
            self.send_response(status)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Content-Length", str(len(body)))
            self.send_header("X-Node", name)
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)

        def do_GET(self) -> None:
            parts = urlsplit(self.path)
            query = parse_qs(parts.query)
            if parts.path == "/health":
                self._answer(200 if healthy.is_set() else 503,
                             "ok\n" if healthy.is_set() else "unhealthy\n")
            elif parts.path == "/slow":
                try:
                    delay = min(float(query.get("s", ["1"])[0]), MAX_SLOW)
                except ValueError:
                    delay = 1.0
                time.sleep(max(delay, 0.0))
                self._answer(200, name + "\n")
            else:
                self._answer(200, name + "\n")

        do_HEAD = do_GET

        def do_POST(self) -> None:
            # The control endpoint the WebNode handle uses for failure injection.
            length = int(self.headers.get("Content-Length") or 0)
            self.rfile.read(length)
            parts = urlsplit(self.path)
            if parts.path == "/_control/health":
                if parse_qs(parts.query).get("ok", ["1"])[0] == "1":
                    healthy.set()
                else:
                    healthy.clear()
                self._answer(200, "ok\n")
            else:
                self._answer(404, "no such control\n")

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer((host, port), Handler)
    server.daemon_threads = True

    def _stop(signum: int, frame: Any) -> None:
        # shutdown() waits for serve_forever, which runs in this very thread: do it elsewhere.
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    print("listening on %s:%d as %s" % (host, port, name), flush=True)
    server.serve_forever(poll_interval=0.1)
    server.server_close()


class WebNode:
    """One web node process on 127.0.0.1: ``start()``/``stop()`` or a context manager."""

    def __init__(self, name: str, port: Optional[int] = None) -> None:
        self.name = name
        self._port = port
        self.process: Optional[subprocess.Popen] = None

    @property
    def port(self) -> int:
        assert self._port is not None, "not started"
        return self._port

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
        self.process = spawn(
            [sys.executable, os.path.abspath(__file__), "--name", self.name,
             "--port", str(self._port)],
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
                    break
                except TimeoutError:
                    if time.monotonic() > deadline:
                        raise
        except BaseException:
            self.stop()
            raise
        return self

    def set_healthy(self, ok: bool) -> None:
        """Make /health answer 200 (ok) or 503, as a failing application would."""
        request = urllib.request.Request(
            "%s/_control/health?ok=%d" % (self.url, 1 if ok else 0), data=b"", method="POST")
        with urllib.request.urlopen(request, timeout=5) as response:
            response.read()

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
    parser.add_argument("--host", default=LOOPBACK)
    args = parser.parse_args(argv)
    serve(args.name, args.port, args.host)


if __name__ == "__main__":
    main()
