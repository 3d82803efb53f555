"""Alertmanager's side of the tests: its webhook notifications (version 4), real-shaped,
and groups routed to by labels."""

import json
import os

from autoscale_core.domain.model import Group, label_matchers
from support.paths import FIXTURES

# Canned notifications, shaped as Alertmanager 0.25+ sends them (notify/webhook).
ALERTMANAGER = os.path.join(FIXTURES, "alertmanager")
AM_PATH = "/st2/amhook"
# What Alertmanager sends with every notification besides its credentials.
AM_HEADERS = {"Content-Type": "application/json", "User-Agent": "Alertmanager/0.26.0"}


def document(name):
    with open(os.path.join(ALERTMANAGER, name), encoding="utf-8") as handle:
        return json.load(handle)


def encode(doc):
    return json.dumps(doc).encode("utf-8")


def fixture(name):
    return encode(document(name))


def am_alert(fingerprint, status="firing", starts="2025-03-04T10:00:00Z", summary=None,
             **labels):
    labels = dict({"alertname": "BackendErrorRatioHigh", "severity": "critical"}, **labels)
    item = {"status": status, "labels": labels, "annotations": {},
            "startsAt": starts, "endsAt": "0001-01-01T00:00:00Z",
            "generatorURL": "http://prometheus:9090/graph?g0.expr=up", "fingerprint": fingerprint}
    if summary is not None:
        item["annotations"]["summary"] = summary
    return item


def notification(*alerts, **top):
    doc = {"receiver": "autoscale", "status": "firing", "alerts": list(alerts),
           "groupLabels": {}, "commonLabels": {}, "commonAnnotations": {},
           "externalURL": "http://alertmanager:9093", "version": "4",
           "groupKey": "{}:{alertname=\"BackendErrorRatioHigh\"}", "truncatedAlerts": 0}
    doc.update(top)
    return encode(doc)


def group(name, **matchers):
    return Group.create(name=name, domain="example.com", alert_matchers=matchers or None)


def labelled(name, **labels):
    """A group routed to by labels, built as asg_register builds it."""
    return Group.create(name=name, domain="example.com", alert_matchers=label_matchers(labels))
