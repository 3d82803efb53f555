"""A small threaded HTTP server on loopback, the base of the Nova, Chef and Slack fakes.

A fake subclasses ``FakeService`` and implements ``handle(request) -> Response``; the server
runs in a background thread between ``start()`` and ``stop()`` (or as a context manager).
Every request is recorded in ``requests`` so a test can check what the client really sent.
"""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Dict, List, NamedTuple, Optional
from urllib.parse import parse_qs, urlsplit

from .net import LOOPBACK


class Request(NamedTuple):
    method: str
    path: str
    query: Dict[str, List[str]]
    headers: Dict[str, str]  # names lowercased
    body: bytes
    # When it arrived (time.time()): for latency figures such as alert → first VM create.
    at: float = 0.0

    def json(self) -> Any:
        return json.loads(self.body.decode("utf-8")) if self.body else None


class Response(NamedTuple):
    status: int
    body: Any = None  # dict/list → JSON; bytes/str sent as they are
    headers: Optional[Dict[str, str]] = None


class FakeService:
    """Subclass and implement ``handle``."""

    def __init__(self) -> None:
        self.requests: List[Request] = []
        self._server: Optional[ThreadingHTTPServer] = None
        self._thread: Optional[threading.Thread] = None
        self._lock = threading.Lock()

    # -- to implement ---------------------------------------------------------------------------

    def handle(self, request: Request) -> Response:
        raise NotImplementedError

    # -- running --------------------------------------------------------------------------------

    @property
    def port(self) -> int:
        assert self._server is not None, "not started"
        return self._server.server_address[1]

    @property
    def url(self) -> str:
        return "http://%s:%d" % (LOOPBACK, self.port)

    def start(self) -> FakeService:
        service = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            # Headers and body go out in two writes; with Nagle each kept-alive request
            # would wait ~40 ms for the client's delayed ACK.
            disable_nagle_algorithm = True

            def _serve(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                parts = urlsplit(self.path)
                request = Request(self.command, parts.path, parse_qs(parts.query),
                                  {k.lower(): v for k, v in self.headers.items()}, body,
                                  time.time())
                with service._lock:
                    service.requests.append(request)
                try:
                    response = service.handle(request)
                except Exception as exc:  # a bug in the fake must show, not hang the client
                    response = Response(500, {"error": "fake failed: %r" % exc})
                payload = response.body
                content_type = "application/json"
                if isinstance(payload, (dict, list)):
                    payload = json.dumps(payload).encode("utf-8")
                elif isinstance(payload, str):
                    payload, content_type = payload.encode("utf-8"), "text/plain"
                elif payload is None:
                    payload = b""
                self.send_response(response.status)
                headers = {"Content-Type": content_type}
                headers.update(response.headers or {})
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(payload)

            do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = do_HEAD = _serve

            def log_message(self, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer((LOOPBACK, 0), Handler)
        self._server.daemon_threads = True
        # A short poll keeps stop() fast (serve_forever checks for shutdown between polls).
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.05,),
                                        daemon=True,
                                        name=type(self).__name__)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def __enter__(self) -> FakeService:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()
