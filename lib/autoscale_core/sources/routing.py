"""Which group(s) an alert is for, and the ``autoscale.alert`` payload for each.

Used by the webhook sensor (``receiver.py``) and by the ``alert_route`` action (alerts that
arrive through StackStorm's own webhook, ``st2_webhook.py``), so both route alike. Pure:
nothing is read or written here; the caller loads the groups (``Store.load_all``) and
dispatches. It knows no source: what each matcher kind is compared with is the alert's
``matcher_values``, which its source filled in (``sources/newrelic.py``: ``MATCHER_VALUES``).

Routing, ``route(alert, groups, asg)``:

* Named: with ``asg`` given (the webhook's ``?asg=<group>``), the alert goes to that group
  alone, whatever its matchers say. The name is validated first: one that is not a DNS label
  raises ``ValidationError`` (the webhook answers 400). A valid name no group has routes
  nowhere ("no group named X").
* Matched: without ``asg``, the alert goes to every group whose ``alert_matchers``
  (kind -> patterns) match it:

  - a group without matchers (or with only empty lists) is reached only through ``?asg=``;
  - a pattern is a shell glob (``fnmatch``: ``*``, ``?``, ``[abc]``) compared
    case-insensitively with the whole value: ``web-*`` matches ``WEB-01`` but not
    ``old-web-01``;
  - within one kind, any pattern may match any of the alert's values for that kind (OR);
  - every kind the group sets must match (AND): ``{"applications": ["storefront"],
    "policies": ["Storefront*"]}`` needs an entity called storefront AND a policy starting
    with Storefront;
  - an alert without values for a kind (no entities, no policy…) never matches a group that
    sets that kind;
  - label kinds (``label:<name>``, set by ``asg create match_labels={"service": "checkout"}``)
    are compared exactly, case included, as Alertmanager's ``=`` matcher does: a value
    holding ``*`` or ``[`` means itself. ``{"label:service": ["checkout"], "label:env":
    ["prod"]}`` needs both labels with those values (AND); several values for one label are
    alternatives (OR). Only a source with labels (Alertmanager) gives values for them.

Paused groups are routed to like any other: their alert state is still recorded, and the
governor leaves paused groups alone.
"""

from __future__ import annotations

import fnmatch
from typing import Any, Dict, Iterable, List, Mapping, NamedTuple, Optional

from ..domain.alerts import Alert
from ..domain.model import LABEL_KIND, Group, is_label_kind
from ..domain.names import validate_group_name

_REASON_VALUE_MAX = 80


class Route(NamedTuple):
    """The groups an alert goes to (sorted, possibly none) and why, in words."""

    groups: List[str]
    reason: str


def _group(value: Any) -> Group:
    """A Group from a GroupState or a Group."""
    return getattr(value, "group", value)


def _any_match(patterns: Iterable[str], values: Iterable[str], exact: bool = False) -> bool:
    if exact:
        wanted = set(patterns)
        return any(value in wanted for value in values)
    values = [value.lower() for value in values]
    return any(fnmatch.fnmatchcase(value, pattern.lower())
               for pattern in patterns for value in values)


def active_matchers(group: Group) -> Dict[str, List[str]]:
    """The kinds a group really sets (an empty list sets nothing)."""
    return {kind: list(patterns) for kind, patterns in (group.alert_matchers or {}).items()
            if patterns}


def match(matchers: Mapping[str, Iterable[str]], values: Mapping[str, Iterable[str]]) -> bool:
    """Whether ``matchers`` (kind -> patterns, each kind set) all match ``values`` (kind ->
    what that kind is compared with); no matchers match nothing."""
    if not matchers:
        return False
    return all(_any_match(patterns, values.get(kind, ()), exact=is_label_kind(kind))
               for kind, patterns in matchers.items())


def matches(group: Any, alert: Alert) -> bool:
    """Whether a group's matchers (see the module docstring) select the alert. A group
    without matchers never matches."""
    return match(active_matchers(_group(group)), alert.matcher_values)


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
    labels = ["%s=%s" % (kind[len(LABEL_KIND):], _short(values[0]))
              for kind, values in sorted(alert.matcher_values.items())
              if is_label_kind(kind) and values]
    if labels:
        parts.append("labels %s" % ", ".join(labels[:8] + (["..."] if len(labels) > 8 else [])))
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
