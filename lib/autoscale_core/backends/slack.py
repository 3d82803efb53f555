"""Chat: Slack (the chat role: config section ``slack``, ``type: slack``).

Here is what the pack knows of Slack without its library: the ``slack`` config section,
which channels exist in words Slack takes (a group's ``chat_channel`` is checked when the group
is created: ``check_group``), and which one a message goes to: the one asked for, else the
group's ``chat_channel``, else ``slack.default_channel``. Posting (slack_sdk's ``WebClient``,
``chat.postMessage``) is slack_api.py, imported only when a message is posted: slack_sdk is
the pack's own requirement, and one that does not import must cost the chat lines, never a
group's creation.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, List, Mapping, Optional
from urllib.parse import urlsplit

from ..config import backend_section
from ..domain.fields import brief
from ..domain.model import Group
from ..errors import BackendError, ValidationError
from ..ports.chat import OPERATION

SYSTEM = "Slack"
TITLE = "Slack"

# Slack channel names are at most 80 characters; IDs (C…, G…, D…) are shorter.
CHANNEL_MAX = 80
# What a group may be created with: chat.postMessage takes a conversation ID (C… channel, G…
# private group, D… direct message, U…/W… a user's direct message with the app) or a channel
# name. Names are at most 80 lowercase letters, digits, "-" and "_" (conversations.create and
# rename), not punctuation alone.
_CONVERSATION_ID_RE = re.compile(r"[CDGUW][A-Z0-9]{8,20}")


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


def _name_char(ch: str) -> bool:
    return ch in "-_" or (ch.isalnum() and not ch.isupper())


def check_group(group: Group) -> None:
    """A group's ``chat_channel``: a conversation ID (C0123ABCD) or a channel name (#web-ops
    or web-ops) Slack would create; "" for the default channel. Stricter than what a message
    is posted to (``validate_channel``), and only on entry: a group stored by an earlier
    version with a channel this refuses keeps being governed."""
    value, what = group.chat_channel, "chat_channel"
    if not isinstance(value, str):
        raise ValidationError("%s must be a string, not %s" % (what, brief(value)))
    if value == "" or _CONVERSATION_ID_RE.fullmatch(value):
        return
    name = value[1:] if value.startswith("#") else value
    if not (0 < len(name) <= CHANNEL_MAX and all(_name_char(ch) for ch in name)
            and any(ch.isalnum() for ch in name)):
        raise ValidationError(
            "%s %s is not a Slack channel: use a channel name such as #web-ops (at most %d "
            "lowercase letters, digits, '-' and '_') or a channel ID such as C0123ABCD"
            % (what, brief(value), CHANNEL_MAX))


class ChatError(BackendError):
    """A message that was not posted. ``code`` is the chat system's own error code
    (``channel_not_found``, ``invalid_auth``, ``ratelimited``, ``http_500``, ``timeout``...)."""

    def __init__(self, obj: str, message: str, code: str, retryable: bool = False) -> None:
        self.code = code
        super().__init__(SYSTEM, OPERATION, obj, message, retryable)

    def as_dict(self) -> dict:
        return dict(super().as_dict(), code=self.code)
