"""The few words every cause is made of: a count of nodes, a duration, an alert. Shared by the
policy's causes, the services' and the chat layer's, so each reads the same everywhere."""

from __future__ import annotations

import re
from typing import Any

# An issue id longer than this is shown by its first ISSUE_ID_SHORT characters (a UUID's
# first group, like a short git hash): enough to tell issues apart in a channel.
ISSUE_ID_MAX = 12
ISSUE_ID_SHORT = 8


def nodes(count: int) -> str:
    """'1 node', '2 nodes'."""
    return "%d node%s" % (count, "" if count == 1 else "s")


def plural(count: int, word: str) -> str:
    """'1 issue', '3 issues'."""
    return "%d %s%s" % (count, word, "" if count == 1 else "s")


def duration(seconds: float) -> str:
    """'45 s', '5 min', '2 h 5 min': short enough for a chat line."""
    seconds = max(0, int(round(seconds)))
    if seconds < 120:
        return "%d s" % seconds
    minutes = seconds // 60
    if minutes < 120:
        return "%d min" % minutes
    hours, minutes = divmod(minutes, 60)
    return "%d h %d min" % (hours, minutes) if minutes else "%d h" % hours


def short_id(issue_id: Any) -> str:
    """An issue id as people read it: '7d1e8f0a' for '7d1e8f0a-3c52-4b8e-9a61-2f4d5c6b7e80'."""
    text = str(issue_id)
    return text[:ISSUE_ID_SHORT] if len(text) > ISSUE_ID_MAX else text


def state_label(state: str) -> str:
    """A node state as words: 'in service'."""
    return state.replace("_", " ")


def describe_issue(issue_id: str, title: str) -> str:
    """"'High error rate' (issue 7d1e8f0a)", or "issue 7d1e8f0a" without a title."""
    return ("%r (issue %s)" % (title, short_id(issue_id))) if title \
        else "issue %s" % short_id(issue_id)


def describe_alert(level: str, issue_id: str, title: str) -> str:
    """"critical alert 'High error rate' (issue 7d1e8f0a)"."""
    text = "%s alert" % level
    if title:
        text += " %r" % title
    if issue_id:
        text += " (issue %s)" % short_id(issue_id)
    return text


# A link's address as chat may show it: http(s), one word, none of the characters Slack's
# markup gives a meaning to (see present/chat.py).
_URL_RE = re.compile(r"https?://[^\s<>|\x00-\x1f\x7f]{1,2000}")


def clean_url(value: Any) -> str:
    """``value`` when it is an http(s) address a chat line may link to, else "" (a link is
    decoration: an odd one is dropped, never a reason to refuse what carries it)."""
    return value if isinstance(value, str) and _URL_RE.fullmatch(value) else ""
