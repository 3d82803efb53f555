"""Configuration management of new nodes: Chef Infra Server.

A new VM bootstraps itself: cloud-init's ``chef`` module installs the Chef client, registers
the node with the server with the validator key and runs the node's run list. The pack then
only waits for the node's first converge and, on removal, deletes the node and its API
client.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Dict, List, Mapping

from .model import ValidationError, validate_node_name


@dataclass(frozen=True)
class ChefSettings:
    server_url: str
    client_name: str
    client_key: str
    validation_client_name: str = ""
    validation_key: str = ""
    converge_timeout: int = 900
    verify_tls: bool = True

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> ChefSettings:
        section = config.get("chef") if config else None
        if not isinstance(section, Mapping):
            raise ValidationError("config key chef is missing: see config.schema.yaml")
        for key in ("server_url", "client_name", "client_key"):
            if not section.get(key):
                raise ValidationError("config key chef.%s is missing" % key)
        return cls(
            server_url=section["server_url"].rstrip("/"),
            client_name=section["client_name"],
            client_key=section["client_key"],
            validation_client_name=section.get("validation_client_name") or "",
            validation_key=section.get("validation_key") or "",
            converge_timeout=int(section.get("converge_timeout", 900)),
            verify_tls=bool(section.get("verify_tls", True)),
        )


def cloud_config(settings: ChefSettings, node_name: str, run_list: List[str],
                 environment: str) -> Dict[str, Any]:
    """The ``chef:`` section of a node's cloud-config (cloud-init's cc_chef module).

    The node registers itself with the validator key. The pack's own client key never goes
    onto a VM: it may delete any node, so a VM holding it could too.
    """
    validate_node_name(node_name)
    if not settings.validation_key:
        raise ValidationError(
            "config key chef.validation_key is missing: new nodes need a validator key "
            "to register with the Chef server"
        )
    return {
        "install_type": "omnibus",
        "force_install": False,
        "server_url": settings.server_url,
        "node_name": node_name,
        "environment": environment or "_default",
        "run_list": list(run_list),
        "validation_name": settings.validation_client_name or "chef-validator",
        "validation_cert": settings.validation_key,
        "exec": True,
        "chef_license": "accept",
    }
