"""The Prometheus Alertmanager alert source: its webhook receiver's payload (version "4").

One POST carries one group of alerts (``webhook_configs`` in Alertmanager's config)::

    {"version": "4", "status": "firing", "receiver": "autoscale", "groupKey": "...",
     "truncatedAlerts": 0, "groupLabels": {...}, "commonLabels": {...},
     "commonAnnotations": {...}, "externalURL": "http://alertmanager:9093",
     "alerts": [{"status": "firing", "labels": {...}, "annotations": {...},
                 "startsAt": "...", "endsAt": "...", "generatorURL": "...",
                 "fingerprint": "c2f0e5b3b4a6d8e1"}, ...]}

Each alert of the body is one ``Alert``:

* ``issue_id``: its ``fingerprint`` (Alertmanager's hash of its labels: the same in every
  notification of that alert); ``occurrence``: its ``startsAt``, so that an alert that
  resolves and fires again is seen again while repeats (``repeat_interval``) and retries of
  one notification are duplicates;
* ``state``: ``firing`` -> open, ``resolved`` -> closed (Alertmanager sends resolved alerts
  only with ``send_resolved: true``, its default for webhooks);
* ``severity``: the value of the label ``alertmanager.severity_label`` (default
  ``severity``), case-insensitively: ``critical``, ``warning`` and ``info`` as such, ``none``
  -> info (kube-prometheus's always-firing Watchdog), others through
  ``alertmanager.severities`` (``{"page": "critical"}``, which may also override those);
  missing or unknown -> warning;
* ``title``: ``annotations.summary``, else ``labels.alertname``; ``condition``: the
  alertname; ``entities``: its ``instance`` label, if any; ``url``: its ``generatorURL``
  (the expression in Prometheus);
* ``matcher_values``: every label as a label kind (``label:service`` -> its value), for a
  group's ``match_labels`` (compared exactly; see routing.py). New Relic's kinds (entities,
  policies…) are not filled: a group's New Relic matchers never catch an Alertmanager alert.

Refused with a one-line reason (400, which Alertmanager does not retry): a body that is not
a JSON object, a version other than "4", ``alerts`` not a list, a field of the wrong type,
an alert without a status or fingerprint, or a body of more than ``alertmanager.max_alerts``
alerts (default 100: every alert may dispatch a trigger and start a workflow per group, so
the work one request may cause is bounded; Alertmanager's own ``max_alerts`` in its
webhook_config should be at most this). ``truncatedAlerts`` > 0 (Alertmanager left alerts out
because of its max_alerts) is not refused: the alerts sent are handled, and the answer and a
warning in the sensor's log say how many were left out.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Dict, List, Mapping, Optional

from ..domain.alerts import CLOSED, CRITICAL, INFO, OPEN, SEVERITIES, WARNING, Alert
from ..domain.model import LABEL_KIND
from ..errors import ValidationError
from . import AlertPayloadError, Batch
from .payload import decode, load_json

NAME = "alertmanager"
TITLE = "Alertmanager"
VERSION = "4"

MAX_ALERTS = 100
MAX_ALERTS_LIMIT = 1000
_STATES = {"firing": OPEN, "resolved": CLOSED}
_BUILTIN_SEVERITIES = {"critical": CRITICAL, "warning": WARNING, "info": INFO, "none": INFO}
# Prometheus label names; also what a severity label setting may name.
_LABEL_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,99}")
# A fingerprint is 16 hex digits; anything id-like is taken, nothing that could hide in a log.
_FINGERPRINT = re.compile(r"[0-9A-Za-z._:-]{1,100}")
_TEXT_MAX = 500
_KEYS = ("version", "status", "receiver", "groupKey", "truncatedAlerts", "groupLabels",
         "commonLabels", "commonAnnotations", "externalURL", "alerts")


def _key(name: str) -> str:
    return "config key alertmanager.%s" % name


@dataclass(frozen=True)
class AlertmanagerSource:
    """The source with its settings (the pack config's ``alertmanager`` section)."""

    severity_label: str = "severity"
    # Label value (lower case) -> severity, over the built-in ones.
    severities: Mapping[str, str] = field(default_factory=dict)
    max_alerts: int = MAX_ALERTS

    NAME = NAME
    TITLE = TITLE

    def severity(self, labels: Mapping[str, str]) -> str:
        value = labels.get(self.severity_label, "").strip().lower()
        return self.severities.get(value) or _BUILTIN_SEVERITIES.get(value) or WARNING

    def parse(self, body: bytes, content_type: str = "") -> List[Alert]:
        """The alerts of one notification (see the module docstring)."""
        document = load_json(decode(body))
        if not isinstance(document, dict):
            raise AlertPayloadError("body is JSON but not an object")
        version = document.get("version")
        if version != VERSION:
            raise AlertPayloadError(
                "not an Alertmanager webhook payload of version 4 (version %s)"
                % ("missing" if version is None else _show(version)))
        for name in _KEYS:
            _check_top(document, name)
        alerts = document.get("alerts")
        if not isinstance(alerts, list):
            raise AlertPayloadError("alerts must be a list")
        if len(alerts) > self.max_alerts:
            raise AlertPayloadError(
                "%d alerts in one body, more than alertmanager.max_alerts (%d): set max_alerts "
                "in Alertmanager's webhook_config to at most %d"
                % (len(alerts), self.max_alerts, self.max_alerts))
        found = Batch(self._alert(item, index) for index, item in enumerate(alerts))
        truncated = document.get("truncatedAlerts") or 0
        if truncated:
            found.note = ("Alertmanager left %d alert(s) of group %s out of this notification "
                          "(its webhook_config max_alerts); %d handled"
                          % (truncated, _text(document.get("groupKey"))[:100] or "-",
                             len(found)))
        return found

    def _alert(self, item: Any, index: int) -> Alert:
        at = "alerts[%d]" % index
        if not isinstance(item, dict):
            raise AlertPayloadError("%s must be an object" % at)
        status = item.get("status")
        state = _STATES.get(status) if isinstance(status, str) else None
        if state is None:
            raise AlertPayloadError("%s.status must be firing or resolved, not %s"
                                    % (at, _show(status)))
        fingerprint = item.get("fingerprint")
        if not isinstance(fingerprint, str) or not _FINGERPRINT.fullmatch(fingerprint):
            raise AlertPayloadError("%s.fingerprint must be an id (letters, digits, . _ : -), "
                                    "not %s" % (at, _show(fingerprint)))
        labels = _strings(item.get("labels"), "%s.labels" % at)
        annotations = _strings(item.get("annotations"), "%s.annotations" % at)
        for name in ("startsAt", "endsAt", "generatorURL"):
            if not isinstance(item.get(name, ""), str):
                raise AlertPayloadError("%s.%s must be a string, not %s"
                                        % (at, name, _kind(item.get(name))))
        alertname = _text(labels.get("alertname"))
        instance = _text(labels.get("instance"))
        return Alert(
            state=state,
            severity=self.severity(labels),
            issue_id=fingerprint,
            title=_text(annotations.get("summary")) or alertname,
            entities=[instance] if instance else [],
            condition=alertname,
            url=_text(item.get("generatorURL")),
            family=NAME,
            occurrence=_text(item.get("startsAt")),
            matcher_values={LABEL_KIND + name: [value] for name, value in labels.items()},
        )


def _kind(value: Any) -> str:
    """A JSON value's type, in JSON's words."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, (int, float)):
        return "number"
    return {str: "string", dict: "object", list: "list"}.get(type(value), type(value).__name__)


def _show(value: Any) -> str:
    """A wrong value, for a message: short text as itself, anything else by its type."""
    if isinstance(value, str):
        return repr(_text(value)[:40])
    if value is None:
        return "missing"
    kind = _kind(value)
    return ("an " if kind[0] in "aeiou" else "a ") + kind


def _text(value: Any) -> str:
    return " ".join(value.split())[:_TEXT_MAX] if isinstance(value, str) else ""


def _strings(value: Any, what: str) -> Dict[str, str]:
    """A label or annotation set: text names to text values (absent: none)."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise AlertPayloadError("%s must be an object, not %s" % (what, _kind(value)))
    for name, text in value.items():
        if not isinstance(text, str):
            raise AlertPayloadError("%s.%s must be a string, not %s"
                                    % (what, _text(name)[:40], _kind(text)))
    return value


def _check_top(document: Mapping[str, Any], name: str) -> None:
    value = document.get(name)
    if value is None:
        return
    if name in ("groupLabels", "commonLabels", "commonAnnotations"):
        _strings(value, name)
    elif name == "truncatedAlerts":
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise AlertPayloadError("truncatedAlerts must be a whole number, not %s"
                                    % _show(value))
    elif name == "status":
        if not isinstance(value, str) or value not in _STATES:
            raise AlertPayloadError("status must be firing or resolved, not %s" % _show(value))
    elif name != "alerts" and not isinstance(value, str):
        raise AlertPayloadError("%s must be a string, not %s" % (name, _kind(value)))


# -- settings ---------------------------------------------------------------------------------


def configure(config: Optional[Mapping[str, Any]]) -> AlertmanagerSource:
    """The source with the pack config's ``alertmanager`` section; ``ValidationError``
    naming the key at fault."""
    section = (config or {}).get(NAME)
    if section is None:
        section = {}
    if not isinstance(section, Mapping):
        raise ValidationError("config key alertmanager must be a mapping")
    unknown = sorted(set(section) - {"severity_label", "severities", "max_alerts"})
    if unknown:
        raise ValidationError("%s is not a setting (known: severity_label, severities, "
                              "max_alerts)" % _key(str(unknown[0])))
    label = section.get("severity_label", "severity")
    if not isinstance(label, str) or not _LABEL_NAME.fullmatch(label):
        raise ValidationError("%s must be a label name (letters, digits and _), not %r"
                              % (_key("severity_label"), label))
    raw = section.get("severities") or {}
    if not isinstance(raw, Mapping):
        raise ValidationError("%s must map label values to critical, warning or info"
                              % _key("severities"))
    severities: Dict[str, str] = {}
    for value, severity in raw.items():
        lowered = value.strip().lower() if isinstance(value, str) else ""
        if not lowered:
            raise ValidationError("%s: %r is not a label value" % (_key("severities"), value))
        if severity not in SEVERITIES:
            raise ValidationError("%s.%s must be critical, warning or info, not %r"
                                  % (_key("severities"), value, severity))
        if lowered in severities:
            raise ValidationError("%s names %r twice (values are compared without case)"
                                  % (_key("severities"), lowered))
        severities[lowered] = severity
    most = section.get("max_alerts", MAX_ALERTS)
    if isinstance(most, bool) or not isinstance(most, int) or not 1 <= most <= MAX_ALERTS_LIMIT:
        raise ValidationError("%s must be a whole number from 1 to %d, not %r"
                              % (_key("max_alerts"), MAX_ALERTS_LIMIT, most))
    return AlertmanagerSource(severity_label=label, severities=severities, max_alerts=most)


DEFAULT = AlertmanagerSource()


def parse(body: bytes, content_type: str = "") -> List[Alert]:
    """The alerts of one notification, with the default settings."""
    return DEFAULT.parse(body, content_type)
