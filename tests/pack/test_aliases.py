"""The pack's ChatOps aliases, checked with StackStorm's own matching rules (st2harness.aliases):
the original README's commands, exactly as written, reach the right action with the right
parameters, and the ack and result messages read well in Slack."""

import pytest

from st2harness import PackLoader
from st2harness.aliases import (
    ActionAliasAmbiguityException,
    cast_params,
    load_aliases,
    make_execution,
    match_command,
    render_ack,
    render_result,
)
from support.paths import ROOT

ALIASES = load_aliases(ROOT)
LOADER = PackLoader(ROOT)


def run_command(command):
    """What st2 would execute for a chat command: action ref and parameters, cast to the
    action's types and validated against its schema (as the alias execution API does)."""
    alias, _, params = match_command(ALIASES, command)
    action = LOADER.action(alias.action_ref.split(".", 1)[1])
    cast = cast_params(params, action.meta.get("parameters") or {})
    action.validate(cast)  # raises as st2 would refuse the execution
    return alias, alias.action_ref, cast


# The original 2015 README's commands, character for character, then the new ones.
@pytest.mark.parametrize("command, action, params", [
    ("!asg create name=XXX domain=YYY", "autoscale.asg_create",
     {"name": "XXX", "domain": "YYY"}),
    ("!asg node add asg=XXX", "autoscale.asg_add_node", {"asg": "XXX"}),
    ("!asg expand asg=XXX", "autoscale.asg_expand", {"asg": "XXX"}),
    ("!asg node delete name=ZZZ asg=XXX", "autoscale.asg_remove_node",
     {"name": "ZZZ", "asg": "XXX"}),
    ("!asg deflate asg=XXX", "autoscale.asg_deflate", {"asg": "XXX"}),
    ("!asg delete name=XXX", "autoscale.asg_delete", {"name": "XXX"}),
    ("!asg status asg=web", "autoscale.asg_status", {"asg": "web"}),
    ("!asg list", "autoscale.asg_list", {}),
    ("!asg pause asg=web", "autoscale.asg_pause", {"asg": "web"}),
    ("!asg resume asg=web", "autoscale.asg_resume", {"asg": "web"}),
    ("!asg create name=web domain=example.com min=2 max=10", "autoscale.asg_create",
     {"name": "web", "domain": "example.com", "min": 2, "max": 10}),
    ("!asg create name=web domain=example.com chef_run_list=\"role[web], recipe[app]\"",
     "autoscale.asg_create",
     {"name": "web", "domain": "example.com", "chef_run_list": ["role[web]", "recipe[app]"]}),
    ("!asg expand asg=web count=3", "autoscale.asg_expand", {"asg": "web", "count": 3}),
    ("!asg delete name=web force=true", "autoscale.asg_delete", {"name": "web", "force": True}),
    ("asg node add asg=web cause=\"load test\"", "autoscale.asg_add_node",
     {"asg": "web", "cause": "load test"}),
    ('!asg create name=checkout domain=example.com match_labels={"service": "checkout", '
     '"env": ["prod", "dr"]}', "autoscale.asg_create",
     {"name": "checkout", "domain": "example.com",
      "match_labels": {"service": "checkout", "env": ["prod", "dr"]}}),
])
def test_commands_reach_their_action_with_their_parameters(command, action, params):
    _, ref, cast = run_command(command)
    assert ref == action
    assert cast == params


@pytest.mark.parametrize("command", [
    "!asg explode asg=web",
    "!asg node add",  # matches, but the action requires asg
    "!asg expand asg=web count=many",
    "!asg create name=web domain=example.com max_szie=4",
])
def test_bad_commands_are_refused(command):
    with pytest.raises((ActionAliasAmbiguityException, ValueError, Exception)):
        run_command(command)


def test_every_alias_points_at_an_action_and_every_command_is_unambiguous():
    formats = [fmt for alias in ALIASES for fmt in alias.formats]
    assert len(formats) == len(set(formats)) == 10
    for alias in ALIASES:
        LOADER.action(alias.action_ref.split(".", 1)[1])


def ack_text(command):
    alias, _, params = match_command(ALIASES, command)
    return render_ack(alias, params, execution=make_execution(alias, params)).text


def test_acks_say_what_is_starting():
    assert ack_text("!asg create name=web domain=example.com") == (
        "Creating group *web* (web.example.com) and its first nodes…")
    assert ack_text("!asg node delete name=web-3f9a1c asg=web") == (
        "Draining and removing `web-3f9a1c` from *web*…")
    assert ack_text("!asg node delete asg=web") == "Draining and removing a node from *web*…"
    assert ack_text("!asg status asg=web") is None  # the answer itself is quick


def result_text(command, status, result):
    alias, _, params = match_command(ALIASES, command)
    runner = "orquesta" if "output" in result else "python-script"
    message = render_result(alias, make_execution(alias, params, status=status, result=result,
                                                  runner=runner))
    assert not message.default_template, "no raw key : value dump"
    return message.message


def test_results_read_well():
    group = {"name": "web", "domain": "example.com", "desired": 2, "min_size": 2,
             "max_size": 10}
    assert result_text("!asg create name=web domain=example.com", "succeeded",
                       {"output": {"group": group, "existed": False}}) == (
        "Group *web* is ready: 2 node(s), min 2, max 10, behind web.example.com.")
    assert result_text("!asg create name=web domain=example.com", "failed",
                       {"output": {"error": "group web exists with max_size 4, not 10"}}) == (
        "Could not create group *web*: group web exists with max_size 4, not 10")
    assert result_text("!asg node add asg=web", "succeeded",
                       {"output": {"node": "web-3f9a1c", "address": "10.0.0.5"}}) == (
        "Node `web-3f9a1c` (10.0.0.5) is in service in *web*.")
    assert result_text("!asg expand asg=web", "succeeded",
                       {"output": {"planned": 0, "cause": "the group is at its maximum of 4"}}
                       ) == "*web*: nothing added: the group is at its maximum of 4."
    assert result_text("!asg deflate asg=web", "succeeded",
                       {"output": {"planned": 1, "cause": "requested 1"}}) == (
        "*web*: removed 1 node(s) (requested 1).")
    assert result_text("!asg delete name=web", "failed", {"output": {
        "error": "group web has 2 node(s) in service; to drain and remove them, run: "
                 "!asg delete name=web force=true"}}).endswith("force=true")
    assert result_text("!asg status asg=web", "succeeded",
                       {"result": {"text": "*web*: 2 in service"}, "exit_code": 0}) == (
        "*web*: 2 in service")
    assert result_text("!asg pause asg=web", "failed",
                       {"result": {"error": "no autoscaling group named 'web'"}}) == (
        "no autoscaling group named 'web'")
