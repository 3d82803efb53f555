"""VMs: the workflow steps that boot, destroy and list a group's VMs, on the configured
compute (and, for a boot, with the configured provisioner's bootstrap).

    create_vm    vm_create    boot a node's VM with its user data; its address
    destroy_vm   vm_destroy   destroy a node's VMs (and the one named); already gone is fine
    list_vms     vm_list      a group's VMs

Each returns ``(ok, result)`` as the action does: a failure says why in ``error`` (bad input,
before anything changed: ``retryable`` false) with the backend's own fields (a ServerError's
``server_id``: the server left for the caller's undo).
"""

from __future__ import annotations

from typing import Any, Dict, List, Mapping, Optional, Tuple

from .. import backends
from ..domain.names import validate_group_name, validate_node_name
from ..errors import BackendError, ValidationError
from ..ports.compute import Compute, ServerSpec
from ..store import Store

Result = Tuple[bool, Dict[str, Any]]


def create_vm(datastore: Any, config: Mapping[str, Any], group: str, node: str, flavor: str,
              image: str, network: str, run_list: Optional[List[str]],
              environment: Optional[str], boot_timeout: Optional[float] = None) -> Result:
    """Boot ``node``'s VM: the SSH keys of ``datastore`` and the provisioner's bootstrap for
    ``run_list`` and ``environment`` in its user data."""
    try:
        compute = backends.compute(config)
        spec = ServerSpec(group, node, flavor, image, network)  # names checked first
        keys = Store(datastore).ssh_public_keys()
        bootstrap = backends.provisioner(config).bootstrap(node, run_list or [],
                                                           environment or "_default")
        spec = spec.with_user_data(compute.user_data(keys, bootstrap))
        boot = compute.boot(spec, boot_timeout or compute.boot_timeout)
    except BackendError as exc:
        failure: Dict[str, Any] = {"server_id": ""}  # a ServerError names the server left
        failure.update(exc.as_dict(), error=str(exc))
        return False, failure
    except ValidationError as exc:
        return False, {"error": str(exc), "retryable": False, "server_id": ""}
    return True, boot.as_dict()


def remove_servers(compute: Compute, group: str, node: Optional[str] = None,
                   server_id: Optional[str] = None, timeout: float = 300) -> List[str]:
    """Destroy server ``server_id`` and every server tagged with ``node`` (a lost create answer
    may have left one nobody heard of); the ids deleted, [] when all were already gone."""
    validate_group_name(group)
    if not node and not server_id:
        raise ValidationError("give the node, the server id, or both")
    ids = [compute.check_server_id(server_id)] if server_id else []
    if node:
        validate_node_name(node)
        ids += [s.id for s in compute.servers(group, node) if s.id not in ids]
    return [sid for sid in ids if compute.destroy(sid, group, timeout)]


def destroy_vm(config: Mapping[str, Any], group: str, node: Optional[str],
               server_id: Optional[str], delete_timeout: Optional[float] = None) -> Result:
    try:
        deleted = remove_servers(backends.compute(config), group, node=node,
                                 server_id=server_id, timeout=delete_timeout or 300)
    except BackendError as exc:
        return False, dict(exc.as_dict(), error=str(exc))
    except ValidationError as exc:
        return False, {"error": str(exc), "retryable": False}
    return True, {"group": group, "node": node or "", "server_id": server_id or "",
                  "deleted": deleted, "already_gone": not deleted}


def list_vms(config: Mapping[str, Any], group: str) -> Result:
    try:
        servers = backends.compute(config).servers(group)
    except BackendError as exc:
        return False, dict(exc.as_dict(), error=str(exc))
    except ValidationError as exc:
        return False, {"error": str(exc), "retryable": False}
    return True, {"group": group, "count": len(servers),
                  "servers": [server.listing() for server in servers]}
