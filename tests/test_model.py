"""Validation on entry and versioned (de)serialisation of every stored record."""

import json

import pytest

from autoscale_core.model import (
    GROUP_NAME_MAX,
    AlertState,
    Event,
    Group,
    Node,
    NodeState,
    RecordError,
    ScalingState,
    TransitionError,
    ValidationError,
    validate_backend_name,
    validate_domain,
    validate_node_name,
)


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
    ({"lb_backend": "web back"}, "not a valid HAProxy backend name"),
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


def test_backend_names():
    assert validate_backend_name("be_web:80.v2") == "be_web:80.v2"
    for bad in ["", "a b", "a;b", "a\nb", "ab\n", "x" * 65, None]:
        with pytest.raises(ValidationError):
            validate_backend_name(bad)
