"""Which group(s) a New Relic alert is for, and the ``autoscale.alert`` payload for each.

Used by the webhook sensor (``webhook.py``) and by the ``alert_route`` action (alerts that
arrive through StackStorm's own webhook), so both route alike. Pure: nothing is read or
written here; the caller loads the groups (``Store.load_all``) and dispatches.

Routing, ``route(alert, groups, asg)``:

* Named: with ``asg`` given (the webhook's ``?asg=<group>``), the alert goes to that group
  alone, whatever its matchers say. The name is validated first: one that is not a DNS label
  raises ``ValidationError`` (the webhook answers 400). A valid name no group has routes
  nowhere ("no group named X").
* Matched: without ``asg``, the alert goes to every group whose ``alert_matchers`` match it:

  - a group without matchers (or with only empty lists) is reached only through ``?asg=``;
  - a pattern is a shell glob (``fnmatch``: ``*``, ``?``, ``[abc]``) compared
    case-insensitively with the whole value: ``web-*`` matches ``WEB-01`` but not
    ``old-web-01``;
  - within one kind, any pattern may match (OR);
  - every kind the group sets must match (AND): ``{"applications": ["storefront"],
    "policies": ["Storefront*"]}`` needs an entity called storefront AND a policy starting
    with Storefront;
  - ``entities``, ``applications`` and ``servers`` are matched against the alert's entities
    (a kind matches when any pattern matches any entity; New Relic does not say reliably
    which entity is an application and which a server, so the three kinds are names for
    the operator's benefit), ``policies`` against its policy name, ``conditions`` against its
    condition name. An alert without entities (or without a policy, a condition) never
    matches a group that sets that kind.

Paused groups are routed to like any other: their alert state is still recorded, and the
governor leaves paused groups alone.
"""

from __future__ import annotations

import fnmatch
from typing import Any, Dict, Iterable, List, Mapping, NamedTuple, Optional

from .alerts import Alert
from .model import Group, validate_group_name

# Matcher kind -> what of the alert it is compared with.
_ENTITY_KINDS = ("entities", "applications", "servers")
_REASON_VALUE_MAX = 80


class Route(NamedTuple):
    """The groups an alert goes to (sorted, possibly none) and why, in words."""

    groups: List[str]
    reason: str


def _group(value: Any) -> Group:
    """A Group from a GroupState or a Group."""
    return getattr(value, "group", value)


def _values(alert: Alert, kind: str) -> List[str]:
    if kind in _ENTITY_KINDS:
        return list(alert.entities)
    if kind == "policies":
        return [alert.policy] if alert.policy else []
    if kind == "conditions":
        return [alert.condition] if alert.condition else []
    return []


def _any_match(patterns: Iterable[str], values: Iterable[str]) -> bool:
    values = [value.lower() for value in values]
    return any(fnmatch.fnmatchcase(value, pattern.lower())
               for pattern in patterns for value in values)


def active_matchers(group: Group) -> Dict[str, List[str]]:
    """The kinds a group really sets (an empty list sets nothing)."""
    return {kind: list(patterns) for kind, patterns in (group.alert_matchers or {}).items()
            if patterns}


def matches(group: Any, alert: Alert) -> bool:
    """Whether a group's matchers (see the module docstring) select the alert. A group
    without matchers never matches."""
    matchers = active_matchers(_group(group))
    if not matchers:
        return False
    return all(_any_match(patterns, _values(alert, kind)) for kind, patterns in matchers.items())


def _short(text: str) -> str:
    return text if len(text) <= _REASON_VALUE_MAX else text[:_REASON_VALUE_MAX - 3] + "..."


def _describe(alert: Alert) -> str:
    parts = []
    if alert.entities:
        parts.append("entities %s" % ", ".join(_short(e) for e in alert.entities[:5]))
    if alert.policy:
        parts.append("policy %r" % _short(alert.policy))
    if alert.condition:
        parts.append("condition %r" % _short(alert.condition))
    return "; ".join(parts) if parts else "no entities, policy or condition"


def route(alert: Alert, groups: Mapping[str, Any], asg: Optional[str] = None) -> Route:
    """The groups ``alert`` goes to, from ``groups`` (name -> GroupState or Group).

    Raises ``ValidationError`` when ``asg`` is given and is not a valid group name.
    """
    if asg is not None:
        name = validate_group_name(asg)
        if name in groups:
            return Route([name], "named by asg=%s" % name)
        return Route([], "no group named %s" % name)
    found = sorted(name for name, value in groups.items() if matches(value, alert))
    if found:
        return Route(found, "alert matchers of %s match" % ", ".join(found))
    return Route([], "no group's alert matchers match the alert (%s)" % _describe(alert))


def trigger_payload(alert: Alert, asg: str, received_at: float) -> Dict[str, Any]:
    """The ``autoscale.alert`` trigger payload (sensors/newrelic_webhook.yaml's
    payload_schema) for one group."""
    return {
        "asg": asg,
        "state": alert.state,
        "severity": alert.severity,
        "issue_id": alert.issue_id,
        "title": alert.title,
        "entities": list(alert.entities),
        "policy": alert.policy,
        "condition": alert.condition,
        "url": alert.url,
        "family": alert.family,
        "received_at": float(received_at),
    }
