"""One HTTP request on one client connection of the webhook sensor: reading it under its
deadline, the checks before the body, handing the body to the receiver, and the answer.

The listener (``server.py``) gives each connection its own thread (a green one under
eventlet, as in st2's sensor container), which reads the request head under one deadline for
the whole request; only then does the request take a handling slot and get a ``Handler``
here. The requests, the answers and the order of the checks are described in
``receiver.py``. Every answer is JSON; a connection stays open for a next request only after
a 2xx to a request read whole (``Handler.fate``).
"""

from __future__ import annotations

import json
import logging
import re
import socket
import time
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler
from typing import Any, Optional, Protocol, Tuple
from urllib.parse import parse_qs, urlsplit

from ..domain.names import validate_group_name
from ..errors import ValidationError
from .receiver import Outcome, Receiver, one_line, refusal
from .settings import WebhookSettings

HEAD_LIMIT = 65536
LINGER_SECONDS = 1.0
SEND_TIMEOUT = 5.0
CHUNK = 65536

# Where a connection stands, and what becomes of it after an answer.
WAITING, READING, HANDLING, LINGERING = "waiting", "reading", "handling", "lingering"
KEEP, LINGER, CLOSE = "keep", "linger", "close"
_METHOD = re.compile(r"[A-Z]{1,16}")
_ASCII_DIGITS = re.compile(r"[0-9]{1,18}")


class Connection:
    """One client connection and where it stands."""

    __slots__ = ("sock", "address", "data", "state", "started", "deadline", "idle_until",
                 "evicted")

    def __init__(self, sock: socket.socket, address: Any, now: float,
                 settings: WebhookSettings) -> None:
        self.sock = sock
        self.address = address
        self.evicted = False
        self.wait(now, settings)

    def wait(self, now: float, settings: WebhookSettings, data: bytes = b"") -> None:
        """Await a request: its first byte within idle_timeout, all of it (head and body)
        within request_timeout, both from now."""
        self.state = READING if data else WAITING
        self.data = bytearray(data)
        self.started = now
        self.deadline = now + settings.request_timeout
        self.idle_until = now + settings.idle_timeout

    @property
    def host(self) -> str:
        return str(self.address[0]) if self.address else "-"


def head_complete(data: bytearray, before: int) -> bool:
    """Whether ``data`` holds a whole request head (http.server's reading: lines ending in LF,
    the head ending at an empty line; an empty first line is no request, also complete).
    ``before``: how much was already searched."""
    if data[:1] == b"\n" or data[:2] == b"\r\n":
        return True
    start = max(0, before - 2)
    return data.find(b"\n\n", start) >= 0 or data.find(b"\n\r\n", start) >= 0


def request_line(data: bytes) -> Tuple[str, str]:
    """Method and path (without the query) of a head, for the log line; "-" when unreadable."""
    line = bytes(data[:min(len(data), 1024)]).split(b"\n", 1)[0].decode("latin-1").split()
    if len(line) < 2 or not _METHOD.fullmatch(line[0]):
        return "-", "-"
    return line[0], one_line(urlsplit(line[1]).path or "-")[:100]


def plain_answer(status: int, message: str, headers: Tuple[Tuple[str, str], ...] = ()) -> bytes:
    """A whole JSON answer that closes the connection, for one sent without a handler
    (408, 414, 431, 503)."""
    body = (json.dumps({"error": message}) + "\n").encode("utf-8")
    lines = ["HTTP/1.1 %d %s" % (status, HTTPStatus(status).phrase),
             "Server: autoscale-webhook", "Content-Type: application/json",
             "Content-Length: %d" % len(body), "Cache-Control: no-store", "Connection: close"]
    lines.extend("%s: %s" % header for header in headers)
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


class _Input:
    """A handler's rfile: the bytes read with the head, then the socket, all within the
    request's deadline (a read past it raises socket.timeout). What is left after the
    request (a next, pipelined one) is ``leftover()``."""

    def __init__(self, sock: socket.socket, data: bytes, deadline: float, eof: bool) -> None:
        self._sock = sock
        self._buffer = bytearray(data)
        self._deadline = deadline
        self.eof = eof

    def _fill(self) -> bool:
        if self.eof:
            return False
        remaining = self._deadline - time.monotonic()
        if remaining <= 0:
            raise socket.timeout("request deadline passed")
        self._sock.settimeout(remaining)
        chunk = self._sock.recv(CHUNK)
        if not chunk:
            self.eof = True
            return False
        self._buffer += chunk
        return True

    def _take(self, size: int) -> bytes:
        chunk = bytes(self._buffer[:size])
        del self._buffer[:size]
        return chunk

    def readline(self, limit: int = -1) -> bytes:
        searched = 0
        while True:
            end = self._buffer.find(b"\n", searched)
            if end >= 0:
                end += 1
                break
            searched = len(self._buffer)
            if 0 <= limit <= searched or not self._fill():
                end = len(self._buffer)
                break
        return self._take(min(end, limit) if limit >= 0 else end)

    def read1(self, size: int = -1) -> bytes:
        if not self._buffer:
            self._fill()
        return self._take(len(self._buffer) if size < 0 else size)

    def read(self, size: int = -1) -> bytes:
        while (size < 0 or len(self._buffer) < size) and self._fill():
            pass
        return self._take(len(self._buffer) if size < 0 else size)

    def leftover(self) -> bytes:
        return bytes(self._buffer)

    def close(self) -> None:
        pass


class _Output:
    """A handler's wfile: every write sent whole (answers are small)."""

    def __init__(self, sock: socket.socket) -> None:
        self._sock = sock

    def write(self, data: bytes) -> int:
        self._sock.settimeout(SEND_TIMEOUT)
        self._sock.sendall(data)
        return len(data)

    def flush(self) -> None:
        pass

    def close(self) -> None:
        pass


class Listener(Protocol):
    """What a handler uses of the listener that made it (server.WebhookServer); named here so
    that this module need not import the listener, which imports it."""

    settings: WebhookSettings
    receiver: Receiver
    logger: logging.Logger


class Handler(BaseHTTPRequestHandler):
    """One request whose head has been read, handled in a slot. ``fate`` tells the server
    what becomes of the connection afterwards."""

    protocol_version = "HTTP/1.1"
    server: Listener

    def __init__(self, conn: Connection, eof: bool, server: Listener) -> None:
        self.input = _Input(conn.sock, bytes(conn.data), conn.deadline, eof)
        self._body_read = False
        self._logged = False
        self.keep_alive = False
        super().__init__(conn.sock, conn.address, server)

    def setup(self) -> None:
        self.connection = self.request
        self.rfile = self.input
        self.wfile = _Output(self.request)

    def handle(self) -> None:
        # One request: a next one is awaited outside the slot (_await_request), not here.
        self.close_connection = True
        self.handle_one_request()

    def finish(self) -> None:
        pass

    @property
    def fate(self) -> str:
        if self.keep_alive and not self.input.eof:
            return KEEP
        headers = getattr(self, "headers", None)
        sent_body = headers is not None and (
            headers.get("Content-Length", "0").strip() not in ("", "0")
            or headers.get("Transfer-Encoding") is not None)
        # Answered without reading the body: closing now could reset the connection before
        # the client reads the answer.
        return LINGER if sent_body and not self._body_read else CLOSE

    # -- plumbing --------------------------------------------------------------------------

    def version_string(self) -> str:
        return "autoscale-webhook"

    def log_message(self, format: str, *args: Any) -> None:
        # http.server's own lines carry the request line (with its query): not logged.
        pass

    def send_error(self, code: int, message: Optional[str] = None,
                   explain: Optional[str] = None) -> None:
        # http.server's own refusals (bad request line, headers too long, unknown method).
        self._respond(refusal(code, one_line(message or self.responses.get(code, ("error",))[0])))

    def _path(self) -> str:
        path = urlsplit(getattr(self, "path", None) or "").path
        return path.rstrip("/") or "/"

    def _consumed(self) -> bool:
        """The whole request has been read: its body, or it declared none."""
        if self._body_read:
            return True
        headers = getattr(self, "headers", None)
        return headers is not None and headers.get("Transfer-Encoding") is None and \
            headers.get("Content-Length", "0").strip() == "0"

    def _respond(self, outcome: Outcome) -> None:
        data = (json.dumps(outcome.body, sort_keys=True) + "\n").encode("utf-8")
        # A connection stays open for another request only after a success that read the
        # whole request, and when the client did not ask to close (http.server's reading of
        # the version and Connection header). Anything refused is closed.
        keep = outcome.status < 400 and not self.close_connection and self._consumed()
        self._log(outcome)  # before the answer: once the client has it, the line is there
        try:
            self.send_response(outcome.status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.send_header("Cache-Control", "no-store")
            if keep:
                self.send_header("Connection", "keep-alive")
                # Tells pooling clients (Apache HttpClient, for one) when the server closes
                # an idle connection, so that they do not send on one as it closes.
                self.send_header("Keep-Alive", "timeout=%d" % self.server.settings.idle_timeout)
            else:
                self.send_header("Connection", "close")
            for name, value in outcome.headers:
                self.send_header(name, value)
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(data)
        except OSError:
            keep = False  # the client is gone
        self.keep_alive = keep
        self.close_connection = not keep

    def _log(self, outcome: Outcome) -> None:
        if self._logged:
            return
        self._logged = True
        level = outcome.level
        if level is None:
            level = logging.INFO if outcome.status < 500 else logging.WARNING
        self.server.logger.log(
            level, "webhook: %s %s from %s: %d %s", self.command or "-",
            one_line(self._path()) if getattr(self, "path", None) else "-", self.client_address[0],
            outcome.status,
            outcome.summary or outcome.body.get("status", ""))

    # -- checks before the body --------------------------------------------------------------

    def _precheck(self) -> Optional[Outcome]:
        settings = self.server.settings
        path = self._path()
        if path in settings.health_paths:
            if self.command in ("GET", "HEAD"):
                return Outcome(200, {"status": "ok"}, summary="health")
            return refusal(405, "method not allowed", (("Allow", "GET, HEAD"),))
        if path not in settings.receivers:
            return refusal(404, "not found")
        if self.command != "POST":
            return refusal(405, "method not allowed", (("Allow", "POST"),))
        auth = self.server.receiver.auth
        if not auth.check(self.headers):
            challenge = auth.challenge
            return refusal(401, "missing or wrong credentials",
                          (("WWW-Authenticate", challenge),) if challenge else ())
        if self.headers.get("Transfer-Encoding") is not None:
            if self.headers.get("Content-Length") is not None:
                return refusal(400, "both Content-Length and Transfer-Encoding")
            return refusal(411, "Content-Length required (chunked bodies are not accepted)")
        lengths = self.headers.get_all("Content-Length") or []
        if not lengths:
            return refusal(411, "Content-Length required")
        # ASCII digits only: str.isdigit() also takes "²", which int() then refuses.
        if len(set(v.strip() for v in lengths)) != 1 or \
                not _ASCII_DIGITS.fullmatch(lengths[0].strip()):
            return refusal(400, "invalid Content-Length")
        if int(lengths[0]) > settings.body_limit:
            return refusal(413, "body larger than %d bytes" % settings.body_limit)
        return None

    def handle_expect_100(self) -> bool:
        # Refuse before the client sends the body, when it asked first.
        outcome = self._precheck()
        if outcome is not None:
            self._respond(outcome)
            return False
        return super().handle_expect_100()

    # -- the request -------------------------------------------------------------------------

    def _handle(self) -> None:
        outcome = self._precheck()
        if outcome is None:
            outcome = self._post()
        self._respond(outcome)

    def _post(self) -> Outcome:
        query = parse_qs(urlsplit(self.path).query, keep_blank_values=True)
        asg = None
        if "asg" in query:
            if len(query["asg"]) != 1:
                return refusal(400, "asg given more than once")
            try:
                asg = validate_group_name(query["asg"][0])
            except ValidationError as exc:
                return refusal(400, one_line(exc))
        length = int(self.headers["Content-Length"])
        body = self._read(length)
        if body is None:
            return refusal(400, "body shorter than Content-Length or too slow")
        try:
            return self.server.receiver.deliver(
                body, self.headers.get("Content-Type", ""), asg, self._path())
        except Exception:
            self.server.logger.exception("webhook: delivery failed")
            return refusal(500, "internal error")

    def _read(self, length: int) -> Optional[bytes]:
        """Exactly ``length`` bytes (never more), by the request's deadline; None otherwise."""
        chunks = []
        remaining = length
        try:
            while remaining > 0:
                chunk = self.rfile.read1(min(remaining, CHUNK))
                if not chunk:
                    return None
                chunks.append(chunk)
                remaining -= len(chunk)
        except OSError:  # the deadline (socket.timeout), a reset
            return None
        self._body_read = True
        return b"".join(chunks)

    def do_POST(self) -> None:
        self._handle()

    do_GET = do_HEAD = do_PUT = do_DELETE = do_PATCH = do_OPTIONS = do_TRACE = do_POST
    do_CONNECT = do_POST



def linger(sock: socket.socket, limit: int) -> None:
    """After an answer sent without reading all the client sent: stop sending and discard
    what the client still sends (at most ``limit`` bytes, for at most LINGER_SECONDS), so
    that closing does not reset the connection before the client has read the answer."""
    try:
        sock.shutdown(socket.SHUT_WR)
        deadline = time.monotonic() + LINGER_SECONDS
        left = limit
        while left > 0:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return
            sock.settimeout(remaining)
            data = sock.recv(min(left, CHUNK))
            if not data:
                return
            left -= len(data)
    except OSError:
        pass


def close_quietly(sock: socket.socket) -> None:
    try:
        sock.close()
    except OSError:
        pass
