"""Announcements: every decision and every step, told to the group's channel on the configured
chat (the ``notify`` action, the governor).

The words are present/chat.py's (a ``Message``); the chat system marks them up and posts them.
The channel is the one asked for, else the group's ``chat_channel``, else the chat's default.

Chat is never worth failing a scaling workflow for: ``announce()`` never raises for a message
that could not be posted or a chat section that is wrong; such a message comes back as
``{"delivered": false, "error": "..."}`` with an error that says what to fix. Only a chat
backend whose library does not import is raised (it costs the chat lines: the governor logs
it, a workflow passes over a notify that fails).
"""

from __future__ import annotations

import logging
from typing import Any, Callable, Dict, List, Mapping, Optional

from .. import backends
from ..errors import BackendError, RecordError, ValidationError
from ..ports.chat import OPERATION, Chat, post
from ..present.chat import Message
from ..store import Store

LOG = logging.getLogger(__name__)


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


def _not_delivered(channel: str, text: str, error: BackendError, code: str) -> Dict[str, Any]:
    LOG.warning("%s", error)
    return {"delivered": False, "channel": channel, "ts": "", "text": text,
            "error": str(error), "code": code, "retryable": error.retryable}


def deliver(chat: Chat, channel: str, text: str,
            layout: Optional[List[Dict[str, Any]]] = None,
            system: Optional[str] = None) -> Dict[str, Any]:
    """Post and report; a failure is a result, not an exception. ``system`` names the chat
    in errors (default: the chat's own name)."""
    system = system or chat.system
    try:
        delivery = post(chat, channel, text, layout)
    except BackendError as exc:
        return _not_delivered(channel, text, exc, getattr(exc, "code", "") or "error")
    except ValidationError as exc:
        return _not_delivered(channel, text, BackendError(system, OPERATION, channel, str(exc)),
                              "invalid")
    except Exception as exc:  # another chat's bug must not fail a workflow either
        # Its type only: an unknown exception's text might quote a secret.
        return _not_delivered(channel, text, BackendError(
            system, OPERATION, channel, "unexpected %s" % type(exc).__name__), "unexpected")
    return {"delivered": True, "channel": delivery.channel, "ts": delivery.ts,
            "text": delivery.text, "error": "", "code": "", "retryable": False}


def announce(config: Mapping[str, Any], datastore: Any, group: Any, kind: Optional[str] = None,
             cause: Optional[str] = None, node: Optional[str] = None,
             count: Optional[int] = None, dry_run: Optional[bool] = None,
             channel: Optional[str] = None, detail: Optional[str] = None,
             url: Optional[str] = None,
             chat_factory: Optional[Callable[[Chat], Chat]] = None) -> Dict[str, Any]:
    """Tell the group's channel what happened (see present/chat.py for the words: ``detail``
    is a capacity change such as "2 → 4, max 5", ``url`` where the alert's issue is seen).

    The configured chat checks its section and chooses the channel; ``chat_factory(chat)``,
    when given, makes the chat that posts instead (another chat system, a test's)."""
    system = backends.title(config, "chat")
    try:
        make = backends.factory(config, "chat")
    except ValidationError as exc:  # an unknown type
        return _not_delivered(channel or "", "", BackendError(system, OPERATION, "", str(exc)),
                              "invalid")
    # Past here nothing raises; a chat library that does not import was raised above.
    try:
        configured = make(config)
        message = Message.create(group, kind, cause, node, count, dry_run, detail, url)
        stored = "" if channel else group_channel(datastore, message.group)
        target = configured.choose_channel(channel, stored)
        chat = chat_factory(configured) if chat_factory is not None else configured
        text = chat.format(message)
        layout = chat.layout(message)
    except ValidationError as exc:
        error = BackendError(system, OPERATION, "", str(exc))
        return _not_delivered(channel or "", "", error, "invalid")
    except Exception as exc:  # see deliver()
        error = BackendError(system, OPERATION, "", "unexpected %s" % type(exc).__name__)
        return _not_delivered(channel or "", "", error, "unexpected")
    return deliver(chat, target, text, layout, system)
