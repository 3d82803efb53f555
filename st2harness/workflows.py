"""Run a pack's Orquesta workflows the way StackStorm 3.9 does, with the pack's real actions.

``WorkflowRunner(PackLoader(...)).run("autoscale.asg_add_node", asg="web")`` returns a
``WorkflowResult(status, output, errors, tasks)``. The engine side is a transcription of
st2common/st2common/services/workflows.py (st2 v3.9.0: ``request``, ``inspect``,
``request_next_tasks``, ``request_task_execution``, ``request_action_execution``,
``handle_action_execution_completion``, ``update_task_execution``, ``update_task_state``,
``fail_workflow_execution``, ``update_execution_records``) and of the orquesta runner
(contrib/runners/orquesta_runner), driving the same ``orquesta.conducting.WorkflowConductor``
calls in the same order. What st2 does with MongoDB and RabbitMQ between those calls is done
here in memory; what st2's action runners do is done as follows:

* python-script actions of the pack: ``LoadedAction.run`` (st2's import paths, datastore,
  config). The action execution's result is the python runner's:
  ``{"stdout": "", "stderr": "", "exit_code": 0, "result": <what run() returned>}`` (so
  ``result().result`` in the workflow); ``return (False, x)`` fails the task with ``result`` x;
  an exception fails it with ``exit_code`` 1, the traceback in ``stderr`` and ``result``
  ``"None"`` (a string: the wrapper printed no result). Not reproduced: what the action prints
  or logs (st2 puts it in ``stdout``/``stderr``; here they stay empty).
* orquesta actions of the pack (subworkflows): run by this runner, recursively; the task's
  result is what st2 gives: ``{"output": <output or None>}``, plus ``"errors"`` when it failed.
* ``core.noop``, ``core.echo`` and ``core.local`` (local-shell-cmd: ``stdout``, ``stderr``,
  ``return_code``, ``succeeded``, ``failed``; stdout/stderr JSON-decoded when they are JSON).
* Other actions: inspection fails the workflow before it starts, as st2 does for an action
  that is not registered (``The action "x.y" is not registered in the database.``); an action
  reference computed by an expression that names no action fails the workflow when the task
  is reached (``InvalidActionReferencedException: Unable to find action "x.y".``).

Parameters: a task's input is cast per the called action's parameter types
(st2common.util.param.render_live_params: a number passed to a ``string`` parameter fails),
validated against the action's and its runner's parameters (st2common.services.action.
create_request: unexpected or invalid values, immutable overrides fail), and the action gets
every declared parameter, ``None`` when unset and without a default. Inspection
(st2common.services.workflows.inspect) already refuses, before anything runs, a task input
that misses a required parameter or passes an undeclared one. A failure while requesting an
action fails the whole workflow, with the error logged against the task, as in st2. The
workflow's own inputs are the action's parameters: declared but unset ones are passed as
``None``, so an orquesta ``input`` default applies only to an input the action metadata does
not declare.

Concurrency: tasks (and with-items items) that orquesta hands out together run at the same
time in a thread pool (``max_workers`` per workflow execution, with-items ``concurrency``
respected); the conductor of a workflow is touched only by the thread running that workflow,
and all orquesta calls are serialised by one lock (its YAQL parser is not thread-safe).
Task ``delay`` and retry delays are slept in the worker before the action starts.

Stopping mid-way (crash tests): ``run(..., stop_after="task")`` or ``stop_when=predicate``
(called with each finished ``TaskRecord``, at any nesting depth) stops the engine as if it
crashed when that action execution completes: the conductor never hears of it, no further
task starts in any workflow of the run, nothing is cleaned up; actions already running finish
(st2's action runners outlive its workflow engine). The result has ``abandoned=True`` and the
status the workflow had (``running``).

Not reproduced: pause/resume/cancel, rerun, notify, Jinja templates in action parameter
values or defaults (``{{ config_context... }}``, ``{{ st2kv... }}``), st2's own YAQL/Jinja
functions (``st2kv()``, ``json_dump()``...: the workflows here use only orquesta's).
"""

from __future__ import annotations

import concurrent.futures
import copy
import json
import os
import queue
import subprocess
import threading
import time
import traceback
import uuid
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Optional, Tuple

import jinja2
import jsonschema
import yaml

from . import orquesta_compat

orquesta_compat.apply()

from orquesta import conducting, events, graphing, statuses  # noqa: E402
from orquesta import exceptions as orquesta_exc  # noqa: E402
from orquesta.expressions import base as expressions  # noqa: E402
from orquesta.specs import loader as specs_loader  # noqa: E402

from . import schema as st2schema  # noqa: E402
from .casts import CASTS  # noqa: E402
from .loader import RUNNER_PARAMETERS as _PYTHON_RUNNER_TYPES  # noqa: E402
from .loader import LoadedAction, PackLoader, load_failure, read_yaml  # noqa: E402

__all__ = ["InvalidActionReferencedException", "TaskRecord", "WorkflowResult", "WorkflowRunner"]

# st2common.constants.action / st2common.expressions.functions.data
COMPLETED = list(statuses.COMPLETED_STATUSES)

# contrib/runners/*/runner.yaml (only the runners this harness runs).
RUNNER_PARAMETERS: Dict[str, Dict[str, dict]] = {
    "python-script": {name: {"type": kind} for name, kind in
                      _PYTHON_RUNNER_TYPES["python-script"].items()},
    "orquesta": {
        "notify": {"type": "array", "uniqueItems": True, "default": [],
                   "items": {"type": "string", "minLength": 1, "pattern": "^\\w+$"}},
    },
    "local-shell-cmd": {
        "cmd": {"type": "string"},
        "cwd": {"type": "string"},
        "env": {"type": "object"},
        "kwarg_op": {"type": "string", "default": "--"},
        "sudo": {"type": "boolean", "default": False},
        "sudo_password": {"type": "string", "default": None, "secret": True, "required": False},
        "timeout": {"type": "integer", "default": 60},
    },
    "noop": {},
}

# contrib/core/actions/{noop,echo,local}.yaml
CORE_ACTIONS: Dict[str, dict] = {
    "core.noop": {"name": "noop", "runner_type": "noop", "parameters": {}},
    "core.echo": {"name": "echo", "runner_type": "local-shell-cmd", "parameters": {
        "message": {"type": "string", "required": True},
        "cmd": {"type": "string", "required": True, "default": 'echo "{{message}}"',
                "immutable": True},
        "kwarg_op": {"immutable": True},
        "sudo": {"default": False, "immutable": True},
        "sudo_password": {"immutable": True},
    }},
    "core.local": {"name": "local", "runner_type": "local-shell-cmd", "parameters": {
        "cmd": {"type": "string", "required": True},
        "sudo": {"immutable": True},
    }},
}

# One lock around every orquesta call of every workflow in this process: orquesta's YAQL
# engine (a ply parser) keeps parse state in shared objects. st2 runs its engine in eventlet
# green threads, which never preempt one another in the middle of such a call.
_ENGINE_LOCK = threading.RLock()
# Loading a pack file rewires sys.path and sys.modules for a moment (st2harness.loader).
_LOAD_LOCK = threading.Lock()


class InvalidActionReferencedException(Exception):
    """st2common.exceptions.action.InvalidActionReferencedException"""


@dataclass
class TaskRecord:
    """One action execution of a task (one per item for with-items), or an action-less task."""

    task_id: str
    route: int
    action: Optional[str]
    input: Any
    status: str
    result: Any = None
    started: Optional[float] = None  # time.monotonic() when the action started
    ended: Optional[float] = None
    item_id: Optional[int] = None
    workflow: str = ""  # ref of the workflow the task belongs to
    subworkflow: Optional[WorkflowResult] = None  # for a task that ran an orquesta action


@dataclass
class WorkflowResult:
    status: str
    output: Optional[dict]
    errors: List[dict]
    tasks: List[TaskRecord] = field(default_factory=list)
    action: str = ""
    abandoned: bool = False

    @property
    def result(self) -> dict:
        """The execution's result as st2 shows it (OrquestaRunner, update_execution_records)."""
        result: Dict[str, Any] = {"output": self.output or None}
        if self.status in statuses.ABENDED_STATUSES:
            result["errors"] = self.errors
        return result

    def records(self, task_id: str) -> List[TaskRecord]:
        return [record for record in self.tasks if record.task_id == task_id]

    def walk(self):
        """Every TaskRecord of this execution and, depth first, of its subworkflows."""
        for record in self.tasks:
            yield record
            if record.subworkflow is not None:
                yield from record.subworkflow.walk()

    def task_ids(self) -> List[str]:
        """Ids of the tasks that ran, in the order they were requested (each once)."""
        seen: List[str] = []
        for record in self.tasks:
            if record.task_id not in seen:
                seen.append(record.task_id)
        return seen


# -- parameters (st2common.util.param, st2common.util.casts, st2common.util.schema) -----------

def _cast(value, parameter_schema):
    if value is None or not parameter_schema:
        return value
    kind = parameter_schema.get("type")
    if not kind:
        return value
    cast = CASTS.get(kind)  # a list of types raises TypeError, as in st2
    return cast(value) if cast else value


def _deep_update(target: dict, source: dict) -> dict:
    for key, value in source.items():
        if isinstance(value, dict) and isinstance(target.get(key), dict):
            _deep_update(target[key], value)
        else:
            target[key] = copy.deepcopy(value)
    return target


# -- actions -----------------------------------------------------------------------------------

@dataclass
class _Action:
    ref: str
    meta: dict
    loaded: Optional[LoadedAction] = None
    load_error: str = ""

    @property
    def runner_type(self) -> str:
        return self.meta.get("runner_type", "")

    @property
    def runner_parameters(self) -> Dict[str, dict]:
        return RUNNER_PARAMETERS.get(self.runner_type, {})

    @property
    def parameters(self) -> Dict[str, dict]:
        return self.meta.get("parameters") or {}

    def parameter_specs(self) -> Dict[str, dict]:
        """st2common.util.action_db.get_action_parameters_specs: runner's, then action's."""
        specs = dict(self.runner_parameters)
        specs.update(self.parameters)
        return specs

    def schema(self) -> dict:
        """st2common.util.schema.get_schema_for_action_parameters."""
        merged: Dict[str, dict] = {}
        _deep_update(merged, copy.deepcopy(self.runner_parameters))
        _deep_update(merged, copy.deepcopy(self.parameters))
        properties = {name: spec or {} for name, spec in merged.items()}
        if not properties:
            return {}
        return {"type": "object", "properties": properties, "additionalProperties": False}

    def live_params(self, params: Dict[str, Any]) -> Dict[str, Any]:
        """render_live_params' casts (st2common.util.param._cast_params_from)."""
        result = {}
        for name, value in params.items():
            param_schema: dict = {}
            for schema in (self.parameters, self.runner_parameters):
                if name in schema:
                    param_schema = schema[name]
            result[name] = _cast(value, param_schema)
        return result

    def check_request(self, params: Dict[str, Any]) -> Dict[str, Any]:
        """st2common.services.action.create_request: enabled, parameters valid, no immutable
        parameter overridden. Returns the parameters with their defaults."""
        if not self.meta.get("enabled", True):
            raise ValueError('Unable to execute. Action "%s" is disabled.' % self.ref)
        validated = st2schema.validate(params, self.schema()) if self.schema() else dict(params)
        immutables = [name for name, spec in list(self.parameters.items())
                      + list(self.runner_parameters.items()) if (spec or {}).get("immutable")]
        overridden = [name for name in params if name in immutables]
        if overridden:
            raise ValueError("Override of immutable parameter(s) %s is unsupported."
                             % str(overridden))
        return validated

    def final_params(self, validated: Dict[str, Any]) -> Dict[str, Any]:
        """render_final_params: every parameter, None when unset and without a default."""
        names = list(self.runner_parameters) + [n for n in self.parameters
                                                if n not in self.runner_parameters]
        final = {}
        for name in names:
            value = validated.get(name)
            if value is None:
                value = copy.deepcopy((self.parameter_specs().get(name) or {}).get("default"))
            final[name] = value
        return final

    def action_params(self, final: Dict[str, Any]) -> Dict[str, Any]:
        return {name: final.get(name) for name in self.parameters
                if name not in self.runner_parameters}


# -- one workflow execution ---------------------------------------------------------------------

@dataclass
class _TaskExecution:
    """st2common.models.db.workflow.TaskExecutionDB, the fields the engine reads."""

    task_id: str
    route: int
    spec: Any
    itemized: bool
    items_count: Optional[int]
    concurrency: Optional[int]
    delay: Optional[int]
    status: str = statuses.REQUESTED
    result: Any = None


@dataclass
class _Run:
    """What one top-level run shares across its nested workflows."""

    stop_when: Optional[Callable[[TaskRecord], bool]]
    actions: Dict[str, Optional[_Action]] = field(default_factory=dict)
    metadata: Optional[Dict[str, dict]] = None
    abandon: threading.Event = field(default_factory=threading.Event)


class _Execution:
    def __init__(self, run: _Run, action: _Action, conductor, st2_ctx: dict, max_workers: int):
        self.run = run
        self.action = action
        self.conductor = conductor
        self.st2_ctx = st2_ctx
        self.pool = concurrent.futures.ThreadPoolExecutor(
            max_workers=max_workers, thread_name_prefix="wf-%s" % action.meta.get("name"))
        self.completions: queue.Queue = queue.Queue()
        self.in_flight = 0
        self.task_executions: List[_TaskExecution] = []
        self.records: List[TaskRecord] = []


class WorkflowRunner:
    """Runs the orquesta actions of one pack (see the module docstring)."""

    def __init__(self, loader: PackLoader, max_workers: int = 8, user: str = "stanley"):
        self.loader = loader
        self.max_workers = max_workers
        self.user = user
        # Workflow definition path -> (file stamp, spec, spec.inspect result). st2 compiles a
        # definition per execution too, but orquesta 1.2 takes ~0.15 s to build and inspect
        # asg_add_node under the one engine lock, which made parallel subworkflows queue; a
        # changed file is read again.
        self._specs: Dict[str, Tuple[Tuple[int, int], Any, Any]] = {}
        self._graphs: Dict[str, Tuple[Any, Any]] = {}
        # Action ref -> "raise", or the stderr of its import failure (see break_action).
        self._broken: Dict[str, str] = {}
        self._broken_lock = threading.Lock()

    # -- public ----------------------------------------------------------------------------

    def run(self, action_ref: str, /, *, stop_after: Optional[str] = None,
            stop_when: Optional[Callable[[TaskRecord], bool]] = None,
            **params: Any) -> WorkflowResult:
        """Execute an orquesta action of the pack, like ``st2 run <action_ref> k=v...``."""
        if stop_after is not None:
            if stop_when is not None:
                raise TypeError("give stop_after or stop_when, not both")
            stop_when = _task_is(stop_after)
        run = _Run(stop_when=stop_when)
        action = self._resolve(run, action_ref)
        if action is None:
            raise LookupError('Action "%s" cannot be found.' % action_ref)
        if action.runner_type != "orquesta":
            raise ValueError("%s is a %s action, not an orquesta workflow"
                             % (action_ref, action.runner_type))
        self._preload(run, action, set())
        # The API (st2api's execution controller) casts and validates before anything is
        # created; a failure there is a 400 with the validation message and no execution.
        try:
            validated = action.check_request(action.live_params(params))
        except jsonschema.ValidationError as exc:
            return WorkflowResult(statuses.FAILED, None, [{"message": exc.message}],
                                  action=action_ref)
        except (ValueError, TypeError) as exc:
            return WorkflowResult(statuses.FAILED, None, [{"message": str(exc)}],
                                  action=action_ref)
        parent = {"user": self.user, "pack": self.loader.pack}
        return self._run_workflow(run, action, action.final_params(validated), parent)

    def break_action(self, action_ref: str, how: str = "raise") -> None:
        """Make a python action fail the way st2's python runner reports a broken action,
        for the workflows' failure branches (until ``mend_action``):

        * ``"raise"``: the action runs, does all it does, then raises (a crash after its side
          effects: the worst case for clean-up);
        * ``"import"``: the action file fails to import (a broken library), so nothing of it
          runs: the action module is really executed with its library shadowed by one whose
          import raises ModuleNotFoundError.

        Either way the task gets st2's result for it: exit code 1, ``result`` "None", the
        traceback in ``stderr``.
        """
        if how not in ("raise", "import"):
            raise ValueError("how must be 'raise' or 'import', not %r" % how)
        pack, _, name = action_ref.partition(".")
        if pack != self.loader.pack:
            raise LookupError("%s is not an action of pack %s" % (action_ref, self.loader.pack))
        # Loading rewires sys.path for a moment: done now, never while actions run.
        failure = self.loader.import_failure(name) if how == "import" else how
        with self._broken_lock:
            self._broken[action_ref] = failure

    def mend_action(self, action_ref: str) -> None:
        with self._broken_lock:
            self._broken.pop(action_ref, None)

    def inspect(self, action_ref: str) -> List[dict]:
        """The errors st2 would find in the workflow before running it (empty: none)."""
        run = _Run(stop_when=None)
        action = self._resolve(run, action_ref)
        if action is None:
            raise LookupError('Action "%s" cannot be found.' % action_ref)
        try:
            spec = self._load_spec(action)
        except Exception as exc:  # what OrquestaRunner.start_workflow reports
            return [{"message": str(exc)}]
        return self._inspect(run, spec, self._st2_context(action, {"user": self.user}))

    # -- actions ---------------------------------------------------------------------------

    def _metadata(self, run: _Run) -> Dict[str, dict]:
        if run.metadata is None:
            run.metadata = self.loader.action_metadata()
        return run.metadata

    def _resolve(self, run: _Run, ref: str) -> Optional[_Action]:
        """The action registered under ``ref``, or None (st2: not in the database)."""
        if ref in run.actions:
            return run.actions[ref]
        action = None
        if ref in CORE_ACTIONS:
            action = _Action(ref, CORE_ACTIONS[ref])
        else:
            pack, _, name = ref.partition(".")
            meta = self._metadata(run).get(name) if pack == self.loader.pack else None
            if meta is not None:
                action = _Action(ref, meta)
                if action.runner_type == "python-script":
                    with _LOAD_LOCK:
                        try:
                            action.loaded = self.loader.action(name)
                        except Exception as exc:
                            # The python runner's wrapper fails the same way at run time.
                            action.load_error = load_failure(
                                os.path.join(self.loader.pack_dir, "actions",
                                             str(meta.get("entry_point"))), exc)
        run.actions[ref] = action
        return action

    def _preload(self, run: _Run, action: _Action, seen: set) -> None:
        """Load every python action the workflow (and its subworkflows) names literally
        before anything runs: loading rewires sys.path and sys.modules for a moment, which
        must not happen while actions run in other threads."""
        if action.ref in seen or action.runner_type != "orquesta":
            return
        seen.add(action.ref)
        try:
            definition = read_yaml(self._entry_point(action))
            tasks = (definition or {}).get("tasks") or {}
        except Exception:
            return
        for task in tasks.values():
            ref = task.get("action") if isinstance(task, dict) else None
            if not isinstance(ref, str) or not ref.strip():
                continue
            ref = ref.split()[0]
            if any(e.has_expressions(ref) for e in expressions.get_evaluators().values()):
                continue
            found = self._resolve(run, ref)
            if found is not None:
                self._preload(run, found, seen)

    # -- workflow definition ---------------------------------------------------------------

    def _entry_point(self, action: _Action) -> str:
        entry = action.meta.get("entry_point") or ""
        if os.path.normpath(entry) != entry:
            raise ValueError("entry_point %r is not normalised; st2 refuses to run it" % entry)
        return os.path.join(self.loader.pack_dir, "actions", entry)

    def _load_spec(self, action: _Action):
        path = self._entry_point(action)
        stat = os.stat(path)
        stamp = (stat.st_mtime_ns, stat.st_size)
        cached = self._specs.get(path)
        if cached is not None and cached[0] == stamp:
            return cached[1]
        spec = self._compile_spec(path)
        self._specs[path] = (stamp, spec, None)
        return spec

    def _reuse_graph(self, action: _Action, conductor) -> None:
        """Give the conductor the task graph composed for this definition last time. The
        graph depends on the definition only; composing it (networkx, orquesta 1.2) takes
        ~0.13 s for asg_add_node, under the engine lock, so ten parallel adds queued for a
        second and more. st2 itself stores the serialized graph with the execution."""
        path = self._entry_point(action)
        cached = self._graphs.get(path)
        stamp = self._specs.get(path, (None,))[0]
        if cached is not None and cached[0] == stamp:
            conductor._graph = graphing.WorkflowGraph.deserialize(cached[1])
        else:
            self._graphs[path] = (stamp, conductor.graph.serialize())

    def _compile_spec(self, path: str):
        with open(path, encoding="utf-8") as handle:
            definition = handle.read()
        # orquesta >= 1.4 (st2 3.9) refuses duplicate keys; 1.2 would keep the last one.
        try:
            yaml.load(definition, Loader=_UniqueKeyLoader)  # noqa: S506 (a SafeLoader)
        except Exception as exc:
            raise ValueError("Failed to load workflow definition because %s." % exc) from exc
        return specs_loader.get_spec_module("native").instantiate(definition)

    def _st2_context(self, action: _Action, parent: dict) -> dict:
        """OrquestaRunner._construct_st2_context."""
        st2 = {
            "action_execution_id": uuid.uuid4().hex[:24],
            "api_url": "http://127.0.0.1/api/v1",
            "user": parent.get("user", self.user),
            "pack": parent.get("pack", self.loader.pack),
            "action": action.ref,
            "runner": action.runner_type,
        }
        return {"st2": st2, "parent": parent}

    def _inspect(self, run: _Run, spec, st2_ctx: dict) -> List[dict]:
        """st2common.services.workflows.inspect (without raising)."""
        cached = next((item for item in self._specs.items() if item[1][1] is spec), None)
        if cached is not None and cached[1][2] is not None:
            result = cached[1][2]
        else:
            with _ENGINE_LOCK:
                result = spec.inspect(app_ctx=st2_ctx, raise_exception=False)
            if cached is not None:
                # The result depends on the definition and the context's keys (st2, parent),
                # which are the same for every run.
                self._specs[cached[0]] = (cached[1][0], spec, result)
        errors = _format_inspection_result(result) + self._inspect_task_contents(run, spec)
        return sorted(errors, key=lambda e: (e["type"], e["schema_path"]))

    def _inspect_task_contents(self, run: _Run, spec) -> List[dict]:
        """st2common.services.workflows.inspect_task_contents."""
        result = []
        schema_path = "properties.tasks.patternProperties.^\\w+$"
        action_schema_path = schema_path + ".properties.action"
        input_schema_path = schema_path + ".properties.input"
        for task_name, task_spec in spec.tasks.items():
            action_ref = getattr(task_spec, "action", None)
            action_spec_path = "tasks." + task_name + ".action"
            input_spec_path = "tasks." + task_name + ".input"
            if not action_ref or (isinstance(action_ref, str) and any(
                    e.has_expressions(action_ref) for e in expressions.get_evaluators().values())):
                continue
            if "." not in action_ref:
                result.append({"type": "content", "message":
                               'The action reference "%s" is not formatted correctly.'
                               % action_ref, "spec_path": action_spec_path,
                               "schema_path": action_schema_path})
                continue
            action = self._resolve(run, action_ref)
            if action is None:
                result.append({"type": "content", "message":
                               'The action "%s" is not registered in the database.'
                               % action_ref, "spec_path": action_spec_path,
                               "schema_path": action_schema_path})
                continue
            params = getattr(task_spec, "input", None) or {}
            if params and not isinstance(params, dict):
                continue
            specs = action.parameter_specs()
            required = {name for name, meta in specs.items()
                        if (meta or {}).get("required", False) and "default" not in (meta or {})}
            for name in sorted(required - set(params)):
                result.append({"type": "content", "message":
                               'Action "%s" is missing required input "%s".' % (action_ref, name),
                               "spec_path": input_spec_path, "schema_path": input_schema_path})
            for name in sorted(set(params) - set(specs)):
                result.append({"type": "content", "message":
                               'Action "%s" has unexpected input "%s".' % (action_ref, name),
                               "spec_path": input_spec_path + "." + name,
                               "schema_path": input_schema_path + ".patternProperties.^\\w+$"})
        return result

    # -- request (st2common.services.workflows.request + OrquestaRunner.start_workflow) ----

    def _run_workflow(self, run: _Run, action: _Action, final: Dict[str, Any],
                      parent: dict) -> WorkflowResult:
        def failed(errors):
            return WorkflowResult(statuses.FAILED, None, errors, action=action.ref)

        if run.abandon.is_set():
            return WorkflowResult(statuses.REQUESTED, None, [], action=action.ref,
                                  abandoned=True)
        st2_ctx = self._st2_context(action, parent)
        try:
            spec = self._load_spec(action)
        except Exception as exc:
            return failed([{"message": str(exc)}])
        errors = self._inspect(run, spec, st2_ctx)
        if errors:  # raise WorkflowInspectionError(errors) -> {"errors": e.args[1]}
            return failed(orquesta_exc.WorkflowInspectionError(errors).args[1])
        with _ENGINE_LOCK:
            try:
                conductor = conducting.WorkflowConductor(
                    spec, inputs=action.action_params(final), context=st2_ctx)
                self._reuse_graph(action, conductor)
                conductor.serialize()  # initialises the state: renders input and vars
                if conductor.get_workflow_status() in COMPLETED:
                    return self._result(action, conductor, [])
                conductor.request_workflow_status(statuses.REQUESTED)
            except Exception as exc:
                return failed([{"message": str(exc)}])
        exe = _Execution(run, action, conductor, st2_ctx, self.max_workers)
        try:
            # The engine picks up the "requested" workflow: request_next_tasks.
            self._guarded(exe, self._request_next_tasks, exe)
            while exe.in_flight:
                record, status, result, sub = exe.completions.get()
                exe.in_flight -= 1
                record.status, record.result, record.subworkflow = status, result, sub
                if run.abandon.is_set():
                    continue  # the engine is gone: nobody processes the completion
                if (sub is not None and sub.abandoned) or (
                        run.stop_when is not None and run.stop_when(record)):
                    run.abandon.set()
                    continue
                self._guarded(exe, self._handle_completion, exe, record, status, result)
        finally:
            exe.pool.shutdown(wait=True)
        return self._result(action, conductor, exe.records, abandoned=run.abandon.is_set())

    def _result(self, action, conductor, records, abandoned=False) -> WorkflowResult:
        with _ENGINE_LOCK:
            status = conductor.get_workflow_status()
            output = None if abandoned else conductor.get_workflow_output()
            errors = copy.deepcopy(conductor.errors)
        return WorkflowResult(status, output, errors, records, action=action.ref,
                              abandoned=abandoned)

    def _guarded(self, exe: _Execution, step, *args) -> None:
        """The workflow engine's handlers fail the workflow on an unexpected error
        (st2actions.workflows.workflows: fail_workflow_execution)."""
        with _ENGINE_LOCK:
            try:
                step(*args)
            except Exception as exc:
                self._fail_workflow_execution(exe, exc)

    # -- the engine (st2common.services.workflows) ------------------------------------------

    def _request_next_tasks(self, exe: _Execution, task_ex: Optional[_TaskExecution] = None):
        conductor = exe.conductor
        if conductor.get_workflow_status() in [statuses.REQUESTED, statuses.SCHEDULED]:
            conductor.request_workflow_status(statuses.RUNNING)
        next_tasks = conductor.get_next_tasks()
        if not next_tasks:
            self._update_execution_records(exe)
        while next_tasks:
            if exe.run.abandon.is_set():
                return
            for task in next_tasks:
                if task["spec"].has_items() and task.get("items_count") == 0:
                    event = events.ActionExecutionEvent(statuses.RUNNING)
                    conductor.update_task_state(task["id"], task["route"], event)
                for action in task["actions"]:
                    if action.get("item_id") is None:
                        event = events.ActionExecutionEvent(statuses.RUNNING)
                    else:
                        event = events.TaskItemActionExecutionEvent(
                            action["item_id"], statuses.RUNNING)
                    conductor.update_task_state(task["id"], task["route"], event)
            self._update_execution_records(exe)
            for task in next_tasks:
                try:
                    self._request_task_execution(exe, task)
                except Exception as exc:
                    self._fail_workflow_execution(exe, exc, task=task)
                    return
            next_tasks = conductor.get_next_tasks()

    def _request_task_execution(self, exe: _Execution, task: dict) -> None:
        task_id, route, spec = task["id"], task["route"], task["spec"]
        existing = [t for t in exe.task_executions if t.task_id == task_id and t.route == route]
        if existing and existing[-1].itemized and existing[-1].status == statuses.RUNNING:
            task_ex = existing[-1]
        else:
            task_ex = _TaskExecution(task_id, route, spec, spec.has_items(),
                                     task.get("items_count"), task.get("concurrency"),
                                     task.get("delay"))
            if task_ex.itemized:
                task_ex.result = {"items": [None] * task_ex.items_count}
            exe.task_executions.append(task_ex)
        try:
            if spec.action is None or (task_ex.itemized and task_ex.items_count == 0):
                # Action-less task, or with-items over no item: succeeds at once.
                now = time.monotonic()
                exe.records.append(TaskRecord(
                    task_id, route, None, None, statuses.SUCCEEDED,
                    copy.deepcopy(task_ex.result), now, now, workflow=exe.action.ref))
                task_ex.status = statuses.RUNNING
                self._update_task_execution(task_ex, statuses.SUCCEEDED)
                self._update_task_state(exe, task_ex, statuses.SUCCEEDED)
                return
            for request in task["actions"]:
                delay = _action_execution_delay(task, request, task_ex.itemized)
                self._request_action_execution(exe, task_ex, request, delay)
        except Exception as exc:
            error = {"type": "error", "message": "%s: %s" % (type(exc).__name__, exc),
                     "task_id": task_id, "route": route}
            self._update_task_execution(task_ex, statuses.FAILED, {"errors": [error]})
            raise

    def _request_action_execution(self, exe: _Execution, task_ex: _TaskExecution,
                                  request: dict, delay: Optional[int]) -> None:
        action_ref, action_input = request["action"], request.get("input") or {}
        item_id = request.get("item_id")
        record = TaskRecord(task_ex.task_id, task_ex.route, action_ref, action_input,
                            statuses.REQUESTED, item_id=item_id, workflow=exe.action.ref)
        exe.records.append(record)
        try:
            if task_ex.itemized and item_id is None:
                raise Exception("Unable to request action execution. Identifier for the item "
                                "is not provided.")
            action = self._resolve(exe.run, action_ref)
            if action is None:
                raise InvalidActionReferencedException(
                    'Unable to find action "%s".' % action_ref)
            params = action.live_params(action_input)
            record.input = params
            final = action.final_params(action.check_request(params))
        except Exception as exc:
            record.status = statuses.FAILED
            record.started = record.ended = time.monotonic()
            record.result = {"errors": [{"type": "error", "message": "%s: %s" % (
                type(exc).__name__, exc), "task_id": task_ex.task_id, "route": task_ex.route}]}
            raise
        task_ex.status = statuses.RUNNING
        record.status = statuses.SCHEDULED
        if exe.run.abandon.is_set():
            return
        exe.in_flight += 1
        exe.pool.submit(self._perform, exe, record, action, params, final, delay)

    def _handle_completion(self, exe: _Execution, record: TaskRecord, status: str,
                           result: Any) -> None:
        """handle_action_execution_completion."""
        task_ex = next(t for t in reversed(exe.task_executions)
                       if t.task_id == record.task_id and t.route == record.route)
        self._update_task_execution(task_ex, status, result, record.item_id)
        self._update_task_state(exe, task_ex, status, result, record.item_id)
        self._request_next_tasks(exe, task_ex)
        if exe.conductor.get_workflow_status() in COMPLETED + [statuses.PAUSED]:
            self._update_execution_records(exe)

    @staticmethod
    def _update_task_execution(task_ex: _TaskExecution, status: str, result: Any = None,
                               item_id: Optional[int] = None) -> None:
        if status not in COMPLETED + [statuses.PAUSED, statuses.PENDING]:
            return
        if not task_ex.itemized or task_ex.items_count == 0:
            task_ex.status = status
            task_ex.result = result if result else task_ex.result
        elif item_id is not None:
            task_ex.result["items"][item_id] = {"status": status, "result": result}
            item_statuses = [item.get("status", statuses.UNSET) if item else statuses.UNSET
                             for item in task_ex.result["items"]]
            if all(s in COMPLETED for s in item_statuses):
                task_ex.status = (statuses.SUCCEEDED if all(
                    s == statuses.SUCCEEDED for s in item_statuses) else statuses.FAILED)

    def _update_task_state(self, exe: _Execution, task_ex: _TaskExecution, status: str,
                           result: Any = None, item_id: Optional[int] = None) -> None:
        if status not in COMPLETED + [statuses.PAUSED, statuses.PENDING]:
            return
        if item_id is None or item_id < 0:
            event = events.ActionExecutionEvent(status, result=result)
        else:
            accumulated = [item.get("result") if item else None
                           for item in task_ex.result["items"]]
            event = events.TaskItemActionExecutionEvent(
                item_id, status, result=result, accumulated_result=accumulated)
        exe.conductor.update_task_state(task_ex.task_id, task_ex.route, event)
        self._update_execution_records(exe)

    @staticmethod
    def _update_execution_records(exe: _Execution) -> None:
        if exe.conductor.get_workflow_status() in COMPLETED:
            exe.conductor.render_workflow_output()

    def _fail_workflow_execution(self, exe: _Execution, exc: Exception,
                                 task: Optional[dict] = None) -> None:
        conductor = exe.conductor
        conductor.request_workflow_status(statuses.FAILED)
        if isinstance(task, dict):
            conductor.log_error(exc, task_id=task.get("id"), route=task.get("route"))
        else:
            conductor.log_error(exc)
        self._update_execution_records(exe)

    # -- the action runners ------------------------------------------------------------------

    def _perform(self, exe: _Execution, record: TaskRecord, action: _Action,
                 params: Dict[str, Any], final: Dict[str, Any], delay: Optional[int]) -> None:
        """In a pool thread: wait out the delay, run the action, report the completion."""
        sub = None
        try:
            if delay:
                time.sleep(delay)
            record.started = time.monotonic()
            record.status = statuses.RUNNING
            if action.runner_type == "orquesta":
                parent = {"pack": action.ref.split(".")[0], "user": self.user,
                          "parent": {"execution_id": exe.st2_ctx["st2"]["action_execution_id"],
                                     "user": self.user, "pack": self.loader.pack},
                          "orquesta": {"task_id": record.task_id, "task_route": record.route}}
                sub = self._run_workflow(exe.run, action, final, parent)
                status, result = sub.status, sub.result
            else:
                status, result = self._run_action(action, params, final)
        except Exception as exc:  # the action runner container's own failure
            status, result = statuses.FAILED, {"error": str(exc),
                                               "traceback": traceback.format_exc()}
        record.ended = time.monotonic()
        exe.completions.put((record, status, result, sub))

    def _run_action(self, action: _Action, params: Dict[str, Any], final: Dict[str, Any]):
        runner = action.runner_type
        if runner == "python-script":
            # contrib/runners/python_runner: python_runner._get_output_values
            with self._broken_lock:
                broken = self._broken.get(action.ref)
            load_error = action.load_error
            if broken not in (None, "raise"):  # the stderr of an import failure
                load_error = broken
            if load_error:
                return statuses.FAILED, {"stdout": "", "stderr": load_error,
                                         "exit_code": 1, "result": "None"}
            outcome = action.loaded.run(**params)
            if broken == "raise":
                outcome = outcome._replace(error=_crash_traceback(action, outcome))
            if outcome.error:  # an exception in run(): the wrapper printed no result
                return statuses.FAILED, {"stdout": "", "stderr": outcome.error,
                                         "exit_code": 1, "result": "None"}
            status = statuses.SUCCEEDED if outcome.ok else statuses.FAILED
            return status, {"stdout": "", "stderr": "", "exit_code": 0,
                            "result": outcome.result}
        if runner == "noop":
            return statuses.SUCCEEDED, {"failed": False, "succeeded": True, "return_code": 0}
        if runner == "local-shell-cmd":
            return _local_shell(final)
        return statuses.FAILED, {"error": "st2harness.workflows does not run %s actions (%s)"
                                          % (runner, action.ref)}


def _crash_traceback(action: _Action, outcome: Any) -> str:
    """What st2 finds in stderr when ``run()`` raised after doing its work."""
    try:
        raise RuntimeError("%s crashed after it ran (injected by WorkflowRunner.break_action; "
                           "its result was %s)" % (action.ref, "ok" if outcome.ok else "a failure"))
    except RuntimeError:
        return traceback.format_exc()


def _task_is(task_id: str) -> Callable[[TaskRecord], bool]:
    return lambda record: record.task_id == task_id


def _local_shell(final: Dict[str, Any]):
    """contrib/runners/local_runner (local-shell-cmd), without sudo."""
    cmd = jinja2.Template(final.get("cmd") or "").render(**final)
    env = dict(os.environ)
    env.update({str(k): str(v) for k, v in (final.get("env") or {}).items()})
    timeout = final.get("timeout") or 60
    error = None
    try:
        proc = subprocess.run(cmd, shell=True, cwd=final.get("cwd"), env=env, timeout=timeout,
                              capture_output=True, text=True, check=False)
        code, stdout, stderr = proc.returncode, proc.stdout, proc.stderr
    except subprocess.TimeoutExpired as exc:
        code = -9
        stdout = exc.stdout.decode() if isinstance(exc.stdout, bytes) else exc.stdout or ""
        stderr = exc.stderr.decode() if isinstance(exc.stderr, bytes) else exc.stderr or ""
        error = "Action failed to complete in %s seconds" % timeout
    result = {"failed": code != 0, "succeeded": code == 0, "return_code": code,
              "stdout": _strip_shell_chars(stdout), "stderr": _strip_shell_chars(stderr)}
    if error:
        result["error"] = error
    for key in ("stdout", "stderr"):  # st2common.util.jsonify.json_loads
        try:
            result[key] = json.loads(result[key])
        except (TypeError, ValueError):
            pass
    status = statuses.SUCCEEDED if code == 0 else (
        statuses.EXPIRED if error else statuses.FAILED)
    return status, result


def _strip_shell_chars(text: str) -> str:
    """st2common.util.misc.strip_shell_chars."""
    for char in ("\n", "\r"):
        if text.endswith(char):
            text = text[:-1]
    return text


def _action_execution_delay(task: dict, request: dict, itemized: bool) -> Optional[int]:
    """st2common.services.workflows.eval_action_execution_delay."""
    delay, concurrency = task.get("delay"), task.get("concurrency")
    if delay and not itemized:
        return delay
    if delay and itemized and not concurrency:
        return delay
    if delay and itemized and request["item_id"] < concurrency:
        return delay
    return None


def _format_inspection_result(result: dict) -> List[dict]:
    """st2common.services.workflows.format_inspection_result."""
    categories = {"contents": "content", "context": "context", "expressions": "expression",
                  "semantics": "semantic", "syntax": "syntax"}
    errors = []
    for category in ("context", "expressions"):
        for entry in result.get(category, []):
            if "language" not in entry:
                entry["language"] = entry.pop("type")
    for category, entries in result.items():
        for entry in entries:
            entry["type"] = categories[category]
            errors.append(entry)
    return errors


class _UniqueKeyLoader(yaml.SafeLoader):
    """orquesta.utils.yml.UniqueKeyLoader (orquesta 1.4+): a duplicate key is an error."""

    def construct_mapping(self, node, deep=False):
        seen = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            try:
                hash(key)
            except TypeError:
                continue  # SafeLoader's construct_mapping reports it
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    'found duplicate key "%s"' % key_node.value)
            seen.add(key)
        return super().construct_mapping(node, deep=deep)
