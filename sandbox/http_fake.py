"""A small threaded HTTP server on loopback, the base of the Nova, Chef and Slack fakes.

A fake subclasses ``FakeService`` and implements ``handle(request) -> Response``; the server
runs in a background thread between ``start()`` and ``stop()`` (or as a context manager).
Every request is recorded in ``requests`` so a test can check what the client really sent.

Tests and the sandbox drive a fake through its public methods only, never its private state
(tests/unit/test_fake_boundaries.py checks it). Failures are injected by each fake's own
methods, which return a ``Failure``: a handle whose owner reads how many answers are ``left``
and can ``cancel()`` it without touching anyone else's; ``failures()`` lists those still
active, ``heal()`` cancels them all. Once started, a fake refuses a new public attribute,
so that a test setting a knob that is not one (``fake.boot_delay = 3``) fails at once instead
of silently changing nothing.
"""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable, Dict, List, NamedTuple, Optional
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


class Failure:
    """One injected failure: the next ``left`` requests it matches get its answer (``status``
    with ``message``, or, for a delay, the normal answer ``delay`` seconds late)."""

    def __init__(self, times: int, status: int = 500, *, method: Optional[str] = None,
                 path: Optional[str] = None, matches: Optional[Callable[[str], bool]] = None,
                 message: str = "injected failure", delay: float = 0.0,
                 headers: Optional[Dict[str, str]] = None) -> None:
        if times < 0:
            raise ValueError("a failure cannot happen %r times" % times)
        self.status = status
        self.method = method.upper() if method else None
        self.path = path  # what ``matches`` looks for, as the injecting call gave it
        self.message = message
        self.delay = delay
        self.headers = dict(headers or {})
        self._matches = matches
        self._left = times
        self._lock = threading.Lock()

    @property
    def left(self) -> int:
        with self._lock:
            return self._left

    def cancel(self) -> None:
        with self._lock:
            self._left = 0

    def take(self, method: str, path: str) -> bool:
        """Count one request against this failure: True when it matches and is not used up."""
        if self.method and method.upper() != self.method:
            return False
        if self._matches is not None and not self._matches(path):
            return False
        with self._lock:
            if self._left <= 0:
                return False
            self._left -= 1
            return True

    def __repr__(self) -> str:
        return "Failure(%s %s -> %s, %d left)" % (self.method or "*", self.path or "*",
                                                  "%.3g s late" % self.delay if self.delay
                                                  else self.status, self.left)


class Failures:
    """A fake's injected failures of one kind, first injected first served."""

    def __init__(self) -> None:
        self._items: List[Failure] = []
        self._lock = threading.Lock()

    def add(self, failure: Failure) -> Failure:
        with self._lock:
            self._items = [item for item in self._items if item.left > 0] + [failure]
        return failure

    def take(self, method: str, path: str) -> Optional[Failure]:
        """The first active failure that matches the request, counted; None if none does."""
        with self._lock:
            items = list(self._items)
        for item in items:
            if item.take(method, path):
                return item
        return None

    def active(self) -> List[Failure]:
        with self._lock:
            return [item for item in self._items if item.left > 0]

    def clear(self) -> None:
        with self._lock:
            items, self._items = self._items, []
        for item in items:
            item.cancel()


class FakeService:
    """Subclass and implement ``handle``."""

    def __init__(self) -> None:
        self.requests: List[Request] = []
        self._server: Optional[ThreadingHTTPServer] = None
        self._thread: Optional[threading.Thread] = None
        self._lock = threading.Lock()
        self._faults = Failures()

    def __setattr__(self, name: str, value: Any) -> None:
        # Sealed once started (see the module's docstring); the fake's own private state and
        # the public attributes it already has stay settable.
        if (not name.startswith("_") and self.__dict__.get("_sealed")
                and not hasattr(self, name)):
            raise AttributeError("%s has no attribute %r to set: use its methods"
                                 % (type(self).__name__, name))
        super().__setattr__(name, value)

    # -- failures -------------------------------------------------------------------------------

    def _fault_lists(self) -> List[Failures]:
        """Every list of injected failures (and delays) this fake keeps."""
        return [self._faults]

    def failures(self) -> List[Failure]:
        """The injected failures and delays still to happen, oldest first."""
        return [item for faults in self._fault_lists() for item in faults.active()]

    def heal(self) -> None:
        """Cancel every injected failure and delay: from now on the fake answers normally."""
        for faults in self._fault_lists():
            faults.clear()

    def clear_requests(self) -> None:
        """Forget the requests recorded so far (to look only at what comes next)."""
        with self._lock:
            self.requests.clear()

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
        self._sealed = True
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
