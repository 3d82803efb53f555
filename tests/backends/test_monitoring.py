"""Real monitoring in the sandbox (issue 14): a real Prometheus (Debian 12: 2.42) scrapes the real
HAProxy's exporter, its rules fire when the web nodes are sick under traffic, and a real
Alertmanager (0.25) POSTs its webhook (version "4", bearer auth) to a small receiver here,
then the resolution once the nodes are well. The rules themselves are also checked by
``promtool test rules`` on made-up series (Prometheus's own rule engine, no clock).

``CAPTURE_ALERTMANAGER_FIXTURES=1`` writes the bodies captured by the end-to-end test to
tests/fixtures/alertmanager/ (live_firing.json, live_resolved.json: exactly as Alertmanager
sent them)."""

import base64
import json
import os
import stat
import subprocess
import time
import urllib.request

import pytest
import yaml

from sandbox import monitoring as monitoring_module
from sandbox.haproxy import HAProxy
from sandbox.http_fake import FakeService, Response
from sandbox.monitoring import (
    AMTOOL_BIN,
    ERRORS_ALERT,
    PROMTOOL_BIN,
    SLOW_ALERT,
    Alertmanager,
    Monitoring,
    MonitoringError,
    alert_rules,
)
from sandbox.net import LOOPBACK
from sandbox.process import alive, kill_leftovers
from sandbox.traffic import Load
from sandbox.webnode import WebNode
from support.paths import ROOT
from support.waiting import wait_until

pytestmark = pytest.mark.skipif(
    not all(os.path.exists(path) for path in (monitoring_module.PROMETHEUS_BIN,
                                              monitoring_module.ALERTMANAGER_BIN,
                                              "/usr/sbin/haproxy")),
    reason="needs Debian's prometheus, prometheus-alertmanager and haproxy (make test installs "
           "them)")

FIXTURES = os.path.join(ROOT, "tests", "fixtures", "alertmanager")
TOKEN = "am-hook-SECRET-4c1d"
GENEROUS = 60.0  # Prometheus hands new targets over every 5 s; alerts need a few evaluations
STARTED_PIDS = []


@pytest.fixture(scope="module", autouse=True)
def no_leftover_processes():
    yield
    assert kill_leftovers(STARTED_PIDS) == [], "processes outlived their tests"


class Receiver(FakeService):
    """Alertmanager's webhook receiver: records every POST, answers 200."""

    def handle(self, request):
        return Response(200, {"ok": True})

    def bodies(self, status=None):
        return [(request, request.json()) for request in list(self.requests)
                if status is None or request.json().get("status") == status]


class Front:
    """sandbox.traffic.Load's view of a bare HAProxy: GET / through its frontend."""

    def __init__(self, lb):
        self.lb = lb

    def http_get(self, timeout=5.0):
        try:
            with urllib.request.urlopen(self.lb.url + "/", timeout=timeout) as response:
                return response.status, response.read().decode("utf-8").strip()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read().decode("utf-8").strip()


@pytest.fixture(scope="module")
def stack():
    """Two web nodes behind a real HAProxy with its exporter, a webhook receiver, and
    Prometheus + Alertmanager watching them."""
    with Receiver() as receiver, WebNode("web-a") as a, WebNode("web-b") as b, \
            HAProxy(servers=[("web-a", LOOPBACK, a.port), ("web-b", LOOPBACK, b.port)],
                    metrics=True) as lb:
        url = receiver.url + "/st2/alerts?asg=web"
        with Monitoring([lb.metrics_target], url, token=TOKEN) as monitoring:
            STARTED_PIDS.extend([a.pid, b.pid, lb.pid] + monitoring.pids())
            monitoring.wait_for_targets(timeout=GENEROUS)
            yield {"receiver": receiver, "nodes": (a, b), "lb": lb, "monitoring": monitoring}


def value(monitoring, expr):
    result = monitoring.query(expr)
    return float(result[0]["value"][1]) if result else None


# -- Prometheus scrapes HAProxy ----------------------------------------------------------------


def test_prometheus_scrapes_the_backends_counters_from_haproxy(stack):
    monitoring, lb, (a, _) = stack["monitoring"], stack["lb"], stack["nodes"]
    ok = 'sum(haproxy_backend_http_responses_total{proxy="web",code="2xx"})'
    errors = 'sum(haproxy_backend_http_responses_total{proxy="web",code="5xx"})'
    before_ok, before_errors = value(monitoring, ok), value(monitoring, errors)
    assert before_ok is not None and before_errors is not None
    front = Front(lb)
    # The errors first and 5% of the whole: the error rule must not fire on these.
    a.make_sick("errors")
    try:
        statuses = sorted(front.http_get()[0] for _ in range(4))
    finally:
        a.make_well()
    assert statuses == [200, 200, 500, 500]
    for _ in range(36):
        assert front.http_get()[0] == 200
    wait_until(lambda: value(monitoring, ok) == before_ok + 38
               and value(monitoring, errors) == before_errors + 2,
               timeout=GENEROUS, what="Prometheus to scrape 38 more 2xx and 2 more 5xx")
    # Response times come along too (the slow rule reads them).
    assert value(monitoring, 'haproxy_backend_response_time_average_seconds{proxy="web"}') \
        is not None
    target = monitoring.prometheus.api("/api/v1/targets")["data"]["activeTargets"]
    assert [(t["labels"]["job"], t["scrapeUrl"]) for t in target] == [("haproxy",
                                                                       lb.metrics_url)]


# -- sick under traffic: the rule fires, Alertmanager POSTs, then resolves -----------------------


def test_sick_nodes_under_traffic_fire_the_alert_and_resolve_it_once_well(stack):
    receiver, monitoring, lb = stack["receiver"], stack["monitoring"], stack["lb"]
    nodes = stack["nodes"]
    wait_until(lambda: monitoring.prometheus.alerts() == [], timeout=GENEROUS,
               what="no alert pending or firing before the test")
    with Load(Front(lb), threads=3, pause=0.02, name="monitoring-load") as load:
        wait_until(lambda: load.ok >= 20, what="traffic flowing")
        assert receiver.bodies() == []
        sick_at = time.time()
        for node in nodes:
            node.make_sick("errors")

        fired = wait_until(lambda: receiver.bodies("firing"), timeout=GENEROUS,
                           what="Alertmanager's firing POST")
        request, body = fired[0]
        firing_after = request.at - sick_at
        assert [a["labels"]["alertname"] for a in monitoring.firing()] == [ERRORS_ALERT]

        well_at = time.time()
        for node in nodes:
            node.make_well()
        resolved = wait_until(lambda: receiver.bodies("resolved"), timeout=GENEROUS,
                              what="Alertmanager's resolved POST")
        resolved_request, resolved_body = resolved[0]
        resolved_after = resolved_request.at - well_at
    print("\nsick -> firing POST %.1f s; well -> resolved POST %.1f s (scrape and evaluation "
          "1 s, rate over 5 s, for 3 s, group_wait 1 s, group_interval 1 s)"
          % (firing_after, resolved_after))

    # The request as Alertmanager sends it: POST, JSON, bearer auth, to the URL given.
    for sent in (request, resolved_request):
        assert sent.method == "POST" and sent.path == "/st2/alerts"
        assert sent.query == {"asg": ["web"]}
        assert sent.headers["authorization"] == "Bearer " + TOKEN
        assert sent.headers["content-type"] == "application/json"
        assert sent.headers["user-agent"].startswith("Alertmanager/")

    # The body: webhook version 4, one group, one alert, as the pack's parser reads it.
    assert body["version"] == "4" and body["status"] == "firing"
    assert body["receiver"] == "autoscale" and body["truncatedAlerts"] == 0
    assert body["groupLabels"] == {"alertname": ERRORS_ALERT, "service": "web"}
    assert body["groupKey"] == '{}:{alertname="%s", service="web"}' % ERRORS_ALERT
    assert body["externalURL"] == monitoring.alertmanager.url
    assert body["commonLabels"] == {"alertname": ERRORS_ALERT, "proxy": "web",
                                    "service": "web", "severity": "critical"}
    [alert] = body["alerts"]
    assert alert["status"] == "firing" and alert["labels"] == body["commonLabels"]
    assert alert["annotations"]["summary"].startswith("web: ")
    assert alert["annotations"]["summary"].endswith("of responses are errors (5xx)")
    assert alert["endsAt"] == "0001-01-01T00:00:00Z"
    assert alert["generatorURL"].startswith(monitoring.prometheus.url + "/graph?")
    assert len(alert["fingerprint"]) == 16

    [gone] = resolved_body["alerts"]
    assert resolved_body["status"] == gone["status"] == "resolved"
    assert gone["fingerprint"] == alert["fingerprint"]
    assert gone["startsAt"] == alert["startsAt"] and gone["endsAt"] > gone["startsAt"]
    # Nothing fires any more; one firing and one resolved POST in all.
    assert monitoring.firing() == []
    assert [b["status"] for _, b in receiver.bodies()] == ["firing", "resolved"]

    if os.environ.get("CAPTURE_ALERTMANAGER_FIXTURES"):
        os.makedirs(FIXTURES, exist_ok=True)
        for name, sent in (("live_firing.json", request), ("live_resolved.json", resolved_request)):
            with open(os.path.join(FIXTURES, name), "wb") as handle:
                handle.write(sent.body)
    # The fixtures other tests parse have the shape of what a real Alertmanager sends.
    for name, live in (("live_firing.json", body), ("live_resolved.json", resolved_body)):
        with open(os.path.join(FIXTURES, name), "rb") as handle:
            saved = json.loads(handle.read().decode("utf-8"))
        assert shape(saved) == shape(live), name
        assert saved["status"] == live["status"] and saved["version"] == "4"


def shape(document):
    """Keys and value types, recursively (lists by their first item)."""
    if isinstance(document, dict):
        return {key: shape(item) for key, item in document.items()}
    if isinstance(document, list):
        return [shape(document[0])] if document else []
    return type(document).__name__


def test_the_webhook_secret_is_in_a_private_file_not_in_the_config_or_logs(stack):
    monitoring = stack["monitoring"]
    manager = monitoring.alertmanager
    with open(manager.config_path, encoding="utf-8") as handle:
        config = handle.read()
    assert TOKEN not in config
    webhook = yaml.safe_load(config)["receivers"][0]["webhook_configs"][0]
    secret_file = webhook["http_config"]["authorization"]["credentials_file"]
    assert webhook["http_config"]["authorization"]["type"] == "Bearer"
    assert webhook["send_resolved"] is True
    assert stat.S_IMODE(os.stat(secret_file).st_mode) == 0o600
    with open(secret_file, encoding="utf-8") as handle:
        assert handle.read() == TOKEN
    assert TOKEN not in manager.log_tail(10000)
    assert TOKEN not in monitoring.prometheus.log_tail(10000)


# -- Alertmanager alone: basic auth, and an alert posted to its API -------------------------------


def test_alertmanager_delivers_with_basic_auth():
    with Receiver() as receiver, \
            Alertmanager(receiver.url + "/hook", basic_auth=("alertmanager", TOKEN)) as manager:
        STARTED_PIDS.append(manager.pid)
        alert = [{"labels": {"alertname": "Test", "service": "web", "severity": "warning"},
                  "annotations": {"summary": "posted by hand"}}]
        request = urllib.request.Request(manager.url + "/api/v2/alerts", method="POST",
                                         data=json.dumps(alert).encode("utf-8"),
                                         headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=5) as response:
            assert response.status == 200
        [(sent, body)] = wait_until(receiver.bodies, timeout=GENEROUS, what="the POST")
        expected = base64.b64encode(("alertmanager:" + TOKEN).encode()).decode()
        assert sent.headers["authorization"] == "Basic " + expected
        assert body["commonAnnotations"] == {"summary": "posted by hand"}
        assert [a["labels"]["alertname"] for a in manager.alerts()] == ["Test"]
        with open(manager.config_path, encoding="utf-8") as handle:
            assert TOKEN not in handle.read()


# -- the rules, by promtool on made-up series ----------------------------------------------------


@pytest.mark.skipif(not os.path.exists(PROMTOOL_BIN), reason="needs promtool (prometheus)")
def test_the_rules_fire_when_they_should_and_only_then(tmp_path):
    rules = tmp_path / "rules.yml"
    rules.write_text(yaml.safe_dump(alert_rules(error_ratio=0.1, latency=0.5, for_="3s",
                                                window="5s", min_rate=0.5)))
    def series(name, values, **extra):
        inner = ",".join('%s="%s"' % item for item in sorted(dict(
            extra, instance="127.0.0.1:9", job="haproxy").items()))
        return {"series": "%s{%s}" % (name, inner), "values": values}

    responses = "haproxy_backend_http_responses_total"
    cases = {
        "interval": "1s",
        "input_series": [
            # web: 10 ok/s throughout; 10 errors/s from t=20s to t=40s, then none.
            series(responses, "0+10x60", proxy="web", code="2xx"),
            series(responses, "0x20 10+10x19 200x20", proxy="web", code="5xx"),
            # api: 5% errors all along: under the ratio.
            series(responses, "0+19x60", proxy="api", code="2xx"),
            series(responses, "0+1x60", proxy="api", code="5xx"),
            # idle: every response an error, but one every 5 s: under min_rate.
            series(responses, "0+0.2x60", proxy="idle", code="5xx"),
            series(responses, "0x60", proxy="idle", code="2xx"),
            # slow: 0.8 s on average from t=30s; web stays fast.
            series("haproxy_backend_response_time_average_seconds", "0.001x30 0.8x30",
                   proxy="slow"),
            series("haproxy_backend_response_time_average_seconds", "0.001x60", proxy="web"),
        ],
        "alert_rule_test": [
            {"eval_time": "19s", "alertname": ERRORS_ALERT, "exp_alerts": []},
            # Pending, not firing, for the first 3 s.
            {"eval_time": "23s", "alertname": ERRORS_ALERT, "exp_alerts": []},
            {"eval_time": "30s", "alertname": ERRORS_ALERT, "exp_alerts": [{
                "exp_labels": {"proxy": "web", "service": "web", "severity": "critical"},
                "exp_annotations": {
                    "summary": "web: 50% of responses are errors (5xx)",
                    "description": "More than 10% of the responses of HAProxy backend web "
                                   "were 5xx over the last 5s."}}]},
            {"eval_time": "50s", "alertname": ERRORS_ALERT, "exp_alerts": []},
            {"eval_time": "29s", "alertname": SLOW_ALERT, "exp_alerts": []},
            {"eval_time": "40s", "alertname": SLOW_ALERT, "exp_alerts": [{
                "exp_labels": {"proxy": "slow", "service": "slow", "severity": "warning"},
                "exp_annotations": {
                    "summary": "slow: average response time 800ms",
                    "description": "HAProxy backend slow answers in more than 0.5 s on "
                                   "average (its last 1024 requests)."}}]},
        ],
    }
    tests = tmp_path / "tests.yml"
    tests.write_text(yaml.safe_dump({"rule_files": [str(rules)], "evaluation_interval": "1s",
                                     "tests": [cases]}))
    done = subprocess.run([PROMTOOL_BIN, "test", "rules", str(tests)], stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, timeout=60, check=False)
    assert done.returncode == 0, done.stdout.decode("utf-8", "replace")


def test_bad_rule_settings_are_refused():
    for settings in ({"error_ratio": 0}, {"error_ratio": 1.5}, {"latency": 0},
                     {"latency": -1}):
        with pytest.raises(ValueError):
            alert_rules(**settings)


# -- starting and stopping -------------------------------------------------------------------------


def test_a_missing_binary_is_named_and_nothing_starts(monkeypatch, tmp_path):
    monkeypatch.setattr(monitoring_module.tempfile, "tempdir", str(tmp_path))
    monkeypatch.setattr(monitoring_module, "PROMETHEUS_BIN", str(tmp_path / "no-prometheus"))
    monitoring = Monitoring(["127.0.0.1:9"], "http://127.0.0.1:9/hook", token=TOKEN)
    with pytest.raises(MonitoringError, match="no-prometheus not found: install Debian's "
                                              "prometheus package"):
        monitoring.start()
    assert monitoring.pids() == [] and list(tmp_path.iterdir()) == []

    monkeypatch.setattr(Alertmanager, "binary", str(tmp_path / "no-alertmanager"))
    with pytest.raises(MonitoringError, match="prometheus-alertmanager package"):
        Alertmanager("http://127.0.0.1:9/hook").start()
    assert list(tmp_path.iterdir()) == []


@pytest.mark.skipif(not os.path.exists(PROMTOOL_BIN), reason="needs promtool (prometheus)")
def test_a_config_promtool_refuses_stops_everything(monkeypatch, tmp_path):
    monkeypatch.setattr(monitoring_module.tempfile, "tempdir", str(tmp_path))
    rules = alert_rules()
    rules["groups"][0]["rules"][0]["expr"] = "sum(rate(oops[5s]) >"
    monitoring = Monitoring(["127.0.0.1:9"], "http://127.0.0.1:9/hook", token=TOKEN,
                            rules=rules)
    with pytest.raises(MonitoringError, match="promtool check config refused the config"):
        monitoring.start()
    # Alertmanager had started: it is stopped again, its directory gone.
    assert monitoring.pids() == [] and list(tmp_path.iterdir()) == []


@pytest.mark.skipif(not os.path.exists(AMTOOL_BIN), reason="needs amtool")
def test_an_alertmanager_config_amtool_refuses_is_not_started(tmp_path, monkeypatch):
    monkeypatch.setattr(monitoring_module.tempfile, "tempdir", str(tmp_path))
    manager = Alertmanager("not a url")
    with pytest.raises(MonitoringError, match="amtool check-config"):
        manager.start()
    assert manager.process is None and list(tmp_path.iterdir()) == []


def test_stop_ends_both_processes_and_removes_their_directories():
    monitoring = Monitoring(["127.0.0.1:9"], "http://127.0.0.1:9/hook", token=TOKEN).start()
    pids = monitoring.pids()
    STARTED_PIDS.extend(pids)
    directories = [monitoring.prometheus.directory, monitoring.alertmanager.directory]
    assert len(pids) == 2 and all(alive(pid) for pid in pids)
    assert all(os.path.isdir(path) for path in directories)
    for server in (monitoring.prometheus, monitoring.alertmanager):
        status, _ = monitoring_module._get(server.url + "/-/ready")
        assert status == 200
    monitoring.stop()
    monitoring.stop()  # twice is fine
    assert not any(alive(pid) for pid in pids)
    assert not any(os.path.exists(path) for path in directories)
