"""Status and list text for chat: ``asg status`` and ``asg list`` as people read them.

Built from the JSON-ready dicts the services return (services/groups.py), so what a workflow
reads and what a person reads never disagree.
"""

from __future__ import annotations

from typing import Any, List, Mapping

from ..domain.model import NodeState
from ..domain.words import duration, nodes, short_id, state_label
from .hints import create_hint


def _counts_text(counts: Mapping[str, int]) -> str:
    if not counts:
        return "no nodes"
    return ", ".join("%d %s" % (counts[name], state_label(name))
                     for name in NodeState.ALL if counts.get(name))


def status_text(status: Mapping[str, Any], now: float) -> str:
    """A few lines for Slack: the group, its alert, cooldowns, failures, nodes, the
    governor's view and the last events with their causes."""
    spec = status["group"]
    flags = [flag for flag, on in (("paused", spec["paused"]), ("dry run", spec["dry_run"]))
             if on]
    lines = ["*%s* (%s): %s; normal size %d (min %d, max %d)%s" % (
        status["name"], status["fqdn"], _counts_text(status["counts"]), status["normal_size"],
        spec["min_size"], spec["max_size"], "".join(" · " + flag for flag in flags))]

    alert = status["alert"]
    if alert["level"] == "none":
        lines.append("alert: none")
    else:
        text = "%s" % alert["level"]
        if alert["title"]:
            text += " %r" % alert["title"]
        if alert["issue_id"]:
            text += " (issue %s)" % short_id(alert["issue_id"])
        if alert["opened_at"]:
            text += ", open for %s" % duration(now - alert["opened_at"])
        others = len(alert.get("issues") or {}) - 1
        if others > 0:
            text += "; %d more issue%s open" % (others, "" if others == 1 else "s")
        if alert["expired"]:
            text += "; expired (no update for too long), counts as over"
        lines.append("alert: " + text)

    cooldowns = status["cooldowns"]

    def wait(seconds: float) -> str:
        return "in %s" % duration(seconds) if seconds > 0 else "possible now"

    lines.append("cooldowns: scale-out %s; scale-in %s" % (
        wait(cooldowns["scale_out_remaining"]), wait(cooldowns["scale_in_remaining"])))

    failures = status["failures"]
    if failures["consecutive"]:
        text = "failures: %d node addition%s failed in a row" % (
            failures["consecutive"], "" if failures["consecutive"] == 1 else "s")
        if failures["last_cause"]:
            text += " (last: %s)" % failures["last_cause"]
        if failures["backoff_remaining"] > 0:
            text += "; backing off for another %s" % duration(
                failures["backoff_remaining"])
        lines.append(text)

    if status["nodes"]:
        lines.append("nodes:")
        for node in status["nodes"]:
            text = "• %s: %s, age %s" % (node["name"], state_label(node["state"]),
                                          duration(node["age"]))
            if node["address"]:
                text += ", %s" % node["address"]
            if node["protected"]:
                text += ", protected"
            if node["cause"]:
                text += " — %s" % node["cause"]
            lines.append(text)

    decision = status["decision"]
    if decision["action"] == "none":
        lines.append("governor: nothing to do — %s" % decision["cause"])
    else:
        # What it would do with its numbers, then why, once.
        lines.append("governor: %s %s (%s)%s — %s" % (
            decision["action"].replace("_", "-"), nodes(decision["count"]), decision["detail"],
            ", dry run: nothing done" if decision["dry_run"] else "", decision["why"]))

    if status["history"]:
        lines.append("last events:")
        for event in reversed(status["history"]):
            text = "• %s ago %s" % (duration(now - event["at"]),
                                    event["kind"].replace("_", " "))
            if event["node"]:
                text += " %s" % event["node"]
            if event["count"]:
                text += " (%s)" % nodes(event["count"])
            if not event["ok"]:
                text += " [failed]"
            if event["cause"]:
                text += ": %s" % event["cause"]
            lines.append(text)
    return "\n".join(lines)


def list_text(entries: List[Mapping[str, Any]], problems: List[str]) -> str:
    if not entries:
        lines = ["no autoscaling groups yet (create one: %s)" % create_hint()]
    else:
        lines = ["%d autoscaling group%s:" % (len(entries), "" if len(entries) == 1 else "s")]
    for entry in entries:
        flags = [flag for flag, on in (("paused", entry["paused"]),
                                       ("dry run", entry["dry_run"])) if on]
        alert = entry["alert"]
        lines.append("• *%s* (%s): %s; normal %d, max %d; alert %s%s" % (
            entry["name"], entry["fqdn"], _counts_text(entry["counts"]), entry["normal_size"],
            entry["max_size"], alert, "".join(" · " + flag for flag in flags)))
    if problems:
        lines.append("%d unreadable record%s skipped (see the st2 logs)"
                     % (len(problems), "" if len(problems) == 1 else "s"))
    return "\n".join(lines)
