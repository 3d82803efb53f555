"""routing: which groups an alert is for, and the autoscale.alert payload for each."""

import os

import pytest

from autoscale_core.domain.alerts import Alert
from autoscale_core.domain.model import Group, GroupState
from autoscale_core.errors import ValidationError
from autoscale_core.sources import newrelic
from autoscale_core.sources.newrelic import normalise, parse_body
from autoscale_core.sources.routing import Route, matches, route, trigger_payload
from st2harness import PackLoader
from st2harness import schema as st2schema
from support.paths import ROOT

FIXTURES = os.path.join(ROOT, "tests", "fixtures", "newrelic")
FAMILIES = [
    ("workflows_activated.json", "application/json"),
    ("workflows_closed.json", "application/json"),
    ("channel_incident_open.json", "application/json"),
    ("channel_incident_closed.json", "application/json"),
    ("legacy_form_server_alert.txt", "application/x-www-form-urlencoded"),
]


def fixture_alert(name, content_type):
    with open(os.path.join(FIXTURES, name), "rb") as handle:
        return normalise(parse_body(handle.read().strip(), content_type))


def alert(**fields):
    values = dict(state="open", severity="critical", issue_id="i-1",
                  entities=["storefront"], policy="Storefront golden signals",
                  condition="High error rate")
    values.update(fields)
    return newrelic.alert(**values)


def group(name, paused=False, **matchers):
    return GroupState(Group.create(name=name, domain="example.com", paused=paused,
                                   alert_matchers=matchers or None))


def groups(*states):
    return {state.group.name: state for state in states}


ALERT_SCHEMA = PackLoader(ROOT).trigger_types()["autoscale.alert"]["payload_schema"]


# -- named by ?asg= ---------------------------------------------------------------------------


def test_a_named_group_gets_the_alert_whatever_its_matchers_say():
    known = groups(group("api"), group("web", entities=["nothing-like-it"]))
    assert route(alert(), known, asg="api") == Route(["api"], "named by asg=api")
    assert route(alert(), known, asg="web").groups == ["web"]


def test_a_named_group_that_does_not_exist_gets_nothing():
    result = route(alert(), groups(group("web", entities=["storefront"])), asg="api")
    assert result.groups == []
    assert result.reason == "no group named api"


@pytest.mark.parametrize("name", ["Web", "web_1", "-web", "web.example", "", "w" * 60])
def test_a_name_that_is_not_a_group_name_is_refused(name):
    with pytest.raises(ValidationError, match="group name"):
        route(alert(), groups(group("web")), asg=name)


# -- matched ----------------------------------------------------------------------------------


def test_a_group_without_matchers_is_reached_only_by_name():
    known = groups(group("api"), group("empty", entities=[], policies=[]))
    result = route(alert(), known)
    assert result.groups == []
    assert "no group's alert matchers match" in result.reason
    assert "storefront" in result.reason
    assert route(alert(), known, asg="empty").groups == ["empty"]


@pytest.mark.parametrize("pattern, value, hit", [
    ("storefront", "storefront", True),
    ("STOREFRONT", "storefront", True),
    ("store*", "StoreFront", True),
    ("web-??", "WEB-01", True),
    ("web-[0-9][0-9]", "web-07", True),
    ("web-*", "old-web-01", False),  # the whole value must match, not a part
    ("store", "storefront", False),
    ("web-?", "web-01", False),
])
def test_patterns_are_case_insensitive_shell_globs(pattern, value, hit):
    known = groups(group("web", entities=[pattern]))
    assert route(alert(entities=[value]), known).groups == (["web"] if hit else [])


def test_any_pattern_of_a_kind_may_match_any_entity():
    known = groups(group("web", servers=["db-*", "web-*"]))
    assert route(alert(entities=["storefront", "web-03"]), known).groups == ["web"]
    assert route(alert(entities=["storefront", "cache-1"]), known).groups == []


def test_every_kind_a_group_sets_must_match():
    known = groups(
        group("shop", applications=["storefront"], policies=["storefront golden*"]),
        group("billing", applications=["storefront"], policies=["billing*"]),
        group("errors", applications=["storefront"], conditions=["*error*"],
              policies=["storefront*"]),
    )
    assert route(alert(), known).groups == ["errors", "shop"]
    assert route(alert(condition="Latency"), known).groups == ["shop"]
    assert route(alert(policy="Billing ops"), known).groups == ["billing"]
    assert route(alert(policy="Billing ops", entities=["checkout"]), known).groups == []
    assert route(alert(entities=["checkout"]), known).groups == []


def test_each_kind_is_compared_with_its_own_part_of_the_alert():
    # The policy's name is not an entity, the condition's is not the policy's.
    an_alert = alert(entities=["web-01"], policy="Checkout", condition="CPU high")
    assert route(an_alert, groups(group("a", entities=["checkout"]))).groups == []
    assert route(an_alert, groups(group("b", policies=["cpu*"]))).groups == []
    assert route(an_alert, groups(group("c", conditions=["checkout"]))).groups == []
    assert route(an_alert, groups(group("d", applications=["web-01"]))).groups == ["d"]
    assert route(an_alert, groups(group("e", policies=["checkout"]))).groups == ["e"]
    assert route(an_alert, groups(group("f", conditions=["cpu *"]))).groups == ["f"]


def test_an_alert_without_that_part_never_matches_a_kind_that_needs_it():
    bare = alert(entities=[], policy="", condition="")
    for kind in ("entities", "applications", "servers", "policies", "conditions"):
        assert route(bare, groups(group("web", **{kind: ["*"]}))).groups == [], kind
    assert "no entities, policy or condition" in route(bare, groups(group("web"))).reason


def test_every_matching_group_is_listed_sorted_and_paused_ones_too():
    known = groups(group("zeta", entities=["store*"]), group("alpha", paused=True,
                                                             entities=["*front"]),
                   group("other", entities=["checkout"]))
    result = route(alert(), known)
    assert result.groups == ["alpha", "zeta"]
    assert result.reason == "alert matchers of alpha, zeta match"


def test_groups_may_be_given_as_specs_or_as_loaded_states():
    spec = Group.create(name="web", domain="example.com", alert_matchers={"entities": ["st*"]})
    assert route(alert(), {"web": spec}).groups == ["web"]
    assert matches(spec, alert()) and matches(GroupState(spec), alert())
    assert not matches(spec, alert(entities=["db"]))


@pytest.mark.parametrize("name, content_type", FAMILIES)
def test_every_fixture_family_routes_by_its_entities(name, content_type):
    known = groups(group("web", entities=["storefront", "web-frontend-*"]),
                   group("db", entities=["db-*"]))
    assert route(fixture_alert(name, content_type), known).groups == ["web"]


# -- the trigger payload ----------------------------------------------------------------------


@pytest.mark.parametrize("name, content_type", FAMILIES)
def test_the_payload_of_every_family_validates_against_the_trigger_schema(name, content_type):
    an_alert = fixture_alert(name, content_type)
    payload = trigger_payload(an_alert, "web", 1_700_000_000.5)
    assert set(payload) == {"asg", "state", "severity", "issue_id", "title", "entities",
                            "policy", "condition", "url", "family", "received_at"}
    assert payload["asg"] == "web" and payload["received_at"] == 1_700_000_000.5
    assert payload["issue_id"] == an_alert.issue_id and payload["family"] == an_alert.family
    assert st2schema.validate(payload, ALERT_SCHEMA) == payload


def test_a_payload_with_empty_texts_validates_and_the_time_is_a_float():
    payload = trigger_payload(Alert(state="closed", severity="info", issue_id="7",
                                    family="channel"), "a", 12)
    assert payload["received_at"] == 12.0 and isinstance(payload["received_at"], float)
    assert payload["entities"] == [] and payload["title"] == ""
    st2schema.validate(payload, ALERT_SCHEMA)


def test_the_trigger_schema_refuses_what_st2_must_not_accept():
    good = trigger_payload(alert(family="workflows"), "web", 1.0)
    for change in ({"state": "ACTIVATED"}, {"severity": "high"}, {"asg": "Web"},
                   {"entities": "storefront"}, {"received_at": "now"}, {"extra": 1},
                   {"family": "Work flows"}, {"family": ""}):
        with pytest.raises(st2schema.ValidationError):
            st2schema.validate(dict(good, **change), ALERT_SCHEMA)
    for missing in good:
        with pytest.raises(st2schema.ValidationError):
            st2schema.validate({k: v for k, v in good.items() if k != missing}, ALERT_SCHEMA)


def test_the_payload_does_not_share_the_alerts_entity_list():
    an_alert = alert(entities=["a"])
    payload = trigger_payload(an_alert, "web", 1.0)
    payload["entities"].append("b")
    assert an_alert.entities == ["a"]
