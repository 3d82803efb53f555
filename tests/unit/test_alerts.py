"""New Relic payloads of all three families, from the shared samples, normalised alike."""

import json
import os
from urllib.parse import quote

import pytest

from autoscale_core.sources import AlertPayloadError
from autoscale_core.sources.newrelic import normalise, parse_body
from support.paths import ROOT

# A copy of shared/fixtures/newrelic, so the tests run from any clone.
FIXTURES = os.path.join(ROOT, "tests", "fixtures", "newrelic")


def sample(name):
    with open(os.path.join(FIXTURES, name), "rb") as handle:
        return handle.read()


@pytest.mark.parametrize("name, content_type, expected", [
    ("workflows_activated.json", "application/json",
     {"state": "open", "severity": "critical", "issue_id": "7d1e8f0a-3c52-4b8e-9a61-2f4d5c6b7e80",
      "entities": ["storefront"], "policy": "Storefront golden signals",
      "condition": "High error rate", "family": "workflows"}),
    ("workflows_closed.json", "application/json", {"state": "closed", "severity": "critical"}),
    ("channel_incident_open.json", "application/json",
     {"state": "open", "severity": "critical", "issue_id": "98765432",
      "entities": ["storefront"], "policy": "Storefront", "condition": "Apdex below 0.85",
      "family": "channel"}),
    ("channel_incident_closed.json", "application/json", {"state": "closed"}),
    ("legacy_form_server_alert.txt", "application/x-www-form-urlencoded",
     {"state": "open", "severity": "critical", "issue_id": "11717078",
      "entities": ["web-frontend-01"], "policy": "Default server alert policy",
      "title": "CPU > 80%", "family": "legacy"}),
])
def test_every_family_normalises(name, content_type, expected):
    alert = normalise(parse_body(sample(name).strip(), content_type)).as_dict()
    assert {key: alert[key] for key in expected} == expected


def test_issue_id_replaces_incident_id_when_present():
    doc = json.loads(sample("channel_incident_open.json"))
    doc["issue_id"] = "abc-123"
    assert normalise(doc).issue_id == "abc-123"


def test_missing_and_extra_fields_are_tolerated():
    alert = normalise({"id": "i1", "state": "ACTIVATED", "surprise": {"x": 1}})
    assert (alert.state, alert.severity, alert.entities) == ("open", "warning", [])
    assert normalise({"id": "i2", "state": "ACKNOWLEDGED", "priority": "LOW"}).severity == "info"


@pytest.mark.parametrize("body, content_type, reason", [
    (b"{not json", "application/json", "not valid JSON"),
    (b"[1, 2]", "application/json", "not an object"),
    (b"\xff\xfe", "application/json", "not UTF-8"),
    (b"hello=world", "application/x-www-form-urlencoded", "alert= field"),
    (b"alert=" + quote("{oops").encode(), "application/x-www-form-urlencoded", "not valid JSON"),
    (b"deployment=" + quote('{"revision": "1"}').encode(),
     "application/x-www-form-urlencoded", "deployment"),
    (b"[" * 100000, "application/json", "not valid JSON"),
    (b'{"id": "\\ud800", "state": "ACTIVATED"}', "application/json",
     r"body holds a lone surrogate \(\\ud800\), which is not valid Unicode"),
    (b'{"a": [{"\\udc00": 1}]}', "application/json", "lone surrogate"),
])
def test_unreadable_bodies_get_a_one_line_reason(body, content_type, reason):
    with pytest.raises(AlertPayloadError, match=reason):
        parse_body(body, content_type)


@pytest.mark.parametrize("doc, reason", [
    ({"id": "i", "state": "EXPLODED"}, "unknown issue state"),
    ({"state": "ACTIVATED"}, "without an id"),
    ({"current_state": "melting", "incident_id": 1}, "unknown current_state"),
    ({"current_state": "open"}, "without issue_id or incident_id"),
    ({"long_description": "something else"}, "neither"),
    ({"hello": "world"}, "not a New Relic alert"),
    ({"id": {"nested": 1}, "state": "ACTIVATED"}, "expected text"),
])
def test_documents_that_are_not_alerts_are_refused(doc, reason):
    with pytest.raises(AlertPayloadError, match=reason):
        normalise(doc)


def test_texts_are_bounded_and_single_line():
    alert = normalise({"id": "i", "state": "ACTIVATED", "title": "a\nb " + "x" * 5000,
                       "impactedEntities": ["e%d" % i for i in range(500)]})
    assert "\n" not in alert.title and len(alert.title) == 500
    assert len(alert.entities) == 50


# -- priority and severity: the whole map, per family ----------------------------------------
# What a delivery's words become decides whether it scales: critical scales out at once,
# warning a step per cooldown, info never. Unknown or missing words count as a warning.

def family_document(name, content_type, field, value):
    """A shared sample of one family with its priority/severity field set (None: removed)."""
    document = dict(parse_body(sample(name).strip(), content_type))
    document.pop(field, None)
    if value is not None:
        document[field] = value
    return document


FAMILIES = [
    ("workflows", "workflows_activated.json", "application/json", "priority"),
    ("channel", "channel_incident_open.json", "application/json", "severity"),
    ("legacy", "legacy_form_server_alert.txt", "application/x-www-form-urlencoded", "severity"),
]
# word -> severity, for each family's field (None: the field is missing).
SEVERITY_MAP = {
    "workflows": {"CRITICAL": "critical", "HIGH": "warning", "MEDIUM": "warning",
                  "LOW": "info", "critical": "critical", "High": "warning", "low": "info",
                  "WARNING": "warning", "INFO": "warning", "URGENT": "warning", "": "warning",
                  None: "warning"},
    "channel": {"CRITICAL": "critical", "WARNING": "warning", "INFO": "info",
                "critical": "critical", "Warning": "warning", "info": "info",
                "HIGH": "warning", "MEDIUM": "warning", "LOW": "warning", "URGENT": "warning",
                "": "warning", None: "warning"},
    "legacy": {"critical": "critical", "warning": "warning", "info": "info",
               "CRITICAL": "critical", "WARNING": "warning", "INFO": "info",
               "HIGH": "warning", "MEDIUM": "warning", "LOW": "warning", "URGENT": "warning",
               "": "warning", None: "warning"},
}
SEVERITY_CASES = [(family, name, content_type, field, word, severity)
                  for family, name, content_type, field in FAMILIES
                  for word, severity in SEVERITY_MAP[family].items()]


@pytest.mark.parametrize("family, name, content_type, field, word, severity", SEVERITY_CASES,
                         ids=["%s-%s" % (c[0], "missing" if c[4] is None else c[4] or "empty")
                              for c in SEVERITY_CASES])
def test_each_priority_or_severity_word_maps_to_one_severity(family, name, content_type, field,
                                                              word, severity):
    alert = normalise(family_document(name, content_type, field, word))
    assert alert.family == family
    assert alert.severity == severity


@pytest.mark.parametrize("priority, severity", [
    ("CRITICAL", "critical"), ("critical", "critical"), ("HIGH", "warning"),
    ("MEDIUM", "warning"), ("LOW", "info"), ("", "warning"), ("URGENT", "warning"),
])
def test_every_workflows_priority_has_its_severity(priority, severity):
    alert = normalise({"id": "i", "state": "ACTIVATED", "priority": priority})
    assert alert.severity == severity


@pytest.mark.parametrize("given, severity", [
    ("critical", "critical"), ("CRITICAL", "critical"), ("warning", "warning"),
    ("info", "info"), ("", "warning"), ("major", "warning"),
])
def test_every_channel_and_legacy_severity_has_its_severity(given, severity):
    channel = normalise({"current_state": "open", "incident_id": 1, "severity": given})
    legacy = normalise({"long_description": "Alert opened", "created_at": "1", "severity": given})
    assert (channel.severity, legacy.severity) == (severity, severity)
