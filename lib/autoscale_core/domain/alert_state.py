"""A group's alert state, and how each delivery from an alert source changes it.

A group may have several issues open at once (a CPU condition and an error-rate
condition, say). ``AlertState.issues`` keeps each open issue by id; the record's summary fields
(``level``, ``issue_id``, ``title``, ``opened_at``, ``updated_at``, ``acknowledged``) describe
them as the governor's policy reads them:

* ``level`` is the highest level of the open issues (critical above warning); the headline
  issue is the most severe one, the newest among equals;
* ``opened_at`` is when the oldest open issue opened, ``updated_at`` the newest delivery;
* when the last open issue closes, ``level`` goes back to none and ``ended_at`` is set: the
  scale-in cooldown counts from there.

What each delivery does (``apply``):

* open, critical or warning: the issue is open at that level (an escalation or a downgrade of
  an already-open issue changes its level);
* open, info: info alerts never scale; an issue lowered to info stops counting;
* acknowledged: recorded; the issue still counts (someone is looking, the load is still there);
* closed: the issue stops counting. A close for an issue never seen open ends the alert only
  when no other issue is open;
* any issue with no delivery for ``alert_max_age`` is dropped (a source may never close it);
  the policy expires the whole alert the same way.

``apply`` is pure; ``services/alerts.py`` reads the stored record, applies a delivery, writes
the record back only when it changed, and records the delivery in the group's history.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any, Dict, Mapping

from ..errors import ValidationError
from .alerts import ACKNOWLEDGED, CLOSED, CRITICAL, INFO, OPEN, WARNING
from .model import AlertLevel, AlertState
from .settings import PolicySettings
from .words import describe_issue, plural

STATES = (OPEN, ACKNOWLEDGED, CLOSED)
SEVERITIES = (CRITICAL, WARNING, INFO)
# A record holds at most this many open issues; beyond it the least recently heard one goes.
ISSUES_MAX = 50
_RANK = {AlertLevel.NONE: 0, AlertLevel.WARNING: 1, AlertLevel.CRITICAL: 2}
_TEXT_MAX = 200

# What an operator is told (notify kinds) for each kind of change.
OPENED = "alert_opened"
ACK = "alert_acknowledged"
ENDED = "alert_closed"


@dataclass(frozen=True)
class Delivery:
    """One alert notification for one group, as the ``autoscale.alert`` trigger carries it."""

    state: str
    severity: str
    issue_id: str
    title: str = ""

    def __post_init__(self) -> None:
        if self.state not in STATES:
            raise ValidationError("alert state %r is not one of %s"
                                  % (self.state, ", ".join(STATES)))
        if self.severity not in SEVERITIES:
            raise ValidationError("alert severity %r is not one of %s"
                                  % (self.severity, ", ".join(SEVERITIES)))
        if not isinstance(self.issue_id, str) or not self.issue_id.strip() or \
                len(self.issue_id) > _TEXT_MAX:
            raise ValidationError("alert issue_id must be a non-empty string of at most %d "
                                  "characters" % _TEXT_MAX)
        if not isinstance(self.title, str):
            raise ValidationError("alert title must be a string")


@dataclass(frozen=True)
class Change:
    """What a delivery changed: ``announce`` is the notify kind to tell the channel ('' when
    nothing worth a chat line changed), ``event`` the history kind, ``cause`` the words."""

    alert: AlertState
    changed: bool
    announce: str
    event: str
    cause: str


def summarise(issues: Mapping[str, Mapping[str, Any]], previous: AlertState,
              now: float) -> AlertState:
    """The record for ``issues``: the summary fields recomputed; ended_at set when the last
    issue goes."""
    if not issues:
        if previous.active:
            return AlertState(level=AlertLevel.NONE, issue_id=previous.issue_id,
                              title=previous.title, ended_at=now)
        return replace(previous, issues={})
    headline_id, headline = max(
        issues.items(),
        key=lambda item: (_RANK[item[1]["level"]], item[1]["opened_at"], item[0]))
    return AlertState(
        level=headline["level"],
        issue_id=headline_id,
        title=headline.get("title", ""),
        acknowledged=bool(headline.get("acknowledged")),
        opened_at=min(issue["opened_at"] for issue in issues.values()),
        updated_at=max(issue["updated_at"] for issue in issues.values()),
        ended_at=previous.ended_at,
        issues={key: dict(value) for key, value in issues.items()},
    )


def apply(alert: AlertState, delivery: Delivery, now: float,
          max_age: float = PolicySettings.alert_max_age) -> Change:
    """The alert state after one delivery, and what changed. Pure."""
    issues: Dict[str, Dict[str, Any]] = {
        key: dict(value) for key, value in alert.issues.items()
        if now - max(value.get("updated_at", 0), value.get("opened_at", 0)) < max_age
    }
    # A record written before issues were tracked: its one issue, as far as it is known.
    if alert.active and not alert.issues and alert.issue_id:
        issues[alert.issue_id] = {"level": alert.level, "title": alert.title,
                                  "opened_at": alert.opened_at, "updated_at": alert.updated_at,
                                  "acknowledged": alert.acknowledged}
    key, title = delivery.issue_id, delivery.title[:_TEXT_MAX]
    known = issues.get(key)
    what = describe_issue(key, title or (known or {}).get("title", ""))
    announce, event = "", "alert_received"

    if delivery.state == OPEN and delivery.severity in (CRITICAL, WARNING):
        level = delivery.severity
        if known is None:
            issues[key] = {"level": level, "title": title, "opened_at": now, "updated_at": now,
                           "acknowledged": False}
            announce, event = OPENED, OPENED
            cause = "%s alert %s opened" % (level, what)
        else:
            raised = _RANK[level] > _RANK[known["level"]]
            lowered = _RANK[level] < _RANK[known["level"]]
            known.update(level=level, updated_at=now, title=title or known.get("title", ""))
            if raised or lowered:
                announce, event = OPENED, "alert_level_changed"
                cause = "alert %s is now %s" % (what, level)
            else:
                cause = "alert %s still open (%s)" % (what, level)
    elif delivery.state == OPEN:
        if known is not None:
            del issues[key]
            announce, event = ENDED, "alert_level_changed"
            cause = "alert %s lowered to info: it no longer counts for scaling" % what
        else:
            cause = "info alert %s recorded; info alerts never scale" % what
    elif delivery.state == ACKNOWLEDGED:
        if known is not None and not known.get("acknowledged"):
            known.update(acknowledged=True, updated_at=now)
            announce, event = ACK, ACK
            cause = "alert %s acknowledged; it still counts until it closes" % what
        elif known is not None:
            known.update(updated_at=now)
            cause = "alert %s acknowledged again" % what
        else:
            event = ACK
            cause = "alert %s acknowledged (not open here: recorded only)" % what
    else:
        if known is not None:
            del issues[key]
            announce, event = ENDED, ENDED
            cause = "alert %s closed" % what
            if issues:
                cause += "; %s still open" % plural(len(issues), "other issue")
        elif not issues and alert.active:
            announce, event = ENDED, ENDED
            cause = "alert %s closed; no other issue is open" % what
        else:
            event = ENDED
            cause = "alert %s closed (not open here: recorded only)" % what

    if len(issues) > ISSUES_MAX:
        for stale in sorted(issues, key=lambda k: issues[k]["updated_at"])[:-ISSUES_MAX]:
            del issues[stale]
    updated = summarise(issues, alert, now)
    return Change(alert=updated, changed=updated != alert, announce=announce, event=event,
                  cause=cause)
