"""Chat notifications: every decision and every step, told to the group's channel in Slack.

The words are present/chat.py's (a ``Message`` rendered by ``format_message``); this module
posts them to Slack's ``chat.postMessage`` through slack_sdk's ``WebClient``. The channel is
the one asked for, else the group's ``chat_channel``, else ``slack.default_channel``.

Chat is never worth failing a scaling workflow for: ``announce()`` (what the ``notify``
action calls) never raises; a message that could not be posted comes back as
``{"delivered": false, "error": "..."}`` with an error that says what to fix.

Retries: ``chat.postMessage`` is not idempotent (Slack has no idempotency key), so a message
is sent again only when Slack cannot have posted it — an HTTP 429 (rate limited: waited out
for ``Retry-After`` seconds), a 503, or a connection that failed before the request was
sent — and only while the total wait stays within ``max_wait``. A timeout or a dropped
connection after the request went out is reported, not retried: it may have been posted.

The bot token never appears in a result, an error or a log line (slack_sdk itself logs
request headers at DEBUG with ``Authorization`` redacted and adds the token after logging;
tests/test_notify.py checks every log record).
"""

from __future__ import annotations

import abc
import email.utils
import http.client
import logging
import random
import re
import socket
import ssl
import time
import urllib.error
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Callable, Dict, List, Mapping, Optional
from urllib.parse import urlsplit

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError, SlackClientError
from slack_sdk.http_retry.handler import RetryHandler
from slack_sdk.http_retry.request import HttpRequest
from slack_sdk.http_retry.response import HttpResponse
from slack_sdk.http_retry.state import RetryState

from .config import backend_section
from .errors import BackendError, RecordError, ValidationError, redact
from .present.chat import Message, blocks, format_message
from .store import Store

LOG = logging.getLogger(__name__)

SYSTEM = "Slack"
OPERATION = "post message"

# Slack channel names are at most 80 characters; IDs (C…, G…, D…) are shorter.
CHANNEL_MAX = 80
# When a 429 comes without a usable Retry-After (Slack always sends one).
DEFAULT_RETRY_AFTER = 1.0


# ---------------------------------------------------------------------------------------------
# Settings


@dataclass(frozen=True)
class SlackSettings:
    # repr=False: a settings object in a log line or traceback must not show the token.
    token: str = field(repr=False)
    default_channel: str = "#autoscale"
    base_url: str = "https://slack.com/api/"
    # Not in the pack config: seconds per HTTP request, tries per message, and the most a
    # message waits in total between tries (Retry-After and backoff together).
    timeout: float = 10.0
    attempts: int = 3
    max_wait: float = 20.0
    retry_delay: float = 0.5

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> SlackSettings:
        section = backend_section(config, "slack")
        token = section.get("token")
        if not token or not isinstance(token, str) or not token.strip():
            raise ValidationError("config key slack.token is missing")
        if any(ch.isspace() for ch in token.strip()):
            # Never quote the value: it is the token, or a typo of it.
            raise ValidationError("config key slack.token contains whitespace: paste the "
                                  "bot token (xoxb-...) alone")
        default_channel = section.get("default_channel") or "#autoscale"
        validate_channel(default_channel, "config key slack.default_channel")
        return cls(
            token=token.strip(),
            default_channel=default_channel,
            base_url=validate_base_url(section.get("base_url") or "https://slack.com/api/"),
        )

    def secrets(self) -> List[str]:
        return [self.token]


_CHANNEL_RE = re.compile(r"#?[^\s#<>&|,@]{1,%d}" % CHANNEL_MAX)


def validate_channel(value: Any, what: str = "chat channel") -> str:
    """A channel name (``#autoscale`` or ``autoscale``) or ID (``C0123ABCD``). Slack decides
    whether it exists; this only keeps blanks, spaces and markup out of the request."""
    if not isinstance(value, str):
        raise ValidationError("%s must be a string, not %s" % (what, type(value).__name__))
    if not _CHANNEL_RE.fullmatch(value):
        raise ValidationError(
            "%s %r is not a Slack channel: use a name like #autoscale or an ID like "
            "C0123ABCD (no spaces, at most %d characters)" % (what, value, CHANNEL_MAX))
    return value


def validate_base_url(value: Any) -> str:
    parts = urlsplit(value) if isinstance(value, str) else None
    if parts is None or parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValidationError("config key slack.base_url must be an http(s) URL such as "
                              "https://slack.com/api/, not %r" % (value,))
    # slack_sdk joins method names onto it (urljoin): without the slash, ".../api" + method
    # would replace "api".
    return value if value.endswith("/") else value + "/"


def choose_channel(explicit: Optional[str], stored: Optional[str], default: str) -> str:
    """The channel asked for, else the group's stored one, else the default."""
    for candidate, what in ((explicit, "channel"), (stored, "the group's chat_channel"),
                            (default, "config key slack.default_channel")):
        if candidate and candidate.strip():
            return validate_channel(candidate.strip(), what)
    raise ValidationError("no chat channel: set the group's chat_channel or "
                          "config key slack.default_channel")


def group_channel(datastore: Any, group: str) -> str:
    """The ``chat_channel`` stored in a group's spec; "" when the group, its channel or the
    datastore is missing, so that the message still goes to the default channel."""
    try:
        spec = Store(datastore).read_group(group)
        return spec.chat_channel if spec is not None else ""
    except RecordError as exc:
        LOG.warning("autoscale datastore: group %s: %s; using the default chat channel",
                    group, exc)
    except Exception as exc:  # the datastore API may be down; chat must still try
        LOG.warning("autoscale datastore: cannot read group %s (%s); using the default chat "
                    "channel", group, type(exc).__name__)
    return ""


# ---------------------------------------------------------------------------------------------
# Interface


@dataclass(frozen=True)
class Delivery:
    """A posted message: the channel's ID and the message's timestamp identify it in Slack
    (e.g. to reply in its thread)."""

    channel: str
    ts: str
    text: str


class ChatError(BackendError):
    """A message that was not posted. ``code`` is the chat system's own error code
    (``channel_not_found``, ``invalid_auth``, ``ratelimited``, ``http_500``, ``timeout``...)."""

    def __init__(self, obj: str, message: str, code: str, retryable: bool = False) -> None:
        self.code = code
        super().__init__(SYSTEM, OPERATION, obj, message, retryable)

    def as_dict(self) -> dict:
        return dict(super().as_dict(), code=self.code)


class Notifier(abc.ABC):
    """Where the pack tells people what it does. ``post`` raises ChatError (not posted) or
    ValidationError (bad input, before any I/O)."""

    @abc.abstractmethod
    def post(self, channel: str, text: str, blocks: Optional[List[Dict[str, Any]]] = None
             ) -> Delivery:
        """Post ``text``, already in the chat system's markup, to ``channel``; ``blocks``
        (Slack's layout blocks), when given, is how it is shown, ``text`` its notification."""

    def format(self, message: Message) -> str:
        """The chat system's rendering of a message; Slack mrkdwn unless overridden."""
        return format_message(message)

    def layout(self, message: Message) -> Optional[List[Dict[str, Any]]]:
        """The message's layout blocks (None: its text alone); Slack's unless overridden."""
        return blocks(message)

    def notify(self, channel: str, message: Message) -> Delivery:
        return _post(self, channel, self.format(message), self.layout(message))


def _post(chat: Notifier, channel: str, text: str,
          layout: Optional[List[Dict[str, Any]]]) -> Delivery:
    # A notifier written before layouts takes (channel, text) alone.
    return chat.post(channel, text) if layout is None else chat.post(channel, text, layout)


def _redacted(value: Any, secrets: List[str]) -> Any:
    """``value`` (blocks: lists, dicts, strings) with every secret in its strings replaced."""
    if isinstance(value, str):
        return redact(value, secrets)
    if isinstance(value, list):
        return [_redacted(item, secrets) for item in value]
    if isinstance(value, dict):
        return {key: _redacted(item, secrets) for key, item in value.items()}
    return value


# ---------------------------------------------------------------------------------------------
# Retries inside slack_sdk's WebClient, bounded by one time budget per message


class _Budget:
    """The time a message may spend waiting between tries, shared by every retry handler."""

    def __init__(self, max_wait: float, sleep: Callable[[float], None] = time.sleep,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self.sleep = sleep
        self.deadline = clock() + max_wait
        self.tries = 1
        # Why the last retry was refused, for the error message.
        self.refused_wait: Optional[float] = None

    def allows(self, wait: float) -> bool:
        if self.clock() + wait <= self.deadline:
            return True
        self.refused_wait = wait
        return False


def retry_after(headers: Mapping[str, Any]) -> float:
    """Seconds to wait from a Retry-After header: delta-seconds (what Slack sends) or an
    HTTP date (RFC 9110 10.2.3); the default when absent or unreadable."""
    value: Any = None
    for name, raw in (headers or {}).items():
        if name.lower() == "retry-after":
            value = raw[0] if isinstance(raw, (list, tuple)) and raw else raw
            break
    if value is None:
        return DEFAULT_RETRY_AFTER
    text = str(value).strip()
    try:
        seconds = float(text)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(text)
        except (TypeError, ValueError, IndexError):
            return DEFAULT_RETRY_AFTER
        if when is None:
            return DEFAULT_RETRY_AFTER
        if when.tzinfo is None:
            when = when.replace(tzinfo=timezone.utc)
        seconds = (when - datetime.now(timezone.utc)).total_seconds()
    if seconds != seconds:  # NaN
        return DEFAULT_RETRY_AFTER
    return max(0.0, seconds)


class _RateLimitHandler(RetryHandler):
    """HTTP 429: wait what Retry-After says (plus a little jitter, so that workflows
    rate-limited together do not all come back in the same instant), if the budget allows.

    slack_sdk's RateLimitErrorRetryHandler honours Retry-After too, but sleeps for any
    value the server sends (int() of it, plus up to 1 s) with no upper bound, and fails on
    an HTTP-date.
    """

    def __init__(self, budget: _Budget, max_retry_count: int) -> None:
        super().__init__(max_retry_count=max_retry_count)
        self.budget = budget

    def _wait(self, response: HttpResponse) -> float:
        seconds = retry_after(response.headers)
        return seconds + random.uniform(0, min(0.5, 0.1 * seconds))

    def _can_retry(self, *, state: RetryState, request: HttpRequest,
                   response: Optional[HttpResponse] = None,
                   error: Optional[Exception] = None) -> bool:
        if response is None or response.status_code != 429:
            return False
        wait = self._wait(response)
        state.custom_values = dict(state.custom_values or {}, wait=wait)
        return self.budget.allows(wait)

    def prepare_for_next_attempt(self, *, state: RetryState, request: HttpRequest,
                                 response: Optional[HttpResponse] = None,
                                 error: Optional[Exception] = None) -> None:
        wait = (state.custom_values or {}).get("wait", DEFAULT_RETRY_AFTER)
        LOG.info("Slack: rate limited (HTTP 429); trying again in %.1f s as Retry-After asks",
                 wait)
        self.budget.sleep(wait)
        self.budget.tries += 1
        state.next_attempt_requested = True
        state.increment_current_attempt()


def _not_sent(error: Optional[Exception]) -> bool:
    """urllib wraps what fails while connecting or sending in URLError, and lets what fails
    while waiting for the answer through: only the first means Slack never got the request.
    A TLS error will not go away by trying again."""
    if not isinstance(error, urllib.error.URLError) or isinstance(error, urllib.error.HTTPError):
        return False
    return not isinstance(error.reason, ssl.SSLError)


class _UnsentRetryHandler(RetryHandler):
    """A connection that failed before the request went out, or an HTTP 503 (not handled):
    exponential backoff within the budget."""

    def __init__(self, budget: _Budget, max_retry_count: int, first_delay: float) -> None:
        super().__init__(max_retry_count=max_retry_count)
        self.budget = budget
        self.first_delay = first_delay

    def _delay(self, state: RetryState) -> float:
        return self.first_delay * (2 ** state.current_attempt)

    def _can_retry(self, *, state: RetryState, request: HttpRequest,
                   response: Optional[HttpResponse] = None,
                   error: Optional[Exception] = None) -> bool:
        retryable = (response is not None and response.status_code == 503) or (
            response is None and _not_sent(error))
        return retryable and self.budget.allows(self._delay(state))

    def prepare_for_next_attempt(self, *, state: RetryState, request: HttpRequest,
                                 response: Optional[HttpResponse] = None,
                                 error: Optional[Exception] = None) -> None:
        delay = self._delay(state)
        LOG.info("Slack: %s; trying again in %.1f s",
                 "HTTP 503" if response is not None else "cannot connect", delay)
        self.budget.sleep(delay)
        self.budget.tries += 1
        state.next_attempt_requested = True
        state.increment_current_attempt()


# ---------------------------------------------------------------------------------------------
# Slack


# Slack's error codes (chat.postMessage's reference and the Web API's common errors), in
# words an operator can act on. {channel} is the channel asked for.
_SLACK_ERRORS = {
    "channel_not_found": "channel {channel} does not exist, or it is private and the bot is "
                         "not in it: check the group's chat_channel or slack.default_channel",
    "not_in_channel": "the bot is not a member of {channel}: invite it there (/invite @bot)",
    "is_archived": "channel {channel} is archived: unarchive it or choose another channel",
    "invalid_auth": "Slack refused the bot token: check config key slack.token",
    "not_authed": "no bot token reached Slack: set config key slack.token",
    "account_inactive": "the bot token belongs to a deleted user or workspace: install the "
                        "app again and update slack.token",
    "token_revoked": "the bot token was revoked or the app removed: install the app again "
                     "and update slack.token",
    "token_expired": "the bot token has expired: update slack.token",
    "missing_scope": "the bot token lacks the chat:write scope: add it to the Slack app and "
                     "reinstall it",
    "no_permission": "the bot may not post to {channel}: invite it there",
    "restricted_action": "a workspace setting forbids the bot to post in {channel}",
    "restricted_action_read_only_channel": "channel {channel} is read-only",
    "msg_too_long": "the message is too long for Slack",
    "no_text": "the message is empty",
    "ratelimited": "Slack rate-limited the bot (HTTP 429)",
    "rate_limited": "Slack rate-limited the bot",
}
_CODE_RE = re.compile(r"[a-z][a-z0-9_]{0,63}")
_CONFIG_ERRORS = {"invalid_auth", "not_authed", "account_inactive", "token_revoked",
                  "token_expired", "missing_scope"}


class SlackNotifier(Notifier):
    """Slack's Web API, ``chat.postMessage``, with a bot token (scope ``chat:write``)."""

    def __init__(self, settings: SlackSettings, sleep: Callable[[float], None] = time.sleep
                 ) -> None:
        self.settings = settings
        self.sleep = sleep

    def _client(self, budget: _Budget) -> WebClient:
        # A client per message: the retry handlers carry that message's time budget.
        retries = max(0, self.settings.attempts - 1)
        return WebClient(
            token=self.settings.token,
            base_url=self.settings.base_url,
            timeout=self.settings.timeout,  # urllib takes a float
            retry_handlers=[
                _RateLimitHandler(budget, retries),
                _UnsentRetryHandler(budget, retries, self.settings.retry_delay),
            ],
        )

    def post(self, channel: str, text: str, blocks: Optional[List[Dict[str, Any]]] = None
             ) -> Delivery:
        validate_channel(channel)
        if not isinstance(text, str) or not text.strip():
            raise ValidationError("a chat message must not be empty")
        # A token pasted into a cause would be posted for the whole channel to read.
        text = redact(text, self.settings.secrets())
        layout = {} if blocks is None else {"blocks": _redacted(blocks, self.settings.secrets())}
        budget = _Budget(self.settings.max_wait, sleep=self.sleep)
        try:
            response = self._client(budget).chat_postMessage(
                channel=channel,
                text=text,
                **layout,
                mrkdwn=True,
                # No automatic linking: "@channel" in an alert title stays text.
                parse="none",
                link_names=False,
                unfurl_links=False,
                unfurl_media=False,
            )
        except SlackApiError as exc:
            raise self._api_error(channel, exc, budget) from None
        except (OSError, http.client.HTTPException, SlackClientError) as exc:
            raise self._transport_error(channel, exc, budget) from None
        except Exception as exc:  # chat must never take a workflow down with it
            raise ChatError(channel, "unexpected %s: %s" % (
                type(exc).__name__, redact(exc, self.settings.secrets())), "unexpected") from None
        return Delivery(channel=str(response.get("channel") or channel),
                        ts=str(response.get("ts") or ""), text=text)

    def _api_error(self, channel: str, exc: SlackApiError, budget: _Budget) -> ChatError:
        response = exc.response
        status = getattr(response, "status_code", 0) or 0
        data = response.data if isinstance(getattr(response, "data", None), dict) else {}
        code = str(data.get("error") or "")
        if status == 429:
            wait = retry_after(response.headers or {})
            if budget.refused_wait is not None:
                detail = ("it asks to wait %.0f s (Retry-After), longer than this message may "
                          "wait (%.0f s in all)" % (wait, self.settings.max_wait))
            else:
                detail = "still rate-limited after %d tries" % budget.tries
            return ChatError(channel, "Slack rate-limited the bot (HTTP 429, %s): %s; the "
                             "message was not posted" % (code or "ratelimited", detail),
                             code or "ratelimited", retryable=True)
        if status != 200 or not code:
            # Slack's error code when it sent one; not a proxy's HTML page (slack_sdk puts
            # that in "error" too).
            named = " (%s)" % code if _CODE_RE.fullmatch(code) else ""
            return ChatError(channel, "Slack answered HTTP %d%s; the message was not posted"
                             % (status, named), "http_%d" % status, retryable=status >= 500)
        words = _SLACK_ERRORS.get(code, "Slack refused the message")
        words = words.format(channel=channel)
        if code in _CONFIG_ERRORS:
            words += " (base URL %s)" % self.settings.base_url
        return ChatError(channel, "%s (%s)" % (words, redact(code, self.settings.secrets())),
                         code, retryable=code in ("ratelimited", "rate_limited"))

    def _transport_error(self, channel: str, exc: Exception, budget: _Budget) -> ChatError:
        where = self.settings.base_url
        secrets = self.settings.secrets()
        if isinstance(exc, urllib.error.URLError):
            reason = exc.reason
            if isinstance(reason, ssl.SSLError):
                return ChatError(channel, "TLS with %s failed: %s"
                                 % (where, redact(reason, secrets)), "tls_error")
            return ChatError(channel, "cannot reach Slack at %s (%s, %d %s); the message was "
                             "not posted" % (where, redact(reason, secrets), budget.tries,
                                             "try" if budget.tries == 1 else "tries"),
                             "connection_failed", retryable=True)
        if isinstance(exc, (socket.timeout, TimeoutError)):
            return ChatError(channel, "no answer from Slack at %s within %g s; the message may "
                             "or may not have been posted, so it was not sent again"
                             % (where, self.settings.timeout), "timeout", retryable=True)
        if isinstance(exc, (OSError, http.client.HTTPException)):
            return ChatError(channel, "the connection to Slack at %s broke after the message was "
                             "sent (%s); it may or may not have been posted, so it was not sent "
                             "again" % (where, type(exc).__name__), "connection_lost",
                             retryable=True)
        return ChatError(channel, "slack_sdk refused the request: %s"
                         % redact(exc, secrets), "client_error")


def notifier(settings: SlackSettings) -> Notifier:
    return SlackNotifier(settings)


# ---------------------------------------------------------------------------------------------
# What the notify action does: never raises


def _not_delivered(channel: str, text: str, error: BackendError, code: str) -> Dict[str, Any]:
    LOG.warning("%s", error)
    return {"delivered": False, "channel": channel, "ts": "", "text": text,
            "error": str(error), "code": code, "retryable": error.retryable}


def deliver(chat: Notifier, channel: str, text: str,
            layout: Optional[List[Dict[str, Any]]] = None) -> Dict[str, Any]:
    """Post and report; a failure is a result, not an exception."""
    try:
        delivery = _post(chat, channel, text, layout)
    except ChatError as exc:
        return _not_delivered(channel, text, exc, exc.code)
    except BackendError as exc:
        return _not_delivered(channel, text, exc, "error")
    except ValidationError as exc:
        return _not_delivered(channel, text, BackendError(SYSTEM, OPERATION, channel, str(exc)),
                              "invalid")
    except Exception as exc:  # another Notifier's bug must not fail a workflow either
        # Its type only: an unknown exception's text might quote a secret.
        return _not_delivered(channel, text, BackendError(
            SYSTEM, OPERATION, channel, "unexpected %s" % type(exc).__name__), "unexpected")
    return {"delivered": True, "channel": delivery.channel, "ts": delivery.ts,
            "text": delivery.text, "error": "", "code": "", "retryable": False}


def announce(config: Mapping[str, Any], datastore: Any, group: Any, kind: Optional[str] = None,
             cause: Optional[str] = None, node: Optional[str] = None,
             count: Optional[int] = None, dry_run: Optional[bool] = None,
             channel: Optional[str] = None, detail: Optional[str] = None,
             url: Optional[str] = None,
             chat_factory: Callable[[SlackSettings], Notifier] = notifier) -> Dict[str, Any]:
    """Tell the group's channel what happened (see present/chat.py for the words: ``detail``
    is a capacity change such as "2 → 4, max 5", ``url`` where the alert's issue is seen).
    Never raises: a chat failure must not fail the scaling workflow that reports through
    it."""
    try:
        settings = SlackSettings.from_config(config)
        message = Message.create(group, kind, cause, node, count, dry_run, detail, url)
        stored = "" if channel else group_channel(datastore, message.group)
        target = choose_channel(channel, stored, settings.default_channel)
        chat = chat_factory(settings)
        text = chat.format(message)
        layout = chat.layout(message)
    except ValidationError as exc:
        error = BackendError(SYSTEM, OPERATION, "", str(exc))
        return _not_delivered(channel or "", "", error, "invalid")
    except Exception as exc:  # see deliver()
        error = BackendError(SYSTEM, OPERATION, "", "unexpected %s" % type(exc).__name__)
        return _not_delivered(channel or "", "", error, "unexpected")
    return deliver(chat, target, text, layout)
