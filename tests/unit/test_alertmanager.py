"""The Prometheus Alertmanager alert source (sources/alertmanager.py): its webhook payload
(version 4) read on real-shaped notifications, its settings, routing by labels (match_labels),
dedup of repeats, retries and re-firing in the receiver, and webhook.paths."""

import copy
import json

import pytest

from autoscale_core import sources
from autoscale_core.domain.model import GroupState
from autoscale_core.errors import ValidationError
from autoscale_core.services import groups as group_service
from autoscale_core.sources import alertmanager, newrelic, routing
from autoscale_core.sources.receiver import Dedup, Receiver, RouteCache
from autoscale_core.sources.settings import WebhookSettings
from autoscale_core.store import Store
from st2harness import Datastore, PackLoader
from st2harness import schema as st2schema
from support.alertmanager import AM_PATH, am_alert, encode, fixture, group, labelled, notification
from support.pack import EXAMPLE
from support.paths import ROOT
from support.webhook import ALERT_SCHEMA, TOKEN, workflows

NR_PATH = "/st2/nrhook"


# -- the parser, on real-shaped notifications ---------------------------------------------------


def test_a_firing_alert():
    [alert] = alertmanager.parse(fixture("firing.json"), "application/json")
    assert alert.state == "open" and alert.severity == "critical"
    assert alert.issue_id == "8e1c3b5d2f7a9064"
    assert alert.title == "checkout answers too many 5xx"
    assert alert.condition == "BackendErrorRatioHigh"
    assert alert.entities == ["127.0.0.1:8405"]
    assert alert.url.startswith("http://prometheus:9090/graph?g0.expr=sum+by")
    assert alert.family == "alertmanager" and alert.occurrence == "2025-03-04T10:15:02.311Z"
    assert alert.matcher_values == {
        "label:alertname": ["BackendErrorRatioHigh"], "label:env": ["prod"],
        "label:instance": ["127.0.0.1:8405"], "label:job": ["haproxy"],
        "label:proxy": ["checkout"], "label:service": ["checkout"],
        "label:severity": ["critical"]}
    payload = routing.trigger_payload(alert, "web", 1.0)
    assert st2schema.validate(payload, ALERT_SCHEMA) == payload


def test_a_resolved_alert_closes_its_issue():
    [firing] = alertmanager.parse(fixture("firing.json"))
    [resolved] = alertmanager.parse(fixture("resolved.json"))
    assert resolved.state == "closed" and resolved.issue_id == firing.issue_id
    assert resolved.occurrence == firing.occurrence  # one occurrence, fired then resolved


def test_the_bodies_a_real_alertmanager_sent():
    """What Alertmanager 0.25 POSTed in tests/backends/test_monitoring.py, byte for byte."""
    [firing] = alertmanager.parse(fixture("live_firing.json"), "application/json")
    [resolved] = alertmanager.parse(fixture("live_resolved.json"), "application/json")
    assert (firing.state, firing.severity, firing.condition) == ("open", "critical",
                                                                 "BackendErrors")
    assert firing.title.startswith("web: ") and firing.matcher_values["label:service"] == ["web"]
    assert resolved.state == "closed" and resolved.issue_id == firing.issue_id
    assert resolved.occurrence == firing.occurrence


def test_a_mixed_group_is_one_alert_each_in_order():
    found = alertmanager.parse(fixture("mixed_group.json"))
    assert [(a.issue_id, a.state, a.severity, a.matcher_values["label:service"],
             a.matcher_values["label:env"]) for a in found] == [
        ("1f0a6e3c9b27d845", "open", "critical", ["checkout"], ["prod"]),
        ("a4c2e81d07b3f956", "closed", "warning", ["checkout"], ["staging"]),
        ("5b9d0c7e4a1f2368", "open", "warning", ["search"], ["prod"])]
    assert getattr(found, "note", "") == ""


def test_truncated_alerts_are_handled_and_noted():
    found = alertmanager.parse(fixture("truncated.json"))
    assert [a.issue_id for a in found] == ["1f0a6e3c9b27d845", "a4c2e81d07b3f956"]
    assert found.note == ('Alertmanager left 3 alert(s) of group {}:{alertname="BackendSlow"} '
                          "out of this notification (its webhook_config max_alerts); 2 handled")


def test_missing_labels_and_annotations():
    bare = {"status": "firing", "fingerprint": "0000000000000001"}
    no_summary = am_alert("0000000000000002")
    nameless = dict(am_alert("0000000000000003"), labels={"job": "web"})
    found = alertmanager.parse(notification(bare, no_summary, nameless))
    assert [(a.title, a.severity, a.condition, a.entities, a.matcher_values)
            for a in found] == [
        ("", "warning", "", [], {}),
        ("BackendErrorRatioHigh", "critical", "BackendErrorRatioHigh", [],
         {"label:alertname": ["BackendErrorRatioHigh"], "label:severity": ["critical"]}),
        ("", "warning", "", [], {"label:job": ["web"]})]
    for alert in found:
        st2schema.validate(routing.trigger_payload(alert, "web", 1.0), ALERT_SCHEMA)


@pytest.mark.parametrize("value, expected", [
    ("critical", "critical"), ("Critical", "critical"), ("warning", "warning"),
    ("info", "info"), ("none", "info"), ("page", "warning"), ("", "warning"),
    ("disaster", "warning")])
def test_severity_by_default(value, expected):
    [alert] = alertmanager.parse(notification(am_alert("f1", severity=value)))
    assert alert.severity == expected


def test_severity_mapping_and_label_are_configurable():
    source = sources.configured("alertmanager", {"alertmanager": {
        "severity_label": "priority", "severities": {"P1": "critical", "critical": "info"}}})
    found = source.parse(notification(
        am_alert("f1", priority="p1"), am_alert("f2", priority="critical"),
        am_alert("f3", priority="P2"), am_alert("f4", severity="critical")))
    # The label is priority now: severity=critical alone is no longer read.
    assert [a.severity for a in found] == ["critical", "info", "warning", "warning"]


def test_a_body_over_the_cap_is_refused_and_one_at_it_is_read():
    at_cap = notification(*[am_alert("f%03d" % i) for i in range(alertmanager.MAX_ALERTS)])
    assert len(alertmanager.parse(at_cap)) == 100
    over = notification(*[am_alert("f%03d" % i) for i in range(alertmanager.MAX_ALERTS + 1)])
    with pytest.raises(sources.AlertPayloadError) as raised:
        alertmanager.parse(over)
    assert str(raised.value) == (
        "101 alerts in one body, more than alertmanager.max_alerts (100): set max_alerts in "
        "Alertmanager's webhook_config to at most 100")
    small = sources.configured("alertmanager", {"alertmanager": {"max_alerts": 2}})
    with pytest.raises(sources.AlertPayloadError, match="3 alerts in one body"):
        small.parse(notification(am_alert("a"), am_alert("b"), am_alert("c")))


def test_thousands_of_alerts_are_refused_before_any_is_read():
    # Tiny alerts, not even valid: the count is checked first, so the work is bounded.
    huge = json.dumps({"version": "4", "alerts": [{}] * 5000}).encode()
    with pytest.raises(sources.AlertPayloadError, match="^5000 alerts in one body"):
        alertmanager.parse(huge)


def _with(**changes):
    doc = json.loads(notification(am_alert("f1")))
    for key, value in changes.items():
        if key.startswith("alert_"):
            doc["alerts"][0][key[len("alert_"):]] = value
        else:
            doc[key] = value
    return encode(doc)


@pytest.mark.parametrize("body, message", [
    (b"not json", "body is not valid JSON"),
    (b"\xff\xfe", "body is not UTF-8"),
    (b"[1, 2]", "body is JSON but not an object"),
    (b'{"version": "4", "alerts": [], "receiver": "\\ud800"}', "lone surrogate"),
    (_with(version="3"), "not an Alertmanager webhook payload of version 4 (version '3')"),
    (_with(version=4), "not an Alertmanager webhook payload of version 4 (version a number)"),
    (encode({"alerts": []}), "version missing"),
    (workflows(), "version missing"),  # a New Relic body posted to the wrong path
    (_with(alerts={"0": {}}), "alerts must be a list"),
    (_with(alerts=None), "alerts must be a list"),
    (_with(alerts=["firing"]), "alerts[0] must be an object"),
    (_with(status="pending"), "status must be firing or resolved, not 'pending'"),
    (_with(status=["firing"]), "status must be firing or resolved, not a list"),
    (_with(truncatedAlerts="2"), "truncatedAlerts must be a whole number, not '2'"),
    (_with(truncatedAlerts=-1), "truncatedAlerts must be a whole number"),
    (_with(truncatedAlerts=True), "truncatedAlerts must be a whole number, not a boolean"),
    (_with(groupLabels=["alertname"]), "groupLabels must be an object, not list"),
    (_with(commonLabels={"env": 1}), "commonLabels.env must be a string, not number"),
    (_with(externalURL=9093), "externalURL must be a string, not number"),
    (_with(groupKey={}), "groupKey must be a string, not object"),
    (_with(alert_status="pending"), "alerts[0].status must be firing or resolved"),
    (_with(alert_status={"a": 1}), "alerts[0].status must be firing or resolved, not an object"),
    (_with(alert_fingerprint=None), "alerts[0].fingerprint must be an id"),
    (_with(alert_fingerprint=""), "alerts[0].fingerprint must be an id"),
    (_with(alert_fingerprint="8e1c 3b5d"), "alerts[0].fingerprint must be an id"),
    (_with(alert_fingerprint="a\nb"), "alerts[0].fingerprint must be an id"),
    (_with(alert_fingerprint=12345), "alerts[0].fingerprint must be an id"),
    (_with(alert_labels=["severity"]), "alerts[0].labels must be an object, not list"),
    (_with(alert_labels={"severity": None}), "alerts[0].labels.severity must be a string"),
    (_with(alert_annotations={"summary": {}}), "alerts[0].annotations.summary must be a str"),
    (_with(alert_startsAt=1741083302), "alerts[0].startsAt must be a string, not number"),
    (_with(alert_generatorURL=[]), "alerts[0].generatorURL must be a string, not list"),
])
def test_a_malformed_body_is_refused_with_one_line(body, message):
    with pytest.raises(sources.AlertPayloadError) as raised:
        alertmanager.parse(body, "application/json")
    text = str(raised.value)
    assert message in text and "\n" not in text and len(text) < 200


def test_one_bad_alert_refuses_the_whole_body():
    with pytest.raises(sources.AlertPayloadError, match=r"^alerts\[1\]\.fingerprint"):
        alertmanager.parse(notification(am_alert("f1"), {"status": "firing"}))


@pytest.mark.parametrize("section, message", [
    ([], "config key alertmanager must be a mapping"),
    ({"severity_label": "sev-level"}, "config key alertmanager.severity_label must be a label"),
    ({"severity_label": ""}, "config key alertmanager.severity_label must be a label"),
    ({"severities": ["page"]}, "config key alertmanager.severities must map label values"),
    ({"severities": {"page": "urgent"}}, "alertmanager.severities.page must be critical, "
                                         "warning or info, not 'urgent'"),
    ({"severities": {"Page": "critical", "page": "warning"}}, "names 'page' twice"),
    ({"severities": {" ": "info"}}, "alertmanager.severities: ' ' is not a label value"),
    ({"max_alerts": 0}, "config key alertmanager.max_alerts must be a whole number from 1 "
                        "to 1000, not 0"),
    ({"max_alerts": 1001}, "alertmanager.max_alerts must be a whole number"),
    ({"max_alerts": True}, "alertmanager.max_alerts must be a whole number"),
    ({"max_alert": 10}, "config key alertmanager.max_alert is not a setting"),
])
def test_bad_settings_are_refused_by_key(section, message):
    config = {"webhook": {"token": TOKEN, "source": "alertmanager"}, "alertmanager": section}
    with pytest.raises(ValidationError) as raised:
        WebhookSettings.from_config(config)
    assert message in str(raised.value)
    # The same section on a path of webhook.paths: refused all the same.
    config["webhook"] = {"token": TOKEN, "paths": {AM_PATH: "alertmanager"}}
    with pytest.raises(ValidationError):
        WebhookSettings.from_config(config)


def test_the_example_config_and_the_schema_agree():
    # Validated against config.schema.yaml and rendered as st2 does.
    config = PackLoader(ROOT, datastore=Datastore(), config=copy.deepcopy(EXAMPLE)).runtime_config()
    config["webhook"]["token"] = TOKEN
    settings = WebhookSettings.from_config(config)
    assert settings.receivers == {NR_PATH: "newrelic", AM_PATH: "alertmanager"}
    reader = settings.reader(AM_PATH)
    assert (reader.severity_label, dict(reader.severities), reader.max_alerts) == (
        "severity", {"page": "critical"}, 100)


# -- routing by labels --------------------------------------------------------------------------


def _alerts(*items):
    return alertmanager.parse(notification(*items))


def test_every_label_matcher_must_hold():
    known = {"checkout": GroupState(labelled("checkout", service="checkout", env="prod"))}
    both, staging, no_env = _alerts(
        am_alert("f1", service="checkout", env="prod"),
        am_alert("f2", service="checkout", env="staging"),
        am_alert("f3", service="checkout"))
    assert routing.route(both, known).groups == ["checkout"]
    assert routing.route(staging, known).groups == []
    assert routing.route(no_env, known).groups == []
    reason = routing.route(staging, known).reason
    assert reason.startswith("no group's alert matchers match the alert (")
    assert "labels alertname=BackendErrorRatioHigh, env=staging, service=checkout" in reason


def test_label_values_are_exact_glob_characters_included():
    known = {"star": GroupState(labelled("star", service="check*")),
             "klass": GroupState(labelled("klass", service="[cs]earch")),
             "upper": GroupState(labelled("upper", service="Checkout"))}
    checkout, star, klass, search, upper = _alerts(
        am_alert("f1", service="checkout"), am_alert("f2", service="check*"),
        am_alert("f3", service="[cs]earch"), am_alert("f4", service="search"),
        am_alert("f5", service="Checkout"))
    assert routing.route(checkout, known).groups == []  # no pattern, no case folding
    assert routing.route(star, known).groups == ["star"]
    assert routing.route(klass, known).groups == ["klass"]
    assert routing.route(search, known).groups == []
    assert routing.route(upper, known).groups == ["upper"]


def test_several_values_of_one_label_are_alternatives():
    known = {"shop": GroupState(labelled("shop", service=["checkout", "cart"], env="prod"))}
    cart, search = _alerts(am_alert("f1", service="cart", env="prod"),
                           am_alert("f2", service="search", env="prod"))
    assert routing.route(cart, known).groups == ["shop"]
    assert routing.route(search, known).groups == []


def test_label_and_new_relic_matchers_never_cross():
    known = {"nr": GroupState(group("nr", entities=["*"], conditions=["*"])),
             "am": GroupState(labelled("am", service="storefront"))}
    [am] = _alerts(am_alert("f1", service="storefront", instance="storefront"))
    nr = newrelic.alert(state="open", severity="critical", issue_id="1",
                        entities=["storefront"], condition="x")
    assert routing.route(am, known).groups == ["am"]
    assert routing.route(nr, known).groups == ["nr"]


def test_asg_names_the_group_whatever_the_labels():
    known = {"web": GroupState(labelled("web", service="checkout")),
             "db": GroupState(group("db"))}
    [alert] = _alerts(am_alert("f1", service="search"))
    assert routing.route(alert, known, asg="db") == routing.Route(["db"], "named by asg=db")


def test_match_labels_through_asg_register_and_back_from_the_datastore():
    datastore = Datastore()
    store = Store(datastore.service("autoscale", "Test"))
    result = group_service.register(store, "checkout", "example.com",
                                    match_labels={"service": "checkout", "env": ["prod", "dr"]},
                                    match_entities=None)
    assert result["group"]["alert_matchers"] == {"label:service": ["checkout"],
                                                 "label:env": ["prod", "dr"]}
    stored = store.load_group("checkout").group
    assert stored.alert_matchers == {"label:service": ["checkout"], "label:env": ["prod", "dr"]}
    [alert] = _alerts(am_alert("f1", service="checkout", env="dr"))
    assert routing.matches(stored, alert)
    # Running the same command again is harmless; other labels are a different group.
    again = group_service.register(store, "checkout", "example.com",
                                   match_labels={"service": "checkout", "env": ["prod", "dr"]})
    assert again["existed"] is True
    with pytest.raises(Exception, match="alert_matchers"):
        group_service.register(store, "checkout", "example.com",
                               match_labels={"service": "cart"})


@pytest.mark.parametrize("labels, message", [
    ({"service-name": "x"}, "'service-name' is not a label name"),
    ({"0env": "x"}, "'0env' is not a label name"),
    ({"env": ""}, "match_labels.env must be a non-empty string"),
    ({"env": []}, "match_labels.env must be a value or a list of 1 to 20 values"),
    ({"env": 3}, "match_labels.env must be a non-empty string"),
    ({"env": "a\nb"}, "match_labels.env must be a single line"),
    ({"env": ["v%d" % i for i in range(21)]}, "list of 1 to 20 values"),
    (["env=prod"], "match_labels must be a mapping of label names to values"),
    ("env=prod", "match_labels must be a mapping of label names to values"),
])
def test_bad_label_matchers_are_refused(labels, message):
    store = Store(Datastore().service("autoscale", "Test"))
    with pytest.raises(ValidationError) as raised:
        group_service.register(store, "checkout", "example.com", match_labels=labels)
    assert message in str(raised.value)
    assert store.load_group("checkout") is None


# -- dedup of repeats and retries ---------------------------------------------------------------


class Clock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


def receiver(groups, clock, window=600):
    dispatched = []
    settings = WebhookSettings(token=TOKEN, source="alertmanager", dedup_window=window)
    states = {g.name: GroupState(g) for g in groups}
    return Receiver(settings, lambda trigger, payload: dispatched.append(payload),
                    RouteCache(lambda: states, clock=clock),
                    dedup=Dedup(window, clock=clock)), dispatched


def test_repeats_and_retries_of_one_notification_dispatch_once():
    clock = Clock()
    hook, dispatched = receiver([labelled("web", service="checkout")], clock)
    body = fixture("firing.json")
    assert hook.deliver(body, "application/json", None).body["status"] == "dispatched"
    clock.now += 1  # Alertmanager's retry
    assert hook.deliver(body, "application/json", None).body["status"] == "duplicate"
    clock.now += 299  # a repeat_interval of 5 minutes: same fingerprint, same startsAt
    assert hook.deliver(body, "application/json", None).body["status"] == "duplicate"
    assert [(p["issue_id"], p["state"]) for p in dispatched] == [("8e1c3b5d2f7a9064", "open")]
    # Resolved: dispatched once, however often it is sent.
    resolved = fixture("resolved.json")
    assert hook.deliver(resolved, "application/json", None).body["status"] == "dispatched"
    assert hook.deliver(resolved, "application/json", None).body["status"] == "duplicate"
    # A late retry of the old firing notification is still a duplicate: it cannot reopen.
    assert hook.deliver(body, "application/json", None).body["status"] == "duplicate"
    assert [(p["issue_id"], p["state"]) for p in dispatched] == [
        ("8e1c3b5d2f7a9064", "open"), ("8e1c3b5d2f7a9064", "closed")]


def test_an_alert_that_fires_again_is_dispatched_again():
    clock = Clock()
    hook, dispatched = receiver([labelled("web", service="checkout")], clock)
    first = am_alert("8e1c3b5d2f7a9064", starts="2025-03-04T10:15:02Z", service="checkout")
    again = am_alert("8e1c3b5d2f7a9064", starts="2025-03-04T10:19:32Z", service="checkout")
    assert hook.deliver(notification(first), "", None).body["status"] == "dispatched"
    resolved = dict(first, status="resolved", endsAt="2025-03-04T10:18:02Z")
    assert hook.deliver(notification(resolved), "", None).body["status"] == "dispatched"
    clock.now += 60  # well inside the dedup window, the same fingerprint fires anew
    assert hook.deliver(notification(again), "", None).body["status"] == "dispatched"
    assert [p["state"] for p in dispatched] == ["open", "closed", "open"]


def test_a_group_that_grows_dispatches_only_its_new_alert():
    clock = Clock()
    hook, dispatched = receiver([labelled("web", job="web")], clock)
    one = am_alert("f1", job="web", instance="web-1")
    two = am_alert("f2", job="web", instance="web-2")
    hook.deliver(notification(one), "", None)
    answer = hook.deliver(notification(one, two), "", None)
    assert [a["status"] for a in answer.body["alerts"]] == ["duplicate", "dispatched"]
    assert [p["issue_id"] for p in dispatched] == ["f1", "f2"]


# -- webhook.paths ------------------------------------------------------------------------------


@pytest.mark.parametrize("paths, message", [
    (["/st2/amhook"], "config key webhook.paths must map URL paths to source names"),
    ({"amhook": "alertmanager"}, "config key webhook.paths 'amhook' must be a URL path"),
    ({"/a?b": "alertmanager"}, "must be a URL path"),
    ({"/st2/nrhook/": "alertmanager"}, "config key webhook.paths '/st2/nrhook/' is already "
                                       "webhook.path"),
    ({"/st2/nrhook/health": "alertmanager"}, "is already webhook.path's health path"),
    ({"/st2": "alertmanager", "/st2/health": "newrelic"}, "is already the health path of "
                                                          "webhook.paths /st2"),
    ({"/st2/amhook": "nagios"}, "config key webhook.paths./st2/amhook: no alert source "
                                "'nagios'"),
    ({"/st2/amhook": ["alertmanager"]}, "webhook.paths./st2/amhook must be a source name"),
    ({"/p%d" % i: "alertmanager" for i in range(11)}, "names more than 10 paths"),
])
def test_bad_paths_are_refused_by_key(paths, message):
    with pytest.raises(ValidationError) as raised:
        WebhookSettings.from_config({"webhook": {"token": TOKEN, "paths": paths}})
    assert message in str(raised.value)


def test_without_paths_the_config_reads_as_before():
    settings = WebhookSettings.from_config({"webhook": {"token": TOKEN}})
    assert settings.receivers == {"/st2/nrhook": "newrelic"} and settings.paths == ()
    assert settings.health_paths == ("/st2/nrhook/health",)

