"""st2harness.workflows drives orquesta as st2 3.9 does, with a pack's real actions.

The pack under test is tests/fixtures/workflows (ref ``wftest``); workflows that st2 would
refuse are written into a copy of it, so that the fixture itself stays clean for packcheck.
"""

import json
import shutil
import sys
import textwrap

import pytest

from st2harness import PackLoader
from st2harness.workflows import WorkflowRunner
from support.paths import ROOT

FIXTURE = ROOT + "/tests/fixtures/workflows"


@pytest.fixture
def runner():
    return WorkflowRunner(PackLoader(FIXTURE))


@pytest.fixture
def pack_with(tmp_path):
    """A copy of the fixture pack plus one more orquesta action ``wftest.extra``."""

    def build(workflow, parameters=""):
        pack = tmp_path / "pack"
        shutil.copytree(FIXTURE, pack)
        meta = "name: extra\nrunner_type: orquesta\nentry_point: workflows/extra.yaml\n"
        if parameters:
            meta += "parameters:\n" + textwrap.indent(textwrap.dedent(parameters), "  ")
        (pack / "actions" / "extra.yaml").write_text(meta)
        (pack / "actions" / "workflows" / "extra.yaml").write_text(
            "version: 1.0\n" + textwrap.dedent(workflow))
        return WorkflowRunner(PackLoader(str(pack)))

    return build


def max_overlap(records):
    """The largest number of action executions that were running at one moment."""
    return max(sum(1 for other in records if other.started <= record.started < other.ended)
               for record in records)


def notes(runner, key):
    value = runner.loader.datastore.service("wftest", "Test").get_value(
        "wftest.notes.%s" % key, local=False)
    return json.loads(value) if value else []


# -- flows -------------------------------------------------------------------------------------


def test_sequential_flow_publishes_the_python_results(runner):
    res = runner.run("wftest.sequential", start=1)
    assert res.status == "succeeded", res.errors
    # add_default got only a=2 (inline parameter): b=10 is the action metadata's default.
    assert res.output == {"first": 2, "total": 12, "summary": "2 then 12"}
    assert res.errors == []
    first, second = res.tasks
    assert (first.task_id, first.action, first.input) == ("add_one", "wftest.add",
                                                          {"a": 1, "b": 1})
    assert (second.task_id, second.input) == ("add_default", {"a": 2})
    assert second.result == {"stdout": "", "stderr": "", "exit_code": 0, "result": 12}
    assert first.started <= first.ended <= second.started <= second.ended
    assert res.result == {"output": res.output}


def test_failed_python_action_takes_the_failed_branch(runner):
    res = runner.run("wftest.handle_failure")
    assert res.status == "succeeded"  # the failure transition remediates it
    assert res.output["error"] == {"stdout": "", "stderr": "", "exit_code": 0,
                                   "result": {"error": "disk full"}}
    assert res.output["handled"] == "cleaning up"  # core.echo's stdout
    assert res.task_ids() == ["try_it", "cleanup"]  # never "never"
    assert [r.status for r in res.tasks] == ["failed", "succeeded"]
    # orquesta logs every failed action execution, remediated or not
    assert res.errors[0]["message"] == "Execution failed. See result for details."


def test_an_exception_fails_the_task_with_the_traceback(runner):
    res = runner.run("wftest.handle_failure", how="raise")
    assert res.status == "succeeded"
    error = res.output["error"]
    assert error["exit_code"] == 1 and error["result"] == "None"  # the wrapper printed none
    assert "Traceback" in error["stderr"] and "RuntimeError: disk full" in error["stderr"]


def test_a_workflow_ending_failed_reports_errors(runner):
    res = runner.run("wftest.fails")
    assert res.status == "failed"
    assert res.task_ids() == ["first", "breaks"]  # "after" never ran
    [error] = res.errors
    assert error["message"] == "Execution failed. See result for details."
    assert error["task_id"] == "breaks"
    assert error["result"]["result"] == {"error": "no luck"}
    assert res.result == {"output": None, "errors": res.errors}


def test_with_items_runs_items_concurrently_up_to_the_limit(runner):
    res = runner.run("wftest.items", tags=list("abcdef"), concurrency=3)
    assert res.status == "succeeded", res.errors
    assert res.output == {"tags": list("abcdef")}  # result() keeps the item order
    naps = res.records("nap_each")
    assert sorted(r.item_id for r in naps) == list(range(6))
    assert [r.input["tag"] for r in sorted(naps, key=lambda r: r.item_id)] == list("abcdef")
    assert max_overlap(naps) == 3  # really three at once, never four


def test_parallel_branches_run_together_and_join(runner):
    res = runner.run("wftest.parallel")
    assert res.status == "succeeded", res.errors
    assert res.output == {"both": ["left", "right"]}
    [left], [right], [join] = res.records("left"), res.records("right"), res.records("together")
    assert max_overlap([left, right]) == 2
    assert join.started >= max(left.ended, right.ended)


def test_a_failed_branch_into_a_join_waits_for_the_other_branch(runner):
    # orquesta 1.6 behaviour (st2 3.9), backported: 1.2 would fail the workflow with
    # UnreachableJoinError as soon as quick_fail fails while slow still runs.
    res = runner.run("wftest.join_after_failure")
    assert res.status == "succeeded", res.errors
    assert res.output == {"failed_branch": True}
    [slow], [join] = res.records("slow"), res.records("together")
    assert join.started >= slow.ended


def test_nested_workflow_result_is_its_output(runner):
    res = runner.run("wftest.nested")
    assert res.status == "succeeded", res.errors
    child = {"first": 6, "total": 16, "summary": "6 then 16"}
    assert res.output == {"total": 16, "child": {"output": child}}
    [record] = res.tasks
    assert record.action == "wftest.sequential" and record.result == {"output": child}
    assert record.subworkflow.task_ids() == ["add_one", "add_default"]
    assert [r.workflow for r in res.walk()] == ["wftest.nested"] + ["wftest.sequential"] * 2


def test_a_failed_subworkflow_gives_its_errors_to_the_parent(runner):
    res = runner.run("wftest.nested_fails")
    assert res.status == "succeeded"  # caught with "do: noop"
    child = res.output["child"]
    assert child["output"] is None
    assert child["errors"][0]["task_id"] == "breaks"


def test_retry_runs_the_task_again(runner):
    res = runner.run("wftest.retry", key="r")
    assert res.status == "succeeded", res.errors
    assert res.output == {"calls": 3}
    assert [r.status for r in res.records("shaky")] == ["failed", "failed", "succeeded"]


# -- parameters --------------------------------------------------------------------------------


def test_workflow_inputs_come_from_the_action_parameters(runner):
    res = runner.run("wftest.defaults", given="x")
    assert res.status == "succeeded", res.errors
    # The action metadata's default wins over the workflow's own input default ...
    assert res.output["preferred"] == "from the action metadata"
    # ... and a python action gets every declared parameter: default, or None.
    assert res.output["seen"] == {"given": "x", "defaulted": "from the metadata", "unset": None}


def test_workflow_input_defaults_apply_only_to_undeclared_inputs(pack_with):
    runner = pack_with("""
        input:
          - declared: from the workflow
          - internal: from the workflow
        output:
          - declared: <% ctx(declared) %>
          - internal: <% ctx(internal) %>
        tasks:
          one:
            action: core.noop
        """, parameters="""
        declared:
          type: string
        """)
    res = runner.run("wftest.extra")
    assert res.status == "succeeded", res.errors
    assert res.output == {"declared": None, "internal": "from the workflow"}


@pytest.mark.parametrize("params, message", [
    ({}, "'start' is a required property"),
    ({"start": 1, "bogus": 2}, "Additional properties are not allowed ('bogus' was unexpected)"),
    ({"start": "one"}, "invalid literal for int() with base 10: 'one'"),
])
def test_bad_execution_parameters_fail_before_anything_runs(runner, params, message):
    res = runner.run("wftest.sequential", **params)
    assert (res.status, res.tasks, res.output) == ("failed", [], None)
    assert res.errors == [{"message": message}]


@pytest.mark.parametrize("ref, parameters, message", [
    ("wftest.nope", {}, 'InvalidActionReferencedException: Unable to find action "wftest.nope".'),
    ("wftest.add", {"a": "x"}, "ValueError: invalid literal for int() with base 10: 'x'"),
    ("wftest.nap", {"tag": 5}, 'ValueError: Value "5" must either be a string or None. Got "int".'),
    ("wftest.add", {"a": 1, "c": 2},
     "ValidationError: Additional properties are not allowed ('c' was unexpected)"),
    ("wftest.add", {}, "ValidationError: 'a' is a required property"),
])
def test_a_bad_action_request_at_run_time_fails_the_workflow(runner, ref, parameters, message):
    res = runner.run("wftest.dynamic", ref=ref, parameters=parameters)
    assert res.status == "failed"
    error = res.errors[0]
    assert error["message"].startswith(message)
    assert (error["task_id"], error["route"]) == ("call", 0)
    [record] = res.tasks
    assert record.status == "failed" and record.started is not None


def test_task_input_is_cast_to_the_parameter_types(runner):
    res = runner.run("wftest.dynamic", ref="wftest.add", parameters={"a": "3"})
    assert res.status == "succeeded", res.errors
    assert res.output["out"]["result"] == 13
    assert res.tasks[0].input == {"a": 3}


def test_core_local_result(runner):
    res = runner.run("wftest.dynamic", ref="core.local",
                     parameters={"cmd": "echo '{\"a\": 1}'; echo oops >&2; exit 3"})
    assert res.status == "failed"
    out = res.errors[0]["result"]
    assert out == {"failed": True, "succeeded": False, "return_code": 3,
                   "stdout": {"a": 1}, "stderr": "oops"}


# -- inspection: what st2 refuses before the workflow starts -------------------------------------

BEFORE = """
    tasks:
      first:
        action: wftest.note
        input:
          key: k
          word: ran
        next:
          - do: second
      second:
"""


@pytest.mark.parametrize("second, kind, message", [
    ("""\
        action: core.noop
        next:
          - do: nowhere
     """, "semantic", 'The task "nowhere" is not defined.'),
    ("""\
        action: core.noop
        next:
          - when: <% succeeded( %>
     """, "expression", "Parse error: unexpected end of statement"),
    ("""\
        action: wftest.add
        input:
          a: 1
          c: 2
     """, "content", 'Action "wftest.add" has unexpected input "c".'),
    ("""\
        action: wftest.add
        input:
          b: 2
     """, "content", 'Action "wftest.add" is missing required input "a".'),
    ("""\
        action: wftest.nope
     """, "content", 'The action "wftest.nope" is not registered in the database.'),
    # Inline string parameters must be quoted, or the whole text is the action's name.
    ("""\
        action: wftest.nap tag=left
     """, "content", 'The action "wftest.nap tag=left" is not registered in the database.'),
], ids=["missing-task", "bad-expression", "undeclared-parameter", "missing-parameter",
        "unknown-action", "unquoted-inline"])
def test_inspection_errors_fail_the_run_before_any_task(pack_with, second, kind, message):
    runner = pack_with(BEFORE + textwrap.indent(textwrap.dedent(second), " " * 8))
    res = runner.run("wftest.extra")
    assert (res.status, res.tasks, res.output) == ("failed", [], None)
    assert [(e["type"], e["message"]) for e in res.errors] == [(kind, message)]
    assert runner.inspect("wftest.extra") == res.errors
    assert notes(runner, "k") == []  # the first task never ran


def test_duplicate_keys_are_refused_as_in_orquesta_1_6(pack_with):
    runner = pack_with("""
        tasks:
          one:
            action: core.noop
          one:
            action: core.noop
        """)
    res = runner.run("wftest.extra")
    assert res.status == "failed"
    assert res.errors == [
        {"message": 'Failed to load workflow definition because found duplicate key "one".'}]


def test_the_fixture_workflows_pass_inspection(runner):
    for name, meta in sorted(runner.loader.action_metadata().items()):
        if meta["runner_type"] == "orquesta":
            assert runner.inspect("wftest." + name) == [], name


# -- abandoned executions ----------------------------------------------------------------------


def test_stop_after_abandons_the_execution_mid_way(runner):
    res = runner.run("wftest.notes", key="n", stop_after="two")
    assert res.abandoned and res.status == "running" and res.output is None
    assert res.task_ids() == ["one", "two"]
    assert notes(runner, "n") == ["one", "two"]  # "two" ran; nothing after it


def test_a_stop_inside_a_subworkflow_stops_the_whole_run(runner):
    res = runner.run("wftest.nested", stop_when=lambda record: record.task_id == "add_one")
    assert res.abandoned and res.status == "running"
    [record] = res.tasks
    assert record.subworkflow.abandoned
    assert record.subworkflow.task_ids() == ["add_one"]


# -- the orquesta 1.2 compatibility patches ------------------------------------------------------


def test_the_stdlib_names_do_not_leak_into_the_process():
    import collections
    import fractions

    if sys.version_info >= (3, 10):
        assert "Mapping" not in vars(collections)
    if sys.version_info >= (3, 9):
        assert "gcd" not in vars(fractions)


def test_inline_parameters_parse_on_this_python():
    from orquesta.utils import parameters

    parsed = parameters.parse_inline_params('a=TRUE b=null c="x" d=1.5', preserve_order=False)
    assert parsed == {"a": True, "b": None, "c": "x", "d": 1.5}
