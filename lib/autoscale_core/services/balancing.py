"""The load balancer: the workflow steps that put a node into its group's pool and take it
out, on the configured load balancer.

    add_node      lb_add_node      in service (health checks as configured)
    drain_node    lb_drain_node    no new sessions; wait for the current ones to end
    remove_node   lb_remove_node   drain, maintenance, delete: no session is cut
    list_nodes    lb_list_nodes

A call without a backend uses the load balancer's default one. Each returns ``(ok, result)``
as the action does; a failure says why in ``error``, with the backend and the server.
"""

from __future__ import annotations

from typing import Any, Dict, Mapping, Optional, Tuple

from .. import backends
from ..errors import BackendError, ValidationError

Result = Tuple[bool, Dict[str, Any]]


def add_node(config: Mapping[str, Any], node: str, address: str,
             backend: Optional[str] = None, port: Optional[int] = None,
             health_check: Optional[bool] = None) -> Result:
    try:
        lb = backends.load_balancer(config)
        backend = lb.backend_or_default(backend)
        check = lb.health_checks if health_check is None else health_check
        server = lb.add_server(backend, node, address, lb.server_port if port is None else port,
                               check)
    except (BackendError, ValidationError) as exc:
        return False, {"error": str(exc), "backend": backend, "server": node}
    return True, server.to_dict()


def drain_node(config: Mapping[str, Any], node: str, backend: Optional[str] = None,
               drain_timeout: Optional[float] = None) -> Result:
    try:
        lb = backends.load_balancer(config)
        backend = lb.backend_or_default(backend)
        wait = lb.drain_timeout if drain_timeout is None else drain_timeout
        result = lb.drain_server(backend, node, wait)
    except (BackendError, ValidationError) as exc:
        return False, {"error": str(exc), "backend": backend, "server": node}
    return True, result.to_dict()


def remove_node(config: Mapping[str, Any], node: str, backend: Optional[str] = None,
                drain_timeout: Optional[float] = None) -> Result:
    try:
        lb = backends.load_balancer(config)
        backend = lb.backend_or_default(backend)
        wait = lb.drain_timeout if drain_timeout is None else drain_timeout
        removed = lb.remove_server(backend, node, wait)
    except (BackendError, ValidationError) as exc:
        return False, {"error": str(exc), "backend": backend, "server": node}
    return True, {"backend": backend, "server": node, "removed": removed}


def list_nodes(config: Mapping[str, Any], backend: Optional[str] = None) -> Result:
    try:
        lb = backends.load_balancer(config)
        backend = lb.backend_or_default(backend)
        servers = lb.list_servers(backend)
    except (BackendError, ValidationError) as exc:
        return False, {"error": str(exc), "backend": backend}
    return True, {"backend": backend, "servers": [server.to_dict() for server in servers]}
