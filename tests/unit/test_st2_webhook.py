"""Alerts through StackStorm's own webhook (autoscale_core.sources.st2_webhook, the alert_route
action): the body as st2api hands it to rules, read and routed as the sensor does."""

import json
import os
import urllib.parse

import pytest

from autoscale_core.errors import ValidationError
from autoscale_core.sources import st2_webhook
from support.pack import Pack
from support.paths import ROOT

FIXTURES = os.path.join(ROOT, "tests", "fixtures", "newrelic")
NOW = 1_700_000_000.0


def fixture(name):
    with open(os.path.join(FIXTURES, name), encoding="utf-8") as handle:
        return handle.read()


@pytest.fixture
def pack():
    pack = Pack()
    pack.group("web", match_entities=["*"])
    pack.group("api")
    return pack


def test_a_json_body_is_routed_by_the_matchers(pack):
    body = json.loads(fixture("workflows_activated.json"))
    routed = st2_webhook.route_body(pack.store, body, now=NOW)
    assert routed["groups"] == ["web"]
    (alert,) = routed["alerts"]
    assert alert["asg"] == "web" and alert["state"] == "open"
    assert alert["received_at"] == NOW and alert["family"] == "workflows"


def test_the_body_may_name_its_group(pack):
    body = json.loads(fixture("workflows_activated.json"))
    body["asg"] = "api"
    assert st2_webhook.route_body(pack.store, body, now=NOW)["groups"] == ["api"]
    body["asg"] = "Not A Label"
    with pytest.raises(ValidationError):
        st2_webhook.route_body(pack.store, body, now=NOW)


def test_the_2015_form_as_st2_parses_it(pack):
    form = urllib.parse.parse_qs(fixture("legacy_form_server_alert.txt").strip())
    assert isinstance(form["alert"], list)  # st2's router: parse_qs, every value a list
    routed = st2_webhook.route_body(pack.store, form, now=NOW)
    assert routed["groups"] == ["web"] and routed["alerts"][0]["family"] == "legacy"


@pytest.mark.parametrize("body, reason", [
    ({"hello": "world"}, "not a New Relic alert"),
    ({"alert": ["{not json"]}, "not valid JSON"),
    ({"alert": ['{"id": "\\ud800", "state": "ACTIVATED"}']}, "lone surrogate"),
    ({"id": "i-1", "state": "ACTIVATED", "title": "\ud800"}, "lone surrogate"),
    (["a", "list"], "not an object"),
])
def test_what_is_not_an_alert_is_refused_with_the_reason(pack, body, reason):
    before = pack.datastore.keys()
    with pytest.raises(ValidationError, match=reason):
        st2_webhook.route_body(pack.store, body, now=NOW)
    assert pack.datastore.keys() == before


@pytest.mark.parametrize("body, reason", [
    ({"alert": []}, "form field alert is not valid JSON"),  # a field st2 gave no value
    ({"alert": [""]}, "form field alert is not valid JSON"),
    ({"hello": ["world"]}, "not a New Relic alert"),
])
def test_a_form_st2_parsed_is_read_as_the_sensor_reads_the_form(pack, body, reason):
    with pytest.raises(ValidationError, match=reason):
        st2_webhook.route_body(pack.store, body, now=NOW)


def test_text_and_bytes_bodies_are_read_as_sent(pack):
    text = fixture("workflows_activated.json")
    for body in (text, text.encode()):
        assert st2_webhook.route_body(pack.store, body, now=NOW)["groups"] == ["web"]
    form = fixture("legacy_form_server_alert.txt").strip()
    assert st2_webhook.route_body(pack.store, form, now=NOW)["groups"] == ["web"]


def test_an_asg_field_that_is_not_text_is_refused(pack):
    body = json.loads(fixture("workflows_activated.json"))
    body["asg"] = ["api"]
    with pytest.raises(ValidationError, match="the body's asg field must be a group name"):
        st2_webhook.route_body(pack.store, body, now=NOW)
    body["asg"] = ""  # empty: routed by the matchers
    assert st2_webhook.route_body(pack.store, body, now=NOW)["groups"] == ["web"]


def test_a_deployment_notice_routes_nowhere_without_failing(pack):
    routed = st2_webhook.route_body(pack.store, {"deployment": ['{"revision": "1"}']}, now=NOW)
    assert routed == {"alerts": [], "groups": [], "reason": "a deployment notice, not an alert"}


def test_an_alert_for_no_group_routes_nowhere(pack):
    body = json.loads(fixture("workflows_activated.json"))
    pack2 = Pack()
    pack2.group("api")
    routed = st2_webhook.route_body(pack2.store, body, now=NOW)
    assert routed["alerts"] == [] and routed["groups"] == [] and routed["reason"]


def test_the_action_fails_with_a_sentence(pack):
    assert "not a New Relic alert" in pack.refused("alert_route", body={"x": 1})
    ok = pack.ok("alert_route", body=json.loads(fixture("workflows_activated.json")))
    assert ok["groups"] == ["web"]
