"""The webhook receiver, generic over alert sources: authentication, dedup, routing cache,
and what to answer one delivery.

``sensors/newrelic_webhook.py`` runs it in st2's sensor container (``server.build_server`` in
setup(), ``serve()`` in run(), ``stop()`` in cleanup()); everything with logic is in
``sources/`` so it can be tested without st2. The config's ``webhook`` section
(``settings.py``) says where it listens and which alert source (``webhook.source``:
``newrelic`` or ``alertmanager``) reads the bodies posted to its path, and which reads those
posted to each of ``webhook.paths``; the HTTP side is ``server.py`` (the
listener, slow and hostile clients) and ``connections.py`` (one request on one connection).

Requests (``path`` is the config's ``webhook.path``, default ``/st2/nrhook``)::

    POST <path>[?asg=<group>]  an alert of the configured source (New Relic: JSON, or the
                               2015 form with alert=; Alertmanager: its webhook JSON)
    GET  <path>/health         200 {"status": "ok"}, without credentials (for a load
                               balancer or a monitor; it reveals no group, no alert)

The same for each path of ``webhook.paths``, with that path's source; every path shares the
credentials, the limits and the dedup table.

    status  when
    200     alert dispatched (one autoscale.alert per group; the answer lists the groups),
            or a duplicate delivery ({"status": "duplicate"}, nothing dispatched)
    202     a valid alert that no group is for ({"status": "ignored", "reason": ...}), or a
            message of the source that is no alert, such as New Relic's 2015 ``deployment=``
            notice (nothing to do; logged at debug level only)
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
            MAX_OPEN connections all being handled), with Retry-After; senders retry

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

Dedup: senders retry and may deliver one event twice. A delivery whose (source, issue id,
occurrence, state, severity, ?asg=) was already dispatched less than ``webhook.dedup_window``
seconds ago is answered 200 "duplicate" and not dispatched. Severity is part of the key so
that an open issue escalating from warning to critical is dispatched; ``?asg=`` is, so that
one issue sent to two destinations for two groups reaches both; the occurrence
(``Alert.occurrence``: Alertmanager's ``startsAt``) is, so that an alert that resolves and
fires again under its old fingerprint is dispatched again, while retries of a notification,
and Alertmanager's repeats (``repeat_interval``, or a group sent again because it grew) within
the window, are duplicates. The window counts from the first delivery. (A repeat after the
window is dispatched: it keeps the open issue from expiring, governor.alert_max_age, and adds
capacity only as the governor's policy would anyway, once per scale_out_cooldown.) The table
holds at most DEDUP_MAX_ENTRIES keys, the oldest evicted first, so memory never grows with the
number of deliveries. A delivery that routes nowhere is not remembered (a group created a
moment later gets the sender's next delivery), nor one whose dispatch failed. 0 turns dedup
off.

Several alerts in one body (Alertmanager sends a group of them; New Relic never does): each is
routed (so one body may reach different groups), deduplicated and dispatched as above, in the
body's order, and the answer lists each one's own answer under ``alerts``; its status is
"dispatched" (200) when any was dispatched, else "duplicate" (200) when any was a duplicate,
else "ignored" (202). A body that cannot be read, or whose ``?asg=`` is refused, dispatches
none of them; a failed dispatch answers 503 and forgets that alert and the ones after it, so
the sender's retry dispatches them (and only them). A body with one alert is answered exactly
as described above. A note the source gives about the body as a whole (Alertmanager's
``truncatedAlerts``: alerts it left out) is logged as a warning and added to the answer as
``note``.

Routing cache: the groups are read with one ``Store.load_all`` (one datastore listing) at
most every ROUTE_CACHE_SECONDS (5 s), whatever the number of deliveries, so a burst of alerts
costs one listing, and a group created, changed or deleted is seen within 5 s. A ``?asg=``
naming a group the cached copy lacks reloads at once (at most once a second), so a group
created just before its first alert is not missed. When a reload fails, the previous copy is
used (and the failure logged); without one the answer is 503.

Dispatch is one message-bus publish per group (serialised by a lock, as st2's publisher is
shared): an answer never waits on scaling work.
"""

from __future__ import annotations

import base64
import binascii
import collections
import hmac
import logging
import threading
import time
from typing import Any, Callable, Dict, Hashable, List, Mapping, Optional, Tuple

from .. import sources
from ..errors import ValidationError
from . import routing
from .settings import WebhookSettings

LOG = logging.getLogger(__name__)

TRIGGER = "autoscale.alert"
REALM = "autoscale"
DEDUP_MAX_ENTRIES = 10000
ROUTE_CACHE_SECONDS = 5.0
ROUTE_REFRESH_MIN_SECONDS = 1.0
REASON_MAX = 200


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


def refusal(status: int, message: str, headers: Tuple[Tuple[str, str], ...] = ()) -> Outcome:
    """An answer that refuses the request with a one-line reason."""
    return Outcome(status, {"error": message}, headers, message)


def one_line(text: Any) -> str:
    """Text for an answer or a log line: on one line, at most REASON_MAX characters."""
    text = " ".join(str(text).split())
    return text if len(text) <= REASON_MAX else text[:REASON_MAX - 3] + "..."


class Receiver:
    """Reads (with the configured source), routes, dedups and dispatches one delivery's
    body."""

    def __init__(self, settings: WebhookSettings, dispatch: Callable[..., Any],
                 routes: RouteCache, dedup: Optional[Dedup] = None,
                 wall_clock: Callable[[], float] = time.time,
                 logger: Optional[logging.Logger] = None, source: Any = None) -> None:
        self.settings = settings
        # Each path's source (webhook.path and webhook.paths); ``source``, when given, reads
        # webhook.path's bodies instead of the configured one.
        self.readers = {path: settings.reader(path) for path in settings.receivers}
        if source is not None:
            self.readers[settings.path] = source
        self.source = self.readers[settings.path]
        self.auth = Authenticator(settings)
        self.routes = routes
        self.dedup = dedup if dedup is not None else Dedup(settings.dedup_window)
        self._dispatch = dispatch
        self._dispatch_lock = threading.Lock()
        self._wall_clock = wall_clock
        self.logger = logger or LOG

    def deliver(self, body: bytes, content_type: str, asg: Optional[str],
                path: Optional[str] = None) -> Outcome:
        """``path``: which of the webhook's paths it was posted to (default webhook.path),
        hence which source reads it."""
        received_at = self._wall_clock()
        reader = self.readers[self.settings.path if path is None else path]
        if not body.strip():
            return refusal(400, "body is empty")
        try:
            parsed = reader.parse(body, content_type)
            note = one_line(getattr(parsed, "note", "") or "")
            found = list(parsed)
        except sources.NotAnAlert as exc:
            # Answered 2xx, or the sender would retry it; nothing to do, nothing worth an INFO.
            return Outcome(202, {"status": "ignored", "reason": str(exc), "groups": []},
                           summary="nothing dispatched: %s" % exc, level=logging.DEBUG)
        except sources.AlertPayloadError as exc:
            return refusal(400, one_line(exc))
        if not found:
            reason = "the body holds no alert"
            return Outcome(202, {"status": "ignored", "reason": reason, "groups": []},
                           summary="nothing dispatched: %s" % reason)
        try:
            groups = self.routes.groups(want=asg)
        except DatastoreUnavailable as exc:
            return refusal(503, str(exc), (("Retry-After", "30"),))
        try:
            # Every alert routed before any is dispatched: a refusal dispatches none.
            routes = [routing.route(alert, groups, asg=asg) for alert in found]
        except ValidationError as exc:
            return refusal(400, one_line(exc))
        if note:
            # Something about the body as a whole the operator should know (alerts the sender
            # left out): a warning, whatever becomes of the alerts.
            self.logger.warning("webhook: %s", note)
        name = str(getattr(reader, "NAME", "") or "")
        answers = []
        for alert, route in zip(found, routes):
            answer = self._one(alert, route, asg, received_at, name)
            if answer.status >= 500:
                return answer  # the ones after it were not remembered either: a retry sends them
            answers.append(answer)
        outcome = answers[0] if len(answers) == 1 else _together(answers)
        if note:
            outcome.body["note"] = note
            outcome.summary += " (%s)" % note
        return outcome

    def _one(self, alert: Any, route: routing.Route, asg: Optional[str],
             received_at: float, source: str = "") -> Outcome:
        about = "issue %s %s/%s" % (one_line(alert.issue_id), alert.state, alert.severity)
        if not route.groups:
            return Outcome(202, {"status": "ignored", "reason": route.reason, "groups": []},
                           summary="%s: nothing dispatched: %s" % (about, route.reason))
        # The source, because two sources' issue ids may look alike; the occurrence, so that
        # an issue that ends and comes back under its old id is not taken for a retry.
        key = (source, alert.issue_id, getattr(alert, "occurrence", ""), alert.state,
               alert.severity, asg or "")
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
            return refusal(503, "dispatch failed; retry", (("Retry-After", "10"),))
        return Outcome(200, {"status": "dispatched", "groups": list(route.groups),
                             "issue_id": alert.issue_id, "state": alert.state,
                             "severity": alert.severity},
                       summary="%s: dispatched to %s" % (about, ", ".join(route.groups)))


def _together(answers: List[Outcome]) -> Outcome:
    """One answer for a body of several alerts (see the module docstring)."""
    statuses = [answer.body["status"] for answer in answers]
    groups = sorted({name for answer in answers if answer.body["status"] == "dispatched"
                     for name in answer.body["groups"]})
    status = next((s for s in ("dispatched", "duplicate") if s in statuses), "ignored")
    counts = ", ".join("%d %s" % (statuses.count(s), s)
                       for s in ("dispatched", "duplicate", "ignored") if s in statuses)
    summary = "%d alerts: %s" % (len(answers), counts)
    if groups:
        summary += " (to %s)" % ", ".join(groups)
    return Outcome(202 if status == "ignored" else 200,
                   {"status": status, "groups": groups,
                    "alerts": [answer.body for answer in answers]}, summary=summary)
