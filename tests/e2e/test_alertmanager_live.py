"""A real Alertmanager delivers to the real sensor (issue 14, part 5): the World's web nodes
(real processes) behind the real HAProxy, under steady traffic; a real Prometheus scrapes
HAProxy's exporter and a real Alertmanager POSTs, with bearer auth, to the pack's webhook sensor
on its Alertmanager path (/st2/amhook), which routes by the group's ``match_labels`` (no
``?asg=``); its dispatches go through the pack's rules to its workflows (st2harness.reactor).

sick app → BackendErrors fires (severity critical, service=web) → autoscale.alert → the
alert_received rule's asg_alert scales out (Nova creates, nodes in service) → well app → the
resolved POST closes the issue. Everything it started is stopped, and no process outlives it.
"""

import os

import pytest

from sandbox import monitoring as monitoring_module
from sandbox.monitoring import ERRORS_ALERT, Monitoring
from sandbox.process import kill_leftovers
from sandbox.traffic import Load
from sandbox.world import World
from support.waiting import wait_until
from support.world import ZONE, in_service, nodes, succeeded

pytestmark = pytest.mark.skipif(
    not all(os.path.exists(path) for path in (monitoring_module.PROMETHEUS_BIN,
                                              monitoring_module.ALERTMANAGER_BIN)),
    reason="needs Debian's prometheus and prometheus-alertmanager (make test installs them)")

# Prometheus hands new targets and Alertmanagers over every 5 s, and the rule needs a rate over
# 5 s held for 3 s: seconds on a quiet machine, far more on a busy one.
GENEROUS = 120.0
# Every process this module's World and Monitoring ran, checked once everything has stopped.
STARTED_PIDS = []



@pytest.fixture(scope="module")
def world():
    """This module's own World (over tests/e2e/conftest.py's): real web nodes behind HAProxy;
    once it has stopped, none of the processes the test saw may be left."""
    with World(zone=ZONE, converge_after=0, serve_http=True, drain_timeout=1) as started:
        yield started
        STARTED_PIDS.extend(started.pids())
    assert len(set(STARTED_PIDS)) >= 7  # Prometheus, Alertmanager, named, HAProxy, 3 nodes
    assert kill_leftovers(STARTED_PIDS) == [], "processes outlived the test"


def creates(world):
    return [r for r in world.openstack.service_requests()
            if r.method == "POST" and r.path.endswith("/servers")]


def alerts(env):
    """What the sensor dispatched to autoscale.alert so far (the reactor's trigger
    instances)."""
    return [handled.payload for handled in env.reactor.handled
            if handled.trigger == "autoscale.alert"]


def test_a_real_alertmanager_scales_the_group_out_and_its_resolution_closes_the_issue(
        pipeline):
    env, world = pipeline, pipeline.world
    ran = []

    def pump(check):
        """Run what the sensor dispatched (the reactor runs it in this thread), then check."""
        done = env.reactor.drain()
        succeeded(done)
        ran.extend(done)
        return check()

    created = env.reactor.runner.run(
        "autoscale.asg_create", name="web", domain=ZONE, min=1, max=3, expand_by=2,
        match_labels={"service": world.backends[0]})
    assert created.status == "succeeded", created.errors
    assert len(in_service(env)) == 1
    creates_before = len(creates(world))

    [path] = [p for p, source in env.loader.config["webhook"]["paths"].items()
              if source == "alertmanager"]
    # No ?asg=: the alert's labels alone route it to the group.
    hook = "http://127.0.0.1:%d%s" % (env.webhook.port, path)
    with Monitoring([world.haproxy.metrics_target], hook, token=env.token) as monitoring, \
            Load(world, threads=3, pause=0.02, name="am-live-load") as load:
        STARTED_PIDS.extend(monitoring.pids())
        monitoring.wait_for_targets(timeout=GENEROUS)
        wait_until(lambda: load.ok >= 20, timeout=GENEROUS, what="traffic through HAProxy")
        assert monitoring.prometheus.alerts() == [] and alerts(env) == []

        world.make_sick()  # every node, and those the scale-out adds
        wait_until(lambda: pump(lambda: len(in_service(env)) == 3), timeout=GENEROUS,
                   interval=0.2, what="the alert's scale-out: 3 nodes in service")
        STARTED_PIDS.extend(world.pids())
        [firing] = alerts(env)
        assert (firing["asg"], firing["state"], firing["severity"], firing["family"]) == (
            "web", "open", "critical", "alertmanager")
        [rule_alert] = monitoring.firing(ERRORS_ALERT)
        assert rule_alert["labels"]["service"] == "web"
        assert firing["title"] == monitoring.alertmanager.alerts()[0]["annotations"]["summary"]
        issue = firing["issue_id"]
        assert issue == monitoring.alertmanager.alerts()[0]["fingerprint"]
        assert [match.rule for match, _ in ran] == ["autoscale.alert_received"]
        assert ran[0][1].output["scaled"] is not None
        assert len(creates(world)) == creates_before + 2
        state = env.store.load_group("web").alert
        assert state.level == "critical" and list(state.issues) == [issue]
        assert set(world.lb_servers()) == set(in_service(env))

        world.make_well()
        wait_until(lambda: pump(lambda: not env.store.load_group("web").alert.issues),
                   timeout=GENEROUS, interval=0.2, what="the resolved POST to close the issue")
        assert monitoring.firing() == []

    closed = alerts(env)[-1]
    assert (closed["asg"], closed["state"], closed["issue_id"]) == ("web", "closed", issue)
    # One open and one close reached the rules, whatever Alertmanager sent again.
    assert [a["state"] for a in alerts(env)] == ["open", "closed"]
    assert env.store.load_group("web").alert.level == "none"
    # The resolution adds nothing and removes nothing by itself (scale-in is the governor's).
    assert len(creates(world)) == creates_before + 2 and len(nodes(env)) == 3
    assert env.reactor.dropped == [] and env.webhook.sensor_service.dropped == []
    # The channel says what happened, and the scale-out's cause names no other source.
    transcript = world.slack.transcript()
    assert ":rotating_light: *web*: critical alert '%s' (issue %s) opened" % (
        firing["title"], issue[:8]) in transcript
    assert ":large_green_circle: *web*: alert '%s' (issue %s) closed" % (
        closed["title"], issue[:8]) in transcript
    [scale_out] = [e for e in env.store.history("web", limit=0) if e.kind == "scale_out"]
    assert scale_out.cause.startswith("critical alert: critical alert '%s'" % firing["title"])
    assert "New Relic" not in transcript
    assert load.ok > 0 and world.errors == []
