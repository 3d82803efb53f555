"""Chat wording: every decision and every step, told to the group's channel.

A message is built by a pure function from structured input (the group, the kind of event, a
node, a count and the cause), so every workflow and sensor words things the same way::

    :arrow_up: *web*: adding 2 nodes — critical alert 'High error rate' open for 2 min

The chat backend (notify.py) posts it; this module knows nothing of how.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Optional, Sequence, Tuple

from ..domain.names import validate_group_name, validate_node_name
from ..domain.words import nodes
from ..errors import ValidationError
from .hints import delete_group_hint, resume_hint

# Slack truncates text past 40,000 characters and advises far less; a cause is a line or a
# paragraph, never a log dump.
CAUSE_MAX = 3000


class Kind:
    """What happened. Decisions (count = nodes), node steps (node), alert states, group
    changes, and ``info`` for anything else (the cause is the text)."""

    SCALE_OUT = "scale_out"
    SCALE_IN = "scale_in"
    REPAIR = "repair"
    BACKOFF = "backoff"
    NODE_ADDED = "node_added"
    NODE_REMOVED = "node_removed"
    NODE_FAILED = "node_failed"
    ORPHAN = "orphan"
    ALERT_OPENED = "alert_opened"
    ALERT_ACKNOWLEDGED = "alert_acknowledged"
    ALERT_CLOSED = "alert_closed"
    ALERT_EXPIRED = "alert_expired"
    GROUP_CREATED = "group_created"
    GROUP_DELETED = "group_deleted"
    PAUSED = "paused"
    RESUMED = "resumed"
    ERROR = "error"
    INFO = "info"


# kind: (emoji, what happened — {nodes} is "2 nodes", {node} the node's name in code
# style —, the dry-run wording or None when the kind has none, needs count, needs node).
_FORMATS = {
    Kind.SCALE_OUT: (":arrow_up:", "adding {nodes}", "would add {nodes}", True, False),
    Kind.SCALE_IN: (":arrow_down:", "removing {nodes}", "would remove {nodes}", True, False),
    Kind.REPAIR: (":wrench:", "adding {nodes} to get back to its normal size",
                  "would add {nodes} to get back to its normal size", True, False),
    Kind.BACKOFF: (":no_entry:", "not adding nodes for now", None, False, False),
    Kind.NODE_ADDED: (":white_check_mark:", "node {node} is in service", None, False, True),
    Kind.NODE_REMOVED: (":heavy_minus_sign:", "node {node} is removed", None, False, True),
    Kind.NODE_FAILED: (":x:", "node {node} failed", None, False, True),
    Kind.ORPHAN: (":ghost:", "VM {node} belongs to no node record", None, False, True),
    Kind.ALERT_OPENED: (":rotating_light:", "alert opened", None, False, False),
    Kind.ALERT_ACKNOWLEDGED: (":eyes:", "alert acknowledged", None, False, False),
    Kind.ALERT_CLOSED: (":large_green_circle:", "alert closed", None, False, False),
    Kind.ALERT_EXPIRED: (":hourglass:", "alert expired", None, False, False),
    Kind.GROUP_CREATED: (":new:", "group created", None, False, False),
    Kind.GROUP_DELETED: (":wastebasket:", "group deleted", None, False, False),
    Kind.PAUSED: (":double_vertical_bar:", "paused: no scaling until resumed", None,
                  False, False),
    Kind.RESUMED: (":arrow_forward:", "resumed", None, False, False),
    Kind.ERROR: (":x:", "failed", None, False, False),
    Kind.INFO: (":information_source:", "", None, False, False),
}
KINDS = tuple(_FORMATS)


@dataclass(frozen=True)
class Message:
    """What to tell: validated on creation, before anything is sent."""

    group: str
    kind: str = Kind.INFO
    cause: str = ""
    node: str = ""
    count: int = 0
    dry_run: bool = False

    def __post_init__(self) -> None:
        validate_group_name(self.group)
        if self.kind not in _FORMATS:
            raise ValidationError("message kind %r is not one of %s"
                                  % (self.kind, ", ".join(KINDS)))
        _, _, _, needs_count, needs_node = _FORMATS[self.kind]
        if isinstance(self.count, bool) or not isinstance(self.count, int) or self.count < 0:
            raise ValidationError("message count must be a whole number of nodes, not %r"
                                  % (self.count,))
        if needs_count and self.count < 1:
            raise ValidationError("a %s message needs a count of nodes (at least 1)"
                                  % self.kind)
        if self.node or needs_node:
            if needs_node and not self.node:
                raise ValidationError("a %s message needs a node name" % self.kind)
            validate_node_name(self.node)
        if not isinstance(self.cause, str):
            raise ValidationError("message cause must be a string, not %r" % (self.cause,))
        if self.kind == Kind.INFO and not self.cause.strip():
            raise ValidationError("an info message needs a cause: it is the message's text")

    @classmethod
    def create(cls, group: Any, kind: Optional[str] = None, cause: Optional[str] = None,
               node: Optional[str] = None, count: Optional[int] = None,
               dry_run: Optional[bool] = None) -> Message:
        """From action parameters, where st2 passes None for every unset one."""
        return cls(group=group, kind=kind or Kind.INFO, cause=cause or "", node=node or "",
                   count=0 if count is None else count, dry_run=bool(dry_run))


_CONTROL_RE = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")


def escape(text: str) -> str:
    """Text safe to put in a Slack message: ``&``, ``<`` and ``>`` become entities, as Slack's
    formatting guide asks (and only those), so an alert title cannot carry a mention such as
    ``<!channel>``, a link ``<https://…|…>`` or a user ``<@U…>``."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def clean_cause(cause: str) -> str:
    cause = _CONTROL_RE.sub("", cause).strip()
    if len(cause) > CAUSE_MAX:
        cause = cause[:CAUSE_MAX - 1].rstrip() + "…"
    return cause


def format_message(message: Message) -> str:
    """The message as Slack mrkdwn. Pure: the same input always reads the same.

    The group and node are validated DNS labels; the cause is anyone's text (New Relic alert
    titles are user-edited), so it is escaped.
    """
    emoji, what, dry_what, _, _ = _FORMATS[message.kind]
    if message.dry_run and dry_what:
        what = "_dry run:_ " + dry_what
    elif message.dry_run:
        what = "_dry run:_ " + what if what else "_dry run_"
    if message.node and "{node}" not in what:
        what = (what + " " if what else "") + "(node {node})"
    what = what.format(nodes=nodes(message.count), node="`%s`" % message.node)
    if message.kind == Kind.GROUP_CREATED and message.count:
        what += " with " + nodes(message.count)
    cause = escape(clean_cause(message.cause))
    text = "%s *%s*" % (emoji, message.group)
    if what and cause:
        return "%s: %s — %s" % (text, what, cause)
    return "%s: %s" % (text, what or cause)


def unreadable_announcement(group: str, problems: Sequence[Tuple[str, str]],
                            spec: bool) -> str:
    """What the group's channel is told about its records that cannot be read: ``problems``
    are (key, why); ``spec``: the group's spec is one of them."""
    parts = []
    for key, reason in problems[:3]:
        why = reason if len(reason) <= 300 else reason[:299] + "…"
        parts.append("%s: %s" % (key, why))
    if len(problems) > 3:
        parts.append("and %d more" % (len(problems) - 3))
    if spec:
        then = ("the governor skips the group until its spec is fixed (or the group deleted: "
                "%s)" % delete_group_hint(group))
    else:
        then = ("the governor holds the group (no scale-out, no scale-in; repairs go on) "
                "until the record is fixed or deleted (st2 key delete <key>)")
    return "reading its datastore records: %s; %s" % ("; ".join(parts), then)


def pause_event(asg: str, paused: bool) -> str:
    """The history's words for a pause or a resume."""
    return ("paused: the governor leaves the group alone until %s" % resume_hint(asg)
            if paused else "resumed: the governor manages the group again")


def pause_reply(asg: str, paused: bool, changed: bool) -> str:
    """asg_pause's and asg_resume's answer."""
    if changed:
        return "group %s %s" % (asg, "paused: the governor leaves it alone" if paused
                                else "resumed: the governor manages it again")
    return "group %s was already %s" % (asg, "paused" if paused else "running")
