"""Tests for tests/pack/packcheck.py, the StackStorm-faithful static checks of the pack.

Each test builds a small, valid pack in tmp_path (``GOOD_PACK``), breaks exactly one thing and
asserts that the matching check reports it — so a check that always returns [] fails here.
"""

import os
import sys
import textwrap

import pytest
import yaml

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import packcheck  # noqa: E402
from packcheck import (  # noqa: E402
    check_actions,
    check_aliases,
    check_config_schema,
    check_pack,
    check_pack_yaml,
    check_policies,
    check_rules,
    check_sensors,
    check_trigger_schemas,
    check_workflows,
    check_yaml_parses,
    is_secret_name,
)

from support.paths import ROOT  # noqa: E402

GOOD_PACK = {
    "pack.yaml": """
        ---
        ref: autoscale
        name: autoscale
        description: A pack for testing packcheck.
        version: 0.1.0
        author: Tester
        email: tester@example.com
        python_versions:
          - "3"
    """,
    "config.schema.yaml": """
        ---
        slack:
          type: object
          required: true
          properties:
            token:
              type: string
              secret: true
              required: true
            channel:
              type: string
              default: "#ops"
        dns:
          type: object
          properties:
            tsig_key_name:
              type: string
            tsig_secret:
              type: string
              secret: true
            ssh_pub_key:
              type: string
        poll_seconds:
          type: integer
          default: 30
    """,
    "autoscale.yaml.example": """
        ---
        slack:
          token: "{{ st2kv.system.slack_token }}"
          channel: "#ops"
        poll_seconds: 30
    """,
    "actions/hello.yaml": """
        ---
        name: hello
        runner_type: python-script
        entry_point: hello.py
        enabled: true
        parameters:
          name:
            type: string
            required: true
          count:
            type: integer
            default: 1
          timeout:
            default: 30
    """,
    "actions/hello.py": """
        from st2common.runners.base_action import Action


        class Hello(Action):
            def run(self, name, count=1):
                return True, {"greeting": "hello " * count + name}
    """,
    "actions/scale.yaml": """
        ---
        name: scale
        runner_type: orquesta
        entry_point: workflows/scale.yaml
        parameters:
          asg:
            type: string
            required: true
          step:
            type: integer
            default: 1
    """,
    "actions/workflows/scale.yaml": """
        ---
        version: 1.0
        input:
          - asg
          - step
        vars:
          - greeting: null
        tasks:
          greet:
            action: autoscale.hello name=<% ctx().asg %>
            next:
              - when: <% succeeded() %>
                publish:
                  - greeting: <% result().result %>
                do: notify, log
              - when: <% failed() %>
                do: fail
          notify:
            action: chatops.post_message
            input:
              channel: ops
              message: "{{ ctx().greeting }}"
          log:
            action: core.echo
            input:
              message: "{{ ctx('asg') }} by {{ ctx().step }}"
            next:
              - do:
                  - noop
        output:
          - greeting: <% ctx().greeting %>
    """,
    "sensors/watcher.yaml": """
        ---
        class_name: Watcher
        entry_point: watcher.py
        poll_interval: 30
        trigger_types:
          - name: alert
            description: An alert about a group.
            payload_schema:
              type: object
              properties:
                asg:
                  type: string
                  required: true
                severity:
                  type: string
                  enum: [warning, critical]
    """,
    "sensors/watcher.py": """
        from st2reactor.sensor.base import PollingSensor


        class Watcher(PollingSensor):
            def setup(self):
                pass

            def poll(self):
                self.sensor_service.dispatch(trigger="autoscale.alert", payload={"asg": "web"})

            def cleanup(self):
                pass

            def add_trigger(self, trigger):
                pass

            def update_trigger(self, trigger):
                pass

            def remove_trigger(self, trigger):
                pass
    """,
    "rules/on_alert.yaml": """
        ---
        name: on_alert
        pack: autoscale
        enabled: true
        trigger:
          type: autoscale.alert
        criteria:
          trigger.severity:
            type: equals
            pattern: critical
        action:
          ref: autoscale.scale
          parameters:
            asg: "{{ trigger.asg }}"
    """,
    "rules/every_minute.yaml": """
        ---
        name: every_minute
        enabled: true
        trigger:
          type: core.st2.IntervalTimer
          parameters:
            unit: minutes
            delta: 1
        action:
          ref: core.noop
    """,
    "aliases/hello.yaml": """
        ---
        name: hello
        action_ref: autoscale.hello
        description: Say hello.
        formats:
          - "hello {{ name }}"
          - display: "greet <name> [count]"
            representation:
              - "greet {{ name }} {{ count=1 }} times"
        immutable_parameters:
          timeout: 10
    """,
    "policies/hello_concurrency.yaml": """
        ---
        name: autoscale.hello_concurrency
        resource_ref: autoscale.hello
        policy_type: action.concurrency.attr
        parameters:
          threshold: 1
          attributes:
            - name
    """,
    "policies/scale_retry.yaml": """
        ---
        name: autoscale.scale_retry
        resource_ref: autoscale.scale
        policy_type: action.retry
        parameters:
          retry_on: failure
          max_retry_count: 2
    """,
}


class PackBuilder:
    """A minimal valid pack on disk, plus helpers to break one thing at a time."""

    def __init__(self, root):
        self.root = root
        for rel, text in GOOD_PACK.items():
            self.write(rel, text)

    def path(self, rel):
        return os.path.join(str(self.root), rel)

    def write(self, rel, text):
        path = self.path(rel)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "w", encoding="utf-8") as handle:
            handle.write(textwrap.dedent(text).lstrip("\n"))
        return path

    def remove(self, rel):
        os.remove(self.path(rel))

    def edit(self, rel, change):
        """Load the YAML file, let ``change`` mutate it in place, save it."""
        with open(self.path(rel), encoding="utf-8") as handle:
            data = yaml.safe_load(handle)
        change(data)
        with open(self.path(rel), "w", encoding="utf-8") as handle:
            yaml.safe_dump(data, handle, sort_keys=False)

    def __str__(self):
        return str(self.root)


@pytest.fixture
def pack(tmp_path):
    return PackBuilder(tmp_path / "autoscale")


def assert_problem(problems, *fragments):
    """Some problem mentions every fragment."""
    for problem in problems:
        if all(fragment in problem for fragment in fragments):
            return problem
    raise AssertionError("no problem mentions %r; got:\n  %s" % (fragments, "\n  ".join(problems)))


def assert_reported(check, pack, *fragments):
    """The check reports it, and so does check_pack."""
    problem = assert_problem(check(str(pack)), *fragments)
    assert problem in check_pack(str(pack))
    return problem


def broken(change, *fragments, id):
    """A table row: the edit that breaks a file, and the fragments of the expected problem."""
    return pytest.param(change, fragments, id=id)


# ------------------------------------------------------------------------------------------
# The real pack, the good pack, an empty pack
# ------------------------------------------------------------------------------------------


def test_the_real_pack_has_no_problems():
    assert check_pack(ROOT) == []


@pytest.mark.parametrize("check", packcheck.ALL_CHECKS, ids=lambda c: c.__name__)
def test_the_good_test_pack_passes_every_check(pack, check):
    assert check(str(pack)) == []


def test_a_pack_with_only_pack_yaml_passes(tmp_path):
    (tmp_path / "pack.yaml").write_text(textwrap.dedent(GOOD_PACK["pack.yaml"]))
    assert check_pack(str(tmp_path)) == []


def test_check_pack_runs_every_public_check():
    public = {name for name in packcheck.__all__ if name.startswith("check_")} - {"check_pack"}
    assert {check.__name__ for check in packcheck.ALL_CHECKS} == public


def test_problems_name_the_file(pack):
    pack.edit("rules/on_alert.yaml", lambda d: d["trigger"].update(type="autoscale.nope"))
    assert check_rules(str(pack))[0].startswith("rules/on_alert.yaml: ")


# What every metadata folder gets: {file: (its check, the name it registers under)}.
RESOURCES = {
    "actions/hello.yaml": (check_actions, "hello"),
    "rules/on_alert.yaml": (check_rules, "on_alert"),
    "aliases/hello.yaml": (check_aliases, "hello"),
    "sensors/watcher.yaml": (check_sensors, "Watcher"),
    "policies/hello_concurrency.yaml": (check_policies, "autoscale.hello_concurrency"),
}


@pytest.mark.parametrize("rel", RESOURCES)
@pytest.mark.parametrize("change, fragments", [
    broken(lambda d: d.update(colour="red"), "unknown key(s) colour", id="unknown_key"),
    broken(lambda d: d.update(pack="other"), "pack 'other' differs", id="pack_field_must_match"),
    broken(lambda d: d.update(enabled="yes"), "enabled must be true or false", id="enabled"),
])
def test_every_metadata_file_gets_the_api_model_checks(pack, rel, change, fragments):
    pack.edit(rel, change)
    assert_reported(RESOURCES[rel][0], pack, rel, *fragments)


@pytest.mark.parametrize("rel", RESOURCES)
def test_duplicate_names(pack, rel):
    check, name = RESOURCES[rel]
    copy = rel.replace(".yaml", "2.yaml")
    pack.write(copy, open(pack.path(rel)).read())
    assert_reported(check, pack, copy, repr(name), "also used by " + rel)


# ------------------------------------------------------------------------------------------
# 1. YAML parses
# ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("rel, text, fragment", [
    ("docs/broken.yaml", "key: [unclosed\n", "does not parse"),
    ("actions/broken.yml", "name: x\n  bad: indent\n", "does not parse"),
    ("rules/dup.yaml", "name: a\nname: b\n", "duplicate key 'name'"),
    ("rules/broken.json", "{not json", "JSON does not parse"),
], ids=["yaml", "yml_extension_too", "duplicate_yaml_keys", "json_metadata"])
def test_files_that_do_not_parse(pack, rel, text, fragment):
    pack.write(rel, text)
    assert_reported(check_yaml_parses, pack, rel, fragment)


def test_yaml_under_skipped_directories_is_ignored(pack):
    for folder in (".venv", ".git", "tests", "node_modules", "__pycache__"):
        pack.write(folder + "/broken.yaml", "key: [unclosed\n")
    assert check_yaml_parses(str(pack)) == []


# ------------------------------------------------------------------------------------------
# 9. pack.yaml
# ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("change, fragments", [
    *[broken(lambda d, v=version: d.update(version=v), "not semver", id="version_%r" % (version,))
      for version in ["1.0", 1.0, "v1.0.0", "01.2.3", "1.2"]],
    *[broken(lambda d, k=key: d.pop(k), repr(key), "required", id="required_" + key)
      for key in ["name", "description", "author", "email", "version"]],
    *[broken(lambda d, r=ref: d.update(ref=r), "ref", "lowercase", id="ref_" + ref)
      for ref in ["auto-scale", "AutoScale", "auto.scale"]],
    broken(lambda d: d.update(ref="core"), "reserved", id="reserved_ref"),
    broken(lambda d: d.update(python_versions=[3]), "python_versions", "strings",
           id="python_versions_as_numbers"),
    broken(lambda d: d.update(python_versions=["2"]), "python_versions", 'include "3"',
           id="python_versions_without_3"),
    broken(lambda d: d.pop("python_versions"), "python_versions", id="python_versions_missing"),
    broken(lambda d: d.update(stackstorm_version="3.9"), "stackstorm_version",
           id="stackstorm_version_pattern"),
])
def test_broken_pack_yaml(pack, change, fragments):
    pack.edit("pack.yaml", change)
    assert_reported(check_pack_yaml, pack, "pack.yaml", *fragments)


@pytest.mark.parametrize("key, value", [
    ("version", "0.1.0"), ("version", "1.2.3-rc.1"), ("version", "2.0.0+build.5"),
    ("stackstorm_version", ">=3.9.0, <4.0.0"),
])
def test_valid_pack_yaml_values_pass(pack, key, value):
    pack.edit("pack.yaml", lambda d: d.update({key: value}))
    assert check_pack_yaml(str(pack)) == []


def test_pack_yaml_missing(pack):
    pack.remove("pack.yaml")
    assert_reported(check_pack_yaml, pack, "pack.yaml", "missing")


# ------------------------------------------------------------------------------------------
# 2. Actions
# ------------------------------------------------------------------------------------------

HELLO = "actions/hello.yaml"


def positions(**by_name):
    return lambda d: [d["parameters"][name].update(position=p) for name, p in by_name.items()]


@pytest.mark.parametrize("change, fragments", [
    *[broken(lambda d, e=entry_point: d.update(entry_point=e), "normalized", id=entry_point)
      for entry_point in ["./hello.py", "lib//hello.py", "lib/../hello.py"]],
    broken(lambda d: d.update(entry_point="nope.py"), "'nope.py' does not exist",
           id="entry_point_must_exist"),
    broken(lambda d: d.pop("entry_point"), "needs an entry_point",
           id="runner_that_needs_an_entry_point"),
    *[broken(lambda d, k=key: d.pop(k), repr(key), "required", id="required_" + key)
      for key in ["name", "runner_type"]],
    broken(lambda d: d.update(paramaters={}), "paramaters", id="unknown_top_level_key"),
    *[broken(lambda d, t=bad_type: d["parameters"]["name"].update(type=t), "parameter 'name'",
             "type", id="parameter_type_%s" % (bad_type,))
      for bad_type in ["str", "int", "objekt", ["string", "null"]]],
    broken(lambda d: d["parameters"].update({"asg-name": {"type": "string"}}), "'asg-name'",
           "invalid name", id="parameter_name_must_be_a_word"),
    *[broken(lambda d, a=attribute: d["parameters"]["name"].update({a: "x"}), "parameter 'name'",
             attribute, "not allowed", id="parameter_attribute_" + attribute)
      for attribute in ["format", "requried", "$ref"]],
    broken(lambda d: d["parameters"]["name"].update(required="yes"), "parameter 'name'",
           "'required' must be true or false", id="parameter_required_must_be_boolean"),
    broken(lambda d: d["parameters"].update(
        {"opts": {"type": "object", "properties": {"depth": {"type": "int"}}}}),
        "opts.depth", "'int'", id="nested_parameter_types_are_checked"),
    broken(lambda d: d["parameters"].update({"timeout": {"type": "string", "default": "30"}}),
           "'timeout'", "runner parameter", "'type'",
           id="runner_parameter_type_cannot_be_overridden"),
    broken(positions(name=0, count=0), "same position 0", id="parameter_positions_unique"),
    broken(positions(name=0, count=2), "not contiguous", id="parameter_positions_contiguous"),
    broken(lambda d: d["parameters"]["name"].update(immutable=True),
           "immutable parameter 'name' needs a default", id="immutable_parameter_needs_a_default"),
])
def test_broken_action_metadata(pack, change, fragments):
    pack.edit(HELLO, change)
    assert_reported(check_actions, pack, HELLO, *fragments)


def test_entry_point_climbing_out_of_actions_is_rejected(pack):
    # The file exists (so only the st2 path rule can catch it): st2 registers this action
    # but every run fails in content/utils.py get_pack_file_abs_path().
    pack.write("workflows/scale.yaml", GOOD_PACK["actions/workflows/scale.yaml"])
    pack.edit("actions/scale.yaml", lambda d: d.update(entry_point="../workflows/scale.yaml"))
    assert_reported(check_actions, pack, "actions/scale.yaml", "../workflows/scale.yaml",
                    "normalized")


def test_absolute_entry_point_is_rejected(pack):
    pack.edit(HELLO, lambda d: d.update(entry_point=pack.path("actions/hello.py")))
    assert_reported(check_actions, pack, HELLO, "relative")


def test_cmd_runner_refuses_an_entry_point(pack):
    pack.write("actions/shell.yaml", """
        name: shell
        runner_type: local-shell-cmd
        entry_point: hello.py
        parameters:
          cmd:
            default: "true"
    """)
    assert_reported(check_actions, pack, "actions/shell.yaml", "refuses")


def test_unknown_runner_mistral(pack):
    pack.edit("actions/scale.yaml", lambda d: d.update(runner_type="mistral-v2"))
    assert_reported(check_actions, pack, "actions/scale.yaml", "'mistral-v2'",
                    "not a StackStorm 3.9 runner")


@pytest.mark.parametrize("runner", ["local-shell-cmd", "noop", "http-request", "inquirer",
                                    "announcement", "winrm-ps-cmd", "remote-shell-cmd"])
def test_runners_without_entry_point_are_known(pack, runner):
    pack.write("actions/other.yaml", "name: other\nrunner_type: %s\n" % runner)
    assert check_actions(str(pack)) == []


def test_all_st2_39_runners_are_known():
    assert set(packcheck.RUNNERS) >= {
        "action-chain", "announcement", "http-request", "inquirer", "local-shell-cmd",
        "local-shell-script", "noop", "orquesta", "python-script", "remote-shell-cmd",
        "remote-shell-script", "winrm-cmd", "winrm-ps-cmd", "winrm-ps-script",
    }
    assert "mistral-v2" not in packcheck.RUNNERS


HELLO_ACTION_PY = """
    from st2common.runners.base_action import Action


    class Hello(Action):
        def run(%s):
            return True
"""


@pytest.mark.parametrize("source, fragments", [
    pytest.param("class Hello(Action:\n    pass\n", ["does not parse"], id="syntax_error"),
    pytest.param(HELLO_ACTION_PY % "self, name", ["does not accept declared parameter 'count'"],
                 id="run_missing_a_declared_parameter"),
    pytest.param(HELLO_ACTION_PY % "self, name, count, region",
                 ["requires 'region', which is not a declared parameter"],
                 id="run_requiring_an_undeclared_argument"),
    # "timeout" is declared, but it is a python-script runner parameter: st2 keeps it.
    pytest.param(HELLO_ACTION_PY % "self, name, count, timeout",
                 ["requires 'timeout'", "runner parameter"], id="run_requiring_a_runner_parameter"),
    # Optional in run() and declared: the action believes it can be tuned, st2 never passes it.
    pytest.param(HELLO_ACTION_PY % "self, name, count, timeout=None",
                 ["takes 'timeout'", "never passes it to run()"],
                 id="run_taking_a_runner_parameter"),
    pytest.param("""
        class Hello(object):
            def run(self, name, count=1):
                return name
    """, ["no class deriving from", "Action"], id="no_action_subclass"),
    pytest.param(HELLO_ACTION_PY % "self, name, count=1" + """

    class Goodbye(Action):
        def run(self, name, count=1):
            return name
    """, ["2 Action subclasses", "exactly one", "Goodbye"], id="two_action_subclasses"),
    # st2's loader takes the first class (by name) defined in the file that has run().
    pytest.param("""
        import threading

        from st2common.runners.base_action import Action


        class Beeper(threading.Thread):
            def run(self):
                pass


        class Hello(Action):
            def run(self, name, count=1):
                return name
    """, ["'Beeper'", "not the Action subclass 'Hello'"],
        id="a_helper_class_with_run_that_st2_would_load_instead"),
])
def test_broken_python_action(pack, source, fragments):
    pack.write("actions/hello.py", source)
    assert_reported(check_actions, pack, HELLO, *fragments)


@pytest.mark.parametrize("source", [
    pytest.param(HELLO_ACTION_PY % "self, **parameters", id="run_with_kwargs"),
    pytest.param(HELLO_ACTION_PY % "self, *, name, count=1", id="run_with_keyword_only_arguments"),
    pytest.param("""
        from st2common.runners.base_action import Action as St2Action


        class _Base(St2Action):
            pass


        class Hello(_Base):
            def run(self, name, count=1):
                return name
    """, id="action_inheriting_run_through_a_local_base"),
])
def test_python_actions_st2_runs(pack, source):
    pack.write("actions/hello.py", source)
    assert check_actions(str(pack)) == []


def test_action_base_class_from_the_pack_lib(pack):
    pack.write("actions/lib/base.py", """
        from st2common.runners.base_action import Action


        class BaseAction(Action):
            def run(self, **kwargs):
                raise NotImplementedError
    """)
    pack.write("actions/hello.py", """
        from base import BaseAction


        class Hello(BaseAction):
            def run(self, name, count=1):
                return name
    """)
    assert check_actions(str(pack)) == []


def test_orquesta_entry_point_must_be_yaml(pack):
    pack.write("actions/workflows/scale.txt", "version: 1.0\n")
    pack.edit("actions/scale.yaml", lambda d: d.update(entry_point="workflows/scale.txt"))
    assert_problem(check_actions(str(pack)), "actions/scale.yaml", ".yaml workflow")


# ------------------------------------------------------------------------------------------
# 3. Workflows
# ------------------------------------------------------------------------------------------

WF = "actions/workflows/scale.yaml"


@pytest.mark.parametrize("change, fragments", [
    broken(lambda d: d["tasks"]["greet"]["next"][0].update(do="notify, lgo"), "task 'greet'",
           "do 'lgo'", "neither a task", id="do_to_a_missing_task"),
    broken(lambda d: d["tasks"]["log"]["next"][0].update(do=["noop", "cleanup"]), "do 'cleanup'",
           id="do_as_a_list_to_a_missing_task"),
    broken(lambda d: d.update(version=2.0), "version: 1.0", id="workflow_version_2"),
    broken(lambda d: d.pop("version"), "version: 1.0", id="workflow_version_missing"),
    broken(lambda d: d.update(tasks=["greet"]), "'tasks' must be a non-empty mapping",
           id="workflow_tasks_must_be_a_mapping"),
    broken(lambda d: d["tasks"]["log"].update(on_success="notify"), "task 'log'", "on_success",
           id="workflow_unknown_keys"),
    broken(lambda d: d["tasks"].update(noop={"action": "core.noop"}), "task 'noop'", "reserved",
           id="task_named_like_an_engine_command"),
    broken(lambda d: d["tasks"]["greet"].update(action="autoscale.helo name=x"), "task 'greet'",
           "'autoscale.helo'", "not defined", id="task_action_of_this_pack_must_exist"),
    broken(lambda d: d["tasks"]["log"].update(action="core.echoo"), "'core.echoo'",
           "does not exist", id="task_action_of_a_shipped_pack_must_exist"),
    broken(lambda d: d["tasks"]["notify"]["input"].update(colour="red"), "chatops.post_message",
           "'colour'", id="task_input_unexpected_parameter"),
    broken(lambda d: d["tasks"]["log"].update(input={}), "core.echo requires input 'message'",
           id="task_input_missing_required_parameter"),
    broken(lambda d: d["tasks"]["greet"].update(action="autoscale.hello"),
           "autoscale.hello requires input 'name'", id="inline_task_parameters_count_as_input"),
    broken(lambda d: d["input"].append("zone"), "workflow input 'zone'", "never be set",
           id="workflow_input_not_declared_by_the_action"),
    broken(lambda d: d["tasks"]["log"]["input"].update(message="<% ctx().asg %> {{ ctx().step }}"),
           "mixes YAQL", id="mixed_yaql_and_jinja"),
    broken(lambda d: d["tasks"]["log"]["input"].update(message="{{ ctx().asgg }}"), "ctx(asgg)",
           id="undefined_context_variable"),
    broken(lambda d: d["tasks"]["log"]["next"][0].update(do="greet"), "no start task",
           id="workflow_without_a_start_task"),
])
def test_broken_workflow(pack, change, fragments):
    pack.edit(WF, change)
    assert_reported(check_workflows, pack, WF, *fragments)


@pytest.mark.parametrize("command", ["noop", "fail", "retry", "continue"])
def test_engine_commands_are_valid_do_targets(pack, command):
    pack.edit(WF, lambda d: d["tasks"]["log"]["next"][0].update(do=command))
    assert check_workflows(str(pack)) == []


def test_task_action_of_an_undeclared_pack(pack):
    pack.edit(WF, lambda d: d["tasks"]["log"].update(action="st2.kv.get", input={"key": "x"}))
    assert_reported(check_workflows, pack, WF, "'st2'", "dependencies")
    pack.edit("pack.yaml", lambda d: d.update(
        dependencies=["https://github.com/StackStorm-Exchange/stackstorm-st2.git"]))
    assert check_workflows(str(pack)) == []


def test_action_parameter_that_is_not_a_workflow_input(pack):
    pack.edit(WF, lambda d: d["input"].remove("step"))
    pack.edit(WF, lambda d: d["tasks"]["log"]["input"].update(message="x"))
    assert_reported(check_workflows, pack, WF, "parameter 'step'", "never sees it")


def test_workflow_input_default_shadowed_by_the_action(pack):
    pack.edit(WF, lambda d: d.update(input=["asg", {"step": 2}]))
    pack.edit("actions/scale.yaml", lambda d: d["parameters"]["step"].pop("default"))
    assert_reported(check_workflows, pack, WF, "input 'step'", "never applies")


def test_unused_workflow_file(pack):
    pack.write("actions/workflows/orphan.yaml", GOOD_PACK[WF])
    assert_reported(check_workflows, pack, "actions/workflows/orphan.yaml", "no orquesta action")


# ------------------------------------------------------------------------------------------
# 4. Rules
# ------------------------------------------------------------------------------------------

RULE = "rules/on_alert.yaml"
CORE_ECHO = {"ref": "core.echo", "parameters": {"msg": "x"}}


@pytest.mark.parametrize("change, fragments", [
    broken(lambda d: d["trigger"].update(type="autoscale.alarm"), "'autoscale.alarm'",
           "does not exist", id="rule_with_unknown_trigger_type"),
    broken(lambda d: d["action"]["parameters"].update(size=3), "'size'",
           "autoscale.scale does not declare", id="rule_passing_an_undeclared_parameter"),
    broken(lambda d: d["action"].update(parameters={"step": 2}), "does not pass 'asg'",
           id="rule_missing_a_required_parameter"),
    broken(lambda d: d["action"].update(ref="autoscale.scale_out"), "'autoscale.scale_out'",
           id="rule_action_must_exist"),
    broken(lambda d: d.update(action=CORE_ECHO), "'msg'", "core.echo does not declare",
           id="rule_core_action_undeclared_parameter"),
    broken(lambda d: d.update(action=CORE_ECHO), "does not pass 'message'",
           id="rule_core_action_required_parameter"),
    broken(lambda d: d["criteria"]["trigger.severity"].update(type="like"), "operator 'like'",
           id="rule_criteria_operator"),
    broken(lambda d: d["criteria"].update({"trigger.asg": {"type": "exists"}}), "'trigger.asg'",
           "no 'pattern'", id="rule_criteria_pattern_required"),
    broken(lambda d: d.pop("enabled"), "'enabled' is not set",
           id="rule_must_be_enabled_explicitly"),
    *[broken(lambda d, k=key: d.pop(k), "required", id="rule_required_" + key)
      for key in ["name", "trigger", "action"]],
    broken(lambda d: d["action"].update(params={}), "params", id="rule_unknown_keys"),
])
def test_broken_rule(pack, change, fragments):
    pack.edit(RULE, change)
    assert_reported(check_rules, pack, RULE, *fragments)


@pytest.mark.parametrize("trigger", ["core.st2.webhook", "st2.webhook", "core.webhook",
                                     "core.st2.IntervalTimer.x"])
def test_rule_with_misspelled_core_trigger(pack, trigger):
    pack.edit(RULE, lambda d: d["trigger"].update(type=trigger, parameters={"url": "x"}))
    problems = check_rules(str(pack))
    if trigger == "core.st2.webhook":
        assert problems == []
    else:
        assert_problem(problems, repr(trigger), "does not exist")


@pytest.mark.parametrize("trigger", sorted(packcheck.SYSTEM_TRIGGER_TYPES))
def test_rule_with_core_trigger_types(pack, trigger):
    params = {
        "core.st2.webhook": {"url": "alerts"},
        "core.st2.IntervalTimer": {"unit": "seconds", "delta": 30},
        "core.st2.DateTimer": {"date": "2030-01-01 00:00:00"},
        "core.st2.CronTimer": {"minute": "*/5"},
    }.get(trigger)
    pack.edit(RULE, lambda d: d.update(
        trigger={"type": trigger, "parameters": params} if params else {"type": trigger},
        criteria={}))
    assert check_rules(str(pack)) == []


@pytest.mark.parametrize("change, fragments", [
    broken(lambda d: d["trigger"]["parameters"].pop("delta"), "IntervalTimer", "delta",
           id="required"),
    broken(lambda d: d.update(trigger={"type": "core.st2.CronTimer", "parameters": {"minute": 75}}),
           "CronTimer", "minute", "maximum of 59", id="range"),
])
def test_rule_timer_parameters_are_validated(pack, change, fragments):
    pack.edit("rules/every_minute.yaml", change)
    assert_reported(check_rules, pack, "rules/every_minute.yaml", *fragments)


# st2 validates with use_default and allow_default_none (st2harness.schema mirrors it): an
# optional value without a default may be null, and a missing one gets its default.
@pytest.mark.parametrize("rel, change, check", [
    ("rules/every_minute.yaml", lambda d: d["trigger"]["parameters"].update(timezone=None),
     check_rules),
    ("policies/scale_retry.yaml", lambda d: d["parameters"].update(delay=None), check_policies),
    ("policies/scale_retry.yaml", lambda d: d["parameters"].pop("max_retry_count"),
     check_policies),
    ("autoscale.yaml.example", lambda d: d.update(dns=None), check_config_schema),
], ids=["timer_timezone", "retry_delay", "retry_count_default", "config_optional_object"])
def test_values_st2_fills_in_or_lets_be_null(pack, rel, change, check):
    pack.edit(rel, change)
    assert check(str(pack)) == []


# st2 also replaces an explicit null by the default, and lets an optional property of an
# optional object be null (st2common/util/schema/__init__.py); st2harness.schema does not yet.
@pytest.mark.parametrize("rel, change, check", [
    ("autoscale.yaml.example", lambda d: d.update(poll_seconds=None), check_config_schema),
    ("policies/scale_retry.yaml", lambda d: d["parameters"].update(max_retry_count=None),
     check_policies),
    ("autoscale.yaml.example", lambda d: d.update(dns={"tsig_key_name": None}),
     check_config_schema),
], ids=["null_replaced_by_default", "null_replaced_by_required_default", "nested_optional"])
def test_values_st2_accepts(pack, rel, change, check):
    pack.edit(rel, change)
    assert check(str(pack)) == []


def test_rule_may_pass_runner_parameters(pack):
    pack.edit(RULE, lambda d: d["action"]["parameters"].update(notify=["greet"]))
    assert check_rules(str(pack)) == []


@pytest.mark.parametrize("operator", sorted(packcheck.CRITERIA_OPERATORS))
def test_rule_every_st2_operator_is_accepted(pack, operator):
    pack.edit(RULE, lambda d: d["criteria"]["trigger.severity"].update(type=operator))
    assert check_rules(str(pack)) == []


# ------------------------------------------------------------------------------------------
# 5. Aliases
# ------------------------------------------------------------------------------------------

ALIAS = "aliases/hello.yaml"


def add_format(text):
    return lambda d: d["formats"].append(text)


@pytest.mark.parametrize("change, fragments", [
    broken(add_format("hello {{ name }} in {{ region }}"), "{{ region }}", "autoscale.hello",
           id="alias_using_an_undeclared_parameter"),
    broken(lambda d: d["formats"][1]["representation"].append("greet {{ name }} {{ times=2 }}"),
           "{{ times }}", id="alias_undeclared_parameter_with_default_in_representation"),
    broken(lambda d: d["formats"][1].update(display="greet {{ who }}"), "{{ who }}",
           id="alias_undeclared_parameter_in_display"),
    broken(lambda d: d.update(action_ref="autoscale.helo"), "'autoscale.helo'",
           id="alias_action_ref_must_exist"),
    broken(add_format("hello name={{ name }}"), "ends with key={{ ... }}",
           id="alias_trailing_key_value_placeholder_never_matches"),
    broken(add_format("hello {{ name }} and {{ name }}"), "twice",
           id="alias_placeholder_used_twice"),
    broken(add_format("hello (({{ name }}"), "not a valid pattern",
           id="alias_format_that_is_not_a_valid_pattern"),
    broken(lambda d: d["immutable_parameters"].update(colour="red"),
           "immutable_parameters 'colour'", id="alias_immutable_parameters_must_be_declared"),
    broken(lambda d: d.pop("formats"), "'formats'", id="alias_required_keys"),
])
def test_broken_alias(pack, change, fragments):
    pack.edit(ALIAS, change)
    assert_reported(check_aliases, pack, ALIAS, *fragments)


def test_alias_identical_formats_in_two_aliases(pack):
    pack.write("aliases/hi.yaml", """
        name: hi
        action_ref: autoscale.hello
        formats:
          - "hello  {{ name }}"
    """)
    assert_reported(check_aliases, pack, "aliases/hi.yaml", "ambiguous")


# ------------------------------------------------------------------------------------------
# 6. Sensors and trigger types
# ------------------------------------------------------------------------------------------

SENSOR = "sensors/watcher.yaml"


@pytest.mark.parametrize("change, fragments", [
    broken(lambda d: d.update(class_name="Watch"), "'Watch' is not defined",
           id="sensor_class_missing"),
    broken(lambda d: d.pop("poll_interval"), "no poll_interval",
           id="polling_sensor_needs_poll_interval"),
    broken(lambda d: d.update(poll_interval=2), "poll_interval", ">= 4",
           id="poll_interval_minimum"),
    *[broken(lambda d, k=key: d.pop(k), repr(key), "required", id="sensor_required_" + key)
      for key in ["class_name", "entry_point"]],
    broken(lambda d: d.update(entry_point="watch.py"), "does not exist",
           id="sensor_entry_point_must_exist"),
    broken(lambda d: d.update(entry_point="./watcher.py"), "normalized",
           id="sensor_entry_point_must_be_normalized"),
])
def test_broken_sensor_metadata(pack, change, fragments):
    pack.edit(SENSOR, change)
    assert_reported(check_sensors, pack, SENSOR, *fragments)


@pytest.mark.parametrize("source, fragments", [
    pytest.param("""
        import threading


        class Watcher(threading.Thread):
            def run(self):
                pass
    """, ["Watcher", "Sensor/PollingSensor"], id="sensor_with_wrong_base_class"),
    pytest.param("""
        class Watcher:
            def run(self):
                pass
    """, ["does not derive from Sensor or PollingSensor"], id="sensor_with_no_base_class"),
    pytest.param(GOOD_PACK["sensors/watcher.py"].replace("def poll(self)", "def pol(self)"),
                 ["does not implement poll"], id="polling_sensor_without_poll"),
])
def test_broken_sensor_class(pack, source, fragments):
    pack.write("sensors/watcher.py", source)
    assert_reported(check_sensors, pack, SENSOR, *fragments)


def test_passive_sensor_needs_run(pack):
    text = GOOD_PACK["sensors/watcher.py"].replace("PollingSensor", "Sensor")
    pack.write("sensors/watcher.py", text)
    pack.edit(SENSOR, lambda d: d.pop("poll_interval"))
    assert_reported(check_sensors, pack, SENSOR, "does not implement run")


def test_sensor_through_a_local_base_class(pack):
    text = textwrap.dedent(GOOD_PACK["sensors/watcher.py"]).replace(
        "class Watcher(PollingSensor):",
        "class _Base(PollingSensor):\n    pass\n\n\nclass Watcher(_Base):")
    pack.write("sensors/watcher.py", text)
    assert check_sensors(str(pack)) == []


def edit_trigger_type(change):
    return lambda d: change(d["trigger_types"][0])


@pytest.mark.parametrize("change, fragments", [
    broken(edit_trigger_type(lambda t: t.update(payload_schema={"type": "objekt"})), "'alert'",
           "payload_schema", "objekt", id="invalid_payload_schema"),
    broken(edit_trigger_type(lambda t: t["payload_schema"]["properties"].update(
        size={"type": "integer", "minimum": "one"})), "payload_schema", "not a valid",
        id="invalid_nested_payload_schema"),
    broken(edit_trigger_type(lambda t: t.pop("name")), "needs a 'name'",
           id="trigger_type_needs_a_name"),
    broken(edit_trigger_type(lambda t: t.update(payload={"type": "object"})), "'alert'",
           "payload", id="trigger_type_unknown_key"),
])
def test_broken_trigger_type(pack, change, fragments):
    pack.edit(SENSOR, change)
    assert_reported(check_trigger_schemas, pack, SENSOR, *fragments)


def test_trigger_types_in_triggers_directory(pack):
    pack.write("triggers/recovered.yaml", """
        name: recovered
        payload_schema:
          type: objekt
    """)
    assert_reported(check_trigger_schemas, pack, "triggers/recovered.yaml", "objekt")
    pack.write("triggers/recovered.yaml", "name: recovered\n")
    pack.edit(RULE, lambda d: d["trigger"].update(type="autoscale.recovered"))
    assert check_rules(str(pack)) == []


# ------------------------------------------------------------------------------------------
# 7. Policies
# ------------------------------------------------------------------------------------------

POLICY = "policies/hello_concurrency.yaml"
RETRY_POLICY = "policies/scale_retry.yaml"


@pytest.mark.parametrize("rel, change, fragments", [
    pytest.param(POLICY, lambda d: d.update(policy_type="action.throttle"),
                 ["'action.throttle'"], id="invalid_policy_type"),
    pytest.param(POLICY, lambda d: d.update(resource_ref="autoscale.goodbye"),
                 ["'autoscale.goodbye'"], id="policy_resource_ref_must_exist"),
    pytest.param(POLICY, lambda d: d["parameters"].update(attributes=["asg"]),
                 ["attribute 'asg'"], id="concurrency_attr_attributes_must_be_parameters"),
    pytest.param(RETRY_POLICY, lambda d: d["parameters"].update(max_retry_count=10),
                 ["max_retry_count"], id="policy_parameter_maximum"),
    pytest.param(POLICY, lambda d: d["parameters"].update(limit=3), ["'limit'"],
                 id="policy_parameter_unknown"),
    pytest.param(POLICY, lambda d: d.update(parameters={}), ["'threshold'"],
                 id="policy_parameter_required"),
])
def test_broken_policy(pack, rel, change, fragments):
    pack.edit(rel, change)
    assert_reported(check_policies, pack, rel, *fragments)


@pytest.mark.parametrize("policy_type", sorted(packcheck.POLICY_TYPES))
def test_every_st2_policy_type_is_accepted(pack, policy_type):
    pack.edit(POLICY, lambda d: d.update(policy_type=policy_type, parameters={
        "action.retry": {"retry_on": "timeout"},
    }.get(policy_type, {"threshold": 2})))
    assert check_policies(str(pack)) == []


# ------------------------------------------------------------------------------------------
# 8. config.schema.yaml
# ------------------------------------------------------------------------------------------

CONFIG = "config.schema.yaml"
EXAMPLE = "autoscale.yaml.example"


@pytest.mark.parametrize("rel, change, fragments", [
    pytest.param(CONFIG, lambda d: d.update(api_token={"type": "string"}),
                 ["'api_token'", "secret: true"], id="secret_key_without_secret_true"),
    pytest.param(CONFIG, lambda d: d["dns"]["properties"]["tsig_secret"].pop("secret"),
                 ["'dns.tsig_secret'"], id="nested_secret_key_without_secret_true"),
    pytest.param(CONFIG, lambda d: d.update(zones={
        "type": "object",
        "additionalProperties": {"type": "object", "properties": {"client_key": {}}},
    }), ["zones.*.client_key"], id="secret_key_inside_a_map_of_objects"),
    *[pytest.param(CONFIG, lambda d, t=bad_type: d["poll_seconds"].update(type=t),
                   ["'poll_seconds'", repr(bad_type)], id="config_schema_type_" + bad_type)
      for bad_type in ["str", "dict", "float"]],
    pytest.param(CONFIG, lambda d: d["slack"]["properties"]["channel"].update(type="text"),
                 ["slack.channel", "'text'"], id="config_schema_nested_type"),
    pytest.param(CONFIG, lambda d: d["poll_seconds"].update(format="int32"),
                 ["'poll_seconds'", "format"], id="config_schema_attribute_st2_rejects"),
    pytest.param(CONFIG, lambda d: d["poll_seconds"].update(minimum="ten"), ["'ten'"],
                 id="config_schema_invalid_json_schema"),
    pytest.param(EXAMPLE, lambda d: d.update(poll_seconds="often"), ["poll_seconds"],
                 id="config_example_value_of_the_wrong_type"),
    pytest.param(EXAMPLE, lambda d: d.update(slack={}), ["'token'"],
                 id="config_example_without_a_required_value"),
])
def test_broken_config(pack, rel, change, fragments):
    pack.edit(rel, change)
    assert_reported(check_config_schema, pack, rel, *fragments)


@pytest.mark.parametrize("name", [
    "password", "passwd", "token", "api_token", "secret", "tsig_secret", "private_key",
    "api_key", "apiKey", "client_key", "validation_key", "tsig_key", "ssh_key", "key",
    "passphrase", "webhook_token", "application_credential_secret", "credentials",
])
def test_secret_names(name):
    assert is_secret_name(name)


@pytest.mark.parametrize("name", [
    "tsig_key_name", "ssh_pub_key", "public_key", "host_key", "application_credential_id",
    "token_url", "password_file", "key_path", "username", "auth_type", "keystone_url",
    "tsig_algorithm", "monkey", "tokens_per_minute_enabled", "channel",
])
def test_non_secret_names(name):
    assert not is_secret_name(name)


def test_config_schema_must_be_a_mapping(pack):
    pack.write(CONFIG, "- a\n- b\n")
    assert_reported(check_config_schema, pack, CONFIG, "mapping")


def test_config_example_may_not_decrypt_secret_values(pack):
    pack.edit(CONFIG, lambda d: d.update(dns={"type": "object", "properties": {
        "tsig_secret": {"type": "string", "secret": True},
        "tsig_key_name": {"type": "string"}}}))
    # Nested secrets too: config_loader._assign_dynamic_config_values recurses with the
    # nested property's schema, so st2 decrypts them itself.
    pack.edit(EXAMPLE, lambda d: d.update(dns={"tsig_key_name": "{{ st2kv.system.name }}"}))
    assert not [p for p in check_config_schema(str(pack)) if "decrypt_kv" in p]
    pack.edit(EXAMPLE, lambda d: d.update(
        dns={"tsig_secret": "{{ st2kv.system.tsig | decrypt_kv }}"}))
    assert_reported(check_config_schema, pack, EXAMPLE, "dns.tsig_secret")
    pack.edit(CONFIG, lambda d: d.update(api_token={"type": "string", "secret": True}))
    pack.edit(EXAMPLE, lambda d: d.update(api_token="{{ st2kv.system.token | decrypt_kv }}"))
    assert_reported(check_config_schema, pack, EXAMPLE, "decrypt_kv")


# ------------------------------------------------------------------------------------------
# Malformed metadata is reported, never raised
# ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("rel, key", [
    ("actions/hello.yaml", "runner_type"),
    ("actions/hello.yaml", "parameters"),
    ("actions/workflows/scale.yaml", "tasks"),
    ("actions/workflows/scale.yaml", "input"),
    ("rules/on_alert.yaml", "trigger"),
    ("rules/on_alert.yaml", "criteria"),
    ("aliases/hello.yaml", "formats"),
    ("sensors/watcher.yaml", "trigger_types"),
    ("policies/hello_concurrency.yaml", "policy_type"),
    ("config.schema.yaml", "slack"),
    ("pack.yaml", "python_versions"),
])
@pytest.mark.parametrize("value", [1, [1, None], {"a": None}], ids=["int", "list", "dict"])
def test_malformed_metadata_is_reported_not_raised(pack, rel, key, value):
    pack.edit(rel, lambda d: d.update({key: value}))
    assert_problem(check_pack(str(pack)), rel.split("/")[0])
