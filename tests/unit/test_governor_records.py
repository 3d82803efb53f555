"""Corrupt records in the governor's datastore (issue 12 §3 and §4).

A record that cannot be read (a wrong type in any field, an unknown schema version, text cut
short) affects its group only: the tick never raises, every other group gets exactly the
decision it gets without the corruption, the bad record is reported in the tick's problems,
logged, and announced once in the group's channel (once across a sensor restart too). In doubt,
hold: a group whose alert, scaling or node record cannot be read gets no scale-out and no
scale-in; a repair up to its normal size goes on.

The governor runs as in tests/e2e/test_governor.py: the real Store over the harness's datastore,
its dispatches checked against the pack's trigger types.
"""

import json
import logging
import random

import hypothesis
import pytest
from hypothesis import HealthCheck, given
from hypothesis import strategies as st

from autoscale_core.domain.model import AlertState, Event, Group, Node, NodeState, ScalingState
from autoscale_core.services.governor import Governor
from autoscale_core.store import HISTORY_PREFIX, alert_key, node_key, scaling_key
from st2harness import Datastore
from st2harness.services import SensorService
from support.governor import NOW, critical, seed, trigger_types, world
from support.properties import examples

UNREADABLE = "unreadable_record"  # policy.Reason.UNREADABLE


class Chat:
    """Stands in for services.announce.announce (same signature), remembering every call and its
    channel."""

    def __init__(self):
        self.calls = []

    def __call__(self, config, datastore, group, kind=None, cause=None, node=None, count=None,
                 dry_run=None, channel=None, detail=None, url=None):
        self.calls.append(dict(group=group, kind=kind, cause=cause, channel=channel))
        return {"delivered": True}

    def about(self, text):
        return [call for call in self.calls if text in (call["cause"] or "")]


def by_group(report):
    decisions = {d.group: d for d in report.decisions}
    dispatched = {}
    for d in report.dispatched:
        dispatched.setdefault(d.payload["asg"], []).append((d.trigger, d.payload))
    recorded = {}
    for event in report.recorded:
        recorded.setdefault(event.group, []).append(event)
    return decisions, dispatched, recorded


def edit(service, key, change):
    """Rewrite a stored record's JSON with ``change(data)``."""
    data = json.loads(service.get_value(key, local=False))
    change(data)
    service.set_value(key, json.dumps(data), local=False)


def a_critical_alert_with_issues():
    return AlertState(level="critical", issue_id="42", title="High error rate",
                      opened_at=NOW - 120, updated_at=NOW - 60, issues={
                          "42": {"level": "critical", "title": "High error rate",
                                 "opened_at": NOW - 120, "updated_at": NOW - 60,
                                 "acknowledged": False}})


# -- §3: one badly typed record stops the governor for every group ----------------------------

# The records the issue names, each valid JSON of a known version with one field of the
# wrong type: on main, each made tick() raise TypeError for every group.
TYPED = [
    ("scaling", "last_scale_out_at", "yesterday"),
    ("scaling", "consecutive_failures", None),
    ("scaling", "last_failure_at", []),
    ("node", "created_at", "yesterday"),
    ("issue", "opened_at", "yesterday"),
    ("scaling", "consecutive_failures", True),  # bool is not a whole number
    ("scaling", "last_scale_in_at", float("nan")),
    ("scaling", "last_scale_in_at", float("inf")),
    ("scaling", "last_scale_in_at", -5),
    ("scaling", "consecutive_failures", 10 ** 30),
    ("alert", "updated_at", {"at": 1}),
    ("alert", "issues", ["42"]),
    ("node", "protected", "yes"),
    ("node", "state", None),
    ("spec", "max_size", "6"),
    ("spec", "chef_run_list", "role[web]"),
]


def corrupt_one(service, kind, field, value):
    key = {"scaling": scaling_key("web"), "node": node_key("web", "web-n00000"),
           "issue": alert_key("web"), "alert": alert_key("web"),
           "spec": "autoscale.asg.web"}[kind]
    if kind == "issue":
        edit(service, key, lambda data: data["issues"]["42"].__setitem__(field, value))
    else:
        edit(service, key, lambda data: data.__setitem__(field, value))
    return key


def three_groups(store):
    seed(store, "fix", in_service=0)  # repair
    seed(store, "out", alert=critical())  # scale-out
    seed(store, "web", in_service=3, alert=a_critical_alert_with_issues(),
         scaling=ScalingState(last_scale_out_at=NOW - 4000, consecutive_failures=1,
                              last_failure_at=NOW - 4000, last_failure_cause="boot timeout"))


@pytest.mark.parametrize("kind,field,value", TYPED)
def test_a_badly_typed_record_affects_its_group_only(kind, field, value, caplog):
    _, _, clean_store, clean = world(announce=Chat())
    three_groups(clean_store)
    expected, expected_dispatched, _ = by_group(clean.tick(NOW))
    datastore, service, store, governor = world(announce=Chat())
    three_groups(store)
    key = corrupt_one(service, kind, field, value)

    with caplog.at_level(logging.WARNING):
        report = governor.tick(NOW)  # on main: TypeError, no group governed
    decisions, dispatched, _ = by_group(report)
    for name in ("fix", "out"):
        assert decisions[name] == expected[name]
        assert dispatched[name] == expected_dispatched[name]
    assert service.dropped == []
    assert [p for p in report.problems if p.startswith(key + ": ") and field in p], \
        report.problems
    assert key in caplog.text
    if kind == "spec":
        assert "web" not in decisions  # skipped whole
    else:
        # Held: it would scale out (critical alert), but its records are a guess now.
        assert decisions["web"].action == "none" and decisions["web"].reason == UNREADABLE
        assert key in decisions["web"].cause
        assert "web" not in dispatched


def test_an_unreadable_record_is_announced_once_even_across_a_restart(caplog):
    chat = Chat()
    datastore, service, store, governor = world(announce=chat)
    seed(store, "web", in_service=2, chat_channel="#web-ops")
    seed(store, "api", in_service=2)
    key = corrupt_one(service, "node", "created_at", "yesterday")
    spec = service.get_value("autoscale.asg.api", local=False)
    service.set_value("autoscale.asg.api", spec[:40], local=False)  # cut short

    with caplog.at_level(logging.WARNING):
        governor.tick(NOW)
    told = chat.about("reading its datastore records")
    assert sorted((c["group"], c["channel"]) for c in told) == [
        ("api", None),  # its spec is the bad record: the default channel
        ("web", "#web-ops")]
    web = next(c for c in told if c["group"] == "web")
    assert key in web["cause"] and "created_at" in web["cause"]
    assert "the governor holds the group" in web["cause"]
    api = next(c for c in told if c["group"] == "api")
    assert "autoscale.asg.api: group record is not valid JSON" in api["cause"]
    assert "skips the group" in api["cause"]
    assert caplog.text.count(key) >= 1

    caplog.clear()
    with caplog.at_level(logging.WARNING):
        for later in (30, 60):
            datastore.calls.clear()
            report = governor.tick(NOW + later)
            assert any(p.startswith(key) for p in report.problems)  # still reported
            assert dict(datastore.calls) == {"list_values": 1}  # the memory costs nothing
    assert len(chat.about("reading its datastore records")) == 2  # not announced again
    assert key not in caplog.text  # a warning once, not every tick

    # A restarted sensor: a new governor on the same datastore.
    again = Governor(service, governor.config, clock=lambda: NOW, announce=chat)
    assert any(p.startswith(key) for p in again.tick(NOW + 90).problems)
    assert len(chat.about("reading its datastore records")) == 2

    # Broken differently: told again. Fixed, then broken the same way again: told again.
    corrupt_one(service, "node", "created_at", [])
    again.tick(NOW + 120)
    assert len(chat.about("reading its datastore records")) == 3
    store.save_node(Node("web-n00000", "web", NodeState.IN_SERVICE, NOW - 3600, NOW - 3600))
    assert not [p for p in again.tick(NOW + 150).problems if p.startswith(key)]
    corrupt_one(service, "node", "created_at", [])
    again.tick(NOW + 180)
    assert len(chat.about("reading its datastore records")) == 4


# -- §4: an unreadable alert record lets the governor scale in during an incident -------------


def cut_short(text):
    return text[:len(text) // 2]


def newer(text):
    data = json.loads(text)
    data["v"] = 2
    return json.dumps(data)


@pytest.mark.parametrize("damage", [newer, cut_short], ids=["newer-version", "cut-short"])
def test_an_unreadable_alert_record_holds_the_scale_in_of_the_incident(damage):
    # The issue's case: 4 nodes, normal size 2, a critical alert open. Unreadable, the alert
    # record read as "no alert", and the governor removed a node mid-incident.
    datastore, service, store, governor = world()
    seed(store, "web", in_service=4, alert=critical(opened=NOW - 7200, updated=NOW - 3600),
         scaling=ScalingState(last_scale_out_at=NOW - 3600))
    seed(store, "api", in_service=4, scaling=ScalingState(last_scale_out_at=NOW - 3600))
    key = alert_key("web")
    service.set_value(key, damage(service.get_value(key, local=False)), local=False)
    report = governor.tick(NOW)
    decisions, dispatched, recorded = by_group(report)
    assert "web" not in dispatched  # on main: scale_in "no alert for 60 min: removing 1 node"
    assert (decisions["web"].action, decisions["web"].reason) == ("none", UNREADABLE)
    assert "alert record %s cannot be read" % key in decisions["web"].cause
    assert "no scale-out or scale-in" in decisions["web"].cause
    assert key in recorded["web"][0].cause  # the history says why, for asg status
    # The group next door, the same but readable, scales in as usual.
    assert [t for t, _ in dispatched["api"]] == ["autoscale.scale_in"]


@pytest.mark.parametrize("kind", ["alert", "scaling", "node"])
@pytest.mark.parametrize("how", ["newer", "cut", "typed"])
def test_each_unreadable_record_kind_holds_scale_out_and_scale_in_but_not_repair(kind, how):
    key = {"alert": alert_key("web"), "scaling": scaling_key("web"),
           "node": node_key("web", "web-n00000")}[kind]

    def spoil(service):
        text = service.get_value(key, local=False)
        if how == "newer":
            text = newer(text)
        elif how == "cut":
            text = cut_short(text)
        else:
            field = {"alert": "opened_at", "scaling": "last_scale_out_at",
                     "node": "updated_at"}[kind]
            data = json.loads(text)
            data[field] = "yesterday"
            text = json.dumps(data)
        service.set_value(key, text, local=False)

    # Would scale out: a critical alert (for "alert", the unreadable one). For "scaling" the
    # record says the last scale-out was a minute ago: a guess would scale out again at once.
    datastore, service, store, governor = world()
    seed(store, "web", in_service=3, alert=critical(), scaling=ScalingState(
        last_scale_out_at=NOW - (60 if kind == "scaling" else 4000)))
    spoil(service)
    decisions, dispatched, _ = by_group(governor.tick(NOW))
    assert "web" not in dispatched, dispatched
    assert (decisions["web"].action, decisions["web"].reason) == ("none", UNREADABLE)
    assert key in decisions["web"].cause

    # Would scale in: no alert, 4 nodes for a normal size of 2, quiet for hours.
    datastore, service, store, governor = world()
    seed(store, "web", in_service=4, alert=AlertState(ended_at=NOW - 7200),
         scaling=ScalingState(last_scale_in_at=NOW - 7200))
    spoil(service)
    decisions, dispatched, _ = by_group(governor.tick(NOW))
    assert "web" not in dispatched, dispatched
    assert (decisions["web"].action, decisions["web"].reason) == ("none", UNREADABLE)
    assert key in decisions["web"].cause

    # Below the normal size (4): the repair goes on whatever the record says.
    datastore, service, store, governor = world()
    seed(store, "web", in_service=1, min_size=4, max_size=6, alert=critical(),
         scaling=ScalingState(last_scale_in_at=NOW - 7200))
    spoil(service)
    decisions, dispatched, _ = by_group(governor.tick(NOW))
    count = 4 if kind == "node" else 3  # an unreadable node is not counted as capacity
    assert [(t, p["count"]) for t, p in dispatched["web"]] == [("autoscale.repair", count)]
    assert "%s cannot be read" % key in decisions["web"].cause


# -- a cloud library that does not import ------------------------------------------------------
# (tests/pack/test_governor_imports.py)


# -- property: corrupt anything, the others do not notice -------------------------------------

GROUPS = ("g0", "g1", "g2", "g3")
CONFIG = {"governor": {"global_max_nodes": 2 ** 62, "orphan_scan_interval": 0,
                       "stuck_after": 1800}}

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.integers(-(2 ** 70), 2 ** 70)
    | st.sampled_from([10 ** 400, -(10 ** 400), 2 ** 53, 1e308, -0.0])
    | st.floats(allow_nan=True, allow_infinity=True) | st.text(max_size=8)
    | st.sampled_from(["", "yesterday", "in_service", "critical", "none", "web", "g1",
                       "g1-n00000", "\ud800", "role[web]", "1", "true"]),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner,
                                                                max_size=3),
    max_leaves=3)


def group_records(name, seed):
    """The stored records of one valid group (key -> JSON text), built from ``seed``: one draw
    per group keeps the 1,000 examples fast; the damage below is what hypothesis explores."""
    rnd = random.Random(seed)
    min_size = rnd.randint(0, 3)
    max_size = max(min_size + rnd.randint(0, 3), 1)
    spec = Group.create(
        name=name, domain="example.com", min_size=min_size, max_size=max_size,
        desired=rnd.randint(min_size, max_size), expand_by=rnd.randint(1, 3),
        scale_out_cooldown=rnd.choice([0, 300]), scale_in_cooldown=rnd.choice([0, 900]),
        dry_run=rnd.random() < 0.3, paused=rnd.random() < 0.1, chat_channel="#%s-ops" % name,
        chef_run_list=["role[web]"], alert_matchers={"entities": [name]})
    records = {"autoscale.asg." + name: spec.to_json()}
    level = rnd.choice(["", "none", "warning", "critical"])
    opened = NOW - rnd.randint(0, 30000)
    if level in ("warning", "critical"):
        issue = "7" + name[-1]
        records[alert_key(name)] = AlertState(
            level=level, issue_id=issue, title="t", opened_at=opened, updated_at=opened,
            issues={issue: {"level": level, "title": "t", "opened_at": opened,
                            "updated_at": opened, "acknowledged": rnd.random() < 0.5}}
        ).to_json()
    elif level == "none":
        records[alert_key(name)] = AlertState(ended_at=opened).to_json()
    if rnd.random() < 0.6:
        records[scaling_key(name)] = ScalingState(
            last_scale_out_at=NOW - rnd.randint(0, 4000),
            last_scale_in_at=NOW - rnd.randint(0, 4000),
            consecutive_failures=rnd.randint(0, 5),
            last_failure_at=NOW - rnd.randint(0, 4000),
            last_failure_cause="boot timeout").to_json()
    for index in range(rnd.randint(0, 5)):
        at = NOW - rnd.randint(0, 4000)  # some past governor.stuck_after (1800 s)
        node = Node("%s-n%05d" % (name, index), name, rnd.choice(NodeState.ALL), at, at,
                    server_id="srv-%d" % index, address="10.0.0.%d" % index,
                    protected=rnd.random() < 0.2)
        records[node_key(name, node.name)] = node.to_json()
    records["%s%s.%013d-0001" % (HISTORY_PREFIX, name, NOW * 1000)] = Event(
        name, NOW - 10, "decision", "steady").to_json()
    return records


@st.composite
def damage(draw, text):
    """``text`` (a record's JSON) made unreadable, or just different: any field set to any
    JSON value (nested ones included), a field dropped, an unknown version, or cut short."""
    how = draw(st.sampled_from(["field", "field", "nested", "drop", "version", "cut"]))
    if how == "cut":
        return text[:draw(st.integers(0, len(text) - 1))]
    data = json.loads(text)
    if how == "version":
        data["v"] = draw(st.integers().filter(lambda v: v != 1) | json_values)
    elif how == "drop":
        del data[draw(st.sampled_from(sorted(data)))]
    else:
        target = data
        nested = [k for k in sorted(data) if isinstance(data[k], dict) and data[k]]
        if how == "nested" and nested:
            target = data[draw(st.sampled_from(nested))]
            inner = [k for k in sorted(target) if isinstance(target[k], dict) and target[k]]
            if inner and draw(st.booleans()):
                target = target[draw(st.sampled_from(inner))]
        target[draw(st.sampled_from(sorted(target)))] = draw(json_values)
    return json.dumps(data)  # NaN and Infinity as Python writes them


def governed(records):
    datastore = Datastore(clock=lambda: NOW)
    service = SensorService(datastore.service("autoscale", "GovernorSensor"), trigger_types())
    for key, text in records.items():
        service.set_value(key, text, local=False)
    chat = Chat()
    governor = Governor(service, CONFIG, clock=lambda: NOW, announce=chat)
    return service, governor, chat


CORRUPTION = hypothesis.settings(
    max_examples=examples(1000), deadline=None, derandomize=True, database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


@CORRUPTION
@given(st.data())
def test_corrupting_any_record_of_some_groups_never_changes_the_others(data):
    names = GROUPS[:data.draw(st.integers(2, len(GROUPS)), label="groups")]
    stored = {name: group_records(name, data.draw(st.integers(0, 2 ** 32), label=name))
              for name in names}
    touched = data.draw(st.lists(st.sampled_from(names), min_size=1, unique=True),
                        label="touched")
    clean = {key: text for records in stored.values() for key, text in records.items()}
    spoiled = dict(clean)
    for name in touched:
        keys = sorted(stored[name])
        for key in data.draw(st.lists(st.sampled_from(keys), min_size=1, max_size=3,
                                      unique=True), label="keys of " + name):
            spoiled[key] = data.draw(damage(clean[key]), label=key)

    _, baseline, _ = governed(clean)
    expected = by_group(baseline.tick(NOW))
    service, governor, chat = governed(spoiled)
    report = governor.tick(NOW)  # never raises
    decisions, dispatched, recorded = by_group(report)
    for name in names:
        if name in touched:
            continue
        assert decisions[name] == expected[0][name]
        assert dispatched.get(name) == expected[1].get(name)
        assert recorded.get(name) == expected[2].get(name)
        assert not chat.about("autoscale.asg.%s" % name)

    # The keys reported unreadable, by group ("autoscale.asg.<group>[.<record>]: why").
    bad = {}
    for problem in report.problems:
        key = problem.split(": ", 1)[0]
        if key in spoiled and "without a readable group spec" not in problem:
            bad.setdefault(key.split(".")[2], []).append(key)
    assert set(bad) <= set(touched)
    # In doubt, hold: a group with an alert, scaling or node record that cannot be read gets
    # no scale-out or scale-in.
    for name in bad:
        if name in decisions:
            assert decisions[name].action in ("none", "repair"), decisions[name]
            assert [t for t, _ in dispatched.get(name, [])
                    if t in ("autoscale.scale_out", "autoscale.scale_in")] == []
    # Each group with records that cannot be read is told once, not every tick.
    told = chat.about("reading its datastore records")
    assert sorted(c["group"] for c in told) == sorted(bad)
    if told:
        governor.tick(NOW + 30)
        assert chat.about("reading its datastore records") == told
