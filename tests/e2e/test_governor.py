"""The governor: one datastore listing per tick, the policy's decisions dispatched once while
in flight and recorded only on change, alert expiry, orphans against the fake OpenStack (real
keystoneauth1 and novaclient), and the sensor loaded as st2 loads it, every dispatched payload
checked against the trigger types it declares."""

import logging

import pytest

from autoscale_core.backends.nova import ComputeSettings
from autoscale_core.backends.nova_api import NovaCompute
from autoscale_core.config import GovernorSettings
from autoscale_core.domain import policy
from autoscale_core.domain.model import AlertState, Group, Node, NodeState, ScalingState
from autoscale_core.domain.settings import PolicySettings
from autoscale_core.errors import ValidationError
from autoscale_core.ports.compute import ServerSpec
from autoscale_core.present.chat import Kind
from autoscale_core.services.tick import (
    ALERT_EXPIRED,
    DECISION,
    NODE_STUCK,
    ORPHAN,
    ORPHAN_TRIGGER,
    STUCK_TRIGGER,
)
from autoscale_core.store import HISTORY_PREFIX, Store, alert_key, node_key
from sandbox.fake_openstack import FakeOpenStack
from sandbox.fake_slack import FakeSlack
from st2harness import Datastore, PackLoader
from st2harness.services import SensorService
from support.governor import NOW, Recorder, critical, seed, world
from support.paths import ROOT

APP_ID = "5c0ffee5c0ffee5c0ffee5c0ffee5c0f"
APP_SECRET = "app-cred-secret-for-governor-tests"
SLACK_TOKEN = "xoxb-governor-tests"


def history(datastore, group=None):
    prefix = HISTORY_PREFIX + (group + "." if group else "")
    return [k for k in datastore.keys() if k.startswith(prefix)]


def events(store, group, kind=None):
    return [e for e in store.history(group, limit=0) if kind is None or e.kind == kind]


def triggers(report):
    return sorted((d.trigger, d.payload["asg"]) for d in report.dispatched)


# -- settings ----------------------------------------------------------------------------------


def test_settings_defaults_and_config():
    assert GovernorSettings.from_config({}) == GovernorSettings()
    defaults = GovernorSettings()
    assert (defaults.interval, defaults.dispatch_timeout, defaults.orphan_scan_interval,
            defaults.orphan_grace) == (30, 300, 300, 900)
    settings = GovernorSettings.from_config({"governor": {
        "interval": 45, "dispatch_timeout": 120, "orphan_scan_interval": 0, "orphan_grace": 60,
        "datastore_page_size": 100, "history_ttl": 3600, "warning_step": 2}})
    assert (settings.interval, settings.dispatch_timeout, settings.orphan_scan_interval,
            settings.orphan_grace, settings.page_size, settings.history_ttl) == (
        45, 120, 0, 60, 100, 3600)
    assert settings.policy == PolicySettings(warning_step=2)


@pytest.mark.parametrize("key,value", [
    ("dispatch_timeout", 0), ("orphan_scan_interval", -1), ("orphan_grace", "soon"),
    ("interval", 2), ("datastore_page_size", 0), ("history_ttl", True), ("backoff_max", -1),
])
def test_settings_refuse_bad_values_by_key(key, value):
    with pytest.raises(ValidationError, match=r"config key governor\.%s" % key):
        GovernorSettings.from_config({"governor": {key: value}})


def test_the_pack_config_schema_defaults_are_the_settings_defaults():
    config = PackLoader(ROOT).config  # no config file: the schema's defaults alone
    assert GovernorSettings.from_config(config) == GovernorSettings()


# -- one listing per tick ----------------------------------------------------------------------


@pytest.mark.parametrize("count", [1, 10, 1000])
def test_a_steady_tick_is_one_listing_and_no_write(count):
    datastore, service, store, governor = world()
    for index in range(count):
        name = "g%04d" % index
        if index % 10 == 1:
            seed(store, name, in_service=0)  # below its normal size: repair, in flight
        elif index % 10 == 2:
            seed(store, name, alert=critical())  # scale-out, in flight
        elif index % 10 == 3:
            seed(store, name, in_service=4, scaling=ScalingState(last_scale_in_at=NOW - 60))
        else:
            seed(store, name)  # steady
    groups, problems = store.load_all()
    expected = policy.decide(groups, NOW, governor.settings.policy)

    datastore.calls.clear()
    first = governor.tick()
    assert datastore.calls["list_values"] == 1
    assert first.decisions == expected and first.problems == []
    assert datastore.calls["set_value"] == count  # each group's decision, recorded once
    acting = [d for d in expected if d.acts]
    assert len(first.dispatched) == len(acting)
    assert service.dropped == []

    for tick in range(3):
        datastore.calls.clear()
        again = governor.tick(NOW + 30 * (tick + 1))
        assert dict(datastore.calls) == {"list_values": 1}
        assert again.dispatched == [] and again.recorded == []
    assert again.decisions == policy.decide(groups, NOW + 90, governor.settings.policy)
    assert len(history(datastore)) == count


def test_thousand_groups_of_twenty_nodes_one_listing():
    # How long such a tick takes is bench/b1_governor.py's figure, not a test's.
    datastore, service, store, governor = world()
    for index in range(1000):
        seed(store, "g%04d" % index, in_service=20, min_size=20, max_size=40)
    governor.tick()  # the first tick records every group's decision
    datastore.calls.clear()
    report = governor.tick(NOW + 30)
    assert dict(datastore.calls) == {"list_values": 1}
    assert len(report.decisions) == 1000 and report.recorded == []


def test_small_pages_are_followed():
    datastore = Datastore(clock=lambda: NOW, max_page_size=50, requester_is_admin=False)
    datastore, service, store, governor = world(
        {"governor": {"datastore_page_size": 50}}, datastore=datastore)
    for index in range(20):
        seed(store, "g%02d" % index)  # 20 x (1 + 2) keys
    datastore.calls.clear()
    report = governor.tick()
    assert len(report.decisions) == 20
    assert datastore.calls["list_values"] == 2


# -- corrupt records ---------------------------------------------------------------------------


def test_corrupt_records_are_skipped_and_the_others_still_run():
    datastore, service, store, governor = world()
    seed(store, "bad")
    seed(store, "half")
    seed(store, "low", in_service=0)
    service.set_value("autoscale.asg.bad", "{not json", local=False)
    service.set_value(node_key("half", "half-n00000"), '{"v": 99}', local=False)
    report = governor.tick()
    assert [d.group for d in report.decisions] == ["half", "low"]
    text = "\n".join(report.problems)
    assert "autoscale.asg.bad: group record is not valid JSON" in text
    assert "autoscale.asg.half.node.half-n00000: node record has schema version 99" in text
    # "half" lost a node to the corrupt record: it now looks below its normal size.
    assert triggers(report) == [("autoscale.repair", "half"), ("autoscale.repair", "low")]
    assert service.dropped == []


# -- the sensor, as st2 loads it ---------------------------------------------------------------


def full_config(**governor):
    """A pack config with every required section (st2 refuses one without), as the loader
    checks it against config.schema.yaml."""
    return {
        "openstack": {"auth_url": "http://127.0.0.1:9/identity/v3",
                      "application_credential_id": APP_ID,
                      "application_credential_secret": APP_SECRET},
        "chef": {"server_url": "https://chef.example.com/organizations/web",
                 "client_name": "stackstorm", "client_key": "key",
                 "validation_client_name": "web-validator", "validation_key": "key"},
        "dns": {"server": "127.0.0.1", "zone": "example.com", "tsig_key_name": "autoscale",
                "tsig_secret": "c2VjcmV0LXRzaWcta2V5LWZvci10ZXN0cw=="},
        "haproxy": {"runtime_api": "/run/haproxy/admin.sock"},
        "slack": {"token": SLACK_TOKEN, "base_url": "http://127.0.0.1:9/api/"},
        "governor": dict({"orphan_scan_interval": 0}, **governor),
    }


def three_groups(store):
    seed(store, "out", alert=critical())  # 2 in service, critical: +2 (expand_by)
    seed(store, "shrink", in_service=4)  # no alert, above normal size 2: -1
    seed(store, "fix", in_service=0)  # nothing at all: repair +2


def test_sensor_dispatches_payloads_that_validate_against_its_trigger_types():
    datastore = Datastore(clock=lambda: NOW)
    three_groups(Store(datastore.service("autoscale", "Seed")))
    loader = PackLoader(ROOT, datastore=datastore, config=full_config(interval=45))
    sensor = loader.sensor("GovernorSensor", poll_interval=30)
    sensor.setup()
    assert sensor.get_poll_interval() == 45  # the config's governor.interval wins
    sensor.governor.clock = lambda: NOW
    sensor.poll()
    service = sensor.sensor_service
    assert service.dropped == []
    payloads = {d.trigger: d.payload for d in service.dispatched}
    assert sorted(payloads) == ["autoscale.repair", "autoscale.scale_in", "autoscale.scale_out"]
    out = payloads["autoscale.scale_out"]
    assert out == {"asg": "out", "count": 2, "cause": out["cause"], "reason": "critical_alert",
                   "current": 2, "target": 4, "decided_at": NOW}
    assert "critical alert 'High error rate' (issue 42) open for 2 min" in out["cause"]
    assert payloads["autoscale.scale_in"]["count"] == 1
    assert payloads["autoscale.scale_in"]["target"] == 3
    assert payloads["autoscale.repair"]["reason"] == "below_normal_size"

    # The schemas are live: a payload st2 would refuse is dropped, not dispatched.
    service.dispatch("autoscale.scale_out", dict(out, count=0))
    service.dispatch("autoscale.repair", dict(payloads["autoscale.repair"], extra=1))
    service.dispatch("autoscale.scale_in", {"asg": "shrink", "count": 1})
    service.dispatch("autoscale.orphan", {"asg": "web", "node": "web-a1", "server_id": "x",
                                          "server_name": "web-a1", "first_seen": NOW,
                                          "cause": "test"})
    assert len(service.dropped) == 3 and len(service.dispatched) == 4


def test_sensor_poll_survives_a_failing_datastore(caplog):
    datastore = Datastore(clock=lambda: NOW)
    three_groups(Store(datastore.service("autoscale", "Seed")))
    loader = PackLoader(ROOT, datastore=datastore, config=full_config())
    sensor = loader.sensor("GovernorSensor", poll_interval=30)
    sensor.setup()
    sensor.governor.clock = lambda: NOW
    broken = sensor.governor.store.datastore.list_values

    def failing(**kwargs):
        raise RuntimeError("st2api is down")

    sensor.governor.store.datastore.list_values = failing
    with caplog.at_level(logging.ERROR):
        assert sensor.poll() is None
    assert "governor tick failed" in caplog.text
    sensor.governor.store.datastore.list_values = broken
    assert len(sensor.poll().dispatched) == 3


def test_sensor_setup_refuses_a_bad_config():
    loader = PackLoader(ROOT, config=full_config(interval=2))
    sensor = loader.sensor("GovernorSensor")
    with pytest.raises(Exception, match=r"config key governor\.interval must be a whole number "
                       r"of at least 5"):
        sensor.setup()


# -- in flight ---------------------------------------------------------------------------------


def test_a_dispatch_in_flight_is_not_repeated_until_the_timeout():
    datastore, service, store, governor = world({"governor": {"dispatch_timeout": 300}})
    seed(store, "web", in_service=0)
    first = governor.tick(NOW)
    assert triggers(first) == [("autoscale.repair", "web")]
    for later in (30, 60, 299):
        datastore.calls.clear()
        report = governor.tick(NOW + later)
        assert report.dispatched == [] and dict(datastore.calls) == {"list_values": 1}
    again = governor.tick(NOW + 300)
    assert triggers(again) == [("autoscale.repair", "web")]
    assert again.dispatched[0].payload["cause"].startswith(
        "the repair dispatched 5 min ago had no effect; dispatching it again: ")
    assert governor.tick(NOW + 330).dispatched == []

    # The workflow starts: nodes being added. The decision changes, and the memory goes.
    seed(store, "web", in_service=0, pending=2)
    changed = governor.tick(NOW + 360)
    assert changed.dispatched == [] and [e.kind for e in changed.recorded] == [DECISION]
    assert "2 nodes in service or starting" in changed.recorded[0].cause
    # They fail and are gone: repair again at once, no timeout to wait for.
    for index in range(2):
        store.delete_node("web", "web-n%05d" % index)
    assert triggers(governor.tick(NOW + 390)) == [("autoscale.repair", "web")]
    assert service.dropped == []


def test_a_different_action_is_dispatched_at_once():
    datastore, service, store, governor = world()
    seed(store, "web", in_service=2, alert=critical())
    assert triggers(governor.tick(NOW)) == [("autoscale.scale_out", "web")]
    # Two nodes lost meanwhile: below normal size is a repair, not the scale-out in flight.
    for index in range(2):
        store.delete_node("web", "web-n%05d" % index)
    assert triggers(governor.tick(NOW + 30)) == [("autoscale.repair", "web")]


def test_a_failed_dispatch_is_tried_again_next_tick_and_other_groups_still_run(caplog):
    class Flaky(SensorService):
        failing = {"a"}

        def dispatch(self, trigger, payload=None, trace_tag=None):
            if payload["asg"] in self.failing:
                raise ConnectionError("message bus unreachable")
            return super().dispatch(trigger, payload, trace_tag)

    datastore, service, store, governor = world(service_class=Flaky)
    seed(store, "a", in_service=0)
    seed(store, "b", in_service=0)
    with caplog.at_level(logging.ERROR):
        report = governor.tick(NOW)
    assert triggers(report) == [("autoscale.repair", "b")]
    assert any("group a" in p and "message bus unreachable" in p for p in report.problems)
    assert "group a" in caplog.text
    Flaky.failing = set()
    assert triggers(governor.tick(NOW + 30)) == [("autoscale.repair", "a")]


# -- dry run -----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def slack():
    with FakeSlack(token=SLACK_TOKEN, channels={"autoscale": "C0AUTOSCALE"}) as server:
        yield server


def test_dry_run_is_recorded_and_announced_never_dispatched(slack):
    from autoscale_core.services.announce import announce

    slack.reset()
    config = {"slack": {"token": SLACK_TOKEN, "base_url": slack.api_url,
                        "default_channel": "#autoscale"}}
    datastore, service, store, governor = world(config, announce=announce)
    seed(store, "web", in_service=0, dry_run=True)
    report = governor.tick(NOW)
    assert report.dispatched == [] and service.dispatched == []
    (decision,) = report.decisions
    assert decision.dry_run and decision.action == "repair"
    assert [e.cause for e in events(store, "web")] == [decision.cause]
    assert decision.cause.startswith("dry run, nothing done: ")
    (text,) = slack.texts("#autoscale")
    # One line: what would be done with its numbers, then why, once.
    assert text == (":wrench: *web*: _dry run:_ would add 2 nodes (0 → 2) — 0 nodes in service "
                    "or starting, below the normal size of 2")
    (section,) = slack.messages[0].params["blocks"]
    assert section["fields"] == [{"type": "mrkdwn", "text": "*Nodes*\n0 → 2"}]

    assert governor.tick(NOW + 30).recorded == [] and len(slack.texts()) == 1
    # Like a real dispatch with no effect, it is said again after dispatch_timeout.
    assert len(governor.tick(NOW + 300).recorded) == 1 and len(slack.texts()) == 2
    assert service.dispatched == []

    # Out of dry run: dispatched at once.
    store.save_group(Group.create(name="web", domain="example.com", min_size=2, max_size=6))
    assert triggers(governor.tick(NOW + 330)) == [("autoscale.repair", "web")]


def test_announce_without_a_slack_config_does_not_stop_the_tick():
    from autoscale_core.services.announce import announce

    datastore, service, store, governor = world(announce=announce)
    seed(store, "web", in_service=0, dry_run=True)
    seed(store, "api", in_service=0)
    report = governor.tick(NOW)
    assert triggers(report) == [("autoscale.repair", "api")] and report.problems == []


# -- alert expiry ------------------------------------------------------------------------------


def test_an_expired_alert_is_ended_recorded_and_announced():
    announce = Recorder()
    datastore, service, store, governor = world(announce=announce)
    max_age = governor.settings.policy.alert_max_age
    alert = critical(opened=NOW - max_age - 900, updated=NOW - max_age - 600)
    alert = AlertState(**dict(alert.__dict__, issues={"42": {
        "level": "critical", "title": "High error rate", "opened_at": alert.opened_at,
        "updated_at": alert.updated_at, "acknowledged": False}}))
    seed(store, "web", alert=alert)
    report = governor.tick(NOW)
    (decision,) = report.decisions
    assert decision.alert_expired
    ended = AlertState.from_json(service.get_value(alert_key("web"), local=False))
    assert ended == AlertState(level="none", issue_id="42", title="High error rate",
                               ended_at=NOW - 600)
    (expired,) = events(store, "web", ALERT_EXPIRED)
    assert "critical alert 'High error rate' (issue 42) had no update for 6 h" in expired.cause
    assert ("web", Kind.ALERT_EXPIRED) in announce.kinds()

    datastore.calls.clear()
    later = governor.tick(NOW + 30)
    assert not later.decisions[0].alert_expired and later.recorded == []
    assert datastore.calls["set_value"] == 0


def test_an_alert_changed_since_the_listing_is_not_expired():
    class Racing(SensorService):
        def list_values(self, **kwargs):
            items = super().list_values(**kwargs)
            # A New Relic delivery lands right after the governor's listing.
            self.set_value(alert_key("web"), critical(opened=NOW - 99999, updated=NOW).to_json(),
                           local=False)
            return items

    datastore, service, store, governor = world(service_class=Racing)
    seed(store, "web", alert=critical(opened=NOW - 99999))
    report = governor.tick(NOW)
    assert report.decisions[0].alert_expired
    assert AlertState.from_json(service.get_value(alert_key("web"), local=False)).updated_at == NOW
    assert events(store, "web", ALERT_EXPIRED) == []


def test_a_paused_group_gets_nothing_at_all():
    announce = Recorder()
    datastore, service, store, governor = world(announce=announce)
    seed(store, "web", in_service=0, paused=True, alert=critical(opened=NOW - 99999))
    datastore.calls.clear()
    report = governor.tick(NOW)
    assert report.dispatched == [] and report.recorded == [] and announce.calls == []
    assert dict(datastore.calls) == {"list_values": 1}
    # Resumed: acted on at once.
    store.save_group(Group.create(name="web", domain="example.com", min_size=2, max_size=6))
    report = governor.tick(NOW + 30)
    assert triggers(report) == [("autoscale.repair", "web")]
    assert [e.kind for e in report.recorded] == [ALERT_EXPIRED, DECISION]


# -- decisions recorded only on change -----------------------------------------------------------


def test_decisions_are_recorded_only_when_their_reason_changes():
    datastore, service, store, governor = world()
    seed(store, "web", in_service=4, max_size=10,
         scaling=ScalingState(last_scale_in_at=NOW - 60))
    seed(store, "calm")
    for second in range(0, 300, 30):
        governor.tick(NOW + second)
    assert len(history(datastore, "web")) == 1 and len(history(datastore, "calm")) == 1
    (cooldown,) = events(store, "web")
    assert cooldown.kind == DECISION and "scale-in cooldown" in cooldown.cause

    # The alert opens: a scale-out (acts: recorded and dispatched), then in flight.
    store.save_alert("web", critical(opened=NOW + 300))
    governor.tick(NOW + 300)
    governor.tick(NOW + 330)
    assert len(history(datastore, "web")) == 2
    # Its nodes are being added: one record for the new reason, however long it takes.
    seed(store, "web", in_service=4, pending=2, max_size=10, alert=critical(opened=NOW + 300))
    for second in range(360, 600, 30):
        governor.tick(NOW + second)
    reasons = [e.cause for e in events(store, "web")]
    assert len(reasons) == 3 and "waiting for 2 nodes being added" in reasons[-1]
    assert len(history(datastore, "calm")) == 1


# -- orphans against the fake OpenStack ----------------------------------------------------------


@pytest.fixture(scope="module")
def openstack():
    with FakeOpenStack(application_credential_id=APP_ID,
                       application_credential_secret=APP_SECRET, boot_delay=0.0,
                       delete_delay=0.0) as server:
        yield server


@pytest.fixture
def fake(openstack):
    openstack.reset()
    return openstack


def openstack_config(fake, **governor):
    return {
        "openstack": {"auth_url": fake.auth_url, "auth_type": "v3applicationcredential",
                      "application_credential_id": APP_ID,
                      "application_credential_secret": APP_SECRET,
                      "region_name": "RegionOne", "compute_api_version": "2.79"},
        "governor": dict({"orphan_scan_interval": 60, "orphan_grace": 900,
                          "dispatch_timeout": 300}, **governor),
    }


def boot(fake, group, node):
    compute = NovaCompute(ComputeSettings.from_config(openstack_config(fake)))
    spec = ServerSpec(group=group, node=node, flavor="m1.small", image="ubuntu-24.04",
                      network="private")
    return compute.boot(spec, 10).server


def listings(fake):
    """Server listings begun (a listing's further pages carry a marker)."""
    return [r for r in fake.service_requests("compute")
            if r.method == "GET" and r.path.endswith("/servers/detail")
            and "marker" not in r.query]


def test_managed_servers_is_one_listing_of_every_tagged_server(fake):
    web = boot(fake, "web", "web-aaaaaa")
    api = boot(fake, "api", "api-bbbbbb")
    compute = NovaCompute(ComputeSettings.from_config(openstack_config(fake)))
    fake.add_server("not-ours")  # no metadata
    fake.clear_requests()
    servers = compute.managed_servers()
    assert [(s.group, s.node, s.id) for s in servers] == [
        ("api", "api-bbbbbb", api.id), ("web", "web-aaaaaa", web.id)]
    # One listing of the whole project, unfiltered: novaclient's limit=-1 reads pages until
    # one comes back empty, so under Nova's page size that is two requests.
    requests = fake.service_requests("compute")
    assert [(r.method, r.path.rsplit("/", 2)[-2:], sorted(r.query)) for r in requests] == [
        ("GET", ["servers", "detail"], []), ("GET", ["servers", "detail"], ["marker"])]


def test_orphans_reported_once_dispatched_after_the_grace_then_forgotten(fake):
    announce = Recorder()
    datastore, service, store, governor = world(openstack_config(fake), announce=announce)
    seed(store, "web", in_service=1, min_size=1)  # records web-n00000
    seed(store, "quiet", in_service=0, min_size=0, paused=True)
    known = boot(fake, "web", "web-n00000")
    orphan = boot(fake, "web", "web-cafe01")
    stray = boot(fake, "gone", "gone-beef02")  # its group no longer exists
    held = boot(fake, "quiet", "quiet-dead03")  # paused group: reported, never cleaned up
    fake.clear_requests()

    report = governor.tick(NOW)
    assert report.orphan_scan == "ok" and len(listings(fake)) == 1
    found = {o.server_id: o for o in report.orphans}
    assert sorted(found) == sorted([orphan.id, stray.id, held.id])
    assert known.id not in found
    assert not found[stray.id].group_exists and found[held.id].held == "group is paused"
    assert report.dispatched == []
    (event,) = events(store, "web", ORPHAN)
    assert event.node == "web-cafe01" and orphan.id in event.cause
    assert "clean-up in 15 min" in event.cause
    assert sorted(announce.kinds()) == [("gone", Kind.ORPHAN), ("quiet", Kind.ORPHAN),
                                        ("web", Kind.ORPHAN)]

    # Not scanned again before orphan_scan_interval; scanned, but not reported again, after.
    assert governor.tick(NOW + 30).orphans == [] and len(listings(fake)) == 1
    later = governor.tick(NOW + 600)
    assert len(listings(fake)) == 2 and later.dispatched == [] and len(later.orphans) == 3
    assert len(announce.calls) == 3 and len(events(store, "web", ORPHAN)) == 1

    # After the grace: clean-up dispatched once each (not for the paused group's VM).
    due = governor.tick(NOW + 900)
    assert sorted((d.trigger, d.payload["asg"]) for d in due.dispatched) == [
        (ORPHAN_TRIGGER, "gone"), (ORPHAN_TRIGGER, "web")]
    payload = next(d.payload for d in due.dispatched if d.payload["asg"] == "web")
    assert payload == {"asg": "web", "node": "web-cafe01", "server_id": orphan.id,
                       "server_name": "web-cafe01", "first_seen": NOW,
                       "cause": payload["cause"]}
    assert "no node record for 15 min" in payload["cause"]
    assert service.dropped == []
    assert governor.tick(NOW + 960).dispatched == []
    # Still there after dispatch_timeout: dispatched again.
    again = governor.tick(NOW + 1200)
    assert len(again.dispatched) == 2
    assert "still there 5 min after its clean-up was dispatched" in again.dispatched[0].payload[
        "cause"]

    # The clean-up worked for one; the other now has a record (adopted): both forgotten.
    NovaCompute(ComputeSettings.from_config(openstack_config(fake))).destroy(stray.id, "gone", 5)
    store.save_node(Node("web-cafe01", "web", NodeState.FAILED, NOW, NOW, server_id=orphan.id))
    final = governor.tick(NOW + 1260)
    assert [o.server_id for o in final.orphans] == [held.id]
    # Should it appear again without a record, it is new again: reported, grace restarts.
    store.delete_node("web", "web-cafe01")
    assert [o.first_seen for o in governor.tick(NOW + 1320).orphans
            if o.server_id == orphan.id] == [NOW + 1320]


def test_a_node_recorded_after_the_listing_is_not_an_orphan(fake):
    announce = Recorder()
    datastore, service, store, governor = world(openstack_config(fake), announce=announce)
    seed(store, "web", in_service=0, min_size=0)
    server = boot(fake, "web", "web-fresh1")

    class Racing:
        """Nova listed just after a workflow recorded its new node."""

        def __init__(self, config):
            self.nova = NovaCompute(ComputeSettings.from_config(config))

        def managed_servers(self):
            store.save_node(Node("web-fresh1", "web", NodeState.PROVISIONING, NOW, NOW,
                                 server_id=server.id))
            return self.nova.managed_servers()

    governor.compute_factory = Racing
    report = governor.tick(NOW)
    assert report.orphan_scan == "ok" and report.orphans == [] and announce.calls == []


def test_vms_of_a_group_with_unreadable_records_are_not_judged(fake):
    datastore, service, store, governor = world(openstack_config(fake, orphan_grace=60))
    seed(store, "web", in_service=2)
    boot(fake, "web", "web-n00000")
    service.set_value(node_key("web", "web-n00000"), "{garbage", local=False)
    report = governor.tick(NOW)
    assert report.orphan_scan == "ok" and report.orphans == []

    # An orphan already seen is not cleaned up while its group's records cannot be read...
    service.set_value(node_key("web", "web-n00000"), Node(
        "web-n00000", "web", NodeState.IN_SERVICE).to_json(), local=False)
    server = boot(fake, "web", "web-0b0b0b")
    assert [o.server_id for o in governor.tick(NOW + 60).orphans] == [server.id]
    spec = service.get_value("autoscale.asg.web", local=False)
    service.set_value("autoscale.asg.web", "{garbage", local=False)
    later = governor.tick(NOW + 120)
    assert later.dispatched == [] and [o.server_id for o in later.orphans] == [server.id]
    # ... and is once they can.
    service.set_value("autoscale.asg.web", spec, local=False)
    assert [d.payload["server_id"] for d in governor.tick(NOW + 180).dispatched
            if d.trigger == ORPHAN_TRIGGER] == [server.id]


def test_an_orphan_with_a_grace_of_zero_is_dispatched_when_first_seen(fake):
    datastore, service, store, governor = world(openstack_config(fake, orphan_grace=0))
    seed(store, "web", in_service=0, min_size=0)
    server = boot(fake, "web", "web-0a0a0a")
    report = governor.tick(NOW)
    assert [(d.trigger, d.payload["server_id"]) for d in report.dispatched] == [
        (ORPHAN_TRIGGER, server.id)]
    assert service.dropped == []


def test_a_compute_that_cannot_be_built_or_fails_does_not_stop_the_tick(fake, caplog):
    datastore, service, store, governor = world({"governor": {"orphan_scan_interval": 60}})
    seed(store, "web", in_service=0)
    with caplog.at_level(logging.WARNING):
        report = governor.tick(NOW)
        again = governor.tick(NOW + 60)
    assert triggers(report) == [("autoscale.repair", "web")]
    assert report.orphan_scan.startswith("orphan scan skipped: ValidationError: config key "
                                         "openstack is missing")
    assert again.orphan_scan == report.orphan_scan and report.orphan_scan in again.problems
    assert caplog.text.count("orphan scan skipped") == 1  # once per failure streak

    # Nova answering errors: the same, and once it answers again, scans resume.
    caplog.clear()
    datastore, service, store, governor = world(
        openstack_config(fake),
        compute_factory=lambda config: NovaCompute(ComputeSettings.from_config(config),
                                                   sleep=lambda seconds: None))
    seed(store, "web", in_service=0)
    boot(fake, "web", "web-feed00")
    fake.inject("GET", r"/servers/detail", 500, times=6)
    with caplog.at_level(logging.WARNING):
        failed = governor.tick(NOW)
        governor.tick(NOW + 60)
        works = governor.tick(NOW + 120)
    assert triggers(failed) == [("autoscale.repair", "web")]
    assert "orphan scan skipped: ServerError" in failed.orphan_scan
    assert caplog.text.count("orphan scan skipped") == 1
    assert "orphan scans work again" in caplog.text
    assert works.orphan_scan == "ok" and [o.node for o in works.orphans] == ["web-feed00"]


def test_orphans_that_no_workflow_could_take_are_held_and_vms_being_deleted_ignored(fake):
    announce = Recorder()
    datastore, service, store, governor = world(openstack_config(fake, orphan_grace=0),
                                                announce=announce)
    seed(store, "web", in_service=0, min_size=0, dry_run=True)
    dry = boot(fake, "web", "web-d0d0d0")
    odd = fake.add_server("hand-made", {"autoscale_group": "web", "autoscale_node": "Hand_Made"})
    fake.set_delete_delay(60)  # listed as "deleting" for a minute
    leaving = boot(fake, "web", "web-1e1e1e")
    fake.delete_server(leaving.id)

    report = governor.tick(NOW)
    held = {o.server_id: o.held for o in report.orphans}
    assert held == {dry.id: "group is in dry run",
                    odd: "its autoscale_group or autoscale_node tag is not a valid name"}
    assert report.dispatched == [] and service.dispatched == []
    assert announce.kinds() == [("web", Kind.ORPHAN)]  # the tag that is a name
    assert "not cleaned up: group is in dry run" in announce.calls[0]["cause"]


# -- stuck nodes -------------------------------------------------------------------------------


def test_a_node_stuck_being_added_is_removed_once_and_again_after_the_timeout():
    announce = Recorder()
    datastore, service, store, governor = world(
        {"governor": {"stuck_after": 1800, "dispatch_timeout": 300}}, announce=announce)
    seed(store, "web", in_service=2)
    store.save_node(Node("web-dead01", "web", NodeState.CONFIGURING, NOW - 4000, NOW - 1801,
                         server_id="srv-1", cause="booted"))
    store.save_node(Node("web-busy01", "web", NodeState.PROVISIONING, NOW - 1000, NOW - 1000))
    report = governor.tick(NOW)
    stuck = [d.payload for d in report.dispatched if d.trigger == STUCK_TRIGGER]
    assert [(p["asg"], p["node"], p["state"], p["since"]) for p in stuck] == \
        [("web", "web-dead01", "configuring", NOW - 1801)]
    assert "configuring for 30 min" in stuck[0]["cause"] and service.dropped == []
    assert [e.node for e in events(store, "web", NODE_STUCK)] == ["web-dead01"]
    assert ("web", Kind.NODE_FAILED) in announce.kinds()
    assert [d for d in governor.tick(NOW + 30).dispatched if d.trigger == STUCK_TRIGGER] == []
    again = governor.tick(NOW + 301).dispatched
    assert [d.payload["node"] for d in again if d.trigger == STUCK_TRIGGER] == ["web-dead01"]


def test_stuck_nodes_of_paused_and_dry_run_groups():
    datastore, service, store, governor = world({"governor": {"stuck_after": 600}})
    seed(store, "paused", in_service=2, paused=True)
    seed(store, "trial", in_service=2, dry_run=True)
    for group in ("paused", "trial"):
        store.save_node(Node(group + "-dead01", group, NodeState.PROVISIONING, NOW - 900,
                             NOW - 900))
    report = governor.tick(NOW)
    assert [d for d in report.dispatched if d.trigger == STUCK_TRIGGER] == []
    assert [e.node for e in events(store, "trial", NODE_STUCK)] == ["trial-dead01"]
    assert events(store, "paused", NODE_STUCK) == []


def test_stuck_after_is_checked_by_key():
    with pytest.raises(ValidationError, match="governor.stuck_after"):
        GovernorSettings.from_config({"governor": {"stuck_after": 10}})
