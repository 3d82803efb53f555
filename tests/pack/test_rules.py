"""st2harness.rules and st2harness.reactor behave as st2 3.9's rules engine, webhooks and
rule enforcement do.

The pack under test is tests/fixtures/rulestest (ref ``rulestest``); rules st2 would refuse
are written into a copy of it, so that the fixture itself stays clean for packcheck.
"""

import datetime
import os
import shutil
import sys
import textwrap
import threading

import pytest

from st2harness import PackLoader
from st2harness.reactor import ActionExecutionResult, Reactor
from st2harness.rules import (
    OPERATORS,
    RuleEngine,
    RuleRegistrationError,
    UnsupportedCriteria,
    jsonpath_find,
)
from st2harness.workflows import WorkflowRunner
from support.paths import ROOT

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import packcheck  # noqa: E402

FIXTURE = ROOT + "/tests/fixtures/rulestest"
NOW = datetime.datetime(2024, 1, 1, 12, 0, tzinfo=datetime.timezone.utc)


@pytest.fixture
def loader():
    return PackLoader(FIXTURE)


@pytest.fixture
def engine(loader):
    return RuleEngine(loader, now=lambda: NOW)


@pytest.fixture
def reactor(loader, engine):
    return Reactor(loader, WorkflowRunner(loader), engine)


@pytest.fixture
def pack_with(tmp_path):
    """A copy of the fixture pack plus one rule file; returns its loader."""

    def build(rule, name="extra"):
        pack = tmp_path / "pack"
        shutil.copytree(FIXTURE, pack)
        (pack / "rules" / (name + ".yaml")).write_text(textwrap.dedent(rule).lstrip())
        return PackLoader(str(pack))

    return build


def refs(matches):
    return [match.rule for match in matches]


def only(matches, rule):
    [found] = [match for match in matches if match.rule == "rulestest." + rule]
    return found


# -- registration ------------------------------------------------------------------------------


def test_the_fixture_pack_passes_packcheck():
    assert packcheck.check_pack(FIXTURE) == []


def test_every_rule_file_registers_and_only_enabled_rules_take_part(engine):
    files = sorted(name[:-5] for name in os.listdir(FIXTURE + "/rules"))
    assert sorted(rule.name for rule in engine.all_rules) == files
    disabled = {rule.ref for rule in engine.all_rules if not rule.enabled}
    assert disabled == {"rulestest.disabled", "rulestest.hook_dormant"}
    assert disabled.isdisjoint(rule.ref for rule in engine.rules)
    # "disabled" has no criteria: enabled, it would match every ops event.
    assert "rulestest.disabled" not in refs(engine.match("rulestest.ops", {"x": 1}))
    assert engine.rule("rulestest.routed_fallback").type == "backstop"


def test_a_rule_without_enabled_registers_disabled(pack_with):
    loader = pack_with("""
        name: extra
        trigger:
          type: rulestest.ops
        action:
          ref: rulestest.record
    """)
    engine = RuleEngine(loader)
    assert engine.rule("rulestest.extra").enabled is False
    assert "rulestest.extra" not in refs(engine.match("rulestest.ops", {"x": 1}))


REFUSED = [
    ("criteria: {trigger.x: {type: like, pattern: a}}", "operator like not in list"),
    ("criteria: {trigger.x: {type: exists}}", "no pattern specified for operator exists"),
    ("criteria: {trigger.x: {pattern: a}}", "Operator not specified for field: trigger.x"),
    ("colour: red", "'colour' was unexpected"),
    ("pack: other", 'field "pack" is different: other'),
    ("enabled: 'true'", "is not of type 'boolean'"),
]


@pytest.mark.parametrize("extra, fragment", REFUSED, ids=[f for _, f in REFUSED])
def test_registration_refuses_what_st2_refuses(pack_with, extra, fragment):
    loader = pack_with(textwrap.dedent("""
        name: extra
        enabled: true
        trigger:
          type: rulestest.ops
        action:
          ref: rulestest.record
    """) + extra + "\n")
    with pytest.raises(RuleRegistrationError, match="extra.yaml") as raised:
        RuleEngine(loader)
    assert fragment in str(raised.value)


TRIGGERS_REFUSED = [
    ("type: core.st2.webhook", "'url' is a required property"),
    ("{type: core.st2.webhook, parameters: {url: a, path: b}}", "'path' was unexpected"),
    ("{type: rulestest.site_event, parameters: {site: 1}}", "1 is not of type 'string'"),
    ("type: rulestest.nosuch", "A simple trigger should have been created"),
]


@pytest.mark.parametrize("trigger, fragment", TRIGGERS_REFUSED,
                         ids=[f for _, f in TRIGGERS_REFUSED])
def test_registration_checks_trigger_types_and_parameters(pack_with, trigger, fragment):
    loader = pack_with("name: extra\nenabled: true\ntrigger: %s\naction: {ref: rulestest.record}\n"
                       % (trigger if trigger.startswith("{") else "{%s}" % trigger))
    with pytest.raises(RuleRegistrationError) as raised:
        RuleEngine(loader)
    assert fragment in str(raised.value)


# -- criteria ----------------------------------------------------------------------------------

# rule, a payload it matches, a payload it does not (rules/<rule>.yaml says what each tests).
CASES = [
    ("op_equals", {"equals": "web"}, {"equals": "Web"}),
    ("op_eq_int", {"eq": 5}, {"eq": "5"}),  # no casting: "5" is not 5
    ("op_nequals", {"nequals": "db"}, {"nequals": "web"}),
    ("op_iequals", {"iequals": "WEB"}, {"iequals": "webs"}),
    ("op_lessthan", {"lessthan": 9.5}, {"lessthan": "3"}),  # "3" < 10 raises: no match
    ("op_greaterthan", {"greaterthan": 11}, {"greaterthan": 10}),
    ("op_matchwildcard", {"matchwildcard": "web-01"}, {"matchwildcard": "Web-01"}),
    ("op_matchregex", {"matchregex": "web-12 and more"}, {"matchregex": "my web-12"}),  # match
    ("op_regex", {"regex": "my web-12"}, {"regex": "web-12x"}),  # search
    ("op_iregex", {"iregex": "Web-1"}, {"iregex": "db-web"}),
    ("op_contains", {"contains": ["db", "web"]}, {"contains": ["webs"]}),  # pattern in value
    ("op_ncontains", {"ncontains": "db"}, {"ncontains": "my-web"}),
    ("op_icontains", {"icontains": "My-Web-1"}, {"icontains": "db"}),
    ("op_incontains", {"incontains": "db"}, {"incontains": "MY-WEB"}),
    ("op_startswith", {"startswith": "web-1"}, {"startswith": "Web-1"}),
    ("op_istartswith", {"istartswith": "Web-1"}, {"istartswith": "1-web"}),
    ("op_endswith", {"endswith": "web-1"}, {"endswith": "web-10"}),
    ("op_iendswith", {"iendswith": "web-a"}, {"iendswith": "web-b"}),
    ("op_exists", {"exists": 0}, {"exists": None}),
    ("op_nexists", {"other": 1}, {}),  # a rule with criteria never matches an empty payload
    ("op_inside", {"inside": "web"}, {"inside": "we"}),  # value in the pattern list
    ("op_ninside", {"ninside": "cache"}, {"ninside": "db"}),
    ("op_in_text", {"in_text": "b,d"}, {"in_text": "cache"}),  # a string pattern: substring
    ("op_timediff_lt", {"timediff_lt": "2024-01-01T11:59:00Z"},
     {"timediff_lt": "2024-01-01 11:00:00"}),  # naive times are UTC
    ("op_timediff_gt", {"timediff_gt": "2024-01-01T12:00:00+02:00"},
     {"timediff_gt": "2024-01-01T11:59:00Z"}),
    ("op_search",
     {"search": [{"name": "Other", "value": "Approved"}, {"name": "Status", "value": "Approved"}]},
     {"search": [{"name": "Status", "value": "Rejected"}, {"name": "Other", "value": "Approved"}]}),
    ("nested_keys",
     {"nested": {"a": {"b": 1}, "items": [{"name": "first"}, {"name": "second"}]}},
     {"nested": {"a": {"b": 1}, "items": [{"name": "second"}]}}),
    ("one_key_twice", {"between": 3}, {"between": 5}),
    ("quoted_key", {"headers": {"X-Kind": "alert"}}, {"headers": {"x-kind": "alert"}}),
    ("jinja_pattern", {"actual": 5, "expected": 5}, {"actual": 5, "expected": "5"}),
    ("jinja_text_pattern", {"host": "web-3", "index": 3}, {"host": "web-3", "index": 4}),
]


@pytest.mark.parametrize("rule, matching, other", CASES, ids=[c[0] for c in CASES])
def test_criteria(engine, rule, matching, other):
    assert "rulestest." + rule in refs(engine.match("rulestest.ops", matching))
    assert "rulestest." + rule not in refs(engine.match("rulestest.ops", other))


def test_every_criteria_rule_has_a_case_and_every_st2_operator_a_rule(engine):
    ops_rules = {rule.name for rule in engine.rules if rule.trigger_type == "rulestest.ops"}
    assert ops_rules - {case[0] for case in CASES} == {"hyphen_key"}
    used = {criterion["type"] for rule in engine.all_rules for criterion in rule.criteria.values()}
    short = {"eq", "neq", "ieq", "lt", "gt", "td_lt", "td_gt", "in", "nin"}
    assert set(OPERATORS) - short <= used


def test_the_operators_are_st2s_with_their_aliases():
    assert set(OPERATORS) == packcheck.CRITERIA_OPERATORS
    for short, long in [("eq", "equals"), ("neq", "nequals"), ("ieq", "iequals"),
                        ("lt", "lessthan"), ("gt", "greaterthan"), ("in", "inside"),
                        ("nin", "ninside")]:
        assert OPERATORS[short] is OPERATORS[long]


def test_operator_edge_cases_follow_st2():
    assert OPERATORS["equals"]("x", None) is False
    assert OPERATORS["nequals"]("x", None) is True  # the one without a None guard
    assert OPERATORS["equals"](b"web", "web") is True  # bytes are decoded
    assert OPERATORS["contains"]({"web": 1}, "web") is True  # dict: key membership
    assert OPERATORS["inside"]("web", {"web": 1}) is True
    assert OPERATORS["exists"](False, "x") is True
    assert OPERATORS["iequals"]("web", "WEB") is True
    with pytest.raises(TypeError):
        OPERATORS["lessthan"]("3", 10)


def test_an_unquoted_hyphen_in_a_key_never_matches(engine):
    payload = {"headers": {"X-Kind": "alert"}}
    assert "rulestest.hyphen_key" not in refs(engine.match("rulestest.ops", payload))
    [check] = [c for c in engine.explain("rulestest.ops", payload)
               if c.rule == "rulestest.hyphen_key"]
    assert check.matched is False and "Unexpected character: -" in check.reason


def test_search_takes_a_single_object_as_a_list(engine):
    payload = {"search": {"name": "Status", "value": "Approved"}}
    assert "rulestest.op_search" in refs(engine.match("rulestest.ops", payload))


def test_jsonpath_subset():
    data = {"trigger": {"items": [{"n": 1}, {"n": 2}], "s": "abc", "d": {"k": None}}}
    assert jsonpath_find("trigger.items[*].n", data) == [1, 2]
    assert jsonpath_find("trigger.items[1:].n", data) == [2]
    assert jsonpath_find("trigger.items[5].n", data) == []
    assert jsonpath_find("trigger.s[*]", data) == ["abc"]  # a scalar is a one-item list
    assert jsonpath_find("trigger.d.k", data) == [None]  # found, and None
    assert jsonpath_find("trigger.*.k", data) == [None]
    assert jsonpath_find("$.trigger['s']", data) == ["abc"]
    assert jsonpath_find("trigger.s.x", data) == []
    with pytest.raises(UnsupportedCriteria):
        jsonpath_find("trigger..n", data)


def test_a_key_matching_several_values_compares_the_first_only(pack_with):
    loader = pack_with("""
        name: extra
        enabled: true
        trigger:
          type: rulestest.ops
        criteria:
          trigger.names[*]:
            type: equals
            pattern: a
        action:
          ref: rulestest.record
    """)
    engine = RuleEngine(loader)
    assert "rulestest.extra" in refs(engine.match("rulestest.ops", {"names": ["a", "b"]}))
    assert "rulestest.extra" not in refs(engine.match("rulestest.ops", {"names": ["b", "a"]}))
    assert "rulestest.extra" not in refs(engine.match("rulestest.ops", {"names": []}))


def test_unsupported_jsonpath_fails_loudly(pack_with):
    loader = pack_with("""
        name: extra
        enabled: true
        trigger:
          type: rulestest.ops
        criteria:
          trigger..deep:
            type: exists
            pattern: x
        action:
          ref: rulestest.record
    """)
    with pytest.raises(UnsupportedCriteria):
        RuleEngine(loader).match("rulestest.ops", {"deep": 1})


def test_st2kv_in_a_pattern_fails_to_render_unless_made_a_string(pack_with):
    # st2 issue #5260: "{{ st2kv.system.x }}" goes through to_complex and json.dumps refuses the
    # KeyValueLookup, so the rule never matches; "| string" first makes it work.
    loader = pack_with("""
        name: extra
        enabled: true
        trigger:
          type: rulestest.ops
        criteria:
          trigger.plain:
            type: equals
            pattern: "{{ st2kv.system.expected }}"
        action:
          ref: rulestest.record
    """)
    pack_dir = loader.pack_dir
    with open(pack_dir + "/rules/extra2.yaml", "w") as handle:
        handle.write(textwrap.dedent("""
            name: extra2
            enabled: true
            trigger:
              type: rulestest.ops
            criteria:
              trigger.plain:
                type: equals
                pattern: "{{ st2kv.system.expected | string }}"
            action:
              ref: rulestest.record
        """))
    loader = PackLoader(pack_dir)
    loader.datastore.service("rulestest", "Test").set_value("expected", "blue", local=False)
    matched = refs(RuleEngine(loader).match("rulestest.ops", {"plain": "blue"}))
    assert "rulestest.extra2" in matched and "rulestest.extra" not in matched


# -- trigger parameters and backstop rules -----------------------------------------------------


def test_trigger_parameters_must_equal_the_rules(engine):
    assert refs(engine.match("rulestest.site_event", {"message": "m"}, {"site": "a"})) == [
        "rulestest.site_a"]
    assert refs(engine.match("rulestest.site_event", {"message": "m"}, {"site": "b"})) == []
    assert refs(engine.match("rulestest.site_event", {"message": "m"})) == []


def test_a_backstop_rule_fires_only_when_no_standard_rule_did(engine):
    assert refs(engine.match("rulestest.routed", {"asg": "web"})) == ["rulestest.routed_web"]
    assert refs(engine.match("rulestest.routed", {"asg": "db"})) == ["rulestest.routed_fallback"]


# -- action parameters -------------------------------------------------------------------------

TYPED = {"text": "web", "count": 5, "flag": True, "body": {"a": [1, None, True], "b": "x"},
         "tags": ["a", "b"], "ratio": 1.5}


def test_jinja_params_are_cast_to_the_declared_types(engine):
    match = only(engine.match("rulestest.typed", TYPED), "typed")
    assert match.error is None
    # Each value was rendered to text ("5", "True", "{'a': [1, None, True], ...}") first.
    assert match.parameters == TYPED
    assert type(match.parameters["count"]) is int and type(match.parameters["flag"]) is bool
    assert type(match.parameters["ratio"]) is float


def test_text_in_the_payload_is_cast_too(engine):
    payload = dict(TYPED, count="12", flag="false", body='{"from": "json"}', tags="['x']",
                   ratio="2")
    match = only(engine.match("rulestest.typed", payload), "typed")
    assert match.parameters == {"text": "web", "count": 12, "flag": False,
                                "body": {"from": "json"}, "tags": ["x"], "ratio": 2.0}


@pytest.mark.parametrize("change, fragment", [
    ({"count": "many"}, "invalid literal for int() with base 10: 'many'"),
    ({"count": 1.5}, "invalid literal for int() with base 10: '1.5'"),
    ({"count": None}, "invalid literal for int() with base 10: 'None'"),
    ({"flag": "yes"}, "malformed node or string"),
    ({"text": 5}, None),  # rendered to "5": a string parameter takes it
    ({"body": "plain words"}, "invalid syntax"),
])
def test_values_that_do_not_cast_fail_the_enforcement(engine, change, fragment):
    match = only(engine.match("rulestest.typed", dict(TYPED, **change)), "typed")
    if fragment is None:
        assert match.error is None and match.parameters["text"] == "5"
    else:
        assert fragment in match.error and match.parameters == {}


def test_a_missing_payload_key_fails_rendering(engine):
    payload = {k: v for k, v in TYPED.items() if k != "ratio"}
    match = only(engine.match("rulestest.typed", payload), "typed")
    assert match.error.startswith('Failed to render parameter "ratio"')
    assert "has no attribute 'ratio'" in match.error


def test_literal_and_structured_params(engine):
    match = only(engine.match("rulestest.typed", TYPED), "typed_literal")
    # Jinja inside an object renders inside its JSON text: every value stays a string.
    assert match.parameters == {"text": "literal", "count": 7, "flag": True,
                                "body": {"asg": "web", "count": "5"}, "tags": ["web", "fixed"]}


def test_a_jinja_default_is_rendered_from_the_given_parameters(engine):
    [match] = engine.match("rulestest.greet", {"who": "ann"})
    assert match.parameters == {"name": "ann", "greeting": "hello ann"}


def test_undeclared_parameters_and_missing_actions_fail(pack_with):
    loader = pack_with("""
        name: extra
        enabled: true
        trigger:
          type: rulestest.greet
        action:
          ref: rulestest.greet
          parameters:
            name: "{{ trigger.who }}"
            colour: "{{ trigger.who }}"
    """)
    with open(loader.pack_dir + "/rules/extra2.yaml", "w") as handle:
        handle.write("name: extra2\nenabled: true\ntrigger: {type: rulestest.greet}\n"
                     "action: {ref: rulestest.nosuch}\n")
    loader = PackLoader(loader.pack_dir)
    reactor = Reactor(loader, engine=RuleEngine(loader))
    results = {match.rule: (match, result)
               for match, result in reactor.handle("rulestest.greet", {"who": "ann"})}
    match, result = results["rulestest.extra"]
    assert match.parameters["colour"] == "ann"  # passed on, uncast
    assert result.status == "failed"
    assert result.errors == [{"type": "enforcement",
                              "message": "Additional properties are not allowed "
                                         "('colour' was unexpected)"}]
    match, result = results["rulestest.extra2"]
    assert match.error == 'Action "rulestest.nosuch" doesn\'t exist'
    assert result.status == "failed" and result.errors[0]["type"] == "enforcement"
    assert results["rulestest.greet"][1].status == "succeeded"


def test_st2kv_and_action_context_in_params(pack_with):
    loader = pack_with("""
        name: extra
        enabled: true
        trigger:
          type: rulestest.greet
        action:
          ref: rulestest.record
          parameters:
            text: "{{ st2kv.system.autoscale.owner }}: {{ action_context.rule.name }}"
            tags: ["{{ action_context.user }}", "{{ config_context | length }}"]
    """)
    loader.datastore.service("rulestest", "Test").set_value(
        "autoscale.owner", "ops", local=False)
    match = only(RuleEngine(loader).match("rulestest.greet", {"who": "ann"}), "extra")
    assert match.parameters == {"text": "ops: extra", "tags": ["stanley", "0"]}


def test_a_template_given_for_a_parameter_with_a_template_default_loses(pack_with):
    # util/param.py: a parameter given as a template has no "value" yet, so _process_defaults
    # processes its default too, and networkx's add_node replaces the node's template.
    loader = pack_with("""
        name: extra
        enabled: true
        trigger:
          type: rulestest.greet
        action:
          ref: rulestest.greet
          parameters:
            name: "{{ trigger.who }}"
            greeting: "bye {{ trigger.who }}"
    """)
    with open(loader.pack_dir + "/rules/extra2.yaml", "w") as handle:
        handle.write("name: extra2\nenabled: true\ntrigger: {type: rulestest.greet}\n"
                     "action: {ref: rulestest.greet, parameters: {name: x, greeting: bye}}\n")
    matches = RuleEngine(PackLoader(loader.pack_dir)).match("rulestest.greet", {"who": "ann"})
    assert only(matches, "extra").parameters == {"name": "ann", "greeting": "hello ann"}
    assert only(matches, "extra2").parameters == {"name": "x", "greeting": "bye"}


# -- the reactor -------------------------------------------------------------------------------


def test_a_rule_runs_its_workflow(reactor):
    [(match, result)] = reactor.handle("rulestest.routed", {"asg": "web", "size": 3})
    assert match.parameters == {"asg": "web", "size": 3}
    assert result.status == "succeeded", result.errors
    assert result.output["recorded"]["text"] == "web"
    assert result.output["recorded"]["count"] == 3
    assert result.task_ids() == ["record"]


def test_a_rule_runs_a_python_action(reactor):
    [(match, result)] = reactor.handle("rulestest.routed", {"asg": "db"})
    assert match.rule == "rulestest.routed_fallback"
    assert isinstance(result, ActionExecutionResult)
    assert result.status == "succeeded"
    assert result.output["text"] == "fallback db"
    assert result.result == {"stdout": "", "stderr": "", "exit_code": 0,
                             "result": result.output}


def test_a_python_action_returning_false_fails(reactor):
    [(_, result)] = reactor.handle("rulestest.site_event", {"message": "fail"}, {"site": "a"})
    assert result.status == "failed"
    assert result.result["result"] == {"refused": "fail"}


def test_a_bad_cast_runs_nothing(reactor):
    [(match, result), _] = reactor.handle("rulestest.typed", dict(TYPED, count="many"))
    assert match.rule == "rulestest.typed"  # rules/typed.yaml sorts before typed_literal.yaml
    assert result.status == "failed" and result.errors[0]["type"] == "enforcement"
    assert result.tasks == [] and not isinstance(result, ActionExecutionResult)


def test_sensor_dispatches_wait_in_the_queue_until_drained(reactor):
    sensor = reactor.sensor("EventsSensor")
    sensor.emit("routed", {"asg": "db"})
    sensor.emit("routed", {"size": 1})  # fails the payload schema: dropped by st2
    assert reactor.pending == 1 and reactor.handled == []
    assert len(sensor.sensor_service.dropped) == 1
    [(match, result)] = reactor.drain()
    assert match.rule == "rulestest.routed_fallback" and result.status == "succeeded"
    assert reactor.pending == 0 and reactor.drain() == []
    assert [h.trigger for h in reactor.handled] == ["rulestest.routed"]


def test_drain_waits_for_a_dispatch_from_another_thread(reactor):
    sensor = reactor.sensor("EventsSensor")
    timer = threading.Timer(0.2, sensor.emit, args=("routed", {"asg": "web"}))
    timer.start()
    try:
        done = reactor.drain(timeout=5)
    finally:
        timer.join()
    assert refs(m for m, _ in done) == ["rulestest.routed_web"]
    assert reactor.results_for("rulestest.routed_web")[0].status == "succeeded"


def test_dispatch_validates_the_payload_like_st2(reactor):
    assert reactor.dispatch("rulestest.nosuch", {}) is None
    assert reactor.dispatch("rulestest.routed", {"size": 1}) is None
    assert [d.trigger for d in reactor.dropped] == ["rulestest.nosuch", "rulestest.routed"]
    assert "doesn't exist in the database" in reactor.dropped[0].reason
    assert reactor.handled == []
    assert len(reactor.dispatch("rulestest.routed", {"asg": "db"})) == 1


def test_every_trigger_instance_is_recorded(reactor):
    reactor.handle("rulestest.routed", {"asg": "web"})
    reactor.handle("rulestest.site_event", {"message": "m"}, {"site": "b"})
    assert [(h.trigger, len(h.results)) for h in reactor.handled] == [
        ("rulestest.routed", 1), ("rulestest.site_event", 0)]
    assert [m.rule for m, _ in reactor.results] == ["rulestest.routed_web"]


# -- webhooks ----------------------------------------------------------------------------------


def test_json_webhook_fires_every_trigger_on_the_hook(reactor):
    body = {"incident": {"id": 7, "state": "open"}, "ok": True}
    response = reactor.post_webhook("/api/v1/webhooks/newrelic", body)
    assert response.status == 202 and response.body == body
    assert response.payload["body"] == body
    results = {match.rule: result for match, result in response.results}
    assert set(results) == {"rulestest.hook_newrelic", "rulestest.hook_newrelic_slashes"}
    assert results["rulestest.hook_newrelic"].output["body"] == body
    assert results["rulestest.hook_newrelic"].output["text"] == "application/json"
    assert results["rulestest.hook_newrelic_slashes"].output["text"] == "slashes"


def test_form_webhook_body_is_parse_qs(reactor):
    response = reactor.post_webhook(
        "newrelic", "state=open&tag=a&tag=b&empty=",
        {"Content-Type": "application/x-www-form-urlencoded; charset=utf-8"})
    assert response.status == 202
    assert response.payload["body"] == {"state": ["open"], "tag": ["a", "b"]}
    result = reactor.results_for("rulestest.hook_newrelic")[0]
    assert result.output["body"] == {"state": ["open"], "tag": ["a", "b"]}
    assert result.output["text"] == "application/x-www-form-urlencoded; charset=utf-8"


def test_webhook_headers_as_st2api_passes_them(reactor):
    response = reactor.post_webhook("newrelic", {}, {
        "x-newrelic-id": "7", "St2-Api-Key": "secret", "X-Auth-Token": "t", "cookie": "c",
        "St2-Trace-Tag": "trace"})
    headers = response.payload["headers"]
    assert headers == {"X-Newrelic-Id": "7", "Content-Type": "application/json",
                       "Content-Length": "2"}
    assert response.payload["headers_lower"] == {k.lower(): v for k, v in headers.items()}


def test_webhook_criteria_see_the_body(reactor):
    assert len(reactor.post_webhook("other", {"kind": "deploy"}).results) == 1
    response = reactor.post_webhook("other", {"kind": "alert"})
    assert response.status == 202 and response.results == []


@pytest.mark.parametrize("url, status", [
    ("nosuch", 404),
    ("newrelic/", 404),  # the posted hook is not normalised, the rules' urls are
    ("dormant", 202),  # its rule is disabled, but the trigger (and hook) exist
])
def test_webhook_hooks(reactor, url, status):
    response = reactor.post_webhook(url, {"a": 1})
    assert response.status == status
    assert response.results == []
    if status == 404:
        assert response.body == {"faultstring": "Webhook %s not registered with st2" % url}


@pytest.mark.parametrize("body, headers, fragment", [
    ("[1", {"Content-Type": "application/json"}, "Failed to parse request body"),
    ("42", {}, "42 is not of type 'object', 'array'"),
    ("text", {"Content-Type": "text/plain"}, "is not of type 'object', 'array'"),
    ("<a/>", {"Content-Type": "application/xml"}, 'Unsupported Content-Type: "application/xml"'),
    ("{}", {"Content-Type": "Application/JSON"}, "Unsupported Content-Type"),
])
def test_webhook_bodies_st2api_refuses(reactor, body, headers, fragment):
    response = reactor.post_webhook("newrelic", body, headers)
    assert response.status == 400 and fragment in response.body["faultstring"]
    assert reactor.handled == []


def test_an_empty_webhook_body_is_an_empty_object(reactor):
    response = reactor.post_webhook("newrelic")
    assert response.status == 202 and response.payload["body"] == {}
    assert len(response.results) == 2


def test_the_generic_st2_webhook(reactor):
    response = reactor.post_webhook(
        "st2", {"trigger": "rulestest.routed", "payload": {"asg": "db"}})
    assert response.status == 202
    assert [m.rule for m, _ in response.results] == ["rulestest.routed_fallback"]
    response = reactor.post_webhook("st2", {"trigger": "rulestest.routed", "payload": {}})
    assert response.status == 400 and "'asg' is a required property" in response.body[
        "faultstring"]
    assert reactor.post_webhook("st2", {"payload": {}}).body == {
        "faultstring": "Trigger not specified."}
