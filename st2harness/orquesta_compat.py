"""Make PyPI's orquesta 1.2.0 run on Python 3.8-3.11 and behave like the orquesta of st2 3.9.

StackStorm 3.9 runs orquesta 1.6.0 (plus fixes, from git: commit 5ba1467), which is not on
PyPI; the only orquesta there is 1.2.0, with networkx 1.11. Both were written for Python <= 3.8.
``apply()`` (idempotent, thread-safe) must run before anything imports orquesta; it imports
every orquesta module itself, inside a short window in which the stdlib names they need exist.

Patches, each with why it exists:

1. ``fractions.gcd`` (removed in Python 3.9): networkx 1.11 does ``from fractions import gcd``
   in networkx/algorithms/dag.py when networkx is imported. Provided as ``math.gcd`` only while
   orquesta and networkx are imported, then removed again.
2. ``collections.Mapping``, ``collections.MutableSequence``... (the ABC aliases removed in
   Python 3.10): orquesta/specs/base.py subclasses ``collections.MutableSequence`` at import
   time, and orquesta/expressions/functions/workflow.py tests ``collections.Mapping`` in
   ``item()`` at run time. Provided only during the import window (so that code of the pack
   that uses the old names still fails here as it would on Python 3.10+ in production), and
   the ``collections`` name of those two orquesta modules is pointed at a copy of the module
   that also has the ABC names. orquesta 1.6 uses ``collections.abc`` (changelog 1.6.0).
3. The inline-parameter regex (orquesta/utils/parameters.py): ``(?i)true`` and ``(?i)false``
   sit in the middle of REGEX_INLINE_PARAMS; Python 3.11 refuses global flags that are not at
   the start of a pattern ("global flags not at the start of the expression"), so every
   ``action: x.y a=1`` task, every string ``publish`` and the workflow ``input``/``vars``
   parsing that goes through ``parse_inline_params`` would raise. Replaced by the scoped
   ``(?i:true)`` / ``(?i:false)`` that orquesta 1.3+ uses (on Python 3.8-3.10 the old form
   even made the whole pattern case-insensitive, e.g. ``NULL`` matched ``null``).

Backports of orquesta 1.6 behaviour, so that a workflow tested here behaves as in st2 3.9:

4. Join after a failed branch (orquesta 1.4.0, commit a1505d6, "Fix join where inbound
   transition has failed condition"): when a branch task fails, has a ``when: failed()``
   transition into a join, and the other branches are still running, orquesta 1.2 sees no
   next task (the join is not ready yet) and fails the whole workflow. Branches that really
   run in parallel (as st2 and st2harness.workflows run them) hit this. Backported as
   ``WorkflowConductor.has_barrier_next`` / ``WorkflowState.has_barrier_next`` and 1.6's
   ``WorkflowStateMachine.add_context_to_task_event``.
5. Jinja sandbox (orquesta 1.5.0): expressions are rendered in a
   ``jinja2.sandbox.SandboxedEnvironment``, so unsafe attribute access fails as in st2 3.9.

Not patched here but done by st2harness.workflows when it loads a definition: orquesta 1.4+
refuses a workflow definition with a duplicate key (e.g. a task defined twice).
"""

from __future__ import annotations

import collections
import collections.abc
import contextlib
import fractions
import importlib
import math
import pkgutil
import threading
import types
import warnings

_lock = threading.Lock()
_applied = False

_ABC_NAMES = [name for name in collections.abc.__all__ if not name.startswith("_")]


@contextlib.contextmanager
def _legacy_stdlib_names():
    """Patches 1 and 2, for the duration of the imports only."""
    added = []
    if not hasattr(fractions, "gcd"):
        fractions.gcd = math.gcd
        added.append((fractions, "gcd"))
    for name in _ABC_NAMES:
        if name not in vars(collections):  # not hasattr: Python < 3.10 would warn
            setattr(collections, name, getattr(collections.abc, name))
            added.append((collections, name))
    try:
        with warnings.catch_warnings():
            # networkx 1.11 and orquesta 1.2 import deprecated modules (lib2to3, imp...):
            # noise about the dependencies, not about this project.
            warnings.simplefilter("ignore", DeprecationWarning)
            warnings.simplefilter("ignore", PendingDeprecationWarning)
            yield
    finally:
        for module, name in added:
            delattr(module, name)


def _collections_with_abcs() -> types.ModuleType:
    """A copy of the ``collections`` module that also has the pre-3.10 ABC aliases."""
    shim = types.ModuleType("collections")
    shim.__dict__.update(collections.__dict__)
    for name in _ABC_NAMES:
        setattr(shim, name, getattr(collections.abc, name))
    return shim


def _import_orquesta() -> None:
    import networkx  # noqa: F401  (pulls in all of networkx, dag.py included)
    import orquesta

    for info in pkgutil.walk_packages(orquesta.__path__, "orquesta."):
        if ".tests" not in info.name:
            importlib.import_module(info.name)

    # Plugins that stevedore would otherwise load later, outside the window.
    from orquesta.expressions import base as expr_base
    from orquesta.expressions.functions import base as func_base
    from orquesta.utils import plugin

    func_base.load()
    expr_base.get_evaluators()
    plugin.get_module("orquesta.composers", "native")


def _patch_regex() -> None:
    from orquesta.utils import parameters

    for old, new in (("(?i)true", "(?i:true)"), ("(?i)false", "(?i:false)")):
        parameters.REGEX_INLINE_PARAMS = parameters.REGEX_INLINE_PARAMS.replace(old, new)
        parameters.REGEX_INLINE_PARAM_VARIATIONS = [
            new if pattern == old else pattern
            for pattern in parameters.REGEX_INLINE_PARAM_VARIATIONS
        ]
    parameters.REGEX_TRUE, parameters.REGEX_FALSE = "(?i:true)", "(?i:false)"


def _patch_collections_users() -> None:
    from orquesta.expressions.functions import workflow
    from orquesta.specs import base

    shim = _collections_with_abcs()
    workflow.collections = shim
    base.collections = shim


def _backport_join_on_fail() -> None:
    """Patch 4: orquesta 1.6's conducting.py/machines.py code, verbatim but for names."""
    from orquesta import conducting, constants, events, machines, statuses

    def has_barrier_next(self, task_id, route=None):
        task_state_entry = self.get_task_state_entry(task_id, route)
        if not task_state_entry or task_state_entry.get("status") not in (
                statuses.COMPLETED_STATUSES):
            return False
        for next_seq in self.graph.get_next_transitions(task_id):
            next_task_id, seq_key = next_seq[1], next_seq[2]
            task_transition_id = constants.TASK_STATE_TRANSITION_FORMAT % (
                next_task_id, str(seq_key))
            if next_task_id == "continue":
                continue
            if not task_state_entry["next"].get(task_transition_id):
                continue
            if self.graph.has_barrier(next_task_id):
                return True
        return False

    def state_has_barrier_next(self, task_id, route=None):
        return self.conductor.has_barrier_next(task_id, route=route)

    def add_context_to_task_event(cls, workflow_state, tk_ex_event):
        task_event = tk_ex_event.name
        task_id = getattr(tk_ex_event, "task_id", None)
        task_route = getattr(tk_ex_event, "route", None)
        has_barrier_next = workflow_state.has_barrier_next(task_id, task_route)
        has_next_tasks = workflow_state.has_next_tasks(task_id, task_route)
        has_active_tasks = workflow_state.has_active_tasks

        # Mark task remediated if task is in abended statuses and there are transitions.
        if tk_ex_event.status in statuses.ABENDED_STATUSES and (
                has_next_tasks or has_barrier_next):
            task_event = events.TASK_REMEDIATED

        if task_event in events.TASK_CONDITIONAL_EVENTS:
            task_event += "_workflow_active" if has_active_tasks else "_workflow_dormant"

        if not task_event.startswith(events.TASK_SUCCEEDED) and not task_event.startswith(
                events.TASK_REMEDIATED):
            return task_event

        if workflow_state.has_canceling_tasks or workflow_state.has_canceled_tasks:
            return task_event + "_canceled"

        if workflow_state.has_pausing_tasks or workflow_state.has_paused_tasks:
            return task_event + "_paused"

        if workflow_state.has_staged_tasks or has_next_tasks:
            return task_event + "_incomplete"

        return task_event + "_completed"

    if hasattr(conducting.WorkflowConductor, "has_barrier_next"):
        return  # orquesta >= 1.4 has it already
    conducting.WorkflowConductor.has_barrier_next = has_barrier_next
    conducting.WorkflowState.has_barrier_next = state_has_barrier_next
    machines.WorkflowStateMachine.add_context_to_task_event = classmethod(
        add_context_to_task_event)


def _sandbox_jinja() -> None:
    """Patch 5."""
    import jinja2
    import jinja2.sandbox
    from orquesta.expressions import jinja

    if isinstance(jinja.JinjaEvaluator._jinja_env, jinja2.sandbox.SandboxedEnvironment):
        return
    env = jinja2.sandbox.SandboxedEnvironment(
        undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True)
    jinja.register_functions(env)
    jinja.JinjaEvaluator._jinja_env = env


def apply() -> None:
    """Import orquesta with every patch above in place. Call before importing orquesta."""
    global _applied
    with _lock:
        if _applied:
            return
        with _legacy_stdlib_names():
            _import_orquesta()
        _patch_regex()
        _patch_collections_users()
        _backport_join_on_fail()
        _sandbox_jinja()
        _applied = True


__all__ = ["apply"]
