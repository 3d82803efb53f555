"""The New Relic webhook receiver: settings, authentication, dedup, routing cache, HTTP server.

``sensors/newrelic_webhook.py`` runs it in st2's sensor container (``build_server`` in
setup(), ``serve()`` in run(), ``stop()`` in cleanup()); everything with logic is here so it
can be tested without st2.

Requests (``path`` is the config's ``webhook.path``, default ``/st2/nrhook``)::

    POST <path>[?asg=<group>]  a New Relic alert (JSON, or the 2015 form with alert=)
    GET  <path>/health         200 {"status": "ok"}, without credentials (for a load
                               balancer or a monitor; it reveals no group, no alert)

    status  when
    200     alert dispatched (one autoscale.alert per group; the answer lists the groups),
            or a duplicate delivery ({"status": "duplicate"}, nothing dispatched)
    202     a valid alert that no group is for ({"status": "ignored", "reason": ...}), or a
            2015 ``deployment=`` notice (nothing to do; logged at debug level only)
    400     malformed body (a lone surrogate included), bad Content-Length, a body cut short
            or not in by the request deadline, ?asg= not a valid group name (or given
            twice): a one-line reason
    401     missing or wrong credentials (WWW-Authenticate for bearer and basic)
    404     any other path
    405     another method on the path (Allow: POST) or on the health path (Allow: GET, HEAD)
    408     the request head (request line and headers) not in by the request deadline
    411     no Content-Length (chunked bodies are not accepted)
    413     Content-Length over ``webhook.body_limit`` (decided before reading anything)
    414/431 a request line or head over HEAD_LIMIT (64 KiB)
    500     a bug (logged with its traceback, never with the body)
    503     the datastore cannot be read (and no earlier copy), dispatch failed, or the
            server is saturated (no handling slot free by the request's deadline, or
            MAX_OPEN connections all being handled), with Retry-After; New Relic retries

Checks run in that order: path, method, credentials, length, body, routing, dedup. Nothing
is dispatched unless every one passes, and the body is not read before the credentials and
its length have been checked. Every answer is JSON. A connection stays open for a next
request (HTTP/1.1 keep-alive, ``Keep-Alive: timeout=<idle_timeout>``) only after a 2xx to a
request read whole; any other answer closes it.

Authentication (``webhook.auth_type``), each credential compared in constant time with
``hmac.compare_digest``: ``bearer`` (``Authorization: Bearer <token>``), ``basic``
(``Authorization: Basic``, username and password), ``header`` (``<header_name>: <token>``).
``WebhookSettings.from_config`` refuses to build without the secret(s) of the chosen type
unless ``webhook.allow_insecure`` is true, in which case every request is accepted (and a
warning is logged at startup). With a secret set, allow_insecure changes nothing.

Dedup: New Relic retries and may deliver one event twice. A delivery whose (issue id, state,
severity, ?asg=) was already dispatched less than ``webhook.dedup_window`` seconds ago is
answered 200 "duplicate" and not dispatched. Severity is part of the key so that an open
issue escalating from warning to critical is dispatched; ``?asg=`` is, so that one issue sent
to two destinations for two groups reaches both. The window counts from the first delivery.
The table holds at most DEDUP_MAX_ENTRIES keys, the oldest evicted first, so memory never
grows with the number of deliveries. A delivery that routes nowhere is not remembered (a group
created a moment later gets New Relic's next delivery), nor one whose dispatch failed. 0
turns dedup off.

Routing cache: the groups are read with one ``Store.load_all`` (one datastore listing) at
most every ROUTE_CACHE_SECONDS (5 s), whatever the number of deliveries, so a burst of alerts
costs one listing, and a group created, changed or deleted is seen within 5 s. A ``?asg=``
naming a group the cached copy lacks reloads at once (at most once a second), so a group
created just before its first alert is not missed. When a reload fails, the previous copy is
used (and the failure logged); without one the answer is 503.

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
delivery always gets in. Dispatch is one message-bus publish per group (serialised by a
lock, as st2's publisher is shared): an answer never waits on scaling work.
"""

from __future__ import annotations

import base64
import binascii
import collections
import errno
import hmac
import ipaddress
import json
import logging
import re
import selectors
import socket
import socketserver
import threading
import time
from dataclasses import dataclass, field
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler
from typing import Any, Callable, Dict, Hashable, List, Mapping, Optional, Tuple
from urllib.parse import parse_qs, urlsplit

from . import alerts, routing
from .model import ValidationError, validate_group_name

LOG = logging.getLogger(__name__)

TRIGGER = "autoscale.alert"
AUTH_TYPES = ("bearer", "basic", "header")
HEALTH_SUFFIX = "/health"
_ASCII_DIGITS = re.compile(r"[0-9]{1,18}")
REALM = "autoscale"

DEDUP_MAX_ENTRIES = 10000
ROUTE_CACHE_SECONDS = 5.0
ROUTE_REFRESH_MIN_SECONDS = 1.0
REQUEST_TIMEOUT = 10.0
IDLE_TIMEOUT = 5.0
TIMEOUT_MIN = 1.0
TIMEOUT_MAX = 300.0
# Connections open at once (a waiting one costs a socket and a buffer, no thread); past it the
# oldest waiting connection of the client address holding the most is closed.
MAX_OPEN = 1000
# Requests handled at once once their head has arrived (threads; green ones under eventlet).
MAX_WORKERS = 32
HEAD_LIMIT = 65536
LINGER_SECONDS = 1.0
SEND_TIMEOUT = 5.0
REASON_MAX = 200
BODY_LIMIT_MIN = 1024
BODY_LIMIT_MAX = 16 * 1024 * 1024

# RFC 7230 token characters: what a header name may hold.
_HEADER_NAME = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]{1,64}")
_CHUNK = 65536


# ---------------------------------------------------------------------------------------------
# Settings


def _key(name: str) -> str:
    return "config key webhook.%s" % name


def _string(section: Mapping[str, Any], name: str, default: str) -> str:
    value = section.get(name)
    if value is None:
        return default
    if not isinstance(value, str):
        raise ValidationError("%s must be a string, not %s" % (_key(name), type(value).__name__))
    if any(ch in value for ch in "\r\n\x00"):
        raise ValidationError("%s must be a single line" % _key(name))
    return value


def _seconds(section: Mapping[str, Any], name: str, default: float) -> float:
    value = section.get(name)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, (int, float)) \
            or not TIMEOUT_MIN <= value <= TIMEOUT_MAX:
        raise ValidationError("%s must be a number of seconds from %g to %g, not %r"
                              % (_key(name), TIMEOUT_MIN, TIMEOUT_MAX, value))
    return float(value)


def _integer(section: Mapping[str, Any], name: str, default: int, minimum: int,
             maximum: int) -> int:
    value = section.get(name)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int) or not minimum <= value <= maximum:
        raise ValidationError("%s must be a whole number from %d to %d, not %r"
                              % (_key(name), minimum, maximum, value))
    return value


@dataclass(frozen=True)
class WebhookSettings:
    """The ``webhook`` section of the pack config, validated."""

    bind_address: str = "0.0.0.0"
    # 0 lets the system choose a free port (tests); the server reports the one it got.
    port: int = 10001
    path: str = "/st2/nrhook"
    auth_type: str = "bearer"
    token: str = field(default="", repr=False)
    username: str = ""
    password: str = field(default="", repr=False)
    header_name: str = "X-Autoscale-Token"
    allow_insecure: bool = False
    body_limit: int = 65536
    dedup_window: int = 600
    request_timeout: float = REQUEST_TIMEOUT
    idle_timeout: float = IDLE_TIMEOUT

    @property
    def health_path(self) -> str:
        return (self.path.rstrip("/") or "") + HEALTH_SUFFIX

    @property
    def has_secret(self) -> bool:
        if self.auth_type == "basic":
            return bool(self.username and self.password)
        return bool(self.token)

    @property
    def insecure(self) -> bool:
        """True when every request is accepted: no secret, and allow_insecure set. (No secret
        without allow_insecure, which from_config refuses, accepts nothing.)"""
        return not self.has_secret and self.allow_insecure

    @classmethod
    def from_config(cls, config: Optional[Mapping[str, Any]]) -> WebhookSettings:
        """Raises ValidationError naming the config key at fault."""
        section = (config or {}).get("webhook")
        if section is None:
            section = {}
        if not isinstance(section, Mapping):
            raise ValidationError("config key webhook must be a mapping")

        bind_address = _string(section, "bind_address", cls.bind_address).strip()
        if not bind_address:
            raise ValidationError("%s must not be empty" % _key("bind_address"))
        try:
            ipaddress.ip_address(bind_address)
        except ValueError:
            raise ValidationError(
                "%s %r is not an IP address (use 0.0.0.0, :: or one of the host's addresses)"
                % (_key("bind_address"), bind_address)
            ) from None

        path = _string(section, "path", cls.path)
        if not path.startswith("/") or any(ch in path for ch in "?# \t") or len(path) > 200:
            raise ValidationError(
                "%s %r must be a URL path starting with '/', without '?', '#' or spaces"
                % (_key("path"), path)
            )
        path = path.rstrip("/") or "/"

        auth_type = _string(section, "auth_type", cls.auth_type)
        if auth_type not in AUTH_TYPES:
            raise ValidationError("%s must be one of %s, not %r"
                                  % (_key("auth_type"), ", ".join(AUTH_TYPES), auth_type))
        header_name = _string(section, "header_name", cls.header_name).strip()
        if not _HEADER_NAME.fullmatch(header_name):
            raise ValidationError("%s %r is not a valid HTTP header name"
                                  % (_key("header_name"), header_name))
        username = _string(section, "username", "")
        if ":" in username:
            raise ValidationError("%s must not contain ':' (HTTP basic auth)" % _key("username"))
        allow_insecure = section.get("allow_insecure", False)
        if not isinstance(allow_insecure, bool):
            raise ValidationError("%s must be true or false" % _key("allow_insecure"))

        settings = cls(
            bind_address=bind_address,
            port=_integer(section, "port", cls.port, 0, 65535),
            path=path,
            auth_type=auth_type,
            token=_string(section, "token", ""),
            username=username,
            password=_string(section, "password", ""),
            header_name=header_name,
            allow_insecure=allow_insecure,
            body_limit=_integer(section, "body_limit", cls.body_limit, BODY_LIMIT_MIN,
                                BODY_LIMIT_MAX),
            dedup_window=_integer(section, "dedup_window", cls.dedup_window, 0, 7 * 24 * 3600),
            request_timeout=_seconds(section, "request_timeout", cls.request_timeout),
            idle_timeout=_seconds(section, "idle_timeout", cls.idle_timeout),
        )
        if settings.idle_timeout > settings.request_timeout:
            raise ValidationError(
                "%s (%g s) must not exceed webhook.request_timeout (%g s): a request's first "
                "byte is awaited within both" % (_key("idle_timeout"), settings.idle_timeout,
                                                settings.request_timeout))
        if not settings.has_secret and not allow_insecure:
            if auth_type == "basic":
                missing = [_key(k) for k in ("username", "password") if not getattr(settings, k)]
                what = "%s %s empty" % (" and ".join(missing), "are" if len(missing) > 1 else "is")
                fix = "set %s" % ("them" if len(missing) > 1 else "it")
            else:
                what = "%s is empty" % _key("token")
                fix = 'set it (e.g. to "{{ st2kv.system.newrelic_webhook_token }}")'
            raise ValidationError(
                "%s, so the webhook (auth_type %s) would accept anyone's alerts: %s, or set "
                "webhook.allow_insecure: true to accept unauthenticated requests (never in "
                "production)" % (what, auth_type, fix)
            )
        return settings


# ---------------------------------------------------------------------------------------------
# Authentication


def _same(given: bytes, expected: bytes) -> bool:
    return hmac.compare_digest(given, expected)


def _raw(value: str) -> bytes:
    # http.client/http.server decode header values as ISO-8859-1: this gives the bytes back.
    return value.encode("latin-1", errors="replace")


class Authenticator:
    """Checks one request's credentials against the settings, in constant time."""

    def __init__(self, settings: WebhookSettings) -> None:
        self.settings = settings
        self._token = settings.token.encode("utf-8")
        self._username = settings.username.encode("utf-8")
        self._password = settings.password.encode("utf-8")

    @property
    def challenge(self) -> Optional[str]:
        """The WWW-Authenticate header of a 401 (none for a custom header)."""
        if self.settings.auth_type == "bearer":
            return 'Bearer realm="%s"' % REALM
        if self.settings.auth_type == "basic":
            return 'Basic realm="%s", charset="UTF-8"' % REALM
        return None

    def check(self, headers: Any) -> bool:
        """``headers``: an ``email.message.Message`` (http.server's) or any mapping with
        ``get_all``/``get``."""
        if self.settings.insecure:
            return True
        if not self.settings.has_secret:
            return False
        kind = self.settings.auth_type
        name = self.settings.header_name if kind == "header" else "Authorization"
        values = _all(headers, name)
        if len(values) != 1:
            return False
        value = values[0].strip()
        if kind == "header":
            return _same(_raw(value), self._token)
        scheme, _, credentials = value.partition(" ")
        credentials = credentials.strip()
        if kind == "bearer":
            return _same(_raw(credentials), self._token) and scheme.lower() == "bearer"
        try:
            decoded = base64.b64decode(_raw(credentials), validate=True)
        except (binascii.Error, ValueError):
            decoded = b""
        user, _, password = decoded.partition(b":")
        user_ok = _same(user, self._username)
        password_ok = _same(password, self._password)
        return user_ok and password_ok and scheme.lower() == "basic"


def _all(headers: Any, name: str) -> List[str]:
    if hasattr(headers, "get_all"):
        return list(headers.get_all(name) or [])
    value = headers.get(name)
    return [] if value is None else [value]


# ---------------------------------------------------------------------------------------------
# Dedup


class Dedup:
    """Remembers what was dispatched for ``window`` seconds; at most ``max_entries`` keys,
    the oldest evicted first. Thread-safe; ``clock`` is injectable (monotonic seconds)."""

    def __init__(self, window: float, max_entries: int = DEDUP_MAX_ENTRIES,
                 clock: Callable[[], float] = time.monotonic) -> None:
        if max_entries < 1:
            raise ValueError("max_entries must be at least 1")
        self.window = window
        self.max_entries = max_entries
        self._clock = clock
        self._seen: collections.OrderedDict = collections.OrderedDict()
        self._lock = threading.Lock()

    def __len__(self) -> int:
        with self._lock:
            return len(self._seen)

    def _expire(self, now: float) -> None:
        while self._seen:
            key, at = next(iter(self._seen.items()))
            if now - at < self.window:
                return
            del self._seen[key]

    def first(self, key: Hashable) -> bool:
        """True, and the key is remembered, unless it was remembered less than ``window``
        seconds ago (a duplicate). Atomic: of many threads with one key, one gets True."""
        if self.window <= 0:
            return True
        with self._lock:
            now = self._clock()
            self._expire(now)
            if key in self._seen:
                return False
            self._seen[key] = now
            while len(self._seen) > self.max_entries:
                self._seen.popitem(last=False)
            return True

    def forget(self, key: Hashable) -> None:
        with self._lock:
            self._seen.pop(key, None)


# ---------------------------------------------------------------------------------------------
# Routing cache


class DatastoreUnavailable(RuntimeError):
    """The groups cannot be read and there is no earlier copy to route with."""


class RouteCache:
    """The groups to route with, read through ``load`` (``Store.load_all``'s groups) at most
    every ``max_age`` seconds; a wanted name that is missing reloads at once, at most every
    ``min_refresh`` seconds. Thread-safe: concurrent callers share one load."""

    def __init__(self, load: Callable[[], Mapping[str, Any]],
                 max_age: float = ROUTE_CACHE_SECONDS,
                 min_refresh: float = ROUTE_REFRESH_MIN_SECONDS,
                 clock: Callable[[], float] = time.monotonic,
                 logger: Optional[logging.Logger] = None) -> None:
        self._load = load
        self.max_age = max_age
        self.min_refresh = min_refresh
        self._clock = clock
        self._logger = logger or LOG
        self._lock = threading.Lock()
        self._groups: Optional[Mapping[str, Any]] = None
        self._loaded_at = float("-inf")
        self.loads = 0

    def groups(self, want: Optional[str] = None) -> Mapping[str, Any]:
        with self._lock:
            age = self._clock() - self._loaded_at
            stale = self._groups is None or age >= self.max_age
            missing = (want is not None and self._groups is not None and want not in self._groups
                       and age >= self.min_refresh)
            if stale or missing:
                self._reload()
            if self._groups is None:
                raise DatastoreUnavailable("the groups cannot be read from the datastore")
            return self._groups

    def _reload(self) -> None:
        self.loads += 1
        try:
            groups = dict(self._load())
        except Exception as exc:  # the datastore API: any failure is worth a retry later
            if self._groups is None:
                self._logger.error("webhook: cannot read the groups from the datastore: %s",
                                   type(exc).__name__)
                return
            self._logger.warning("webhook: cannot read the groups from the datastore (%s); "
                                 "routing with the copy read %.0f s ago",
                                 type(exc).__name__, self._clock() - self._loaded_at)
            # Try again after min_refresh, not on every request.
            self._loaded_at = self._clock() - self.max_age + self.min_refresh
            return
        self._groups = groups
        self._loaded_at = self._clock()


# ---------------------------------------------------------------------------------------------
# What to do with one delivery, HTTP aside


class Outcome:
    """An answer: status, JSON body, extra headers, the log line's summary and its level
    (None: INFO, or WARNING for a 5xx)."""

    __slots__ = ("status", "body", "headers", "summary", "level")

    def __init__(self, status: int, body: Dict[str, Any],
                 headers: Tuple[Tuple[str, str], ...] = (), summary: str = "",
                 level: Optional[int] = None) -> None:
        self.status = status
        self.body = body
        self.headers = headers
        self.summary = summary
        self.level = level


def _error(status: int, message: str, headers: Tuple[Tuple[str, str], ...] = ()) -> Outcome:
    return Outcome(status, {"error": message}, headers, message)


def _cut(text: str) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= REASON_MAX else text[:REASON_MAX - 3] + "..."


class Receiver:
    """Reads, routes, dedups and dispatches one delivery's body."""

    def __init__(self, settings: WebhookSettings, dispatch: Callable[..., Any],
                 routes: RouteCache, dedup: Optional[Dedup] = None,
                 wall_clock: Callable[[], float] = time.time,
                 logger: Optional[logging.Logger] = None) -> None:
        self.settings = settings
        self.auth = Authenticator(settings)
        self.routes = routes
        self.dedup = dedup if dedup is not None else Dedup(settings.dedup_window)
        self._dispatch = dispatch
        self._dispatch_lock = threading.Lock()
        self._wall_clock = wall_clock
        self.logger = logger or LOG

    def deliver(self, body: bytes, content_type: str, asg: Optional[str]) -> Outcome:
        received_at = self._wall_clock()
        if not body.strip():
            return _error(400, "body is empty")
        try:
            alert = alerts.normalise(alerts.parse_body(body, content_type))
        except alerts.DeploymentNotice as exc:
            # Answered 2xx, or New Relic would retry it; nothing to do, nothing worth an INFO.
            return Outcome(202, {"status": "ignored", "reason": str(exc), "groups": []},
                           summary="nothing dispatched: %s" % exc, level=logging.DEBUG)
        except alerts.AlertPayloadError as exc:
            return _error(400, _cut(exc))
        about = "issue %s %s/%s" % (_cut(alert.issue_id), alert.state, alert.severity)
        try:
            groups = self.routes.groups(want=asg)
        except DatastoreUnavailable as exc:
            return _error(503, str(exc), (("Retry-After", "30"),))
        try:
            route = routing.route(alert, groups, asg=asg)
        except ValidationError as exc:
            return _error(400, _cut(exc))
        if not route.groups:
            return Outcome(202, {"status": "ignored", "reason": route.reason, "groups": []},
                           summary="%s: nothing dispatched: %s" % (about, route.reason))
        key = (alert.issue_id, alert.state, alert.severity, asg or "")
        if not self.dedup.first(key):
            return Outcome(200, {"status": "duplicate", "issue_id": alert.issue_id,
                                 "state": alert.state, "severity": alert.severity,
                                 "groups": []},
                           summary="%s: duplicate, nothing dispatched" % about)
        try:
            with self._dispatch_lock:
                for name in route.groups:
                    self._dispatch(TRIGGER, routing.trigger_payload(alert, name, received_at))
        except Exception as exc:
            self.dedup.forget(key)
            self.logger.error("webhook: %s: dispatch failed: %s", about, type(exc).__name__)
            return _error(503, "dispatch failed; retry", (("Retry-After", "10"),))
        return Outcome(200, {"status": "dispatched", "groups": list(route.groups),
                             "issue_id": alert.issue_id, "state": alert.state,
                             "severity": alert.severity},
                       summary="%s: dispatched to %s" % (about, ", ".join(route.groups)))


# ---------------------------------------------------------------------------------------------
# HTTP
#
# Each connection has its own thread (a green one under eventlet, as in st2's sensor
# container, where it costs a few kilobytes), which reads the request head under one deadline
# for the whole request. Only then does the request take one of the ``max_workers`` slots that
# handling (authentication, parsing, dispatch) needs: a slow or silent client holds its own
# connection, never a slot, and past ``max_open`` connections the oldest waiting one is
# closed to make room. (HAProxy's timeout http-request, nginx's client_header_timeout.)

_WAITING, _READING, _HANDLING, _LINGERING = "waiting", "reading", "handling", "lingering"
_KEEP, _LINGER, _CLOSE = "keep", "linger", "close"
_METHOD = re.compile(r"[A-Z]{1,16}")
_ACCEPT_BATCH = 64
_DROP_LOG_SECONDS = 60.0


class _Connection:
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
        self.state = _READING if data else _WAITING
        self.data = bytearray(data)
        self.started = now
        self.deadline = now + settings.request_timeout
        self.idle_until = now + settings.idle_timeout

    @property
    def host(self) -> str:
        return str(self.address[0]) if self.address else "-"


def _head_complete(data: bytearray, before: int) -> bool:
    """Whether ``data`` holds a whole request head (http.server's reading: lines ending in LF,
    the head ending at an empty line; an empty first line is no request, also complete).
    ``before``: how much was already searched."""
    if data[:1] == b"\n" or data[:2] == b"\r\n":
        return True
    start = max(0, before - 2)
    return data.find(b"\n\n", start) >= 0 or data.find(b"\n\r\n", start) >= 0


def _request_line(data: bytes) -> Tuple[str, str]:
    """Method and path (without the query) of a head, for the log line; "-" when unreadable."""
    line = bytes(data[:min(len(data), 1024)]).split(b"\n", 1)[0].decode("latin-1").split()
    if len(line) < 2 or not _METHOD.fullmatch(line[0]):
        return "-", "-"
    return line[0], _cut(urlsplit(line[1]).path or "-")[:100]


def _plain(status: int, message: str, headers: Tuple[Tuple[str, str], ...] = ()) -> bytes:
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
        chunk = self._sock.recv(_CHUNK)
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


class _Handler(BaseHTTPRequestHandler):
    """One request whose head has been read, handled in a slot. ``fate`` tells the server
    what becomes of the connection afterwards."""

    protocol_version = "HTTP/1.1"
    server: WebhookServer

    def __init__(self, conn: _Connection, eof: bool, server: WebhookServer) -> None:
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
            return _KEEP
        headers = getattr(self, "headers", None)
        sent_body = headers is not None and (
            headers.get("Content-Length", "0").strip() not in ("", "0")
            or headers.get("Transfer-Encoding") is not None)
        # Answered without reading the body: closing now could reset the connection before
        # the client reads the answer.
        return _LINGER if sent_body and not self._body_read else _CLOSE

    # -- plumbing --------------------------------------------------------------------------

    def version_string(self) -> str:
        return "autoscale-webhook"

    def log_message(self, format: str, *args: Any) -> None:
        # http.server's own lines carry the request line (with its query): not logged.
        pass

    def send_error(self, code: int, message: Optional[str] = None,
                   explain: Optional[str] = None) -> None:
        # http.server's own refusals (bad request line, headers too long, unknown method).
        self._respond(_error(code, _cut(message or self.responses.get(code, ("error",))[0])))

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
            _cut(self._path()) if getattr(self, "path", None) else "-", self.client_address[0],
            outcome.status,
            outcome.summary or outcome.body.get("status", ""))

    # -- checks before the body --------------------------------------------------------------

    def _precheck(self) -> Optional[Outcome]:
        settings = self.server.settings
        path = self._path()
        if path == settings.health_path:
            if self.command in ("GET", "HEAD"):
                return Outcome(200, {"status": "ok"}, summary="health")
            return _error(405, "method not allowed", (("Allow", "GET, HEAD"),))
        if path != settings.path:
            return _error(404, "not found")
        if self.command != "POST":
            return _error(405, "method not allowed", (("Allow", "POST"),))
        auth = self.server.receiver.auth
        if not auth.check(self.headers):
            challenge = auth.challenge
            return _error(401, "missing or wrong credentials",
                          (("WWW-Authenticate", challenge),) if challenge else ())
        if self.headers.get("Transfer-Encoding") is not None:
            if self.headers.get("Content-Length") is not None:
                return _error(400, "both Content-Length and Transfer-Encoding")
            return _error(411, "Content-Length required (chunked bodies are not accepted)")
        lengths = self.headers.get_all("Content-Length") or []
        if not lengths:
            return _error(411, "Content-Length required")
        # ASCII digits only: str.isdigit() also takes "²", which int() then refuses.
        if len(set(v.strip() for v in lengths)) != 1 or \
                not _ASCII_DIGITS.fullmatch(lengths[0].strip()):
            return _error(400, "invalid Content-Length")
        if int(lengths[0]) > settings.body_limit:
            return _error(413, "body larger than %d bytes" % settings.body_limit)
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
                return _error(400, "asg given more than once")
            try:
                asg = validate_group_name(query["asg"][0])
            except ValidationError as exc:
                return _error(400, _cut(exc))
        length = int(self.headers["Content-Length"])
        body = self._read(length)
        if body is None:
            return _error(400, "body shorter than Content-Length or too slow")
        try:
            return self.server.receiver.deliver(
                body, self.headers.get("Content-Type", ""), asg)
        except Exception:
            self.server.logger.exception("webhook: delivery failed")
            return _error(500, "internal error")

    def _read(self, length: int) -> Optional[bytes]:
        """Exactly ``length`` bytes (never more), by the request's deadline; None otherwise."""
        chunks = []
        remaining = length
        try:
            while remaining > 0:
                chunk = self.rfile.read1(min(remaining, _CHUNK))
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
        self._conns: Dict[int, _Connection] = {}
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
            super().__init__((settings.bind_address, settings.port), _Handler)
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
            self.settings.bind_address, self.port, self.settings.path,
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
                waiting = [c for c in self._conns.values() if c.state != _HANDLING]
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
            conn = _Connection(sock, address, now, self.settings)
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
            candidates = [c for c in self._conns.values() if c.state != _HANDLING]
            if not candidates:
                return False
            lingering = [c for c in candidates if c.state == _LINGERING]
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

    def _evict(self, conn: _Connection) -> None:
        """Make a connection's thread end at once, without an answer."""
        conn.evicted = True
        self._forget(conn)
        try:
            conn.sock.shutdown(socket.SHUT_RDWR)  # wakes its thread's recv with EOF
        except OSError:
            pass

    def _forget(self, conn: _Connection) -> None:
        with self._lock:
            self._conns.pop(id(conn), None)

    def _refuse_busy(self, sock: socket.socket, address: Any) -> None:
        self.logger.warning("webhook: more than %d requests at once; 503 to %s",
                            self.max_open, address[0] if address else "-")
        try:
            sock.settimeout(1.0)
            sock.sendall(_plain(503, "busy", (("Retry-After", "5"),)))
        except OSError:
            pass
        _close(sock)

    # -- one connection, in its own thread ---------------------------------------------------

    def _connection(self, conn: _Connection) -> None:
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
                    conn.state = _HANDLING
                    handler = _Handler(conn, eof, self)
                finally:
                    self._slots.release()
                fate = handler.fate
                if fate == _KEEP:
                    conn.wait(time.monotonic(), self.settings, handler.input.leftover())
                    continue
                if fate == _LINGER:
                    conn.state = _LINGERING
                    _linger(conn.sock, self.settings.body_limit)
                return
        except Exception:
            self.logger.exception("webhook: error while handling a request from %s", conn.host)
        finally:
            self._forget(conn)
            _close(conn.sock)

    def _await_request(self, conn: _Connection) -> Optional[bool]:
        """Read until ``conn.data`` holds a whole request head: False, or True when the
        client closed its side after a partial one (http.server answers what it can read).
        None when there is no request to handle: the connection idled out, was closed or
        evicted, or was answered here (408, 414, 431)."""
        data = conn.data
        searched = 0
        while not _head_complete(data, searched):
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
                chunk = conn.sock.recv(_CHUNK)
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
            conn.state = _READING
        return False

    def _answer(self, conn: _Connection, status: int, message: str,
                headers: Tuple[Tuple[str, str], ...] = ()) -> None:
        """Answer a request that goes no further, then close."""
        method, path = _request_line(conn.data)
        self.logger.log(logging.INFO if status < 500 else logging.WARNING,
                        "webhook: %s %s from %s: %d %s", method, path, conn.host, status,
                        message)
        conn.state = _LINGERING
        try:
            conn.sock.settimeout(SEND_TIMEOUT)
            conn.sock.sendall(_plain(status, message, headers))
        except OSError:
            return
        _linger(conn.sock, self.settings.body_limit)


def _linger(sock: socket.socket, limit: int) -> None:
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
            data = sock.recv(min(left, _CHUNK))
            if not data:
                return
            left -= len(data)
    except OSError:
        pass


def _close(sock: socket.socket) -> None:
    try:
        sock.close()
    except OSError:
        pass


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
