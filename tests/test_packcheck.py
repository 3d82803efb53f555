"""Tests for tests/packcheck.py, the StackStorm-faithful static checks of the pack.

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

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

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

    def load(self, rel):
        with open(self.path(rel), encoding="utf-8") as handle:
            return yaml.safe_load(handle)

    def save(self, rel, data):
        os.makedirs(os.path.dirname(self.path(rel)), exist_ok=True)
        with open(self.path(rel), "w", encoding="utf-8") as handle:
            yaml.safe_dump(data, handle, sort_keys=False)

    def edit(self, rel, change):
        """Load the YAML file, let ``change`` mutate it in place, save it."""
        data = self.load(rel)
        change(data)
        self.save(rel, data)

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


# ------------------------------------------------------------------------------------------
# 1. YAML parses
# ------------------------------------------------------------------------------------------


def test_yaml_that_does_not_parse(pack):
    pack.write("docs/broken.yaml", "key: [unclosed\n")
    assert_reported(check_yaml_parses, pack, "docs/broken.yaml", "does not parse")


def test_yml_extension_is_checked_too(pack):
    pack.write("actions/broken.yml", "name: x\n  bad: indent\n")
    assert_reported(check_yaml_parses, pack, "actions/broken.yml", "does not parse")


def test_duplicate_yaml_keys(pack):
    pack.write("rules/dup.yaml", "name: a\nname: b\n")
    assert_problem(check_yaml_parses(str(pack)), "rules/dup.yaml", "duplicate key 'name'")


def test_yaml_under_skipped_directories_is_ignored(pack):
    for folder in (".venv", ".git", "tests", "node_modules", "__pycache__"):
        pack.write(folder + "/broken.yaml", "key: [unclosed\n")
    assert check_yaml_parses(str(pack)) == []


def test_json_metadata_must_parse(pack):
    pack.write("rules/broken.json", "{not json")
    assert_problem(check_yaml_parses(str(pack)), "rules/broken.json", "JSON does not parse")


# ------------------------------------------------------------------------------------------
# 9. pack.yaml
# ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("version", ["1.0", 1.0, "v1.0.0", "01.2.3", "1.2"])
def test_pack_version_must_be_semver(pack, version):
    pack.edit("pack.yaml", lambda d: d.update(version=version))
    assert_reported(check_pack_yaml, pack, "pack.yaml", "not semver")


@pytest.mark.parametrize("version", ["0.1.0", "1.2.3-rc.1", "2.0.0+build.5"])
def test_semver_pack_versions_pass(pack, version):
    pack.edit("pack.yaml", lambda d: d.update(version=version))
    assert check_pack_yaml(str(pack)) == []


def test_pack_yaml_missing(pack):
    pack.remove("pack.yaml")
    assert_reported(check_pack_yaml, pack, "pack.yaml", "missing")


@pytest.mark.parametrize("key", ["name", "description", "author", "email", "version"])
def test_pack_yaml_required_keys(pack, key):
    pack.edit("pack.yaml", lambda d: d.pop(key))
    assert_reported(check_pack_yaml, pack, "pack.yaml", repr(key), "required")


@pytest.mark.parametrize("ref", ["auto-scale", "AutoScale", "auto.scale"])
def test_pack_ref_must_be_lowercase_word_characters(pack, ref):
    pack.edit("pack.yaml", lambda d: d.update(ref=ref))
    assert_reported(check_pack_yaml, pack, "pack.yaml", "ref", "lowercase")


def test_pack_ref_may_not_be_reserved(pack):
    pack.edit("pack.yaml", lambda d: d.update(ref="core"))
    assert_problem(check_pack_yaml(str(pack)), "reserved")


def test_python_versions_must_include_3_as_a_string(pack):
    pack.edit("pack.yaml", lambda d: d.update(python_versions=[3]))
    assert_reported(check_pack_yaml, pack, "python_versions", "strings")
    pack.edit("pack.yaml", lambda d: d.update(python_versions=["2"]))
    assert_reported(check_pack_yaml, pack, "python_versions", 'include "3"')
    pack.edit("pack.yaml", lambda d: d.pop("python_versions"))
    assert_reported(check_pack_yaml, pack, "python_versions")


def test_stackstorm_version_pattern(pack):
    pack.edit("pack.yaml", lambda d: d.update(stackstorm_version="3.9"))
    assert_reported(check_pack_yaml, pack, "stackstorm_version")
    pack.edit("pack.yaml", lambda d: d.update(stackstorm_version=">=3.9.0, <4.0.0"))
    assert check_pack_yaml(str(pack)) == []


# ------------------------------------------------------------------------------------------
# 2. Actions
# ------------------------------------------------------------------------------------------


def test_entry_point_climbing_out_of_actions_is_rejected(pack):
    # The file exists (so only the st2 path rule can catch it): st2 registers this action
    # but every run fails in content/utils.py get_pack_file_abs_path().
    pack.write("workflows/scale.yaml", GOOD_PACK["actions/workflows/scale.yaml"])
    pack.edit("actions/scale.yaml", lambda d: d.update(entry_point="../workflows/scale.yaml"))
    assert_reported(check_actions, pack, "actions/scale.yaml", "../workflows/scale.yaml",
                    "normalized")


@pytest.mark.parametrize("entry_point", ["./hello.py", "lib//hello.py", "lib/../hello.py"])
def test_entry_points_that_normpath_changes_are_rejected(pack, entry_point):
    pack.edit("actions/hello.yaml", lambda d: d.update(entry_point=entry_point))
    assert_reported(check_actions, pack, "actions/hello.yaml", "normalized")


def test_absolute_entry_point_is_rejected(pack):
    pack.edit("actions/hello.yaml", lambda d: d.update(entry_point=pack.path("actions/hello.py")))
    assert_reported(check_actions, pack, "actions/hello.yaml", "relative")


def test_entry_point_must_exist(pack):
    pack.edit("actions/hello.yaml", lambda d: d.update(entry_point="nope.py"))
    assert_reported(check_actions, pack, "actions/hello.yaml", "'nope.py' does not exist")


def test_runner_that_needs_an_entry_point(pack):
    pack.edit("actions/hello.yaml", lambda d: d.pop("entry_point"))
    assert_reported(check_actions, pack, "actions/hello.yaml", "needs an entry_point")


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


@pytest.mark.parametrize("key", ["name", "runner_type"])
def test_action_required_keys(pack, key):
    pack.edit("actions/hello.yaml", lambda d: d.pop(key))
    assert_reported(check_actions, pack, "actions/hello.yaml", repr(key), "required")


def test_action_unknown_top_level_key(pack):
    pack.edit("actions/hello.yaml", lambda d: d.update(paramaters={}))
    assert_reported(check_actions, pack, "actions/hello.yaml", "paramaters")


def test_action_pack_field_must_match(pack):
    pack.edit("actions/hello.yaml", lambda d: d.update(pack="other"))
    assert_reported(check_actions, pack, "actions/hello.yaml", "'other'")


def test_duplicate_action_names(pack):
    pack.write("actions/hello2.yaml", open(pack.path("actions/hello.yaml")).read())
    assert_reported(check_actions, pack, "actions/hello2.yaml", "'hello'", "also used")


@pytest.mark.parametrize("bad_type", ["str", "int", "objekt", ["string", "null"]])
def test_parameter_type_must_be_one_json_schema_type(pack, bad_type):
    pack.edit("actions/hello.yaml", lambda d: d["parameters"]["name"].update(type=bad_type))
    assert_reported(check_actions, pack, "actions/hello.yaml", "parameter 'name'", "type")


def test_parameter_name_must_be_a_word(pack):
    pack.edit("actions/hello.yaml",
              lambda d: d["parameters"].update({"asg-name": {"type": "string"}}))
    assert_reported(check_actions, pack, "'asg-name'", "invalid name")


@pytest.mark.parametrize("attribute", ["format", "requried", "$ref"])
def test_parameter_attributes_st2_rejects(pack, attribute):
    pack.edit("actions/hello.yaml",
              lambda d: d["parameters"]["name"].update({attribute: "x"}))
    assert_reported(check_actions, pack, "parameter 'name'", attribute, "not allowed")


def test_parameter_required_must_be_boolean(pack):
    pack.edit("actions/hello.yaml", lambda d: d["parameters"]["name"].update(required="yes"))
    assert_reported(check_actions, pack, "parameter 'name'", "'required' must be true or false")


def test_nested_parameter_types_are_checked(pack):
    pack.edit("actions/hello.yaml", lambda d: d["parameters"].update(
        {"opts": {"type": "object", "properties": {"depth": {"type": "int"}}}}))
    assert_problem(check_actions(str(pack)), "opts.depth", "'int'")


def test_runner_parameter_type_cannot_be_overridden(pack):
    pack.edit("actions/hello.yaml", lambda d: d["parameters"].update(
        {"timeout": {"type": "string", "default": "30"}}))
    assert_reported(check_actions, pack, "'timeout'", "runner parameter", "'type'")


def test_parameter_positions_unique_and_contiguous(pack):
    def change(d):
        d["parameters"]["name"]["position"] = 0
        d["parameters"]["count"]["position"] = 0
    pack.edit("actions/hello.yaml", change)
    assert_reported(check_actions, pack, "same position 0")
    pack.edit("actions/hello.yaml", lambda d: d["parameters"]["count"].update(position=2))
    assert_reported(check_actions, pack, "not contiguous")


def test_immutable_parameter_needs_a_default(pack):
    pack.edit("actions/hello.yaml", lambda d: d["parameters"]["name"].update(immutable=True))
    assert_reported(check_actions, pack, "immutable parameter 'name' needs a default")


def test_python_syntax_error(pack):
    pack.write("actions/hello.py", "class Hello(Action:\n    pass\n")
    assert_reported(check_actions, pack, "actions/hello.yaml", "does not parse")


def test_run_missing_a_declared_parameter(pack):
    pack.write("actions/hello.py", """
        from st2common.runners.base_action import Action


        class Hello(Action):
            def run(self, name):
                return name
    """)
    assert_reported(check_actions, pack, "actions/hello.yaml",
                    "does not accept declared parameter 'count'")


def test_run_requiring_an_undeclared_argument(pack):
    pack.write("actions/hello.py", """
        from st2common.runners.base_action import Action


        class Hello(Action):
            def run(self, name, count, region):
                return name
    """)
    assert_reported(check_actions, pack, "actions/hello.yaml",
                    "requires 'region', which is not a declared parameter")


def test_run_requiring_a_runner_parameter(pack):
    # "timeout" is declared, but it is a python-script runner parameter: st2 keeps it.
    pack.write("actions/hello.py", """
        from st2common.runners.base_action import Action


        class Hello(Action):
            def run(self, name, count, timeout):
                return name
    """)
    assert_reported(check_actions, pack, "requires 'timeout'", "runner parameter")


def test_run_with_kwargs_accepts_every_parameter(pack):
    pack.write("actions/hello.py", """
        from st2common.runners.base_action import Action


        class Hello(Action):
            def run(self, **parameters):
                return parameters
    """)
    assert check_actions(str(pack)) == []


def test_run_with_keyword_only_arguments(pack):
    pack.write("actions/hello.py", """
        from st2common.runners.base_action import Action


        class Hello(Action):
            def run(self, *, name, count=1):
                return name
    """)
    assert check_actions(str(pack)) == []


def test_no_action_subclass(pack):
    pack.write("actions/hello.py", """
        class Hello(object):
            def run(self, name, count=1):
                return name
    """)
    assert_reported(check_actions, pack, "no class deriving from", "Action")


def test_two_action_subclasses(pack):
    pack.write("actions/hello.py", """
        from st2common.runners.base_action import Action


        class Hello(Action):
            def run(self, name, count=1):
                return name


        class Goodbye(Action):
            def run(self, name, count=1):
                return name
    """)
    assert_reported(check_actions, pack, "2 Action subclasses", "exactly one", "Goodbye")


def test_a_helper_class_with_run_that_st2_would_load_instead(pack):
    # st2's loader takes the first class (by name) defined in the file that has run().
    pack.write("actions/hello.py", """
        import threading

        from st2common.runners.base_action import Action


        class Beeper(threading.Thread):
            def run(self):
                pass


        class Hello(Action):
            def run(self, name, count=1):
                return name
    """)
    assert_reported(check_actions, pack, "'Beeper'", "not the Action subclass 'Hello'")


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


def test_action_inheriting_run_through_a_local_base(pack):
    pack.write("actions/hello.py", """
        from st2common.runners.base_action import Action as St2Action


        class _Base(St2Action):
            pass


        class Hello(_Base):
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


def test_do_to_a_missing_task(pack):
    pack.edit(WF, lambda d: d["tasks"]["greet"]["next"][0].update(do="notify, lgo"))
    assert_reported(check_workflows, pack, WF, "task 'greet'", "do 'lgo'",
                    "neither a task")


def test_do_as_a_list_to_a_missing_task(pack):
    pack.edit(WF, lambda d: d["tasks"]["log"]["next"][0].update(do=["noop", "cleanup"]))
    assert_reported(check_workflows, pack, WF, "do 'cleanup'")


@pytest.mark.parametrize("command", ["noop", "fail", "retry", "continue"])
def test_engine_commands_are_valid_do_targets(pack, command):
    pack.edit(WF, lambda d: d["tasks"]["log"]["next"][0].update(do=command))
    assert check_workflows(str(pack)) == []


def test_workflow_version(pack):
    pack.edit(WF, lambda d: d.update(version=2.0))
    assert_reported(check_workflows, pack, WF, "version: 1.0")
    pack.edit(WF, lambda d: d.pop("version"))
    assert_reported(check_workflows, pack, WF, "version: 1.0")


def test_workflow_tasks_must_be_a_mapping(pack):
    pack.edit(WF, lambda d: d.update(tasks=["greet"]))
    assert_reported(check_workflows, pack, WF, "'tasks' must be a non-empty mapping")


def test_workflow_unknown_keys(pack):
    pack.edit(WF, lambda d: d["tasks"]["log"].update(on_success="notify"))
    assert_reported(check_workflows, pack, WF, "task 'log'", "on_success")


def test_task_named_like_an_engine_command(pack):
    pack.edit(WF, lambda d: d["tasks"].update(noop={"action": "core.noop"}))
    assert_reported(check_workflows, pack, WF, "task 'noop'", "reserved")


def test_task_action_of_this_pack_must_exist(pack):
    pack.edit(WF, lambda d: d["tasks"]["greet"].update(action="autoscale.helo name=x"))
    assert_reported(check_workflows, pack, WF, "task 'greet'", "'autoscale.helo'",
                    "not defined")


def test_task_action_of_a_shipped_pack_must_exist(pack):
    pack.edit(WF, lambda d: d["tasks"]["log"].update(action="core.echoo"))
    assert_reported(check_workflows, pack, WF, "'core.echoo'", "does not exist")


def test_task_action_of_an_undeclared_pack(pack):
    pack.edit(WF, lambda d: d["tasks"]["log"].update(action="st2.kv.get", input={"key": "x"}))
    assert_reported(check_workflows, pack, WF, "'st2'", "dependencies")
    pack.edit("pack.yaml", lambda d: d.update(
        dependencies=["https://github.com/StackStorm-Exchange/stackstorm-st2.git"]))
    assert check_workflows(str(pack)) == []


def test_task_input_unexpected_parameter(pack):
    pack.edit(WF, lambda d: d["tasks"]["notify"]["input"].update(colour="red"))
    assert_reported(check_workflows, pack, WF, "chatops.post_message", "'colour'")


def test_task_input_missing_required_parameter(pack):
    pack.edit(WF, lambda d: d["tasks"]["log"].update(input={}))
    assert_reported(check_workflows, pack, WF, "core.echo requires input 'message'")


def test_inline_task_parameters_count_as_input(pack):
    pack.edit(WF, lambda d: d["tasks"]["greet"].update(action="autoscale.hello"))
    assert_reported(check_workflows, pack, WF, "autoscale.hello requires input 'name'")


def test_workflow_input_not_declared_by_the_action(pack):
    pack.edit(WF, lambda d: d["input"].append("zone"))
    assert_reported(check_workflows, pack, WF, "workflow input 'zone'", "never be set")


def test_action_parameter_that_is_not_a_workflow_input(pack):
    pack.edit(WF, lambda d: d["input"].remove("step"))
    pack.edit(WF, lambda d: d["tasks"]["log"]["input"].update(message="x"))
    assert_reported(check_workflows, pack, WF, "parameter 'step'", "never sees it")


def test_workflow_input_default_shadowed_by_the_action(pack):
    def change(d):
        d["input"] = ["asg", {"step": 2}]
    pack.edit(WF, change)
    pack.edit("actions/scale.yaml", lambda d: d["parameters"]["step"].pop("default"))
    assert_reported(check_workflows, pack, WF, "input 'step'", "never applies")


def test_mixed_yaql_and_jinja(pack):
    pack.edit(WF, lambda d: d["tasks"]["log"]["input"].update(
        message="<% ctx().asg %> {{ ctx().step }}"))
    assert_reported(check_workflows, pack, WF, "mixes YAQL")


def test_undefined_context_variable(pack):
    pack.edit(WF, lambda d: d["tasks"]["log"]["input"].update(message="{{ ctx().asgg }}"))
    assert_reported(check_workflows, pack, WF, "ctx(asgg)")


def test_workflow_without_a_start_task(pack):
    pack.edit(WF, lambda d: d["tasks"]["log"]["next"][0].update(do="greet"))
    assert_reported(check_workflows, pack, WF, "no start task")


def test_unused_workflow_file(pack):
    pack.write("actions/workflows/orphan.yaml", GOOD_PACK[WF])
    assert_reported(check_workflows, pack, "actions/workflows/orphan.yaml", "no orquesta action")


# ------------------------------------------------------------------------------------------
# 4. Rules
# ------------------------------------------------------------------------------------------

RULE = "rules/on_alert.yaml"


def test_rule_with_unknown_trigger_type(pack):
    pack.edit(RULE, lambda d: d["trigger"].update(type="autoscale.alarm"))
    assert_reported(check_rules, pack, RULE, "'autoscale.alarm'", "does not exist")


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


def test_rule_timer_parameters_are_validated(pack):
    pack.edit("rules/every_minute.yaml", lambda d: d["trigger"]["parameters"].pop("delta"))
    assert_reported(check_rules, pack, "rules/every_minute.yaml", "IntervalTimer", "delta")


def test_rule_passing_an_undeclared_parameter(pack):
    pack.edit(RULE, lambda d: d["action"]["parameters"].update(size=3))
    assert_reported(check_rules, pack, RULE, "'size'", "autoscale.scale does not declare")


def test_rule_may_pass_runner_parameters(pack):
    pack.edit(RULE, lambda d: d["action"]["parameters"].update(notify=["greet"]))
    assert check_rules(str(pack)) == []


def test_rule_missing_a_required_parameter(pack):
    pack.edit(RULE, lambda d: d["action"].update(parameters={"step": 2}))
    assert_reported(check_rules, pack, RULE, "does not pass 'asg'")


def test_rule_action_must_exist(pack):
    pack.edit(RULE, lambda d: d["action"].update(ref="autoscale.scale_out"))
    assert_reported(check_rules, pack, RULE, "'autoscale.scale_out'")


def test_rule_core_action_parameters(pack):
    pack.edit(RULE, lambda d: d.update(action={"ref": "core.echo", "parameters": {"msg": "x"}}))
    problems = check_rules(str(pack))
    assert_problem(problems, "'msg'", "core.echo does not declare")
    assert_problem(problems, "does not pass 'message'")


def test_rule_criteria_operator(pack):
    pack.edit(RULE, lambda d: d["criteria"]["trigger.severity"].update(type="like"))
    assert_reported(check_rules, pack, RULE, "operator 'like'")


def test_rule_criteria_pattern_required(pack):
    pack.edit(RULE, lambda d: d["criteria"].update({"trigger.asg": {"type": "exists"}}))
    assert_reported(check_rules, pack, RULE, "'trigger.asg'", "no 'pattern'")


@pytest.mark.parametrize("operator", sorted(packcheck.CRITERIA_OPERATORS))
def test_rule_every_st2_operator_is_accepted(pack, operator):
    pack.edit(RULE, lambda d: d["criteria"]["trigger.severity"].update(type=operator))
    assert check_rules(str(pack)) == []


def test_rule_must_be_enabled_explicitly(pack):
    pack.edit(RULE, lambda d: d.pop("enabled"))
    assert_reported(check_rules, pack, RULE, "'enabled' is not set")


@pytest.mark.parametrize("key", ["name", "trigger", "action"])
def test_rule_required_keys(pack, key):
    pack.edit(RULE, lambda d: d.pop(key))
    assert_reported(check_rules, pack, RULE, "required")


def test_rule_unknown_keys(pack):
    pack.edit(RULE, lambda d: d["action"].update(params={}))
    assert_reported(check_rules, pack, RULE, "params")


# ------------------------------------------------------------------------------------------
# 5. Aliases
# ------------------------------------------------------------------------------------------

ALIAS = "aliases/hello.yaml"


def test_alias_using_an_undeclared_parameter(pack):
    pack.edit(ALIAS, lambda d: d["formats"].append("hello {{ name }} in {{ region }}"))
    assert_reported(check_aliases, pack, ALIAS, "{{ region }}", "autoscale.hello")


def test_alias_undeclared_parameter_with_default_in_representation(pack):
    pack.edit(ALIAS, lambda d: d["formats"][1]["representation"].append(
        "greet {{ name }} {{ times=2 }}"))
    assert_reported(check_aliases, pack, ALIAS, "{{ times }}")


def test_alias_undeclared_parameter_in_display(pack):
    pack.edit(ALIAS, lambda d: d["formats"][1].update(display="greet {{ who }}"))
    assert_reported(check_aliases, pack, ALIAS, "{{ who }}")


def test_alias_action_ref_must_exist(pack):
    pack.edit(ALIAS, lambda d: d.update(action_ref="autoscale.helo"))
    assert_reported(check_aliases, pack, ALIAS, "'autoscale.helo'")


def test_alias_trailing_key_value_placeholder_never_matches(pack):
    pack.edit(ALIAS, lambda d: d["formats"].append("hello name={{ name }}"))
    assert_reported(check_aliases, pack, ALIAS, "ends with key={{ ... }}")


def test_alias_placeholder_used_twice(pack):
    pack.edit(ALIAS, lambda d: d["formats"].append("hello {{ name }} and {{ name }}"))
    assert_reported(check_aliases, pack, ALIAS, "twice")


def test_alias_format_that_is_not_a_valid_pattern(pack):
    pack.edit(ALIAS, lambda d: d["formats"].append("hello (({{ name }}"))
    assert_reported(check_aliases, pack, ALIAS, "not a valid pattern")


def test_alias_immutable_parameters_must_be_declared(pack):
    pack.edit(ALIAS, lambda d: d["immutable_parameters"].update(colour="red"))
    assert_reported(check_aliases, pack, ALIAS, "immutable_parameters 'colour'")


def test_alias_identical_formats_in_two_aliases(pack):
    pack.write("aliases/hi.yaml", """
        name: hi
        action_ref: autoscale.hello
        formats:
          - "hello  {{ name }}"
    """)
    assert_reported(check_aliases, pack, "aliases/hi.yaml", "ambiguous")


def test_alias_required_keys(pack):
    pack.edit(ALIAS, lambda d: d.pop("formats"))
    assert_reported(check_aliases, pack, ALIAS, "'formats'")


# ------------------------------------------------------------------------------------------
# 6. Sensors and trigger types
# ------------------------------------------------------------------------------------------

SENSOR = "sensors/watcher.yaml"


def test_sensor_class_missing(pack):
    pack.edit(SENSOR, lambda d: d.update(class_name="Watch"))
    assert_reported(check_sensors, pack, SENSOR, "'Watch' is not defined")


def test_sensor_with_wrong_base_class(pack):
    pack.write("sensors/watcher.py", """
        import threading


        class Watcher(threading.Thread):
            def run(self):
                pass
    """)
    assert_reported(check_sensors, pack, SENSOR, "Watcher", "Sensor/PollingSensor")


def test_sensor_with_no_base_class(pack):
    pack.write("sensors/watcher.py", """
        class Watcher:
            def run(self):
                pass
    """)
    assert_reported(check_sensors, pack, SENSOR, "does not derive from Sensor or PollingSensor")


def test_polling_sensor_without_poll(pack):
    text = GOOD_PACK["sensors/watcher.py"].replace("def poll(self)", "def pol(self)")
    pack.write("sensors/watcher.py", text)
    assert_reported(check_sensors, pack, SENSOR, "does not implement poll")


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


def test_polling_sensor_needs_poll_interval(pack):
    pack.edit(SENSOR, lambda d: d.pop("poll_interval"))
    assert_reported(check_sensors, pack, SENSOR, "no poll_interval")


def test_poll_interval_minimum(pack):
    pack.edit(SENSOR, lambda d: d.update(poll_interval=2))
    assert_reported(check_sensors, pack, SENSOR, "poll_interval", ">= 4")


@pytest.mark.parametrize("key", ["class_name", "entry_point"])
def test_sensor_required_keys(pack, key):
    pack.edit(SENSOR, lambda d: d.pop(key))
    assert_reported(check_sensors, pack, SENSOR, repr(key), "required")


def test_sensor_entry_point_must_exist_and_be_normalized(pack):
    pack.edit(SENSOR, lambda d: d.update(entry_point="watch.py"))
    assert_reported(check_sensors, pack, SENSOR, "does not exist")
    pack.edit(SENSOR, lambda d: d.update(entry_point="./watcher.py"))
    assert_reported(check_sensors, pack, SENSOR, "normalized")


def test_invalid_payload_schema(pack):
    pack.edit(SENSOR, lambda d: d["trigger_types"][0].update(payload_schema={"type": "objekt"}))
    assert_reported(check_trigger_schemas, pack, SENSOR, "'alert'", "payload_schema", "objekt")


def test_invalid_nested_payload_schema(pack):
    pack.edit(SENSOR, lambda d: d["trigger_types"][0]["payload_schema"]["properties"].update(
        size={"type": "integer", "minimum": "one"}))
    assert_reported(check_trigger_schemas, pack, SENSOR, "payload_schema", "not a valid")


def test_trigger_type_needs_a_name(pack):
    pack.edit(SENSOR, lambda d: d["trigger_types"][0].pop("name"))
    assert_reported(check_trigger_schemas, pack, SENSOR, "needs a 'name'")


def test_trigger_type_unknown_key(pack):
    pack.edit(SENSOR, lambda d: d["trigger_types"][0].update(payload={"type": "object"}))
    assert_reported(check_trigger_schemas, pack, SENSOR, "'alert'", "payload")


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


def test_invalid_policy_type(pack):
    pack.edit(POLICY, lambda d: d.update(policy_type="action.throttle"))
    assert_reported(check_policies, pack, POLICY, "'action.throttle'")


def test_policy_resource_ref_must_exist(pack):
    pack.edit(POLICY, lambda d: d.update(resource_ref="autoscale.goodbye"))
    assert_reported(check_policies, pack, POLICY, "'autoscale.goodbye'")


def test_concurrency_attr_attributes_must_be_parameters(pack):
    pack.edit(POLICY, lambda d: d["parameters"].update(attributes=["asg"]))
    assert_reported(check_policies, pack, POLICY, "attribute 'asg'")


def test_policy_parameters_are_validated(pack):
    pack.edit("policies/scale_retry.yaml", lambda d: d["parameters"].update(max_retry_count=10))
    assert_reported(check_policies, pack, "policies/scale_retry.yaml", "max_retry_count")
    pack.edit(POLICY, lambda d: d["parameters"].update(limit=3))
    assert_reported(check_policies, pack, POLICY, "'limit'")
    pack.edit(POLICY, lambda d: d.update(parameters={}))
    assert_reported(check_policies, pack, POLICY, "'threshold'")


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


def test_secret_key_without_secret_true(pack):
    pack.edit(CONFIG, lambda d: d.update(api_token={"type": "string"}))
    assert_reported(check_config_schema, pack, CONFIG, "'api_token'", "secret: true")


def test_nested_secret_key_without_secret_true(pack):
    pack.edit(CONFIG, lambda d: d["dns"]["properties"]["tsig_secret"].pop("secret"))
    assert_reported(check_config_schema, pack, CONFIG, "'dns.tsig_secret'")


def test_secret_key_inside_a_map_of_objects(pack):
    pack.edit(CONFIG, lambda d: d.update(zones={
        "type": "object",
        "additionalProperties": {"type": "object", "properties": {"client_key": {}}},
    }))
    assert_reported(check_config_schema, pack, CONFIG, "zones.*.client_key")


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


@pytest.mark.parametrize("bad_type", ["str", "dict", "float"])
def test_config_schema_type(pack, bad_type):
    pack.edit(CONFIG, lambda d: d["poll_seconds"].update(type=bad_type))
    assert_reported(check_config_schema, pack, CONFIG, "'poll_seconds'", repr(bad_type))


def test_config_schema_nested_type(pack):
    pack.edit(CONFIG, lambda d: d["slack"]["properties"]["channel"].update(type="text"))
    assert_reported(check_config_schema, pack, CONFIG, "slack.channel", "'text'")


def test_config_schema_attribute_st2_rejects(pack):
    pack.edit(CONFIG, lambda d: d["poll_seconds"].update(format="int32"))
    assert_reported(check_config_schema, pack, CONFIG, "'poll_seconds'", "format")


def test_config_schema_invalid_json_schema(pack):
    pack.edit(CONFIG, lambda d: d["poll_seconds"].update(minimum="ten"))
    assert_reported(check_config_schema, pack, CONFIG, "'ten'")


def test_config_schema_must_be_a_mapping(pack):
    pack.write(CONFIG, "- a\n- b\n")
    assert_reported(check_config_schema, pack, CONFIG, "mapping")


def test_config_example_must_validate(pack):
    pack.edit("autoscale.yaml.example", lambda d: d.update(poll_seconds="often"))
    assert_reported(check_config_schema, pack, "autoscale.yaml.example", "poll_seconds")
    pack.edit("autoscale.yaml.example", lambda d: d.update(poll_seconds=30, slack={}))
    assert_reported(check_config_schema, pack, "autoscale.yaml.example", "'token'")


def test_config_example_may_not_decrypt_secret_values(pack):
    pack.edit(CONFIG, lambda d: d.update(dns={"type": "object", "properties": {
        "tsig_secret": {"type": "string", "secret": True},
        "tsig_key_name": {"type": "string"}}}))
    # Nested secrets too: config_loader._assign_dynamic_config_values recurses with the
    # nested property's schema, so st2 decrypts them itself.
    pack.edit("autoscale.yaml.example", lambda d: d.update(
        dns={"tsig_key_name": "{{ st2kv.system.name }}"}))
    assert not [p for p in check_config_schema(str(pack)) if "decrypt_kv" in p]
    pack.edit("autoscale.yaml.example", lambda d: d.update(
        dns={"tsig_secret": "{{ st2kv.system.tsig | decrypt_kv }}"}))
    assert_reported(check_config_schema, pack, "autoscale.yaml.example", "dns.tsig_secret")
    pack.edit(CONFIG, lambda d: d.update(api_token={"type": "string", "secret": True}))
    pack.edit("autoscale.yaml.example", lambda d: d.update(
        api_token="{{ st2kv.system.token | decrypt_kv }}"))
    assert_reported(check_config_schema, pack, "autoscale.yaml.example", "decrypt_kv")


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
