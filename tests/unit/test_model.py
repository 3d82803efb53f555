"""Validation on entry and versioned (de)serialisation of every stored record."""

import json
import re

import pytest

from autoscale_core.domain.model import (
    AlertState,
    Event,
    Group,
    Node,
    NodeState,
    ScalingState,
    TransitionError,
)
from autoscale_core.domain.names import GROUP_NAME_MAX, validate_domain, validate_node_name
from autoscale_core.errors import RecordError, ValidationError


def group(**spec):
    spec.setdefault("name", "web")
    spec.setdefault("domain", "example.com")
    return Group.create(**spec)


@pytest.mark.parametrize("name", ["web", "w", "web-01", "0web", "a" * GROUP_NAME_MAX])
def test_good_group_names(name):
    assert group(name=name).name == name


@pytest.mark.parametrize("name,why", [
    ("", "must not be empty"),
    ("Web", "not a DNS label"),
    ("-web", "not a DNS label"),
    ("web-", "not a DNS label"),
    ("web.prod", "not a DNS label"),
    ("web_1", "not a DNS label"),
    ("web prod", "not a DNS label"),
    ("web;reload", "not a DNS label"),
    ("web\nshow servers", "not a DNS label"),
    ("web\n", "not a DNS label"),
    ("a" * (GROUP_NAME_MAX + 1), "the limit is %d" % GROUP_NAME_MAX),
    (5, "must be a string"),
])
def test_bad_group_names_are_refused_with_a_reason(name, why):
    with pytest.raises(ValidationError, match=why):
        group(name=name)


def test_node_names_are_labels_of_up_to_63():
    assert validate_node_name("a" * 63)
    with pytest.raises(ValidationError, match="limit is 63"):
        validate_node_name("a" * 64)


@pytest.mark.parametrize("domain,expected", [
    ("example.com", "example.com"), ("Example.COM.", "example.com"), ("a-b.c0.io", "a-b.c0.io"),
])
def test_domains_are_normalised(domain, expected):
    assert validate_domain(domain) == expected


@pytest.mark.parametrize("domain", [
    "", ".", "a..b", "-a.com", "a_b.com", "a.com;x", "a" * 64 + ".com",
    ".".join(["abcdefgh"] * 30), "exa mple.com", "example.com\n",
])
def test_bad_domains(domain):
    with pytest.raises(ValidationError, match="domain"):
        group(domain=domain)


@pytest.mark.parametrize("spec,why", [
    ({"min_size": 3, "max_size": 2}, r"min_size \(3\) must not be larger than max_size \(2\)"),
    ({"min_size": -1}, "min_size must be at least 0"),
    ({"expand_by": 0}, "expand_by must be at least 1"),
    ({"deflate_by": 0}, "deflate_by must be at least 1"),
    ({"scale_in_cooldown": -5}, "scale_in_cooldown must be at least 0"),
    ({"min_size": True}, "min_size must be a whole number"),
    ({"max_size": "ten"}, "max_size must be a whole number"),
    ({"desired": 9, "max_size": 4}, "desired .* must be between"),
    ({"max_szie": 10}, "unknown group setting"),
    ({"alert_matchers": {"hosts": ["x"]}}, "unknown kind"),
    ({"chef_environment": "prod\nx"}, "single line"),
    ({"paused": "maybe"}, "paused must be true or false"),
])
def test_bad_specs_name_the_field(spec, why):
    with pytest.raises(ValidationError, match=why):
        group(**spec)


def test_defaults_and_derived_values():
    g = Group.create({"max_size": 8, "flavor": "m1.small", "bogus": 1}, name="api",
                     domain="example.com", min_size="2", chef_run_list="role[web], recipe[x]")
    assert (g.min_size, g.max_size, g.desired) == (2, 8, 2)
    assert g.flavor == "m1.small" and g.lb_backend == "api" and g.dns_zone == "example.com"
    assert g.chef_run_list == ["role[web]", "recipe[x]"]
    assert g.fqdn == "api.example.com" and g.node_fqdn("api-abc123") == "api-abc123.example.com"


def test_group_round_trip_and_versioning():
    g = group(alert_matchers={"entities": ["storefront"]}, chef_run_list=["role[web]"])
    text = g.to_json()
    assert json.loads(text)["v"] == 1
    assert Group.from_json(text) == g
    newer = json.loads(text)
    newer["v"] = 2
    with pytest.raises(RecordError, match="schema version 2, newer than this pack"):
        Group.from_json(json.dumps(newer))
    with pytest.raises(RecordError, match="unknown schema version None"):
        Group.from_json(json.dumps({"name": "web"}))
    with pytest.raises(RecordError, match="not valid JSON"):
        Group.from_json("{'name': 'web'}")  # what str(dict) would have stored
    bad = json.loads(text)
    bad["min_size"] = 99
    with pytest.raises(RecordError, match="group record is invalid"):
        Group.from_json(json.dumps(bad))


@pytest.mark.parametrize("record", [
    Node("web-abc123", "web", NodeState.IN_SERVICE, 1.0, 2.0, "uuid", "10.0.0.5", True, "ok"),
    AlertState("critical", "issue-1", "High error rate", False, 10.0, 20.0, 0.0),
    ScalingState(100.0, 50.0, 2, 90.0, "Nova: No valid host"),
    Event("web", 100.0, "scale_out", "critical alert", "web-abc123", 2, True),
])
def test_records_round_trip(record):
    assert type(record).from_json(record.to_json()) == record
    data = json.loads(record.to_json())
    data["surprise"] = 1
    with pytest.raises(RecordError, match="unknown field"):
        type(record).from_json(json.dumps(data))


def test_node_lifecycle():
    node = Node("web-abc123", "web", created_at=1.0, updated_at=1.0)
    assert node.pending
    for state in (NodeState.CONFIGURING, NodeState.REGISTERING, NodeState.IN_SERVICE):
        node = node.advance(state, now=2.0)
    assert node.state == NodeState.IN_SERVICE and not node.pending
    with pytest.raises(TransitionError, match="cannot go from in_service to provisioning"):
        node.advance(NodeState.PROVISIONING, now=3.0)
    draining = node.advance(NodeState.DRAINING, now=4.0)
    assert draining.leaving
    failed = draining.advance(NodeState.FAILED, now=5.0, cause="HAProxy socket gone")
    assert failed.cause == "HAProxy socket gone" and failed.updated_at == 5.0
    assert failed.advance(NodeState.TERMINATING, now=6.0).state == NodeState.TERMINATING
    with pytest.raises(ValidationError, match="node state"):
        Node("web-abc123", "web", state="running")
    with pytest.raises(RecordError, match="node record is invalid"):
        Node.from_json(json.dumps({"v": 1, "name": "Bad Name", "group": "web"}))


# -- reading: every field checked, types included (issue 12 §3) ------------------------------

NODE = Node("web-abc123", "web", NodeState.IN_SERVICE, 1.0, 2.0, "uuid", "10.0.0.5", False, "ok")
ALERT = AlertState("critical", "42", "High error rate", False, 10.0, 20.0, 0.0, issues={
    "42": {"level": "critical", "title": "High error rate", "opened_at": 10.0,
           "updated_at": 20.0, "acknowledged": False}})
SCALING = ScalingState(100.0, 50.0, 2, 90.0, "Nova: No valid host")
EVENT = Event("web", 100.0, "scale_out", "critical alert", "web-abc123", 2, True)


def spoiled(record, change):
    data = json.loads(record.to_json())
    change(data)
    return json.dumps(data)


def setting(field, value):
    return lambda data: data.__setitem__(field, value)


def issue_setting(field, value):
    return lambda data: data["issues"]["42"].__setitem__(field, value)


# Each was read without complaint on main, and then made a comparison or an addition raise
# TypeError (or OverflowError) in the governor, or slipped through as a wrong value.
@pytest.mark.parametrize("record,change,message", [
    (SCALING, setting("last_scale_out_at", "yesterday"), "last_scale_out_at must be a time"),
    (SCALING, setting("consecutive_failures", None), "consecutive_failures must be a whole "
                                                     "number, not null"),
    (SCALING, setting("consecutive_failures", True), "not a boolean (true)"),
    (SCALING, setting("consecutive_failures", 1.5), "consecutive_failures must be a whole"),
    (SCALING, setting("consecutive_failures", -1), "consecutive_failures must be between 0"),
    (SCALING, setting("consecutive_failures", 10 ** 30), "consecutive_failures must be between"),
    (SCALING, setting("last_failure_at", []), "last_failure_at must be a time in seconds, not "
                                              "a list"),
    (SCALING, setting("last_failure_at", float("nan")), "last_failure_at must be a time between"),
    (SCALING, setting("last_failure_at", float("inf")), "last_failure_at must be a time between"),
    (SCALING, setting("last_failure_at", -1.0), "last_failure_at must be a time between"),
    (SCALING, setting("last_failure_at", 10 ** 400), "last_failure_at must be a time between"),
    (SCALING, setting("last_failure_cause", 7), "last_failure_cause must be a string"),
    (NODE, setting("created_at", "2024-01-01"), "created_at must be a time"),
    (NODE, setting("protected", "yes"), "protected must be true or false"),
    (NODE, setting("protected", 1), "protected must be true or false"),
    (NODE, setting("server_id", ["a"]), "server_id must be a string"),
    (NODE, setting("address", "10.0.0.5\nset server"), "address must be a single line"),
    (NODE, setting("cause", "\ud800"), "cause is not valid Unicode text"),
    (ALERT, issue_setting("opened_at", "yesterday"), "issues['42'].opened_at must be a time"),
    (ALERT, issue_setting("level", "panic"), "issues['42'].level must be one of warning, "
                                             "critical"),
    (ALERT, issue_setting("acknowledged", None), "issues['42'].acknowledged must be true or "
                                                 "false"),
    (ALERT, issue_setting("surprise", 1), "unknown field issues['42'].surprise"),
    (ALERT, lambda data: data["issues"]["42"].pop("updated_at"), "issues['42'].updated_at "
                                                                 "missing"),
    (ALERT, setting("updated_at", {"at": 1}), "updated_at must be a time"),
    (ALERT, setting("acknowledged", "false"), "acknowledged must be true or false"),
    (ALERT, setting("title", None), "title must be a string, not null"),
    (EVENT, setting("count", "2"), "count must be a whole number"),
    (EVENT, setting("at", None), "at must be a time"),
    (EVENT, setting("ok", "true"), "ok must be true or false"),
    (EVENT, lambda data: data.pop("group"), "group missing"),
])
def test_a_stored_record_with_a_wrong_type_is_refused_naming_the_field(record, change, message):
    with pytest.raises(RecordError) as caught:
        type(record).from_json(spoiled(record, change))
    assert message in str(caught.value)
    assert str(caught.value).startswith("%s record is invalid: " % {
        Node: "node", AlertState: "alert", ScalingState: "scaling", Event: "event"}[type(record)])


# A stored spec is read strictly (no "6" for 6, no "true" for true, no comma-separated list):
# what the pack writes is JSON of the right types.
@pytest.mark.parametrize("field,value,message", [
    ("max_size", "6", "max_size must be a whole number, not a string"),
    ("max_size", 6.0, "max_size must be a whole number"),
    ("min_size", False, "min_size must be a whole number, not a boolean"),
    ("desired", 10 ** 20, "desired must be between 0 and"),
    ("paused", "true", "paused must be true or false"),
    ("dry_run", 0, "dry_run must be true or false"),
    ("chef_run_list", "role[web], recipe[x]", "chef_run_list must be a list of strings"),
    ("chef_run_list", ["role[web]", 3], "chef_run_list[1] must be a string"),
    ("alert_matchers", {"entities": "storefront"}, "alert_matchers.entities must be a list"),
    ("flavor", None, "flavor must be a string, not null"),
])
def test_a_stored_group_with_a_wrong_type_is_refused_naming_the_field(field, value, message):
    text = group(chef_run_list=["role[web]"]).to_json()
    data = json.loads(text)
    data[field] = value
    with pytest.raises(RecordError, match="group record is invalid: .*" + re.escape(message)):
        Group.from_json(json.dumps(data))


@pytest.mark.parametrize("text,message", [
    (json.dumps({"v": True, "level": "none"}), "unknown schema version True"),
    (json.dumps({"v": 1.0, "level": "none"}), "unknown schema version 1.0"),
    ("[" * 100000 + "]" * 100000, "not valid JSON"),
])
def test_a_version_that_only_looks_like_1_and_json_nested_too_deep_are_refused(text, message):
    with pytest.raises(RecordError, match=re.escape(message)):
        AlertState.from_json(text)
