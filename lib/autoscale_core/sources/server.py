"""The webhook sensor's HTTP listener: accepting connections, a thread for each, handling
slots, and what it does with slow and hostile clients.

Slow and hostile clients (``webhook.request_timeout``, default 10 s; ``webhook.idle_timeout``,
default 5 s): one deadline covers a whole request, request line, headers and body, counted
from when the connection is ready for it (accepted, or done with the previous request);
however slowly the bytes trickle in, it ends there (408, or 400 for a late body). A
connection that sends nothing within idle_timeout is closed without an answer. Each
connection has its own thread, green under eventlet as in st2's sensor container, and takes
one of MAX_WORKERS handling slots only once its head is in: slow or silent clients hold only
their own connections. (The body is read in the slot, once the credentials are checked: only
an authenticated client can hold a slot, and only until the deadline.) At most MAX_OPEN
connections are open; past that, the oldest waiting connection of the client address that
holds the most is closed to make room (a logged warning, at most once a minute), so a new
delivery always gets in. (HAProxy's timeout http-request, nginx's client_header_timeout.)

The sensor's setup() calls ``build_server``; the requests and answers are in
``receiver.py``, one request's handling in ``connections.py``.
"""

from __future__ import annotations

import collections
import errno
import logging
import selectors
import socket
import socketserver
import threading
import time
from typing import Any, Callable, Dict, Mapping, Optional, Tuple

from .connections import (
    CHUNK,
    HANDLING,
    HEAD_LIMIT,
    KEEP,
    LINGER,
    LINGERING,
    READING,
    SEND_TIMEOUT,
    Connection,
    Handler,
    close_quietly,
    head_complete,
    linger,
    plain_answer,
    request_line,
)
from .receiver import ROUTE_CACHE_SECONDS, Receiver, RouteCache
from .settings import WebhookSettings

LOG = logging.getLogger(__name__)

# Connections open at once (a waiting one costs a socket and a buffer, no thread); past it the
# oldest waiting connection of the client address holding the most is closed.
MAX_OPEN = 1000
# Requests handled at once once their head has arrived (threads; green ones under eventlet).
MAX_WORKERS = 32
_ACCEPT_BATCH = 64
_DROP_LOG_SECONDS = 60.0


class WebhookServer(socketserver.TCPServer):
    """The HTTP listener: bound when built, serving in ``serve()`` until ``stop()``.

    One daemon thread per connection, at most ``max_open`` connections, at most
    ``max_workers`` requests handled at once (see the module docstring)."""

    allow_reuse_address = True
    request_queue_size = 1024

    def __init__(self, settings: WebhookSettings, receiver: Receiver,
                 logger: Optional[logging.Logger] = None, max_open: int = MAX_OPEN,
                 max_workers: int = MAX_WORKERS) -> None:
        self.settings = settings
        self.receiver = receiver
        self.logger = logger or LOG
        self.max_open = max_open
        self.max_workers = max_workers
        self._slots = threading.BoundedSemaphore(max_workers)
        self._conns: Dict[int, Connection] = {}
        self._lock = threading.Lock()
        self._accept_paused_until = 0.0
        self._dropped = 0
        self._dropped_logged_at = float("-inf")
        self._paused_logged_at = float("-inf")
        self._stop = threading.Event()
        self._stopped = threading.Event()
        self._stopped.set()
        self._serving_thread: Optional[threading.Thread] = None
        if ":" in settings.bind_address:
            self.address_family = socket.AF_INET6
        try:
            super().__init__((settings.bind_address, settings.port), Handler)
        except OSError as exc:
            raise OSError(exc.errno, "webhook: cannot listen on %s port %d: %s"
                          % (settings.bind_address, settings.port, exc.strerror)) from None
        # stop() writes a byte here so that serve() wakes at once rather than at its next poll.
        self._wakeup_in, self._wakeup_out = socket.socketpair()

    def server_bind(self) -> None:
        # HTTPServer.server_bind would look up the bind address's FQDN (a DNS query, possibly
        # slow); the name is never used.
        socketserver.TCPServer.server_bind(self)
        host, port = self.server_address[:2]
        self.server_name = str(host)
        self.server_port = port

    @property
    def port(self) -> int:
        return self.server_address[1]

    @property
    def open_connections(self) -> int:
        with self._lock:
            return len(self._conns)

    # -- lifecycle ---------------------------------------------------------------------------

    def serve(self, poll_interval: float = 0.5) -> None:
        """Serve until stop(). (Not serve_forever: its shutdown() blocks forever when called
        before serving or from the serving thread; stop() never does.)"""
        if self._stop.is_set():
            return  # stopped before it started: the listening socket is closed
        self._serving_thread = threading.current_thread()
        self._stopped.clear()
        self.logger.info(
            "webhook: listening on %s port %d, POST %s (auth %s)%s",
            self.settings.bind_address, self.port,
            ", ".join("%s (%s)" % (path, source)
                      for path, source in self.settings.receivers.items()),
            "none" if self.settings.insecure else self.settings.auth_type,
            "" if not self.settings.insecure else
            ": WARNING no secret set and allow_insecure true, anyone may post alerts")
        # Non-blocking: a client gone between the wake-up and accept() must not block it.
        self.socket.setblocking(False)
        try:
            with selectors.DefaultSelector() as selector:
                selector.register(self, selectors.EVENT_READ)
                selector.register(self._wakeup_in, selectors.EVENT_READ)
                while not self._stop.is_set():
                    timeout = poll_interval
                    if self._accept_paused_until:
                        timeout = max(0.0, min(timeout,
                                               self._accept_paused_until - time.monotonic()))
                    ready = selector.select(timeout)
                    if self._stop.is_set():
                        break
                    now = time.monotonic()
                    if self._accept_paused_until and now >= self._accept_paused_until:
                        self._accept_paused_until = 0.0
                        selector.register(self, selectors.EVENT_READ)
                    if any(key.fileobj is self for key, _ in ready) and self._accept(now):
                        # Out of descriptors and nothing to close: pause for a moment (the
                        # listening socket would wake the loop again at once).
                        if now - self._paused_logged_at >= _DROP_LOG_SECONDS:
                            self.logger.warning(
                                "webhook: no file descriptor left (ulimit -n) and every "
                                "connection busy: not accepting for 0.1 s at a time")
                            self._paused_logged_at = now
                        selector.unregister(self)
                        self._accept_paused_until = now + 0.1
        finally:
            with self._lock:
                waiting = [c for c in self._conns.values() if c.state != HANDLING]
            for conn in waiting:
                self._evict(conn)
            self._stopped.set()

    def stop(self, timeout: float = 5.0) -> None:
        """Stop serving and close the listening socket; idempotent, never blocks for long
        (not even when called before serve() or from the serving thread). Connections
        waiting for a request are closed; a request being handled is finished."""
        self._stop.set()
        try:
            self._wakeup_out.send(b"x")
        except OSError:
            pass  # already stopped
        if threading.current_thread() is not self._serving_thread:
            self._stopped.wait(timeout)
        self.server_close()
        self._wakeup_in.close()
        self._wakeup_out.close()

    # -- connections -----------------------------------------------------------------------

    def _accept(self, now: float) -> bool:
        """Accept what is waiting; True when out of descriptors with none to free."""
        for _ in range(_ACCEPT_BATCH):
            try:
                sock, address = self.socket.accept()
            except (BlockingIOError, InterruptedError):
                return False
            except OSError as exc:
                if exc.errno in (errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM):
                    return not self._make_room(now, "no file descriptor left (ulimit -n)")
                return False  # ECONNABORTED and the like: that client is gone
            if type(sock) is not type(self.socket):
                # eventlet's green socket, when non-blocking, accepts a plain socket: make it
                # green too, or its thread's reads would block every green thread.
                sock = type(self.socket)(sock)
            if len(self._conns) >= self.max_open and not self._make_room(
                    now, "more than %d connections open" % self.max_open):
                self._refuse_busy(sock, address)
                continue
            conn = Connection(sock, address, now, self.settings)
            with self._lock:
                self._conns[id(conn)] = conn
            try:
                threading.Thread(target=self._connection, args=(conn,), daemon=True,
                                 name="webhook-connection").start()
            except RuntimeError:  # cannot start a thread
                self._forget(conn)
                self._refuse_busy(sock, address)
        return False

    def _make_room(self, now: float, why: str) -> bool:
        """Close one connection that is not being handled: one lingering after its answer,
        else the oldest waiting one of the client address holding the most (so one address
        flooding cannot push out the others). False when every one is being handled."""
        with self._lock:
            candidates = [c for c in self._conns.values() if c.state != HANDLING]
            if not candidates:
                return False
            lingering = [c for c in candidates if c.state == LINGERING]
            if lingering:
                victim = lingering[0]
            else:
                counts = collections.Counter(c.host for c in candidates)
                most = max(counts.values())
                victim = min((c for c in candidates if counts[c.host] == most),
                             key=lambda c: c.started)
        self._evict(victim)
        self._dropped += 1
        if now - self._dropped_logged_at >= _DROP_LOG_SECONDS:
            self.logger.warning(
                "webhook: %s: closed %d waiting connection(s) to make room (the oldest of "
                "the busiest client address first; the last from %s)", why, self._dropped,
                victim.host)
            self._dropped = 0
            self._dropped_logged_at = now
        return True

    def _evict(self, conn: Connection) -> None:
        """Make a connection's thread end at once, without an answer."""
        conn.evicted = True
        self._forget(conn)
        try:
            conn.sock.shutdown(socket.SHUT_RDWR)  # wakes its thread's recv with EOF
        except OSError:
            pass

    def _forget(self, conn: Connection) -> None:
        with self._lock:
            self._conns.pop(id(conn), None)

    def _refuse_busy(self, sock: socket.socket, address: Any) -> None:
        self.logger.warning("webhook: more than %d requests at once; 503 to %s",
                            self.max_open, address[0] if address else "-")
        try:
            sock.settimeout(1.0)
            sock.sendall(plain_answer(503, "busy", (("Retry-After", "5"),)))
        except OSError:
            pass
        close_quietly(sock)

    # -- one connection, in its own thread ---------------------------------------------------

    def _connection(self, conn: Connection) -> None:
        try:
            while not conn.evicted:
                eof = self._await_request(conn)
                if eof is None:
                    return
                # Only now, with the head read, does the request take a slot.
                if not self._slots.acquire(timeout=max(0.0, conn.deadline - time.monotonic())):
                    self._answer(conn, 503, "busy", (("Retry-After", "5"),))
                    return
                try:
                    conn.state = HANDLING
                    handler = Handler(conn, eof, self)
                finally:
                    self._slots.release()
                fate = handler.fate
                if fate == KEEP:
                    conn.wait(time.monotonic(), self.settings, handler.input.leftover())
                    continue
                if fate == LINGER:
                    conn.state = LINGERING
                    linger(conn.sock, self.settings.body_limit)
                return
        except Exception:
            self.logger.exception("webhook: error while handling a request from %s", conn.host)
        finally:
            self._forget(conn)
            close_quietly(conn.sock)

    def _await_request(self, conn: Connection) -> Optional[bool]:
        """Read until ``conn.data`` holds a whole request head: False, or True when the
        client closed its side after a partial one (http.server answers what it can read).
        None when there is no request to handle: the connection idled out, was closed or
        evicted, or was answered here (408, 414, 431)."""
        data = conn.data
        searched = 0
        while not head_complete(data, searched):
            if len(data) > HEAD_LIMIT:
                if b"\n" in data:
                    self._answer(conn, 431, "request header fields too large")
                else:
                    self._answer(conn, 414, "request line too long")
                return None
            now = time.monotonic()
            until = conn.deadline if data else min(conn.idle_until, conn.deadline)
            if now >= until:
                if data:
                    self._answer(conn, 408, "request not complete within %g s"
                                 % self.settings.request_timeout)
                return None  # idle: it asked nothing, closed without a word
            try:
                conn.sock.settimeout(until - now)
                chunk = conn.sock.recv(CHUNK)
            except socket.timeout:
                continue
            except OSError:
                return None
            if conn.evicted:
                return None
            if not chunk:
                return True if data else None
            searched = len(data)
            data += chunk
            conn.state = READING
        return False

    def _answer(self, conn: Connection, status: int, message: str,
                headers: Tuple[Tuple[str, str], ...] = ()) -> None:
        """Answer a request that goes no further, then close."""
        method, path = request_line(conn.data)
        self.logger.log(logging.INFO if status < 500 else logging.WARNING,
                        "webhook: %s %s from %s: %d %s", method, path, conn.host, status,
                        message)
        conn.state = LINGERING
        try:
            conn.sock.settimeout(SEND_TIMEOUT)
            conn.sock.sendall(plain_answer(status, message, headers))
        except OSError:
            return
        linger(conn.sock, self.settings.body_limit)


def build_server(settings: WebhookSettings, dispatch: Callable[..., Any],
                 load_groups: Callable[[], Mapping[str, Any]],
                 logger: Optional[logging.Logger] = None,
                 route_cache_seconds: float = ROUTE_CACHE_SECONDS) -> WebhookServer:
    """A bound server. ``dispatch(trigger, payload)``: the sensor service's; ``load_groups``:
    the groups by name (``lambda: store.load_all()[0]``)."""
    logger = logger or LOG
    routes = RouteCache(load_groups, max_age=route_cache_seconds, logger=logger)
    receiver = Receiver(settings, dispatch, routes, logger=logger)
    return WebhookServer(settings, receiver, logger=logger)

