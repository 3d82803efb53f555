"""Use cases: what the actions, workflows and sensors ask of the pack. Each orchestrates the
domain, the Store and the backends' interfaces; none knows a vendor (see docs/architecture.md).

Each public function of groups, nodes, planning and alerts takes a ``Store`` and returns a
JSON-ready dict, or raises ``Refusal`` (an unknown group, an impossible step),
``ValidationError`` (bad input) or ``RecordError`` (an unreadable record); the action adapter
(``action.perform``) turns those into an action's ``(False, {"error": ...})``. Nothing is
written before every input has been checked.

The steps that talk to a backend (vms, provisioning, naming, balancing) take the pack config,
get the role's implementation from the registry (``backends.compute(config)`` ...) and return
``(ok, result)`` as their action does, a failure with its ``error``; ``announce`` tells chat
and never fails a workflow.
"""
