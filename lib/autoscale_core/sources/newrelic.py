"""The New Relic alert source: webhook payloads of any of its three families, as alerts.

Three families reach the webhook (shared/fixtures/newrelic): Workflows issue payloads (2022 on:
``id``, ``state``, ``priority``), the notification-channel JSON (``current_state``,
``severity``, ``incident_id`` or ``issue_id``) and the 2015 form-encoded hook (one field
``alert=`` or ``deployment=`` holding JSON). Every field is user-editable in New Relic, so any
may be missing or extra; what cannot be read is refused with a one-line reason. A body
carries one alert.

Priorities: ``CRITICAL`` -> critical, ``HIGH`` and ``MEDIUM`` -> warning, ``LOW`` -> info
(anything else: warning). A top-level ``asg`` text names the alert's group (``Alert.group``;
a payload template may set it for StackStorm's own webhook, which has no ``?asg=``).

Matcher vocabulary (``MATCHER_VALUES``): a group's ``entities``, ``applications`` and
``servers`` patterns are all compared with the alert's entities (New Relic does not say
reliably which entity is an application and which a server, so the three kinds are names for
the operator's benefit), ``policies`` with its policy name, ``conditions`` with its condition
name.
"""

from __future__ import annotations

import re
from dataclasses import replace
from typing import Any, Dict, List, Mapping
from urllib.parse import parse_qs

from ..domain.alerts import ACKNOWLEDGED, CLOSED, CRITICAL, INFO, OPEN, WARNING, Alert
from . import AlertPayloadError, NotAnAlert
from .payload import decode, load_json

NAME = "newrelic"
TITLE = "New Relic"

# Workflows issue states and priorities.
_ISSUE_STATES = {"CREATED": OPEN, "ACTIVATED": OPEN, "ACKNOWLEDGED": ACKNOWLEDGED,
                 "CLOSED": CLOSED}
_PRIORITIES = {"CRITICAL": CRITICAL, "HIGH": WARNING, "MEDIUM": WARNING, "LOW": INFO}
_CHANNEL_STATES = {"open": OPEN, "acknowledged": ACKNOWLEDGED, "closed": CLOSED}
_SEVERITIES = {"critical": CRITICAL, "warning": WARNING, "info": INFO}
_INCIDENT_ID = re.compile(r"/incidents/(\d+)")
# Bound every text we keep: a payload is a user-edited template.
_TEXT_MAX = 500
_LIST_MAX = 50

# Matcher kind -> the alert value it is compared with (see the module docstring).
MATCHER_VALUES = {"entities": "entities", "applications": "entities", "servers": "entities",
                  "policies": "policy", "conditions": "condition"}


class DeploymentNotice(NotAnAlert):
    """The 2015 hook's ``deployment=`` form: New Relic telling of a deployment, not an alert.
    Nothing to do, but New Relic counts any answer but a 2xx as a failed delivery and retries
    it, so the webhook answers it 2xx (and logs it at debug level only)."""


def parse(body: bytes, content_type: str = "") -> List[Alert]:
    """The alert a webhook body carries (one: New Relic sends one issue per delivery)."""
    return [normalise(parse_body(body, content_type))]


def alert(**fields: Any) -> Alert:
    """An Alert with New Relic's matcher vocabulary filled in from its values."""
    plain = Alert(**fields)
    values: Dict[str, List[str]] = {}
    for kind, name in MATCHER_VALUES.items():
        value = getattr(plain, name)
        values[kind] = list(value) if isinstance(value, list) else ([value] if value else [])
    return replace(plain, matcher_values=values)


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, (dict, list)):
        raise AlertPayloadError("expected text, got a %s" % type(value).__name__)
    return " ".join(str(value).split())[:_TEXT_MAX]


def _texts(value: Any) -> List[str]:
    if value is None:
        return []
    if not isinstance(value, list):
        value = [value]
    names = []
    for item in value[:_LIST_MAX]:
        if isinstance(item, Mapping):
            item = item.get("name")
        name = _text(item)
        if name:
            names.append(name)
    return names


def _first(value: Any) -> str:
    names = _texts(value)
    return names[0] if names else ""


def parse_body(body: bytes, content_type: str = "") -> Mapping[str, Any]:
    """The JSON document of a webhook body, sent as JSON or as a form (``alert=`` holding
    JSON, as the 2015 hook did)."""
    text = decode(body)
    kind = (content_type or "").lower()
    looks_json = text.lstrip()[:1] in ("{", "[")
    if "json" in kind or ("form-urlencoded" not in kind and looks_json):
        document = load_json(text, "body")
    else:
        fields = parse_qs(text, keep_blank_values=True)
        key = next((k for k in ("alert", "deployment") if k in fields), None)
        if key is None:
            raise AlertPayloadError("body is neither JSON nor a form with an alert= field")
        if key == "deployment":
            # Its content does not matter: nothing is done with it.
            raise DeploymentNotice("a deployment notice, not an alert")
        document = load_json(fields[key][0], "form field %s" % key)
    if not isinstance(document, Mapping):
        raise AlertPayloadError("body is JSON but not an object")
    return document


def normalise(document: Mapping[str, Any]) -> Alert:
    """One Alert from any of the three families."""
    if "current_state" in document:
        fields = _channel(document)
    elif "state" in document or "priority" in document:
        fields = _workflows(document)
    elif "long_description" in document or "alert_url" in document:
        fields = _legacy(document)
    else:
        raise AlertPayloadError(
            "not a New Relic alert: no state, current_state or long_description")
    named = document.get("asg")
    # Only text names a group; the sensor never refused a body for another asg field.
    return alert(group=named if isinstance(named, str) else "", **fields)


def _workflows(doc: Mapping[str, Any]) -> Dict[str, Any]:
    state = _ISSUE_STATES.get(_text(doc.get("state")).upper())
    if state is None:
        raise AlertPayloadError("unknown issue state %r" % _text(doc.get("state")))
    issue_id = _text(doc.get("id"))
    if not issue_id:
        raise AlertPayloadError("issue payload without an id")
    return dict(
        state=state,
        severity=_PRIORITIES.get(_text(doc.get("priority")).upper(), WARNING),
        issue_id=issue_id,
        title=_text(doc.get("title")),
        entities=_texts(doc.get("impactedEntities")) + _texts(doc.get("entitiesData")),
        policy=_first(doc.get("alertPolicyNames")),
        condition=_first(doc.get("alertConditionNames")),
        url=_text(doc.get("issueUrl")),
        family="workflows",
    )


def _channel(doc: Mapping[str, Any]) -> Dict[str, Any]:
    state = _CHANNEL_STATES.get(_text(doc.get("current_state")).lower())
    if state is None:
        raise AlertPayloadError("unknown current_state %r" % _text(doc.get("current_state")))
    # Payloads migrated to Workflows keep this shape and add issue_id, which then replaces
    # incident_id as the key.
    issue_id = _text(doc.get("issue_id")) or _text(doc.get("incident_id"))
    if not issue_id:
        raise AlertPayloadError("incident payload without issue_id or incident_id")
    return dict(
        state=state,
        severity=_SEVERITIES.get(_text(doc.get("severity")).lower(), WARNING),
        issue_id=issue_id,
        title=_text(doc.get("details")) or _text(doc.get("condition_name")),
        entities=_texts(doc.get("targets")),
        policy=_text(doc.get("policy_name")),
        condition=_text(doc.get("condition_name")),
        url=_text(doc.get("incident_url")),
        family="channel",
    )


def _legacy(doc: Mapping[str, Any]) -> Dict[str, Any]:
    description = _text(doc.get("long_description")).lower()
    if description.startswith("alert ended"):
        state = CLOSED
    elif description.startswith("alert opened") or not description:
        state = OPEN
    else:
        raise AlertPayloadError("long_description says neither 'Alert opened' nor 'Alert ended'")
    url = _text(doc.get("alert_url"))
    found = _INCIDENT_ID.search(url)
    issue_id = found.group(1) if found else _text(doc.get("created_at"))
    if not issue_id:
        raise AlertPayloadError("legacy alert without alert_url or created_at")
    return dict(
        state=state,
        severity=_SEVERITIES.get(_text(doc.get("severity")).lower(), WARNING),
        issue_id=issue_id,
        title=_text(doc.get("message")) or _text(doc.get("short_description")),
        entities=_texts(doc.get("servers")) + _texts(doc.get("application_name")),
        policy=_text(doc.get("alert_policy_name")),
        condition=_text(doc.get("message")),
        url=url,
        family="legacy",
    )
