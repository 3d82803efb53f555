"""A fake Slack Web API on loopback: ``chat.postMessage`` and ``auth.test``, checked the way
Slack checks them, for the tests and the sandbox demo's chat transcript.

What it checks, as Slack does:

* the bot token, from ``Authorization: Bearer <token>`` or a form field ``token`` (Slack does
  not read a token from a JSON body). None: HTTP 200 ``{"ok": false, "error": "not_authed"}``;
  a wrong one: HTTP 200 ``{"ok": false, "error": "invalid_auth"}``;
* the channel, by name (``#autoscale`` or ``autoscale``) or ID (``C…``): unknown →
  ``channel_not_found``, one the bot is not a member of → ``not_in_channel``, archived →
  ``is_archived``;
* the text: none → ``no_text``, over 40,000 characters → ``msg_too_long``;
* bodies as JSON (what slack_sdk's ``chat_postMessage`` sends), form-urlencoded or
  multipart, as Slack's Web API accepts them.

A posted message answers ``{"ok": true, "channel": "<ID>", "ts": "<ts>", "message": {...}}``
and is kept in ``messages``. Knobs for failure injection: ``rate_limit(calls, retry_after)``
answers HTTP 429 with ``Retry-After`` (and ``{"ok": false, "error": "ratelimited"}``) for the
next calls; ``fail(calls, status)`` answers an HTTP error page (each returns its ``Failure``
and replaces the one before; ``heal()`` ends both); ``set_delay`` holds every answer.

    with FakeSlack(token="xoxb-test", channels={"autoscale": "C0AUTOSCALE"}) as slack:
        settings = SlackSettings(token="xoxb-test", base_url=slack.api_url)
        ...
        print(slack.transcript())
"""

from __future__ import annotations

import email
import json
import re
import threading
import time
from typing import Any, Dict, Iterable, List, Mapping, NamedTuple, Optional
from urllib.parse import parse_qs

from .http_fake import Failure, Failures, FakeService, Request, Response

TEXT_MAX = 40000


# A link in Slack's markup, <address|label>: Slack shows the label.
_LINK_RE = re.compile(r"<([^<>|]+)\|([^<>]*)>")


def readable(text: str) -> str:
    """A message's mrkdwn as a person reads it: a link as its label, entities as the
    characters they stand for."""
    text = _LINK_RE.sub(lambda match: match.group(2), text)
    return text.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")


class Posted(NamedTuple):
    channel: str  # the channel's ID
    channel_name: str
    text: str
    ts: str
    params: Dict[str, Any]  # every argument the client sent, token excluded
    at: float  # time.monotonic() when it arrived


def _ok(**fields: Any) -> Response:
    return Response(200, dict(ok=True, **fields))


def _error(code: str, status: int = 200, headers: Optional[Dict[str, str]] = None) -> Response:
    # Slack answers most errors with HTTP 200 and ok: false.
    return Response(status, {"ok": False, "error": code}, headers)


class FakeSlack(FakeService):
    """Slack's Web API for one workspace with one bot."""

    def __init__(self, token: str = "xoxb-sandbox-token",
                 channels: Optional[Mapping[str, str]] = None,
                 not_member_of: Iterable[str] = (), archived: Iterable[str] = (),
                 team: str = "Sandbox", bot_name: str = "autoscale") -> None:
        super().__init__()
        self.token = token
        # name (without '#') -> ID
        self.channels: Dict[str, str] = dict(channels or {"autoscale": "C0AUTOSCALE"})
        self.not_member_of = set(not_member_of)
        self.archived = set(archived)
        self.team = team
        self.bot_name = bot_name
        self.messages: List[Posted] = []
        # Every API call as it arrived: (method, time.monotonic(), HTTP status answered).
        self.calls: List[tuple] = []
        self._delay = 0.0
        # Rate limits come before errors, as Slack's edge answers before the API does.
        self._limits = Failures()
        self._counter = 0
        self._state = threading.Lock()

    # -- knobs --------------------------------------------------------------------------------

    @property
    def api_url(self) -> str:
        """What slack_sdk's ``base_url`` should be."""
        return self.url + "/api/"

    def rate_limit(self, calls: int = 1, retry_after: Any = 1) -> Failure:
        """Answer the next ``calls`` API calls with HTTP 429 and ``Retry-After`` (instead of
        the rate limit set before)."""
        self._limits.clear()
        return self._limits.add(Failure(calls, 429, message="ratelimited",
                                        headers={"Retry-After": str(retry_after)}))

    def fail(self, calls: int = 1, status: int = 500) -> Failure:
        """Answer the next ``calls`` API calls with an HTTP error page (instead of the
        failure set before; ``fail(0)`` ends it)."""
        self._faults.clear()
        return self._faults.add(Failure(calls, status, message="%d Server Error" % status))

    @property
    def delay(self) -> float:
        return self._delay

    def set_delay(self, seconds: float) -> None:
        """Hold every answer ``seconds`` (after the call is handled: a client that gives up
        meanwhile has still posted)."""
        with self._state:
            self._delay = float(seconds)

    def _fault_lists(self) -> List[Failures]:
        return [self._limits, self._faults]

    def reset(self) -> None:
        """Forget what was said and every injected failure (one fake for many tests)."""
        with self._state:
            self.messages.clear()
            self.calls.clear()
            self._delay = 0.0
        self.clear_requests()
        self.heal()

    def add_channel(self, name: str, channel_id: str, member: bool = True) -> None:
        self.channels[name.lstrip("#")] = channel_id
        if not member:
            self.not_member_of.add(name.lstrip("#"))

    # -- what was said ------------------------------------------------------------------------

    def texts(self, channel: Optional[str] = None) -> List[str]:
        """Texts posted, oldest first; only ``channel``'s (a name or ID) when given."""
        wanted = None if channel is None else self._resolve(channel)
        return [m.text for m in self.messages if wanted is None or m.channel == wanted[1]]

    def transcript(self) -> str:
        """What a person in the channels would read, one line per message."""
        lines = []
        for message in self.messages:
            lines.append("#%-14s %s" % (message.channel_name, readable(message.text)))
        return "\n".join(lines)

    # -- protocol -----------------------------------------------------------------------------

    def _resolve(self, channel: str) -> Optional[tuple]:
        name = channel[1:] if channel.startswith("#") else channel
        if name in self.channels:
            return name, self.channels[name]
        for known, channel_id in self.channels.items():
            if channel == channel_id:
                return known, channel_id
        return None

    @staticmethod
    def _arguments(request: Request) -> Optional[Dict[str, Any]]:
        """The call's arguments, None when the body cannot be read (invalid_form_data)."""
        kind = request.headers.get("content-type", "")
        args: Dict[str, Any] = {k: v[-1] for k, v in request.query.items()}
        if not request.body:
            return args
        try:
            if kind.startswith("application/json"):
                body = json.loads(request.body.decode("utf-8"))
                if not isinstance(body, dict):
                    return None
                body.pop("token", None)  # Slack takes no token from a JSON body
                args.update(body)
            elif kind.startswith("application/x-www-form-urlencoded"):
                form = parse_qs(request.body.decode("utf-8"), keep_blank_values=True)
                args.update({k: v[-1] for k, v in form.items()})
            elif kind.startswith("multipart/form-data"):
                parsed = email.message_from_bytes(
                    b"Content-Type: " + kind.encode("latin-1") + b"\r\n\r\n" + request.body)
                for part in parsed.get_payload():
                    name = part.get_param("name", header="content-disposition")
                    if name:
                        args[name] = part.get_payload(decode=True).decode("utf-8")
            else:
                return None
        except (ValueError, UnicodeDecodeError, AttributeError, TypeError):
            return None
        return args

    def _authorised(self, request: Request, args: Dict[str, Any]) -> Optional[Response]:
        header = request.headers.get("authorization", "")
        if header.startswith("Bearer "):
            token = header[len("Bearer "):]
        else:
            token = str(args.pop("token", "") or "")
        args.pop("token", None)
        if not token:
            return _error("not_authed")
        if token != self.token:
            return _error("invalid_auth")
        return None

    def _injected(self, request: Request) -> Optional[Response]:
        limited = self._limits.take(request.method, request.path)
        if limited is not None:
            return _error(limited.message, limited.status, limited.headers)
        failure = self._faults.take(request.method, request.path)
        if failure is not None:
            return Response(failure.status, "<html><body>%s</body></html>" % failure.message,
                            {"Content-Type": "text/html"})
        return None

    def handle(self, request: Request) -> Response:
        response = self._answer(request)
        with self._state:
            self.calls.append((request.path.rsplit("/", 1)[-1], time.monotonic(),
                               response.status))
        with self._state:
            delay = self._delay
        if delay:
            time.sleep(delay)
        return response

    def _answer(self, request: Request) -> Response:
        method = request.path.rsplit("/", 1)[-1]
        if not request.path.startswith("/api/") or method not in ("chat.postMessage",
                                                                  "auth.test"):
            return _error("unknown_method", 404)
        injected = self._injected(request)
        if injected is not None:
            return injected
        args = self._arguments(request)
        if args is None:
            return _error("invalid_form_data")
        refused = self._authorised(request, args)
        if refused is not None:
            return refused
        if method == "auth.test":
            return _ok(url="https://sandbox.slack.com/", team=self.team, user=self.bot_name,
                       team_id="T0SANDBOX", user_id="U0AUTOSCALE", bot_id="B0AUTOSCALE")
        return self._post_message(args)

    def _post_message(self, args: Dict[str, Any]) -> Response:
        channel = str(args.get("channel") or "")
        found = self._resolve(channel) if channel else None
        if found is None:
            return _error("channel_not_found")
        name, channel_id = found
        if name in self.archived:
            return _error("is_archived")
        if name in self.not_member_of:
            return _error("not_in_channel")
        text = args.get("text")
        if not isinstance(text, str) or not text.strip():
            return _error("no_text")
        if len(text) > TEXT_MAX:
            return _error("msg_too_long")
        with self._state:
            self._counter += 1
            ts = "%d.%06d" % (int(time.time()), self._counter)
            self.messages.append(Posted(channel_id, name, text, ts, dict(args),
                                        time.monotonic()))
        return _ok(channel=channel_id, ts=ts,
                   message={"type": "message", "subtype": "bot_message", "text": text,
                            "ts": ts, "bot_id": "B0AUTOSCALE", "username": self.bot_name})
