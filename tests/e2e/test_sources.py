"""Alert sources as plugins (autoscale_core.sources): a second source, a test double defined
here, is selected by the pack config alone (``webhook.source``) and its alerts go through the
real receiver, over real HTTP, to the trigger dispatch (a SensorService that validates every
payload against autoscale.alert's payload_schema); bodies of several alerts; the registry."""

import http.client
import json
import threading

import pytest

from autoscale_core import sources
from autoscale_core.domain.alerts import Alert
from autoscale_core.domain.model import Group
from autoscale_core.errors import ValidationError
from autoscale_core.sources import routing, st2_webhook
from autoscale_core.sources.server import build_server
from autoscale_core.sources.settings import WebhookSettings
from autoscale_core.store import Store
from st2harness import Datastore, PackLoader
from st2harness.services import SensorService
from support.pack import Pack
from support.paths import ROOT
from support.webhook import PATH, TOKEN, bearer, pack_config, workflows


class Pager:
    """A test double of a second monitoring system: ``{"events": [{"key", "status",
    "level", "host", "check"}, ...]}``, several events per body; ``{"ping": true}`` asks
    nothing. Its vocabulary: a host feeds the servers and entities matchers, a check the
    conditions matcher."""

    NAME = "pager"
    TITLE = "Pager"
    STATES = {"trigger": "open", "ack": "acknowledged", "resolve": "closed"}
    LEVELS = {"P1": "critical", "P2": "warning", "P3": "info"}

    @classmethod
    def parse(cls, body, content_type):
        try:
            document = json.loads(body)
        except ValueError:
            raise sources.AlertPayloadError("body is not JSON") from None
        if not isinstance(document, dict):
            raise sources.AlertPayloadError("body is not an object")
        if document.get("ping") is True:
            raise sources.NotAnAlert("a ping, not an alert")
        events = document.get("events")
        if not isinstance(events, list):
            raise sources.AlertPayloadError("no events list")
        found = []
        for event in events:
            if not isinstance(event, dict) or event.get("status") not in cls.STATES:
                raise sources.AlertPayloadError("an event without a known status")
            host, check = str(event.get("host", "")), str(event.get("check", ""))
            found.append(Alert(
                state=cls.STATES[event["status"]], severity=cls.LEVELS.get(event.get("level"),
                                                                           "warning"),
                issue_id=str(event["key"]), title=check, entities=[host] if host else [],
                condition=check, family="pager",
                matcher_values={"servers": [host], "entities": [host], "conditions": [check]}))
        return found


@pytest.fixture
def pager():
    sources.register("pager", Pager)
    yield Pager
    sources.unregister("pager")


def event(key, status="trigger", level="P1", host="web-01", check="HTTP 5xx"):
    return {"key": key, "status": status, "level": level, "host": host, "check": check}


def body(*events):
    return json.dumps({"events": list(events)}).encode()


class Served:
    """The receiver and its HTTP server built as the sensor's setup() builds them, from a pack
    config rendered as st2 renders it, dispatching to a harness SensorService."""

    def __init__(self, groups, on_dispatch=None, **webhook):
        datastore = Datastore()
        store = Store(datastore.service("autoscale", "Test"))
        for group in groups:
            store.save_group(group)
        # Validated against config.schema.yaml as `st2ctl reload --register-configs` does.
        loader = PackLoader(ROOT, datastore=datastore, config=pack_config(port=0, **webhook))
        self.service = SensorService(
            datastore.service("autoscale", "NewRelicWebhookSensor"), loader.trigger_types(),
            on_dispatch=on_dispatch)
        settings = WebhookSettings.from_config(loader.runtime_config())
        self.server = build_server(settings, dispatch=self.service.dispatch,
                                   load_groups=lambda: store.load_all()[0])
        self.thread = threading.Thread(target=self.server.serve, daemon=True)
        self.thread.start()

    def post(self, data, query="", headers=None):
        connection = http.client.HTTPConnection("127.0.0.1", self.server.port, timeout=15)
        try:
            connection.request("POST", PATH + query, body=data,
                               headers=dict(bearer(), **(headers or {})))
            response = connection.getresponse()
            return response.status, json.loads(response.read())
        finally:
            connection.close()

    def stop(self):
        self.server.stop()
        self.thread.join(5)
        assert not self.thread.is_alive()


@pytest.fixture
def serve():
    started = []

    def _serve(groups, **kwargs):
        served = Served(groups, **kwargs)
        started.append(served)
        return served

    yield _serve
    for served in started:
        served.stop()


def group(name, **matchers):
    return Group.create(name=name, domain="example.com", alert_matchers=matchers or None)


# -- a second source, selected by the config alone ---------------------------------------------


def test_a_second_source_selected_by_the_config_reaches_the_trigger_dispatch(pager, serve):
    served = serve([group("web", servers=["web-*"]), group("db", conditions=["replication*"])],
                   source="pager")
    status, answer = served.post(body(event("k-1"), event("k-2", level="P2", host="db-01",
                                                          check="Replication lag")))
    assert status == 200, answer
    assert answer["status"] == "dispatched" and answer["groups"] == ["db", "web"]
    assert [(a["issue_id"], a["groups"]) for a in answer["alerts"]] == [
        ("k-1", ["web"]), ("k-2", ["db"])]
    assert served.service.dropped == []  # every payload passed the trigger's schema
    assert [(e.trigger, e.payload["asg"], e.payload["issue_id"], e.payload["severity"],
             e.payload["family"]) for e in served.service.dispatched] == [
        ("autoscale.alert", "web", "k-1", "critical", "pager"),
        ("autoscale.alert", "db", "k-2", "warning", "pager")]
    # The path reads that source's bodies now, and New Relic's no longer.
    status, answer = served.post(workflows(), headers={"Content-Type": "application/json"})
    assert (status, answer) == (400, {"error": "no events list"})
    assert served.post(json.dumps({"ping": True}).encode()) == (
        202, {"status": "ignored", "reason": "a ping, not an alert", "groups": []})
    assert len(served.service.dispatched) == 2


def test_the_default_source_is_new_relic(serve):
    served = serve([group("web", entities=["storefront"])])
    status, answer = served.post(workflows())
    assert (status, answer["status"], answer["groups"]) == (200, "dispatched", ["web"])
    assert WebhookSettings.from_config({"webhook": {"token": TOKEN}}).source == "newrelic"


@pytest.mark.parametrize("name, message", [
    ("nagios", "config key webhook.source: no alert source 'nagios' (known: alertmanager, "
               "newrelic)"),
    ("New Relic", "config key webhook.source: 'New Relic' is not a source name"),
    ("receiver", "no alert source 'receiver'"),  # a module of sources/, not a source
])
def test_an_unknown_source_is_refused_by_key(name, message):
    with pytest.raises(ValidationError) as raised:
        WebhookSettings.from_config({"webhook": {"token": TOKEN, "source": name}})
    assert message in str(raised.value)


def test_the_registry():
    assert sources.known() == ["alertmanager", "newrelic"]
    assert sources.load("newrelic").TITLE == "New Relic"
    with pytest.raises(TypeError):
        sources.register("broken", object())
    with pytest.raises(sources.UnknownSource):
        sources.register("Bad-Name", Pager)
    sources.register("pager", Pager)
    try:
        assert sources.known() == ["alertmanager", "newrelic", "pager"]
        assert sources.load("pager") is Pager
    finally:
        sources.unregister("pager")
    with pytest.raises(sources.UnknownSource, match="known: alertmanager, newrelic"):
        sources.load("pager")


# -- several alerts in one body ----------------------------------------------------------------


def test_each_alert_of_a_body_is_routed_and_deduplicated_on_its_own(pager, serve):
    served = serve([group("web", servers=["web-*"])], source="pager")
    assert served.post(body(event("k-1")))[0] == 200
    status, answer = served.post(body(event("k-1"), event("k-2"), event("k-3", host="mail-1")))
    assert (status, answer["status"], answer["groups"]) == (200, "dispatched", ["web"])
    assert [a["status"] for a in answer["alerts"]] == ["duplicate", "dispatched", "ignored"]
    assert [e.payload["issue_id"] for e in served.service.dispatched] == ["k-1", "k-2"]
    status, answer = served.post(body(event("k-1"), event("k-2")))
    assert (status, answer["status"], answer["groups"]) == (200, "duplicate", [])
    status, answer = served.post(body(event("k-4", host="mail-1"), event("k-5", host="db")))
    assert (status, answer["status"], answer["groups"]) == (202, "ignored", [])
    status, answer = served.post(body())
    assert (status, answer["status"], answer["reason"]) == (202, "ignored",
                                                            "the body holds no alert")
    assert len(served.service.dispatched) == 2


def test_a_refused_asg_or_body_dispatches_none_of_its_alerts(pager, serve):
    served = serve([group("web", servers=["web-*"])], source="pager")
    assert served.post(body(event("k-1"), {"key": "k-2", "status": "exploded"}))[0] == 400
    assert served.service.dispatched == []


def test_a_failed_dispatch_mid_body_is_503_and_the_retry_sends_only_the_rest(pager, serve):
    calls = []

    def flaky(dispatched):
        calls.append(dispatched.payload["issue_id"])
        if len(calls) == 2:
            raise RuntimeError("message bus down")

    served = serve([group("web", servers=["web-*"])], source="pager", on_dispatch=flaky)
    events = (event("k-1"), event("k-2"), event("k-3"))
    status, answer = served.post(body(*events))
    assert status == 503 and answer == {"error": "dispatch failed; retry"}
    status, answer = served.post(body(*events))
    assert status == 200, answer
    assert [a["status"] for a in answer["alerts"]] == ["duplicate", "dispatched", "dispatched"]
    assert calls == ["k-1", "k-2", "k-2", "k-3"]


def test_the_st2_webhook_path_reads_a_second_source_with_its_parse(pager):
    pack = Pack()
    pack.group("web", match_servers=["web-*"])
    pack.group("db")
    routed = st2_webhook.route_body(
        pack.store, {"events": [event("k-1"), event("k-2", host="mail-1")]}, now=5.0,
        source="pager")
    assert [(a["asg"], a["issue_id"]) for a in routed["alerts"]] == [("web", "k-1")]
    assert routed["groups"] == ["web"]
    assert routed["reason"].startswith("issue k-1: alert matchers of web match; issue k-2: ")
    with pytest.raises(ValidationError, match="not a Pager alert: no events list"):
        st2_webhook.route_body(pack.store, {"hello": 1}, source="pager")


# -- routing is generic ------------------------------------------------------------------------


def test_routing_compares_each_kind_with_the_values_the_source_gave_it():
    values = {"servers": ["web-01"], "conditions": ["Disk full"]}
    assert routing.match({"servers": ["WEB-*"]}, values)
    assert routing.match({"servers": ["web-*"], "conditions": ["disk*"]}, values)
    assert not routing.match({"servers": ["web-*"], "policies": ["*"]}, values)  # none given
    assert not routing.match({}, values)
    bare = Alert(state="open", severity="critical", issue_id="1", entities=["web-01"])
    assert not routing.matches(group("web", entities=["*"]), bare)  # no vocabulary, no match
