"""The chat port: where the pack tells people what it does.

A message is worded by present/chat.py; a chat system posts it (``post``) to a channel, as
the chat system marks text up (``format``) and lays it out (``layout``). ``post`` raises a
BackendError (not posted; its ``code``, when it has one, is the chat system's own error
code) or ValidationError (bad input, before any I/O).
"""

from __future__ import annotations

import abc
from dataclasses import dataclass
from typing import Any, Dict, List, Optional

from ..errors import ValidationError
from ..present.chat import Message, blocks, format_message

OPERATION = "post message"


@dataclass(frozen=True)
class Delivery:
    """A posted message: the channel's ID and the message's timestamp identify it in the chat
    system (e.g. to reply in its thread)."""

    channel: str
    ts: str
    text: str


class Chat(abc.ABC):
    """Where the pack tells people what it does."""

    # How errors name the system ("Slack: post message #web-ops: ...").
    system = "chat"
    # Where a message goes when neither the caller nor the group names a channel.
    default_channel = ""

    @abc.abstractmethod
    def post(self, channel: str, text: str, blocks: Optional[List[Dict[str, Any]]] = None
             ) -> Delivery:
        """Post ``text``, already in the chat system's markup, to ``channel``; ``blocks``
        (the chat system's layout), when given, is how it is shown, ``text`` its
        notification."""

    def format(self, message: Message) -> str:
        """The chat system's rendering of a message; present/chat.py's unless overridden."""
        return format_message(message)

    def layout(self, message: Message) -> Optional[List[Dict[str, Any]]]:
        """The message's layout (None: its text alone); present/chat.py's unless
        overridden."""
        return blocks(message)

    def choose_channel(self, explicit: Optional[str], stored: Optional[str]) -> str:
        """The channel asked for, else the group's stored one, else the default."""
        for candidate in (explicit, stored, self.default_channel):
            if candidate and candidate.strip():
                return candidate.strip()
        raise ValidationError("no chat channel: set the group's chat_channel or a default "
                              "channel")

    def notify(self, channel: str, message: Message) -> Delivery:
        return post(self, channel, self.format(message), self.layout(message))


def post(chat: Chat, channel: str, text: str, layout: Optional[List[Dict[str, Any]]]) -> Delivery:
    """``chat.post``; a chat written before layouts takes (channel, text) alone."""
    return chat.post(channel, text) if layout is None else chat.post(channel, text, layout)
