"""Configuration of new nodes: Chef Infra Server (the provisioner role: config section
``chef``, ``type: chef``).

A new VM bootstraps itself: cloud-init's ``chef`` module installs the Chef client, registers
the node with the server with the validator key and runs the node's run list. The pack then
only waits for the node's first converge and, on removal, deletes the node and its API
client.

Here is what the pack knows of Chef without talking to it: the ``chef`` config section, the
group's Chef settings (``chef_run_list``, ``chef_environment``, checked when a group is
created: ``check_group``) and a node's bootstrap, the ``chef:`` section of its cloud-config.
The Chef Server API is chef_api.py.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Dict, List, Mapping

from ..config import backend_section
from ..domain.fields import brief, str_list
from ..domain.model import Group
from ..domain.names import validate_node_name
from ..errors import ValidationError

SYSTEM = "Chef"
TITLE = "Chef"
# X-Ops-Server-API-Version, signed as an integer: older servers take 0-1, current ones 0-2
# (erchef's API_MAX_VER), and any other value is a 406. Nodes and clients read the same in
# 1 and 2.
SERVER_API_VERSION = 1

# Names of API clients and environments (erchef's chef_regex: letters, digits, "_", "-", ".").
CHEF_NAME_RE = re.compile(r"[A-Za-z0-9_.-]{1,255}")
# Run list entries: "recipe[cookbook::recipe@1.2.3]", "role[web]", or a bare recipe name.
_RECIPE = r"[A-Za-z0-9_.-]+(?:::[A-Za-z0-9_.-]+)?(?:@[0-9]+(?:\.[0-9]+){0,2})?"
_RUN_LIST_ITEM_RE = re.compile(r"recipe\[%s\]|role\[[A-Za-z0-9_.-]+\]|%s" % (_RECIPE, _RECIPE))


# What a group may be created with: what chef-client and erchef both take (a bootstrap takes
# what erchef takes, above). Environments: chef-client's
# Chef::Node#chef_environment takes /^[\-[:alnum:]_]+$/ and erchef's chef_regex
# environment_name /^[.[:alnum:]_-]+$/; both at once: ASCII letters, digits, "_", "-" (no
# ".": chef-client refuses it on the node).
_GROUP_ENVIRONMENT_RE = re.compile(r"[A-Za-z0-9_-]{1,255}")
# Run list items as both chef-client (Chef::RunList::RunListItem) and erchef (chef_regex
# qualified_recipe, qualified_role, unqualified_recipe) take them: recipe[cookbook],
# recipe[cookbook::recipe], either with @MAJOR.MINOR[.PATCH], role[name], or a bare recipe
# name, which both read as recipe[name].
_NAME = r"[A-Za-z0-9_.-]+"
_GROUP_RECIPE = r"(?:%s::)?%s(?:@[0-9]+\.[0-9]+(?:\.[0-9]+)?)?" % (_NAME, _NAME)
_GROUP_RUN_LIST_ITEM_RE = re.compile(r"recipe\[%s\]|role\[%s\]|%s"
                                     % (_GROUP_RECIPE, _NAME, _GROUP_RECIPE))


def check_group(group: Group) -> None:
    """Refuse, naming the field, a run list item or an environment that Chef would refuse on
    every later node add. Only on entry: a group stored by an earlier version with a value
    this refuses keeps being governed."""
    for item in str_list(group.chef_run_list, "chef_run_list"):
        if not _GROUP_RUN_LIST_ITEM_RE.fullmatch(item):
            raise ValidationError(
                "chef_run_list entry %s is not a Chef run list item: use recipe[cookbook], "
                "recipe[cookbook::recipe], recipe[cookbook@1.2.3] or role[name], with names "
                "of letters, digits, '_', '-' and '.'" % brief(item))
    environment = group.chef_environment
    if not isinstance(environment, str) or not _GROUP_ENVIRONMENT_RE.fullmatch(environment):
        raise ValidationError(
            "chef_environment %s is not a Chef environment name: use letters, digits, '_' and "
            "'-' (chef-client refuses anything else, '.' and spaces included)"
            % brief(environment))


# ---------------------------------------------------------------------------------------------
# Settings


@dataclass(frozen=True)
class ChefSettings:
    server_url: str
    client_name: str
    # repr=False: a settings object in a log line or a traceback must not show a key.
    client_key: str = field(repr=False)
    validation_client_name: str = ""
    validation_key: str = field(default="", repr=False)
    converge_timeout: int = 900
    verify_tls: bool = True
    # Not in the pack config: seconds per request, tries per idempotent request, the first
    # pause between tries, seconds between two looks at a converging node.
    timeout: float = 10.0
    attempts: int = 3
    retry_delay: float = 0.5
    poll_interval: float = 10.0
    server_api_version: int = SERVER_API_VERSION

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> ChefSettings:
        section = backend_section(config, "chef", ("server_url", "client_name", "client_key"))
        return cls(
            server_url=section["server_url"].rstrip("/"),
            client_name=section["client_name"],
            client_key=section["client_key"],
            validation_client_name=section.get("validation_client_name") or "",
            validation_key=section.get("validation_key") or "",
            converge_timeout=int(section.get("converge_timeout", 900)),
            verify_tls=bool(section.get("verify_tls", True)),
        )

    def secrets(self) -> List[str]:
        return [self.client_key, self.validation_key]


# ---------------------------------------------------------------------------------------------
# Cloud-init bootstrap


def validate_run_list(run_list: Any) -> List[str]:
    if not isinstance(run_list, (list, tuple)):
        raise ValidationError("Chef run list must be a list of entries such as role[web], "
                              "not %r" % (run_list,))
    for item in run_list:
        if not isinstance(item, str) or not _RUN_LIST_ITEM_RE.fullmatch(item):
            raise ValidationError("Chef run list entry %r is not recipe[name], "
                                  "recipe[cookbook::recipe@1.0.0], role[name] or a recipe "
                                  "name" % (item,))
    return list(run_list)


def validate_environment(environment: Any) -> str:
    if not isinstance(environment, str) or not CHEF_NAME_RE.fullmatch(environment):
        raise ValidationError("Chef environment %r is not a Chef name (letters, digits, "
                              "'_', '-', '.')" % (environment,))
    return environment


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
    validate_run_list(run_list)
    if environment:
        validate_environment(environment)
    return {
        "install_type": "omnibus",
        "force_install": False,
        "server_url": settings.server_url,
        "node_name": node_name,
        "environment": environment or "_default",
        "run_list": list(run_list),
        "validation_name": settings.validation_client_name or "chef-validator",
        # cc_chef writes this PEM to /etc/chef/validation.pem.
        "validation_cert": settings.validation_key,
        # cc_chef's client.rb template defaults to :verify_none.
        "ssl_verify_mode": ":verify_peer" if settings.verify_tls else ":verify_none",
        "exec": True,
        "chef_license": "accept",
    }
