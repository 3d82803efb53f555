"""Provisioning: the workflow steps that wait for a new node's first configuration run and
delete what the configured provisioner keeps of a node that leaves.

    wait_converged   chef_wait_converged
    delete_node      chef_delete_node

Each returns ``(ok, result)`` as the action does; a failure says why in ``error``, with the
node and the backend's own fields.
"""

from __future__ import annotations

from typing import Any, Dict, Mapping, Optional, Tuple

from .. import backends
from ..errors import BackendError, ValidationError

Result = Tuple[bool, Dict[str, Any]]


def wait_converged(config: Mapping[str, Any], node: str, since: Any,
                   timeout: Optional[float] = None) -> Result:
    try:
        with backends.provisioner(config) as provisioner:
            status = provisioner.wait_converged(node, since, timeout=timeout)
    except BackendError as exc:
        return False, dict(exc.as_dict(), error=str(exc), node=node)
    except ValidationError as exc:
        return False, {"error": str(exc), "retryable": False, "node": node}
    return True, dict(status.as_dict(), converged=True, since=since)


def delete_node(config: Mapping[str, Any], node: str) -> Result:
    try:
        with backends.provisioner(config) as provisioner:
            removal = provisioner.delete_node(node)
    except BackendError as exc:
        return False, dict(exc.as_dict(), error=str(exc), node=node)
    except ValidationError as exc:
        return False, {"error": str(exc), "retryable": False, "node": node}
    return True, removal.as_dict()
