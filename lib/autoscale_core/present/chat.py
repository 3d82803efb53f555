"""Chat wording: every decision and every step, told to the group's channel, one line per event.

A message is built by a pure function from structured input (the group, the kind of event, a
node, a count, the capacity change and the cause), so every workflow and sensor words things
the same way, and says each thing once::

    :arrow_up: *web*: adding 2 nodes (2 → 4, max 5) — critical alert 'Errors' open for 2 min

The kind says what happened ("adding 2 nodes"), ``detail`` the capacity change, the cause
why; for the kinds whose cause is itself the whole sentence (an alert opened or closed, an
orphan), the kind's own words stand only when there is no cause. Issue ids are
shortened (domain/words.py); with a ``url`` the issue's mention links to it. For Slack,
``blocks`` lays a decision out as a section with fields (the nodes before → after, the
limit) under the same line.

A chat backend (backends/, through services/announce.py) posts it; this module knows
nothing of how.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Dict, List, NamedTuple, Optional, Sequence, Tuple

from ..domain.names import validate_group_name, validate_node_name
from ..domain.words import clean_url, nodes
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


class _Format(NamedTuple):
    emoji: str
    # What happened: {nodes} is "2 nodes", {node} the node's name in code style.
    what: str
    # The dry-run wording, or None when the kind has none.
    dry_what: Optional[str] = None
    needs_count: bool = False
    needs_node: bool = False
    # The cause is the whole sentence: the kind's words only when there is no cause.
    told_by_cause: bool = False


_FORMATS = {
    Kind.SCALE_OUT: _Format(":arrow_up:", "adding {nodes}", "would add {nodes}", True),
    Kind.SCALE_IN: _Format(":arrow_down:", "removing {nodes}", "would remove {nodes}", True),
    Kind.REPAIR: _Format(":wrench:", "adding {nodes}", "would add {nodes}", True),
    Kind.BACKOFF: _Format(":no_entry:", "not adding nodes for now"),
    Kind.NODE_ADDED: _Format(":white_check_mark:", "node {node} is in service",
                             needs_node=True),
    Kind.NODE_REMOVED: _Format(":heavy_minus_sign:", "node {node} is removed", needs_node=True),
    Kind.NODE_FAILED: _Format(":x:", "node {node} failed", needs_node=True),
    Kind.ORPHAN: _Format(":ghost:", "VM {node} belongs to no node record", needs_node=True,
                         told_by_cause=True),
    Kind.ALERT_OPENED: _Format(":rotating_light:", "alert opened", told_by_cause=True),
    Kind.ALERT_ACKNOWLEDGED: _Format(":eyes:", "alert acknowledged", told_by_cause=True),
    Kind.ALERT_CLOSED: _Format(":large_green_circle:", "alert closed", told_by_cause=True),
    Kind.ALERT_EXPIRED: _Format(":hourglass:", "alert expired", told_by_cause=True),
    Kind.GROUP_CREATED: _Format(":new:", "group created"),
    Kind.GROUP_DELETED: _Format(":wastebasket:", "group deleted"),
    Kind.PAUSED: _Format(":double_vertical_bar:", "paused: no scaling until resumed"),
    Kind.RESUMED: _Format(":arrow_forward:", "resumed"),
    Kind.ERROR: _Format(":x:", "failed"),
    Kind.INFO: _Format(":information_source:", "", told_by_cause=True),
}
KINDS = tuple(_FORMATS)

# What may stand between the parentheses after what happened: "2 → 4, max 5".
DETAIL_MAX = 80


@dataclass(frozen=True)
class Message:
    """What to tell: validated on creation, before anything is sent."""

    group: str
    kind: str = Kind.INFO
    cause: str = ""
    node: str = ""
    count: int = 0
    dry_run: bool = False
    # The capacity change, "2 → 4, max 5" (shown in parentheses after what happened).
    detail: str = ""
    # Where the alert's issue can be seen: its mention in the cause links there.
    url: str = ""

    def __post_init__(self) -> None:
        validate_group_name(self.group)
        if self.kind not in _FORMATS:
            raise ValidationError("message kind %r is not one of %s"
                                  % (self.kind, ", ".join(KINDS)))
        needs_count, needs_node = _FORMATS[self.kind].needs_count, _FORMATS[self.kind].needs_node
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
        if not isinstance(self.detail, str) or len(self.detail) > DETAIL_MAX or \
                _CONTROL_RE.search(self.detail):
            raise ValidationError("message detail must be one short line, such as '2 → 4, "
                                  "max 5'")
        if not isinstance(self.url, str):
            raise ValidationError("message url must be a string, not %r" % (self.url,))

    @classmethod
    def create(cls, group: Any, kind: Optional[str] = None, cause: Optional[str] = None,
               node: Optional[str] = None, count: Optional[int] = None,
               dry_run: Optional[bool] = None, detail: Optional[str] = None,
               url: Optional[str] = None) -> Message:
        """From action parameters, where st2 passes None for every unset one. An address
        that is not a plain http(s) URL is dropped: a link is decoration, never a reason to
        lose the message."""
        return cls(group=group, kind=kind or Kind.INFO, cause=cause or "", node=node or "",
                   count=0 if count is None else count, dry_run=bool(dry_run),
                   detail=detail or "", url=clean_url(url))


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


# The last mention of an issue in a cause ("issue 7d1e8f0a"): a title, which comes first,
# cannot take the link from the real one.
_ISSUE_RE = re.compile(r"(.*)\bissue ([^\s;:,()]+)", re.S)


def _what(message: Message) -> str:
    form = _FORMATS[message.kind]
    what = form.what
    if form.told_by_cause and message.cause.strip():
        what = ""
    if message.dry_run:
        what = "_dry run:_ " + (form.dry_what or what) if (form.dry_what or what) \
            else "_dry run_"
    if message.node and "{node}" not in what and not form.told_by_cause:
        what = (what + " " if what else "") + "(node {node})"
    what = what.format(nodes=nodes(message.count), node="`%s`" % message.node)
    if message.kind == Kind.GROUP_CREATED and message.count:
        what += " with " + nodes(message.count)
    if message.kind == Kind.GROUP_DELETED and message.count:
        what += ", %s removed" % nodes(message.count)
    return what


def _cause(message: Message) -> str:
    """The cause escaped, its issue's mention linked when there is a url."""
    cause = escape(clean_cause(message.cause))
    url = escape(clean_url(message.url))
    if not url:
        return cause
    found = _ISSUE_RE.match(cause)
    if found is None:
        return "%s (<%s|issue>)" % (cause, url) if cause else "<%s|issue>" % url
    start, end = found.start(2) - len("issue "), found.end(2)
    return "%s<%s|%s>%s" % (cause[:start], url, cause[start:end], cause[end:])


def _line(message: Message, detail: bool) -> str:
    form = _FORMATS[message.kind]
    what = _what(message)
    if detail and message.detail and what:
        what += " (%s)" % escape(message.detail)
    cause = _cause(message)
    text = "%s *%s*" % (form.emoji, message.group)
    if what and cause:
        return "%s: %s — %s" % (text, what, cause)
    return "%s: %s" % (text, what or cause)


def format_message(message: Message) -> str:
    """The message as one line of Slack mrkdwn. Pure: the same input always reads the same.

    The group and node are validated DNS labels; the cause is anyone's text (alert titles are
    user-edited), so it is escaped; the only link is the one built here from ``url``.
    """
    return _line(message, detail=True)


def blocks(message: Message) -> Optional[List[Dict[str, Any]]]:
    """Slack blocks for a message with a capacity change: the line (without the numbers) and
    the numbers as fields, nodes before → after and the limit; None for any other message (its
    one line is all there is)."""
    if not message.detail:
        return None
    change, _, limit = message.detail.partition(", ")
    fields = [{"type": "mrkdwn", "text": "*Nodes*\n%s" % escape(change)}]
    if limit:
        fields.append({"type": "mrkdwn", "text": "*Limit*\n%s" % escape(limit)})
    return [{"type": "section", "text": {"type": "mrkdwn", "text": _line(message, detail=False)},
             "fields": fields}]


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
