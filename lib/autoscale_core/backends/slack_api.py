"""Posting to Slack: ``chat.postMessage`` through slack_sdk's ``WebClient`` (the chat role's
implementation; slack.py is what the pack knows of Slack without slack_sdk).

Retries: ``chat.postMessage`` is not idempotent (Slack has no idempotency key), so a message
is sent again only when Slack cannot have posted it — an HTTP 429 (rate limited: waited out
for ``Retry-After`` seconds), a 503, or a connection that failed before the request was
sent — and only while the total wait stays within ``max_wait``. A timeout or a dropped
connection after the request went out is reported, not retried: it may have been posted.

The bot token never appears in a result, an error or a log line (slack_sdk itself logs
request headers at DEBUG with ``Authorization`` redacted and adds the token after logging;
tests/backends/test_notify.py checks every log record).
"""

from __future__ import annotations

import email.utils
import http.client
import logging
import random
import re
import socket
import ssl
import time
import urllib.error
from datetime import datetime, timezone
from typing import Any, Callable, Dict, List, Mapping, Optional

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError, SlackClientError
from slack_sdk.http_retry.handler import RetryHandler
from slack_sdk.http_retry.request import HttpRequest
from slack_sdk.http_retry.response import HttpResponse
from slack_sdk.http_retry.state import RetryState

from ..errors import ValidationError, redact
from ..ports.chat import Chat, Delivery
from .slack import SYSTEM, ChatError, SlackSettings, choose_channel, validate_channel

LOG = logging.getLogger(__name__)

# When a 429 comes without a usable Retry-After (Slack always sends one).
DEFAULT_RETRY_AFTER = 1.0


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


class SlackNotifier(Chat):
    """Slack's Web API, ``chat.postMessage``, with a bot token (scope ``chat:write``)."""

    system = SYSTEM

    def __init__(self, settings: SlackSettings, sleep: Callable[[float], None] = time.sleep
                 ) -> None:
        self.settings = settings
        self.default_channel = settings.default_channel
        self.sleep = sleep

    def choose_channel(self, explicit: Optional[str], stored: Optional[str]) -> str:
        return choose_channel(explicit, stored, self.settings.default_channel)

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


def new_chat(config: Mapping[str, Any]) -> Chat:
    """The chat for the pack config's ``slack`` section."""
    return SlackNotifier(SlackSettings.from_config(config))
