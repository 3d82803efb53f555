"""The webhook sensor receiving Prometheus Alertmanager notifications over real HTTP: loaded
through the st2 harness from the example config (New Relic on /st2/nrhook, Alertmanager on
/st2/amhook), every dispatched payload validated against autoscale.alert's payload_schema; one
notification routed to two groups, both sources on one listener, truncatedAlerts, the cap, and
the credentials Alertmanager's http_config sends, header for header."""

import base64
import logging
import threading

import pytest

from autoscale_core.store import Store
from st2harness import Datastore, PackLoader
from st2harness import schema as st2schema
from support.alertmanager import (
    AM_HEADERS,
    AM_PATH,
    am_alert,
    fixture,
    group,
    labelled,
    notification,
)
from support.paths import ROOT
from support.webhook import ALERT_SCHEMA, TOKEN, Running, pack_config, workflows

NR_PATH = "/st2/nrhook"
PASSWORD = "pw-91c2e0aa7d"


@pytest.fixture
def sensor():
    """sensor(groups, webhook=..., alertmanager=...) -> Running: the webhook sensor loaded
    through the st2 harness from the example config (New Relic on /st2/nrhook, Alertmanager
    on /st2/amhook), run() in a thread; always cleaned up."""
    started = []

    def _start(groups=(), alertmanager_section=None, **webhook):
        datastore = Datastore()
        store = Store(datastore.service("autoscale", "Test"))
        for spec in groups:
            store.save_group(spec)
        config = pack_config(**dict({"paths": {AM_PATH: "alertmanager"}}, **webhook))
        if alertmanager_section is not None:
            config["alertmanager"] = alertmanager_section
        loader = PackLoader(ROOT, datastore=datastore, config=config)
        instance = loader.sensor("NewRelicWebhookSensor")
        instance.setup()
        thread = threading.Thread(target=instance.run, daemon=True)
        thread.start()
        run = Running(instance, thread, datastore)
        started.append(run)
        return run

    yield _start
    for run in started:
        run.sensor.cleanup()
        run.thread.join(10)
        assert not run.thread.is_alive()


def post(run, body, query="", headers=None, auth=True, path=AM_PATH):
    all_headers = dict(AM_HEADERS, **(headers or {}))
    status, _, answer = run.request("POST", path + query, body=body, headers=all_headers,
                                    auth=auth)
    return status, answer


def test_one_notification_routed_to_two_groups_over_http(sensor):
    run = sensor([labelled("checkout", service="checkout", env="prod"),
                  labelled("search", service="search"), group("db")])
    status, answer = post(run, fixture("mixed_group.json"))
    assert status == 200, answer
    assert answer["status"] == "dispatched" and answer["groups"] == ["checkout", "search"]
    assert [(a["status"], a.get("issue_id"), a["groups"]) for a in answer["alerts"]] == [
        ("dispatched", "1f0a6e3c9b27d845", ["checkout"]),
        ("ignored", None, []),  # env staging: no group's labels match
        ("dispatched", "5b9d0c7e4a1f2368", ["search"])]
    assert "labels alertname=BackendSlow, env=staging" in answer["alerts"][1]["reason"]
    assert run.service.dropped == []  # every payload passed autoscale.alert's schema
    assert [(e.trigger, e.payload["asg"], e.payload["issue_id"], e.payload["state"],
             e.payload["severity"], e.payload["family"]) for e in run.dispatched] == [
        ("autoscale.alert", "checkout", "1f0a6e3c9b27d845", "open", "critical", "alertmanager"),
        ("autoscale.alert", "search", "5b9d0c7e4a1f2368", "open", "warning", "alertmanager")]
    for event in run.dispatched:
        st2schema.validate(event.payload, ALERT_SCHEMA)
    # Alertmanager sends the group again at group_interval: nothing new, nothing dispatched.
    status, answer = post(run, fixture("mixed_group.json"))
    assert (status, answer["status"], answer["groups"]) == (200, "duplicate", [])
    assert len(run.dispatched) == 2


def test_asg_sends_every_alert_of_the_body_to_that_group(sensor):
    run = sensor([labelled("checkout", service="checkout"), group("shop")])
    status, answer = post(run, fixture("mixed_group.json"), query="?asg=shop")
    assert (status, answer["groups"]) == (200, ["shop"])
    assert [(e.payload["asg"], e.payload["state"]) for e in run.dispatched] == [
        ("shop", "open"), ("shop", "closed"), ("shop", "open")]


def test_new_relic_and_alertmanager_on_one_listener(sensor):
    run = sensor([group("web", entities=["storefront"]),
                  labelled("checkout", service="checkout")])
    status, answer = post(run, workflows(), path=NR_PATH)
    assert (status, answer["groups"]) == (200, ["web"])
    status, answer = post(run, fixture("firing.json"))
    assert (status, answer["groups"]) == (200, ["checkout"])
    # Each path reads its own source's bodies only.
    status, answer = post(run, fixture("firing.json"), path=NR_PATH)
    assert status == 400, answer
    status, answer = post(run, workflows())
    assert (status, answer) == (400, {"error": "not an Alertmanager webhook payload of "
                                               "version 4 (version missing)"})
    for path in (NR_PATH, AM_PATH):
        status, _, answer = run.request("GET", path + "/health", auth=False)
        assert (status, answer) == (200, {"status": "ok"})
    assert run.request("POST", "/st2/other", body=b"{}")[0] == 404
    assert [e.payload["family"] for e in run.dispatched] == ["workflows", "alertmanager"]


def test_a_truncated_notification_is_handled_and_says_so(sensor, caplog):
    caplog.set_level(logging.INFO)
    run = sensor([labelled("checkout", service="checkout", env="prod")])
    status, answer = post(run, fixture("truncated.json"))
    assert (status, answer["status"], answer["groups"]) == (200, "dispatched", ["checkout"])
    assert answer["note"].startswith("Alertmanager left 3 alert(s) of group")
    assert any(r.levelno == logging.WARNING and "Alertmanager left 3 alert(s)" in r.getMessage()
               for r in caplog.records)


def test_a_notification_over_the_cap_is_refused_and_dispatches_nothing(sensor):
    run = sensor([group("web")], alertmanager_section={"max_alerts": 5})
    body = notification(*[am_alert("f%d" % i) for i in range(6)])
    status, answer = post(run, body, query="?asg=web")
    assert (status, answer) == (400, {"error": "6 alerts in one body, more than "
                                               "alertmanager.max_alerts (5): set max_alerts in "
                                               "Alertmanager's webhook_config to at most 5"})
    assert run.dispatched == []
    assert post(run, notification(*[am_alert("f%d" % i) for i in range(5)]),
                query="?asg=web")[0] == 200


def test_alertmanager_alone_on_webhook_path(sensor):
    run = sensor([labelled("checkout", service="checkout")], path="/alerts",
                 source="alertmanager", paths={})
    status, answer = post(run, fixture("firing.json"), path="/alerts")
    assert (status, answer["groups"]) == (200, ["checkout"])
    assert post(run, fixture("firing.json"))[0] == 404  # no other path


# -- the credentials Alertmanager's http_config sends --------------------------------------------


def go_basic(user, password):
    """What Go's net/http Request.SetBasicAuth sends (Alertmanager's basic_auth): standard
    base64 of user:password, UTF-8."""
    return "Basic " + base64.b64encode(("%s:%s" % (user, password)).encode("utf-8")).decode()


@pytest.mark.parametrize("webhook, good, bad", [
    # authorization: {credentials: <token>} (type defaults to Bearer)
    ({"auth_type": "bearer", "token": TOKEN},
     ["Bearer " + TOKEN, "bearer " + TOKEN],
     ["Bearer " + TOKEN[:-1], "Basic " + TOKEN, TOKEN, "Bearer"]),
    # basic_auth: {username, password}; a password may hold ':' and non-ASCII text
    ({"auth_type": "basic", "username": "alertmanager", "password": PASSWORD + ":é"},
     [go_basic("alertmanager", PASSWORD + ":é")],
     [go_basic("alertmanager", PASSWORD), go_basic("prometheus", PASSWORD + ":é"),
      "Bearer " + PASSWORD]),
])
def test_what_alertmanager_sends_is_accepted_exactly(sensor, webhook, good, bad):
    run = sensor([group("web")], **webhook)
    body = fixture("firing.json")
    for index, value in enumerate(good):
        status, answer = post(run, body.replace(b"8e1c3b5d2f7a9064", b"f%d" % index),
                              query="?asg=web", headers={"Authorization": value}, auth=False)
        assert (status, answer["status"]) == (200, "dispatched"), value
    for value in bad:
        status, answer = post(run, body, query="?asg=web", headers={"Authorization": value},
                              auth=False)
        assert (status, answer) == (401, {"error": "missing or wrong credentials"}), value
    status, _ = post(run, body, query="?asg=web", auth=False)
    assert status == 401
    assert len(run.dispatched) == len(good)
