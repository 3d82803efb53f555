"""Static checks of a StackStorm 3.9 pack, faithful to what st2 itself accepts.

Nothing in the pack is imported or executed: metadata is read with ``yaml.safe_load`` (as
st2's ``MetaLoader`` does) and Python entry points are read with ``ast``. Every check takes
the pack directory and returns a list of problems, each a short string that starts with the
file it is about (relative to the pack directory)::

    from packcheck import check_pack
    for problem in check_pack("/path/to/pack"):
        print(problem)

The rules below were taken from the StackStorm source at tag v3.9.0 (and orquesta at the
commit st2 3.9 pins, 5ba1467, i.e. 1.6.0 + fixes); each check names the files it follows.
Where the checker is stricter than st2 (it flags something st2 registers but that can never
work, or that silently does nothing), the docstring says so.

Instances (a config example, rule trigger parameters, policy parameters) are validated with
``st2harness.schema``, this repo's mirror of st2's CustomValidator.

Dependencies: PyYAML, jsonschema and st2harness (this repo). Python 3.8-compatible.
"""

import ast
import copy
import functools
import json
import os
import re
import sys

import jsonschema
import yaml
from jsonschema.validators import Draft4Validator, validator_for

# For ``python tests/pack/packcheck.py <dir>``: st2harness lives at the repo root.
_REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
if _REPO_ROOT not in sys.path:
    sys.path.insert(0, _REPO_ROOT)

from st2harness import schema as st2schema  # noqa: E402

__all__ = [
    "check_pack",
    "check_pack_yaml",
    "check_yaml_parses",
    "check_config_schema",
    "check_actions",
    "check_workflows",
    "check_trigger_schemas",
    "check_sensors",
    "check_rules",
    "check_aliases",
    "check_policies",
    "is_secret_name",
    "RUNNERS",
    "SYSTEM_TRIGGER_TYPES",
    "CRITERIA_OPERATORS",
    "POLICY_TYPES",
    "ORQUESTA_ENGINE_COMMANDS",
]

# --------------------------------------------------------------------------------------------
# StackStorm 3.9 facts (data, transcribed from the st2 v3.9.0 tree)
# --------------------------------------------------------------------------------------------

# contrib/runners/*/<runner>/runner.yaml. Parameter spec: "name:type", "!" = required and
# without default, "@" = immutable in the runner (an action may not redeclare it immutable).
_RUNNER_SPEC = {
    "action-chain": "display_published:boolean skip_notify:array",
    "announcement": "experimental:boolean route:string",
    "http-request": (
        "allow_redirects:boolean cookies:object headers:object http_proxy:string "
        "https_proxy:string password:string url:string! username:string "
        "verify_ssl_cert:boolean url_hosts_blacklist:array url_hosts_whitelist:array"
    ),
    "inquirer": "schema:object route:string roles:array users:array ttl:integer",
    "local-shell-cmd": (
        "cmd:string cwd:string env:object kwarg_op:string sudo:boolean "
        "sudo_password:string timeout:integer"
    ),
    "local-shell-script": (
        "debug:boolean content_version:string cwd:string env:object kwarg_op:string "
        "sudo:boolean sudo_password:string timeout:integer"
    ),
    "noop": "",
    "orquesta": "notify:array",
    "python-script": (
        "debug:boolean content_version:string env:object timeout:integer log_level:string"
    ),
    "remote-shell-cmd": (
        "bastion_host:string cmd:string cwd:string dir:string@ env:object hosts:string! "
        "kwarg_op:string parallel:boolean@ passphrase:string password:string port:integer "
        "private_key:string sudo:boolean sudo_password:string timeout:integer username:string"
    ),
    "remote-shell-script": (
        "bastion_host:string cwd:string dir:string env:object hosts:string! kwarg_op:string "
        "parallel:boolean@ passphrase:string password:string port:integer private_key:string "
        "sudo:boolean sudo_password:string timeout:integer username:string"
    ),
    "winrm-cmd": (
        "cmd:string cwd:string env:object host:string! kwarg_op:string password:string! "
        "port:integer scheme:string timeout:integer transport:string username:string! "
        "verify_ssl_cert:boolean"
    ),
    "winrm-ps-cmd": (
        "cmd:string cwd:string env:object host:string! kwarg_op:string password:string! "
        "port:integer scheme:string timeout:integer transport:string username:string! "
        "verify_ssl_cert:boolean"
    ),
    "winrm-ps-script": (
        "cwd:string env:object host:string! kwarg_op:string password:string! port:integer "
        "scheme:string timeout:integer transport:string username:string! "
        "verify_ssl_cert:boolean"
    ),
}

# Runner "aliases" (orquesta_runner/runner.yaml): registered as runners of their own by
# st2common/bootstrap/runnersregistrar.py:register_runner().
RUNNER_ALIASES = {"orchestra": "orquesta"}


def _parse_param_spec(spec):
    params = {}
    for item in spec.split():
        name, _, ptype = item.partition(":")
        meta = {"type": ptype.rstrip("!@")}
        if ptype.endswith("!"):
            meta["required"] = True
        if ptype.endswith("@"):
            meta["immutable"] = True
            meta["default"] = None
        params[name] = meta
    return params


RUNNER_PARAMETERS = {name: _parse_param_spec(spec) for name, spec in _RUNNER_SPEC.items()}
for _alias, _target in RUNNER_ALIASES.items():
    RUNNER_PARAMETERS[_alias] = RUNNER_PARAMETERS[_target]

RUNNERS = tuple(sorted(RUNNER_PARAMETERS))

# Runners whose code refuses to run without an entry_point (python_runner.py,
# orquesta_runner.py, action_chain_runner.py, local_shell_script_runner.py,
# remote_script_runner.py, winrm_ps_script_runner.py) ...
RUNNERS_NEEDING_ENTRY_POINT = frozenset(
    [
        "python-script",
        "orquesta",
        "orchestra",
        "action-chain",
        "local-shell-script",
        "remote-shell-script",
        "winrm-ps-script",
    ]
)
# ... and those that refuse to run WITH one (local_shell_command_runner.py,
# remote_command_runner.py).
RUNNERS_REJECTING_ENTRY_POINT = frozenset(["local-shell-cmd", "remote-shell-cmd"])

# Actions of the packs shipped with st2 3.9 (contrib/{core,chatops,packs,linux}/actions).
# "ref": (runner, "param ..."), "!" marks a parameter that is required and has no default.
_SHIPPED_ACTIONS_SPEC = {
    "core.announcement": ("announcement", "experimental message"),
    "core.ask": ("inquirer", ""),
    "core.echo": ("local-shell-cmd", "cmd kwarg_op message! sudo sudo_password"),
    "core.error": ("local-shell-cmd", "cmd kwarg_op message! sudo sudo_password"),
    "core.http": (
        "http-request",
        "auth body file_content file_content_type file_name file_path headers method "
        "params timeout",
    ),
    "core.inject_trigger": ("python-script", "payload trace_tag trigger trigger_name"),
    "core.local": ("local-shell-cmd", "cmd! sudo"),
    "core.local_sudo": ("local-shell-cmd", "cmd! sudo"),
    "core.noop": ("noop", ""),
    "core.pause": ("python-script", "max_pause! random"),
    "core.remote": ("remote-shell-cmd", "cmd! sudo"),
    "core.remote_sudo": ("remote-shell-cmd", "cmd! sudo"),
    "core.sendmail": (
        "local-shell-script",
        "attachments body! content_type from send_empty_body sendmail_binary subject! sudo to!",
    ),
    "core.uuid": ("python-script", "uuid_type"),
    "core.winrm_cmd": ("winrm-cmd", "cmd!"),
    "core.winrm_ps_cmd": ("winrm-ps-cmd", "cmd!"),
    "chatops.format_execution_result": ("python-script", "execution_id!"),
    "chatops.match": ("python-script", "text!"),
    "chatops.match_and_execute": ("python-script", "source_channel text! user"),
    "chatops.post_message": (
        "announcement",
        "channel! context experimental extra message! route user whisper",
    ),
    "chatops.post_result": (
        "orquesta",
        "channel! context execution_id! route user whisper",
    ),
    "chatops.run": ("action-chain", "channel! text! user whisper"),
    "packs.delete": ("python-script", "abs_repo_base delete_env packs!"),
    "packs.download": ("python-script", "abs_repo_base dependency_list force packs! verifyssl"),
    "packs.get": ("python-script", "branch pack!"),
    "packs.get_config": ("python-script", ""),
    "packs.get_pack_dependencies": ("python-script", "nested packs_status"),
    "packs.get_pack_warnings": ("python-script", "packs_status"),
    "packs.install": ("orquesta", "env force packs! register skip_dependencies timeout"),
    "packs.load": ("python-script", "packs register timeout"),
    "packs.restart_component": ("local-shell-cmd", "cmd kwarg_op servicename! sudo"),
    "packs.search": ("python-script", "query!"),
    "packs.setup_virtualenv": ("python-script", "env no_download packs timeout update"),
    "packs.show": ("python-script", "pack!"),
    "packs.uninstall": ("action-chain", "packs!"),
    "packs.unload": ("python-script", "packs!"),
    "packs.update_virtualenv": ("python-script", "packs update"),
    "packs.virtualenv_prerun": ("python-script", "packs_list packs_status"),
    "linux.check_loadavg": ("remote-shell-script", "period"),
    "linux.check_processes": ("remote-shell-script", "args criteria kwarg_op search sudo"),
    "linux.cp": ("remote-shell-cmd", "args cmd destination! force recursive source!"),
    "linux.diag_loadavg": ("action-chain", "hostname!"),
    "linux.dig": ("python-script", "count hostname! nameserver queryopts querytype rand"),
    "linux.file_touch": ("remote-shell-cmd", "cmd file!"),
    "linux.lsof": ("remote-shell-cmd", "args cmd"),
    "linux.lsof_pids": ("remote-shell-cmd", "cmd pids! sudo"),
    "linux.mv": ("remote-shell-cmd", "args cmd destination! force source!"),
    "linux.netstat": ("remote-shell-cmd", "args cmd"),
    "linux.netstat_grep": ("remote-shell-cmd", "cmd pids!"),
    "linux.pkill": ("remote-shell-cmd", "cmd process!"),
    "linux.rm": ("remote-shell-cmd", "args cmd force recursive target! verbose"),
    "linux.rsync": (
        "remote-shell-cmd",
        "args cmd connect_timeout dest_server! destination! source!",
    ),
    "linux.scp": (
        "remote-shell-cmd",
        "args cmd dest_server destination! force keyfile recursive source! username verbose",
    ),
    "linux.service": ("remote-shell-script", "act service"),
    "linux.traceroute": ("remote-shell-script", "hops host! hosts queries_to_hop"),
    "linux.vmstat": ("remote-shell-cmd", "args cmd"),
    "linux.wait_for_ssh": (
        "python-script",
        "hostname! keyfile password port retries sleep_delay ssh_timeout timeout username",
    ),
}
SHIPPED_PACKS = frozenset(["core", "chatops", "packs", "linux", "default"])


def _parameters_schema(properties, additional=False):
    """The object schema st2 validates parameters against (st2common/util/schema
    get_schema_for_resource_parameters); st2's own trigger parameter schemas have this shape."""
    return {"type": "object", "properties": properties, "additionalProperties": additional}


# st2common/constants/triggers.py (pack "core"): the timer and webhook trigger types, whose
# rule parameters st2 always validates, and the internal ones st2 registers for itself.
# ("format": "date-time" is left out: st2 validates without a format checker.)
_CRON_FIELD_RANGES = {
    "year": None, "month": (1, 12), "day": (1, 31), "week": (1, 53), "day_of_week": (0, 6),
    "hour": (0, 23), "minute": (0, 59), "second": (0, 59),
}  # fmt: skip


def _cron_field(bounds):
    field = {"anyOf": [{"type": "string"}, {"type": "integer"}]}
    if bounds:
        field["minimum"], field["maximum"] = bounds
    return field


SYSTEM_TRIGGER_TYPES = {
    "core.st2.webhook": _parameters_schema({"url": {"type": "string", "required": True}}),
    "core.st2.IntervalTimer": _parameters_schema(
        {
            "timezone": {"type": "string"},
            "unit": {"enum": ["weeks", "days", "hours", "minutes", "seconds"], "required": True},
            "delta": {"type": "integer", "required": True},
        }
    ),
    "core.st2.DateTimer": _parameters_schema(
        {"timezone": {"type": "string"}, "date": {"type": "string", "required": True}}
    ),
    "core.st2.CronTimer": _parameters_schema(
        dict(
            [("timezone", {"type": "string"})]
            + [(name, _cron_field(bounds)) for name, bounds in _CRON_FIELD_RANGES.items()]
        )
    ),
    "core.st2.generic.actiontrigger": None,
    "core.st2.generic.notifytrigger": None,
    "core.st2.action.file_written": None,
    "core.st2.generic.inquiry": None,
    "core.st2.sensor.process_spawn": None,
    "core.st2.sensor.process_exit": None,
    "core.st2.key_value_pair.create": None,
    "core.st2.key_value_pair.update": None,
    "core.st2.key_value_pair.value_change": None,
    "core.st2.key_value_pair.delete": None,
}
# Trigger types of the sensors shipped in contrib/ (contrib/linux/sensors/file_watch_sensor.yaml).
SHIPPED_TRIGGER_TYPES = {
    "linux.file_watch.line": _parameters_schema(
        {"file_path": {"type": "string", "required": True}}
    ),
}

# st2common/st2common/operators.py: get_allowed_operators()
CRITERIA_OPERATORS = frozenset(
    [
        "matchwildcard", "matchregex", "regex", "iregex", "eq", "equals", "nequals", "neq",
        "ieq", "iequals", "contains", "icontains", "ncontains", "incontains", "startswith",
        "istartswith", "endswith", "iendswith", "lt", "lessthan", "gt", "greaterthan",
        "td_lt", "timediff_lt", "td_gt", "timediff_gt", "exists", "nexists", "inside", "in",
        "ninside", "nin", "search",
    ]
)  # fmt: skip

# st2common/st2common/policies/meta/*.yaml: parameters per policy type, ref
# "<resource_type>.<name>" (st2common/models/db/policy.py). st2 validates them as
# _parameters_schema(...) with additionalProperties false (st2common/models/api/policy.py).
_POLICY_THRESHOLD = {"type": "integer", "required": True}
_POLICY_ACTION = {"type": "string", "default": "delay", "enum": ["delay", "cancel"]}
POLICY_TYPES = {
    "action.concurrency": {"threshold": _POLICY_THRESHOLD, "action": _POLICY_ACTION},
    "action.concurrency.attr": {
        "threshold": _POLICY_THRESHOLD,
        "action": _POLICY_ACTION,
        "attributes": {
            "type": "array",
            "uniqueItems": True,
            "items": {"type": "string", "minLength": 1},
        },
    },
    "action.retry": {
        "retry_on": {"type": "string", "required": True, "enum": ["failure", "timeout"]},
        "max_retry_count": {
            "type": "integer", "required": True, "minimum": 1, "maximum": 5, "default": 2,
        },
        "delay": {"type": "number", "required": False, "minimum": 0, "maximum": 120},
    },
}  # fmt: skip

# orquesta/events.py ENGINE_EVENT_MAP (also RESERVED_TASK_NAMES in specs/native/v1/models.py)
ORQUESTA_ENGINE_COMMANDS = frozenset(["continue", "fail", "noop", "retry"])

JSON_SCHEMA_TYPES = frozenset(["array", "boolean", "integer", "null", "number", "object", "string"])

# st2common/util/schema/action_params.json: the only attributes an action parameter (and a
# config.schema.yaml attribute, models/api/pack.py ConfigSchemaAPI) may have at its top level
# ("additionalProperties": false). Note: no "format", no "$ref".
PARAM_ATTRIBUTES = frozenset(
    [
        "id", "$schema", "title", "description", "default", "multipleOf", "maximum",
        "exclusiveMaximum", "minimum", "exclusiveMinimum", "maxLength", "minLength", "pattern",
        "additionalItems", "items", "maxItems", "minItems", "uniqueItems", "maxProperties",
        "minProperties", "required", "secret", "additionalProperties", "definitions",
        "properties", "patternProperties", "dependencies", "enum", "type", "position",
        "immutable", "allOf", "anyOf", "oneOf", "not",
    ]
)  # fmt: skip
# st2common/util/schema/__init__.py RUNNER_PARAM_OVERRIDABLE_ATTRS
RUNNER_PARAM_OVERRIDABLE_ATTRS = frozenset(
    ["default", "description", "enum", "immutable", "required"]
)

# Top-level keys of each metadata kind ("additionalProperties": false in the API models).
ACTION_KEYS = frozenset(
    [
        "id", "ref", "uid", "name", "description", "enabled", "runner_type", "entry_point",
        "pack", "parameters", "output_schema", "tags", "notify", "metadata_file",
    ]
)  # fmt: skip
RULE_KEYS = frozenset(
    [
        "id", "ref", "uid", "name", "pack", "description", "type", "trigger", "criteria",
        "action", "enabled", "context", "tags", "metadata_file",
    ]
)  # fmt: skip
RULE_ACTION_KEYS = frozenset(["ref", "description", "parameters"])
ALIAS_KEYS = frozenset(
    [
        "id", "ref", "uid", "name", "pack", "description", "enabled", "action_ref", "formats",
        "ack", "result", "extra", "immutable_parameters", "metadata_file",
    ]
)  # fmt: skip
ALIAS_FORMAT_KEYS = frozenset(["display", "representation", "match_multiple"])
TRIGGER_TYPE_KEYS = frozenset(
    [
        "id", "ref", "uid", "name", "pack", "description", "payload_schema",
        "parameters_schema", "tags", "metadata_file",
    ]
)  # fmt: skip
SENSOR_KEYS = frozenset(
    [
        "id", "ref", "uid", "class_name", "pack", "description", "artifact_uri", "entry_point",
        "enabled", "trigger_types", "poll_interval", "metadata_file",
    ]
)  # fmt: skip
POLICY_KEYS = frozenset(
    [
        "id", "uid", "name", "pack", "ref", "description", "enabled", "resource_ref",
        "policy_type", "parameters", "metadata_file",
    ]
)  # fmt: skip
# Metadata folder -> (what st2 registers from it, its API model keys, the key that names it).
RESOURCE_FOLDERS = {
    "actions": ("action", ACTION_KEYS, "name"),
    "rules": ("rule", RULE_KEYS, "name"),
    "aliases": ("alias", ALIAS_KEYS, "name"),
    "sensors": ("sensor", SENSOR_KEYS, "class_name"),
    "policies": ("policy", POLICY_KEYS, "name"),
}
WORKFLOW_KEYS = frozenset(["version", "description", "input", "vars", "output", "tasks"])
TASK_KEYS = frozenset(["delay", "join", "with", "action", "input", "retry", "next"])
TRANSITION_KEYS = frozenset(["when", "publish", "do"])

# st2common/constants/pack.py
PACK_REF_REGEX = r"^[a-z0-9_]+$"
PACK_VERSION_REGEX = (
    r"^(?:0|[1-9]\d*)\.(?:0|[1-9]\d*)\.(?:0|[1-9]\d*)(?:-[\da-z\-]+(?:\.[\da-z\-]+)*)?"
    r"(?:\+[\da-z\-]+(?:\.[\da-z\-]+)*)?$"
)
ST2_VERSION_REGEX = r"^((>?>|>=|=|<=|<?<)\s*[0-9]+\.[0-9]+\.[0-9]+?(\s*,)?\s*)+$"
RESERVED_PACK_REFS = frozenset(["_global", "core", "packs"])

# st2common/constants/sensors.py
MINIMUM_POLL_INTERVAL = 4

# Base classes st2 loads pack code against (python_runner/python_action_wrapper.py,
# st2reactor/container/sensor_wrapper.py).
ST2_BASES = {
    "st2common.runners.base_action.Action": "Action",
    "st2reactor.sensor.base.Sensor": "Sensor",
    "st2reactor.sensor.base.PollingSensor": "PollingSensor",
}
# Abstract methods of st2reactor.sensor.base.BaseSensor / Sensor / PollingSensor.
SENSOR_ABSTRACT_METHODS = ("setup", "cleanup", "add_trigger", "update_trigger", "remove_trigger")

METADATA_EXTENSIONS = (".yaml", ".yml", ".json")  # st2common/util/loader.py ALLOWED_EXTS
SKIP_DIRS = frozenset(
    [
        ".venv", "venv", ".git", "tests", "node_modules", "__pycache__", ".tox",
        ".pytest_cache", ".ruff_cache", ".mypy_cache", ".procmodel",
    ]
)  # fmt: skip

_PARAM_NAME = re.compile(r"^\w+$")
_RESOURCE_DIRS = frozenset(["actions", "rules", "sensors", "aliases", "policies", "triggers"])

# --------------------------------------------------------------------------------------------
# Loading helpers
# --------------------------------------------------------------------------------------------


class _DuplicateKeyLoader(yaml.SafeLoader):
    """SafeLoader that refuses duplicate mapping keys (YAML silently keeps the last one)."""


def _construct_unique_mapping(loader, node, deep=False):
    seen = set()
    for key_node, _value in node.value:
        if key_node.tag == "tag:yaml.org,2002:merge":
            continue
        key = loader.construct_object(key_node, deep=True)
        try:
            duplicate = key in seen
        except TypeError:
            continue
        if duplicate:
            raise yaml.constructor.ConstructorError(
                None, None, "duplicate key %r" % (key,), key_node.start_mark
            )
        seen.add(key)
    return loader.construct_mapping(node, deep=deep)


_DuplicateKeyLoader.add_constructor(
    yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_unique_mapping
)

_MISSING = object()


def _read_meta(path):
    """Parse a metadata file the way st2's MetaLoader does; return _MISSING on any error."""
    try:
        with open(path, encoding="utf-8") as handle:
            if path.endswith(".json"):
                return json.load(handle)
            return yaml.safe_load(handle)
    except (OSError, ValueError, yaml.YAMLError):
        return _MISSING


def _meta_files(pack_dir, subdir):
    """(path, content) of the metadata files st2 registers from <pack>/<subdir> (non-recursive,
    like the glob) that parse; check_yaml_parses reports the others."""
    base = os.path.join(pack_dir, subdir)
    for name in sorted(os.listdir(base)) if os.path.isdir(base) else []:
        path = os.path.join(base, name)
        # actionsregistrar.py skips the legacy "actions/config.<ext>" file.
        if subdir == "actions" and os.path.splitext(name)[0] == "config":
            continue
        if os.path.isfile(path) and name.endswith(METADATA_EXTENSIONS):
            meta = _read_meta(path)
            if meta is not _MISSING:
                yield path, meta


def _resources(pack, folder, problems):
    """(rel, metadata) of every file st2 registers from <pack>/<folder> (RESOURCE_FOLDERS) and
    that is a mapping, after what every st2 API model checks: only the model's keys, its
    name present and unique in the folder (st2 keeps only one resource per ref), ``pack``
    equal to the pack ref, ``enabled`` a boolean."""
    what, keys, name_key = RESOURCE_FOLDERS[folder]
    names = {}
    for path, meta in _meta_files(pack.dir, folder):
        rel = _rel(pack.dir, path)
        if not isinstance(meta, dict):
            problems.append("%s: %s metadata must be a mapping" % (rel, what))
            continue
        _check_api_keys(rel, meta, what, keys, pack, problems)
        name = meta.get(name_key)
        if not isinstance(name, str) or not name:
            problems.append("%s: %r is required" % (rel, name_key))
        elif name in names:
            problems.append(
                "%s: %s %s %r is also used by %s (st2 keeps only one)"
                % (rel, what, name_key, name, names[name])
            )
        else:
            names[name] = rel
        if "enabled" in meta and not isinstance(meta["enabled"], bool):
            problems.append("%s: enabled must be true or false" % rel)
        yield rel, meta


def _unknown_keys(mapping, allowed):
    """The keys of ``mapping`` not in ``allowed``, sorted and joined; "" when there are none."""
    return ", ".join(map(str, sorted(set(mapping) - allowed, key=str)))


def _check_keys(where, mapping, allowed, problems, why=""):
    unknown = _unknown_keys(mapping, allowed)
    if unknown:
        problems.append("%s: unknown key(s) %s%s" % (where, unknown, why))


def _check_api_keys(where, meta, what, keys, pack, problems):
    """Only the keys of the st2 API model (additionalProperties false); pack, if given, is ours."""
    _check_keys(where, meta, keys, problems, " (st2 rejects the %s)" % what)
    if "pack" in meta and meta["pack"] != pack.ref:
        problems.append(
            "%s: pack %r differs from the pack ref %r" % (where, meta["pack"], pack.ref)
        )


def _rel(pack_dir, path):
    return os.path.relpath(path, pack_dir)


def _is_expression(value):
    return isinstance(value, str) and ("{{" in value or "{%" in value or "<%" in value)


def _entry_point_problem(resource_dir, entry_point):
    """Return why st2 would refuse this entry_point, or None.

    st2 resolves entry points at run time with st2common/content/utils.py
    get_entry_point_abs_path() -> get_pack_resource_file_abs_path() -> get_pack_file_abs_path(),
    called from st2actions/container/base.py RunnerContainer._get_runner(). It joins
    "<resource>s/" + entry_point and raises ValueError ("Invalid file path ... needs to be
    relative to the pack ... directory") unless os.path.normpath("/" + path).lstrip("/") is
    the unchanged path. So "../workflows/x.yaml", "./x.py", "a//b.py" all register but fail
    on every run.
    """
    if not isinstance(entry_point, str) or not entry_point.strip():
        return "entry_point must be a non-empty string"
    if os.path.isabs(entry_point):
        return "entry_point %r must be relative to %s/" % (entry_point, resource_dir)
    joined = os.path.join(resource_dir + "/", entry_point)
    if os.path.normpath("/" + joined).lstrip("/") != joined:
        return (
            "entry_point %r is not a normalized path below %s/ (st2 requires "
            "os.path.normpath(path) == path and refuses it at run time)"
            % (entry_point, resource_dir)
        )
    return None


def _entry_point_file(pack, folder, rel, entry_point, problems):
    """The file an entry_point names below <pack>/<folder>; None, with the problem, when st2
    would refuse the path or the file does not exist."""
    why = _entry_point_problem(folder, entry_point)
    if why:
        problems.append("%s: %s" % (rel, why))
        return None
    target = os.path.join(pack.dir, folder, entry_point)
    if not os.path.isfile(target):
        problems.append(
            "%s: entry_point %r does not exist (looked for %s/%s)"
            % (rel, entry_point, folder, entry_point)
        )
        return None
    return target


def _pack_name_from_dependency(dep):
    """'https://github.com/StackStorm-Exchange/stackstorm-st2.git=1.0.0' -> 'st2'."""
    name = dep.split("=", 1)[0].rstrip("/")
    name = name.rsplit("/", 1)[-1]
    if name.endswith(".git"):
        name = name[: -len(".git")]
    if name.startswith("stackstorm-"):
        name = name[len("stackstorm-") :]
    return name.replace("-", "_")


class _Pack:
    """What the checks need to know about a pack, read once."""

    def __init__(self, pack_dir):
        self.dir = os.path.abspath(pack_dir)
        meta = _read_meta(os.path.join(self.dir, "pack.yaml"))
        self.meta = meta if isinstance(meta, dict) else {}
        ref = self.meta.get("ref")
        name = self.meta.get("name")
        if isinstance(ref, str) and ref:
            self.ref = ref
        elif isinstance(name, str) and re.match(PACK_REF_REGEX, name):
            self.ref = name
        else:
            self.ref = os.path.basename(self.dir)
        deps = self.meta.get("dependencies")
        self.dependencies = set(
            _pack_name_from_dependency(dep)
            for dep in (deps if isinstance(deps, list) else [])
            if isinstance(dep, str)
        )

    @functools.cached_property
    def actions(self):
        """{action name: metadata} for well-formed action files (the first file wins)."""
        actions = {}
        for _path, meta in _meta_files(self.dir, "actions"):
            if isinstance(meta, dict) and isinstance(meta.get("name"), str):
                actions.setdefault(meta["name"], meta)
        return actions

    @functools.cached_property
    def trigger_types(self):
        """{trigger type name: definition} from sensors/ and triggers/."""
        types = {}
        for _path, definition in self.iter_trigger_type_definitions():
            if isinstance(definition.get("name"), str):
                types.setdefault(definition["name"], definition)
        return types

    def iter_trigger_type_definitions(self):
        """(path, definition) of each trigger type declared under ``trigger_types:`` in
        sensors/*.yaml, or as one of triggers/*.yaml (st2common/bootstrap/triggersregistrar.py)."""
        for path, meta in _meta_files(self.dir, "sensors"):
            if isinstance(meta, dict) and isinstance(meta.get("trigger_types"), list):
                for item in meta["trigger_types"]:
                    if isinstance(item, dict):
                        yield path, item
        for path, meta in _meta_files(self.dir, "triggers"):
            if isinstance(meta, dict):
                yield path, meta

    def resolve_action(self, ref):
        """Resolve an action ref.

        Returns (kind, detail): ("own", (runner, parameters)) for this pack's actions,
        ("known", (runner, parameters)) for the packs shipped with st2, ("external", None) for
        a pack listed in pack.yaml dependencies, or ("missing", reason).
        """
        if not isinstance(ref, str) or "." not in ref:
            return "missing", "%r is not an action reference (<pack>.<action>)" % (ref,)
        pack, name = ref.split(".", 1)
        if pack == self.ref:
            if name in self.actions:
                meta = self.actions[name]
                return "own", (meta.get("runner_type"), meta.get("parameters"))
            return "missing", "action %r is not defined in actions/ of this pack" % ref
        if ref in _SHIPPED_ACTIONS_SPEC:
            runner, spec = _SHIPPED_ACTIONS_SPEC[ref]
            params = {}
            for item in spec.split():
                params[item.rstrip("!")] = {"required": True} if item.endswith("!") else {}
            return "known", (runner, params)
        if pack in SHIPPED_PACKS:
            return "missing", "action %r does not exist in the %r pack shipped with st2 3.9" % (
                ref,
                pack,
            )
        if pack in self.dependencies:
            return "external", None
        return "missing", (
            "action %r belongs to pack %r, which is neither shipped with StackStorm 3.9 nor "
            "listed in pack.yaml dependencies" % (ref, pack)
        )

    def action_parameter_specs(self, ref):
        """Union of runner and action parameters (action wins), as st2 builds it in
        st2common/util/action_db.py get_action_parameters_specs(); None if unknown."""
        kind, detail = self.resolve_action(ref)
        if kind not in ("own", "known"):
            return None
        runner, action_params = detail
        specs = dict(_runner_params(runner))
        if isinstance(action_params, dict):
            for name, value in action_params.items():
                specs[name] = value if isinstance(value, dict) else {}
        return specs

    def referenced_action_specs(self, where, ref, label, problems):
        """Parameter specs of the action a ``label`` key (action_ref, resource_ref, ...) names;
        None, with the problem, when the key is missing or the action does not exist, and
        None when the action belongs to a dependency."""
        if not isinstance(ref, str):
            problems.append("%s: %r is required" % (where, label))
            return None
        kind, detail = self.resolve_action(ref)
        if kind == "missing":
            problems.append("%s: %s: %s" % (where, label, detail))
            return None
        return self.action_parameter_specs(ref)


def _runner_params(runner):
    """Parameters of a runner (by name or alias); {} for anything else."""
    return RUNNER_PARAMETERS.get(runner, {}) if isinstance(runner, str) else {}


def _required_params(specs):
    return sorted(
        name
        for name, meta in specs.items()
        if isinstance(meta, dict) and meta.get("required") is True and "default" not in meta
    )


# --------------------------------------------------------------------------------------------
# JSON schema helpers
# --------------------------------------------------------------------------------------------


def _without_st2_attributes(schema):
    """The schema minus what only st2's meta-schema (st2common/util/schema/custom.json) allows:
    a property's own ``required: true`` and the secret/position/immutable attributes."""
    if isinstance(schema, list):
        return [_without_st2_attributes(item) for item in schema]
    if not isinstance(schema, dict):
        return schema
    result = {}
    for key, value in schema.items():
        if key in ("secret", "position", "immutable") or (
            key == "required" and isinstance(value, bool)
        ):
            continue
        if key in ("enum", "default", "const", "examples"):
            result[key] = value
        elif key in ("properties", "patternProperties", "definitions", "dependencies") and (
            isinstance(value, dict)
        ):
            result[key] = {name: _without_st2_attributes(sub) for name, sub in value.items()}
        else:
            result[key] = _without_st2_attributes(value)
    return result


def _schema_errors(schema):
    """Problems with a JSON schema, checked against the draft-4 meta-schema (or the one its
    $schema names) once st2's own attributes are set aside; [] when it is valid."""
    plain = _without_st2_attributes(schema)
    try:
        validator_for(plain, default=Draft4Validator).check_schema(plain)
    except jsonschema.exceptions.SchemaError as exc:
        where = "/".join(str(p) for p in exc.path)
        return ["%s%s" % ("at %s: " % where if where else "", exc.message)]
    return []


def _instance_errors(instance, schema):
    """Every error st2 finds validating ``instance`` (st2common/util/schema validate() with
    use_default and allow_default_none, mirrored by st2harness.schema), as "path: message";
    st2 raises only one of them."""
    instance = st2schema.assign_defaults(copy.deepcopy(instance), schema)
    validator = st2schema.CustomValidator(st2schema.allow_default_none(schema))
    errors = []
    for error in sorted(validator.iter_errors(instance), key=lambda e: [str(p) for p in e.path]):
        # Draft 3's "required" puts the missing property itself on the path.
        path = list(error.path)[:-1] if error.validator == "required" else error.path
        where = ".".join(str(p) for p in path)
        errors.append("%s%s" % ("%s: " % where if where else "", error.message))
    return errors


def _subschemas(schema, where):
    """(where, property name or None, sub-schema) for each schema nested directly in
    ``schema``: properties, patternProperties, items, additionalProperties, anyOf/oneOf/allOf."""
    for key in ("properties", "patternProperties"):
        nested = schema.get(key)
        for name, sub in nested.items() if isinstance(nested, dict) else ():
            yield ("%s.%s" % (where, name) if where else str(name)), name, sub
    items = schema.get("items")
    if isinstance(items, dict):
        yield where + "[]", None, items
    elif isinstance(items, list):
        for index, sub in enumerate(items):
            yield "%s[%d]" % (where, index), None, sub
    if isinstance(schema.get("additionalProperties"), dict):
        yield where + ".*", None, schema["additionalProperties"]
    for key in ("anyOf", "oneOf", "allOf"):
        alternatives = schema.get(key)
        for sub in alternatives if isinstance(alternatives, list) else ():
            yield where, None, sub


def _check_nested_types(schema, where, prefix, problems):
    """Types of a schema and the schemas nested in it must be JSON schema types."""
    if not isinstance(schema, dict):
        return
    stype = schema.get("type")
    for item in stype if isinstance(stype, list) else [] if stype is None else [stype]:
        if not (isinstance(item, str) and item in JSON_SCHEMA_TYPES):
            problems.append(
                "%s: %s has type %r, which is not a JSON schema type (%s)"
                % (prefix, where, item, ", ".join(sorted(JSON_SCHEMA_TYPES)))
            )
    for sub_where, _name, sub in _subschemas(schema, where):
        _check_nested_types(sub, sub_where, prefix, problems)


def _json_unique(values):
    """No two values are equal as JSON (values JSON cannot encode are not compared)."""
    try:
        return len(set(json.dumps(v, sort_keys=True) for v in values)) == len(values)
    except (TypeError, ValueError):
        return True


def _check_parameter_definitions(params, prefix, what, problems):
    """Validate action parameters / config schema attributes the way st2 registers them:
    names match ^\\w+$, each definition uses only the attributes of
    st2common/util/schema/action_params.json, "type" is ONE JSON schema type (a list is
    rejected at the top level), required/secret/immutable are booleans, position >= 0,
    enum a non-empty list of unique values. Nested sub-schemas only need valid types (that
    is all st2's meta-schema checks there)."""
    if params is None:
        return
    if not isinstance(params, dict):
        problems.append("%s: %s must be a mapping of name -> definition" % (prefix, what))
        return
    for name, definition in params.items():
        before = len(problems)
        at = "%s: %s %r" % (prefix, what.rstrip("s"), name)
        if not isinstance(name, str) or not _PARAM_NAME.match(name):
            problems.append("%s: invalid name (st2 allows only [a-zA-Z0-9_])" % at)
        if not isinstance(definition, dict):
            problems.append("%s: definition must be a mapping" % at)
            continue
        unknown = _unknown_keys(definition, PARAM_ATTRIBUTES)
        if unknown:
            problems.append(
                "%s: attribute(s) %s not allowed by st2's parameter schema "
                "(st2common/util/schema/action_params.json)" % (at, unknown)
            )
        ptype = definition.get("type")
        if ptype is not None and not (isinstance(ptype, str) and ptype in JSON_SCHEMA_TYPES):
            problems.append(
                "%s: type %r is not one of %s (st2 allows a single type here)"
                % (at, ptype, ", ".join(sorted(JSON_SCHEMA_TYPES)))
            )
        for flag in ("required", "secret", "immutable"):
            if flag in definition and not isinstance(definition[flag], bool):
                problems.append("%s: %r must be true or false" % (at, flag))
        pos = definition.get("position", 0)
        if isinstance(pos, bool) or not isinstance(pos, (int, float)) or pos < 0:
            problems.append("%s: position must be a number >= 0" % at)
        enum = definition.get("enum", [None])
        if not isinstance(enum, list) or not enum:
            problems.append("%s: enum must be a non-empty list" % at)
        elif not _json_unique(enum):
            problems.append("%s: enum values must be unique" % at)
        for where, _name, sub in _subschemas(definition, str(name)):
            _check_nested_types(sub, where, prefix, problems)
        if len(problems) == before:
            for error in _schema_errors(definition):
                problems.append("%s: invalid JSON schema: %s" % (at, error))


# --------------------------------------------------------------------------------------------
# Python (ast) helpers
# --------------------------------------------------------------------------------------------


def _dotted(node):
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        inner = _dotted(node.value)
        return None if inner is None else inner + "." + node.attr
    if isinstance(node, ast.Subscript):  # Generic[...]
        return _dotted(node.value)
    return None


class _PyFile:
    def __init__(self, path):
        self.path = path
        with open(path, encoding="utf-8") as handle:
            source = handle.read()
        self.tree = ast.parse(source, filename=path)
        self.classes = {}
        for node in self.tree.body:
            if isinstance(node, ast.ClassDef):
                self.classes[node.name] = node
        self.imports = {}
        for node in ast.walk(self.tree):
            if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                for alias in node.names:
                    self._bind(alias.asname or alias.name, node.module + "." + alias.name)
            elif isinstance(node, ast.Import):
                for alias in node.names:
                    if alias.asname:
                        self._bind(alias.asname, alias.name)
                    else:
                        top = alias.name.split(".")[0]
                        self._bind(top, top)

    def _bind(self, local, target):
        # Prefer the real st2 import when a file has a try/except fallback import.
        if self.imports.get(local) in ST2_BASES and target not in ST2_BASES:
            return
        self.imports[local] = target

    def resolve(self, dotted):
        head, _, rest = dotted.partition(".")
        if head in self.imports:
            return self.imports[head] + ("." + rest if rest else "")
        return dotted


class _ModuleFinder:
    """Finds pack-local modules on the import path st2 gives the code (no import)."""

    def __init__(self, search_paths):
        self.search_paths = [p for p in search_paths if os.path.isdir(p)]
        self.cache = {}

    def find(self, module):
        if module in self.cache:
            return self.cache[module]
        result = None
        parts = module.split(".")
        for base in self.search_paths:
            candidates = [
                os.path.join(base, *parts) + ".py",
                os.path.join(base, *(parts + ["__init__.py"])),
            ]
            for candidate in candidates:
                if os.path.isfile(candidate):
                    try:
                        result = _PyFile(candidate)
                    except (SyntaxError, ValueError, OSError):
                        result = None
                    break
            if result is not None:
                break
        self.cache[module] = result
        return result


_METHOD_NODES = (ast.FunctionDef, ast.AsyncFunctionDef)


class _Lineage:
    def __init__(self):
        self.st2_bases = set()
        self.methods = {}  # name -> FunctionDef (nearest definition wins)
        self.unresolved = []


def _find_class(pyfile, name, finder):
    """(file, ClassDef) of the class ``name`` means in ``pyfile``: defined there, or imported
    from a pack-local module; None when it is neither."""
    if "." not in name and name in pyfile.classes:
        return pyfile, pyfile.classes[name]
    module, _, cls = pyfile.resolve(name).rpartition(".")
    other = finder.find(module) if module else None
    if other is not None and cls in other.classes:
        return other, other.classes[cls]
    return None


def _lineage(pyfile, classdef, finder, _seen=None):
    lineage = _Lineage()
    seen = _seen if _seen is not None else set()
    key = (pyfile.path, classdef.name)
    if key in seen or len(seen) > 20:
        return lineage
    seen.add(key)
    for node in classdef.body:
        if isinstance(node, _METHOD_NODES):
            lineage.methods.setdefault(node.name, node)
        elif isinstance(node, ast.Assign):
            for target in node.targets:
                if isinstance(target, ast.Name):
                    lineage.methods.setdefault(target.id, node)
    for base in classdef.bases:
        name = _dotted(base)
        if name is None:
            lineage.unresolved.append("<expression>")
            continue
        if name in ("object", "abc.ABC", "ABC"):
            continue
        local = "." not in name and name in pyfile.classes
        if not local and pyfile.resolve(name) in ST2_BASES:
            lineage.st2_bases.add(ST2_BASES[pyfile.resolve(name)])
            continue
        found = _find_class(pyfile, name, finder)
        if found is None:
            lineage.unresolved.append(name)
            continue
        sub = _lineage(found[0], found[1], finder, seen)
        lineage.st2_bases |= sub.st2_bases
        for method, node in sub.methods.items():
            lineage.methods.setdefault(method, node)
        lineage.unresolved.extend(sub.unresolved)
    return lineage


def _signature(func):
    """(accepted keyword names, names without default, positional-only names, has **kwargs)."""
    args = func.args
    posonly = [a.arg for a in getattr(args, "posonlyargs", [])]
    positional = [a.arg for a in args.args]
    ordered = posonly + positional
    defaults = len(args.defaults)
    without_default = ordered[: len(ordered) - defaults] if defaults else list(ordered)
    decorators = [_dotted(d) for d in func.decorator_list]
    if "staticmethod" not in decorators and ordered:
        bound = ordered[0]
        ordered = ordered[1:]
        posonly = [n for n in posonly if n != bound]
        positional = [n for n in positional if n != bound]
        without_default = [n for n in without_default if n != bound]
    kwonly = [a.arg for a in args.kwonlyargs]
    for name, default in zip(kwonly, args.kw_defaults):
        if default is None:
            without_default.append(name)
    accepted = set(positional) | set(kwonly)
    return accepted, without_default, posonly, args.kwarg is not None


def _python_file(pack, rel, target, problems):
    """The parsed Python entry point; None, with the problem, when it is not a .py file or
    does not parse."""
    target_rel = _rel(pack.dir, target)
    if not target.endswith(".py"):
        problems.append("%s: entry_point %s must be a .py file" % (rel, target_rel))
        return None
    try:
        return _PyFile(target)
    except (SyntaxError, ValueError) as exc:
        problems.append("%s: %s does not parse: %s" % (rel, target_rel, _one_line(exc)))
        return None


# --------------------------------------------------------------------------------------------
# 1. YAML parses
# --------------------------------------------------------------------------------------------


def check_yaml_parses(pack_dir):
    """Every *.yaml / *.yml of the pack parses with yaml.safe_load (what st2's MetaLoader
    uses, st2common/content/loader.py), and has no duplicate mapping keys (stricter than
    st2: YAML silently keeps the last duplicate). JSON metadata files must parse as JSON.
    Skips .venv, .git, tests/, node_modules, __pycache__ and tool caches."""
    pack_dir = os.path.abspath(pack_dir)
    problems = []
    for root, dirs, files in os.walk(pack_dir):
        dirs[:] = sorted(d for d in dirs if d not in SKIP_DIRS)
        for name in sorted(files):
            path = os.path.join(root, name)
            rel = _rel(pack_dir, path)
            if name.endswith((".yaml", ".yml")):
                try:
                    with open(path, encoding="utf-8") as handle:
                        text = handle.read()
                except (OSError, UnicodeDecodeError) as exc:
                    problems.append("%s: cannot be read: %s" % (rel, exc))
                    continue
                try:
                    yaml.safe_load(text)
                except yaml.YAMLError as exc:
                    problems.append("%s: YAML does not parse: %s" % (rel, _one_line(exc)))
                    continue
                try:
                    yaml.load(text, Loader=_DuplicateKeyLoader)  # noqa: S506 (safe subclass)
                except yaml.YAMLError as exc:
                    problems.append("%s: %s (YAML keeps only the last one)" % (rel, _one_line(exc)))
            elif (
                name.endswith(".json")
                and rel.split(os.sep)[0] in _RESOURCE_DIRS
                and (len(rel.split(os.sep)) == 2)
            ):
                try:
                    with open(path, encoding="utf-8") as handle:
                        json.load(handle)
                except (OSError, ValueError) as exc:
                    problems.append("%s: JSON does not parse: %s" % (rel, exc))
    return problems


def _one_line(exc):
    return " ".join(str(exc).split())


# --------------------------------------------------------------------------------------------
# 9. pack.yaml
# --------------------------------------------------------------------------------------------


def check_pack_yaml(pack_dir):
    """pack.yaml as st2common/models/api/pack.py PackAPI validates it (plus email and
    python_versions "3", which this pack requires): name, description, author required;
    ref (or name, when ref is absent) matches ^[a-z0-9_]+$ and is not reserved; version is
    semver (a bare YAML 1.0 becomes "1.0" and fails); stackstorm_version matches st2's
    pattern; python_versions is a list of the strings "2"/"3" and includes "3"."""
    pack_dir = os.path.abspath(pack_dir)
    path = os.path.join(pack_dir, "pack.yaml")
    if not os.path.isfile(path):
        return ["pack.yaml: missing (st2 does not treat a directory without it as a pack)"]
    meta = _read_meta(path)
    if meta is _MISSING:
        return []  # reported by check_yaml_parses
    if not isinstance(meta, dict):
        return ["pack.yaml: must be a mapping"]
    problems = []
    for key in ("name", "description", "author", "email", "version"):
        value = meta.get(key)
        if value is None or (isinstance(value, str) and not value.strip()):
            problems.append("pack.yaml: %r is required" % key)
        elif key != "version" and not isinstance(value, str):
            problems.append("pack.yaml: %r must be a string" % key)
    ref = meta.get("ref")
    if ref is not None:
        if not isinstance(ref, str) or not re.match(PACK_REF_REGEX, ref):
            problems.append(
                "pack.yaml: ref %r may contain only lowercase letters, digits and _" % (ref,)
            )
    elif isinstance(meta.get("name"), str) and not re.match(PACK_REF_REGEX, meta["name"]):
        problems.append(
            "pack.yaml: no 'ref' and name %r is not a valid ref ([a-z0-9_]+)" % meta["name"]
        )
    effective = ref if ref is not None else meta.get("name")
    if isinstance(effective, str) and effective in RESERVED_PACK_REFS:
        problems.append("pack.yaml: %r is a reserved pack name" % effective)
    version = meta.get("version")
    if version is not None and not re.match(PACK_VERSION_REGEX, str(version)):
        problems.append(
            "pack.yaml: version %r is not semver (e.g. 0.1.0); quote it in YAML" % (version,)
        )
    email = meta.get("email")
    if isinstance(email, str) and email.strip() and "@" not in email:
        problems.append("pack.yaml: email %r is not an e-mail address" % email)
    st2_version = meta.get("stackstorm_version")
    if st2_version is not None and not (
        isinstance(st2_version, str) and re.match(ST2_VERSION_REGEX, st2_version)
    ):
        problems.append(
            "pack.yaml: stackstorm_version %r does not match st2's pattern (e.g. '>=3.9.0')"
            % (st2_version,)
        )
    pyv = meta.get("python_versions")
    if pyv is None:
        problems.append('pack.yaml: python_versions is required and must include "3"')
    elif not isinstance(pyv, list) or not pyv:
        problems.append('pack.yaml: python_versions must be a non-empty list, e.g. ["3"]')
    else:
        bad = [v for v in pyv if v not in ("2", "3")]
        if bad:
            problems.append(
                'pack.yaml: python_versions items must be the strings "2" or "3" (got %r; '
                "quote numbers in YAML)" % (bad,)
            )
        if "3" not in pyv:
            problems.append('pack.yaml: python_versions must include "3"')
    for key in ("keywords", "contributors", "dependencies", "files"):
        value = meta.get(key)
        if value is not None and not (
            isinstance(value, list) and all(isinstance(v, str) for v in value)
        ):
            problems.append("pack.yaml: %r must be a list of strings" % key)
    return problems


# --------------------------------------------------------------------------------------------
# 8. config.schema.yaml
# --------------------------------------------------------------------------------------------

# Secret detection (documented rule): split the key on "_", "-" and camelCase into lowercase
# words. A key is a secret when
#   * one of its words is password, passwd, passphrase, secret, token, apikey, credential(s),
#     pem, or
#   * its last word is "key" (private_key, api_key, client_key, validation_key, tsig_key...)
#     unless the word before it is pub/public/host ("ssh_pub_key", "host_key");
# but never when its last word names something about the secret rather than the secret itself
# (…_name, _id, _file, _path, _url, _uri, _ttl, _type, _algorithm, _header, _length, _user,
# _username, _env, _prefix, _format, _expiry, _expires, _timeout, _enabled): "tsig_key_name",
# "token_url", "password_file" are not secrets.
SECRET_WORDS = frozenset(
    ["password", "passwd", "passphrase", "secret", "token", "apikey", "credential",
     "credentials", "pem"]
)  # fmt: skip
NON_SECRET_LAST_WORDS = frozenset(
    ["name", "id", "file", "path", "url", "uri", "ttl", "type", "algorithm", "header",
     "length", "user", "username", "env", "prefix", "format", "expiry", "expires", "timeout",
     "enabled"]
)  # fmt: skip
NON_SECRET_KEY_QUALIFIERS = frozenset(["pub", "public", "host"])


def is_secret_name(name):
    """True when a config key's name says it holds a secret (see the rule above)."""
    spaced = re.sub(r"([a-z0-9])([A-Z])", r"\1_\2", str(name))
    words = [w for w in re.split(r"[^a-zA-Z0-9]+", spaced.lower()) if w]
    if not words or words[-1] in NON_SECRET_LAST_WORDS:
        return False
    if any(w in SECRET_WORDS for w in words):
        return True
    if words[-1] == "key":
        return not (len(words) > 1 and words[-2] in NON_SECRET_KEY_QUALIFIERS)
    return False


def _check_secrets(schema, where, prefix, problems):
    """Every property nested in ``schema`` whose name says it holds a secret has secret: true."""
    for path, name, definition in _subschemas(schema, where):
        if not isinstance(definition, dict):
            continue
        holds_scalar = definition.get("type") not in ("object", "array")
        if name is not None and is_secret_name(name) and holds_scalar:
            if definition.get("secret") is not True:
                problems.append(
                    "%s: %r looks like a secret but lacks 'secret: true' (st2 would show it in "
                    "API responses and logs)" % (prefix, path)
                )
        _check_secrets(definition, path, prefix, problems)


def check_config_schema(pack_dir):
    """config.schema.yaml as st2 registers it (st2common/models/api/pack.py ConfigSchemaAPI:
    attributes are validated like action parameters, see _check_parameter_definitions);
    nested objects are checked recursively; secret-looking keys need ``secret: true``
    (is_secret_name); the whole schema, wrapped as {"type": "object", "properties": ...},
    is a valid JSON schema; and <ref>.yaml.example validates against it the way
    st2common/util/pack.py validate_config_against_schema() does (st2harness.schema:
    defaults filled in, optional values may be null, additional keys allowed; no
    ``decrypt_kv`` on secret values)."""
    pack = _Pack(pack_dir)
    prefix = "config.schema.yaml"
    schema = _read_meta(os.path.join(pack.dir, prefix))
    if schema is _MISSING or schema is None:
        return []
    if not isinstance(schema, dict):
        return ["%s: must be a mapping of option name -> property schema" % prefix]
    problems = []
    _check_parameter_definitions(schema, prefix, "options", problems)
    config_schema = _parameters_schema(schema, additional=True)
    if not problems:
        for error in _schema_errors(config_schema):
            problems.append("%s: not a valid JSON schema: %s" % (prefix, error))
    schema_broken = bool(problems)
    _check_secrets(config_schema, "", prefix, problems)
    for example_name in sorted(set(["%s.yaml.example" % pack.ref, "autoscale.yaml.example"])):
        example = _read_meta(os.path.join(pack.dir, example_name))
        if example is _MISSING:
            continue
        if example is None:
            example = {}
        if not isinstance(example, dict):
            problems.append("%s: must be a mapping" % example_name)
            continue
        if schema_broken:
            continue
        for error in _instance_errors(example, config_schema):
            problems.append(
                "%s: does not validate against config.schema.yaml: %s" % (example_name, error)
            )
        _check_decrypt_kv(example, schema, "", example_name, problems)
    return problems


def _check_decrypt_kv(values, properties, path, example_name, problems):
    """st2 decrypts a ``secret: true`` value itself, nested ones included
    (config_loader._get_datastore_value_for_expression), so ``decrypt_kv`` there breaks it."""
    for key, value in values.items():
        definition = properties.get(key) if isinstance(properties, dict) else None
        if not isinstance(definition, dict):
            continue
        name = path + key
        if isinstance(value, dict):
            _check_decrypt_kv(value, definition.get("properties") or {}, name + ".",
                              example_name, problems)
        elif definition.get("secret") is True and _is_expression(value) and "decrypt_kv" in value:
            problems.append(
                "%s: %r is secret: st2 decrypts it itself and rejects 'decrypt_kv'"
                % (example_name, name)
            )


# --------------------------------------------------------------------------------------------
# 2. Actions
# --------------------------------------------------------------------------------------------


def check_actions(pack_dir):
    """actions/*.yaml as st2 registers and runs them.

    Registration (st2common/bootstrap/actionsregistrar.py, models/api/action.py ActionAPI,
    validators/api/action.py): only ActionAPI keys; name and runner_type required; runner_type
    one of the runners st2 3.9 ships (contrib/runners/*/runner.yaml, RUNNERS); pack, if given,
    equals the pack ref; parameters as in _check_parameter_definitions; positions unique and
    contiguous; an immutable parameter needs a default; a runner parameter may only be
    overridden in default/description/enum/immutable/required.

    Run time: entry_point present when the runner needs one, absent when it refuses one
    (local-shell-cmd, remote-shell-cmd), normalized and relative (see _entry_point_problem),
    and an existing file under actions/.

    python-script: the entry point parses; st2 (python_runner/python_action_wrapper.py with
    st2common/util/loader.py register_plugin) loads the classes DEFINED in the file that
    implement run(), sorted by name, and uses the first — so there must be exactly one
    Action subclass with run(), and no other run()-bearing class sorting before it. st2 calls
    run(**parameters) with every declared non-runner parameter (None when unset; runner
    parameters such as timeout/env are NOT passed, st2common/util/param.py _split_params),
    so run() must accept each one and must not require anything else.

    orquesta: the entry point is a YAML file (its content is checked by check_workflows).
    """
    pack = _Pack(pack_dir)
    problems = []
    for rel, meta in _resources(pack, "actions", problems):
        runner = meta.get("runner_type")
        if runner is None:
            problems.append("%s: 'runner_type' is required" % rel)
            continue
        if not isinstance(runner, str) or runner not in RUNNER_PARAMETERS:
            problems.append(
                "%s: runner_type %r is not a StackStorm 3.9 runner (%s)"
                % (rel, runner, ", ".join(RUNNERS))
            )
            continue
        params = meta.get("parameters")
        _check_parameter_definitions(params, rel, "parameters", problems)
        if isinstance(params, dict):
            _check_runner_overrides(rel, runner, params, problems)
            _check_positions(rel, params, problems)
        if "output_schema" in meta:
            output_schema = meta["output_schema"]
            if not isinstance(output_schema, dict):
                problems.append("%s: output_schema must be a mapping" % rel)
            else:
                for error in _schema_errors(output_schema):
                    problems.append("%s: output_schema is not valid: %s" % (rel, error))
        entry_point = meta.get("entry_point")
        if not entry_point:
            if runner in RUNNERS_NEEDING_ENTRY_POINT:
                problems.append("%s: runner %r needs an entry_point" % (rel, runner))
            continue
        if runner in RUNNERS_REJECTING_ENTRY_POINT:
            problems.append(
                "%s: runner %r refuses actions that set entry_point (it raises at run time)"
                % (rel, runner)
            )
            continue
        target = _entry_point_file(pack, "actions", rel, entry_point, problems)
        if target is None:
            continue
        if runner == "python-script":
            declared = params if isinstance(params, dict) else {}
            _check_python_action(pack, rel, target, declared, problems)
        elif runner in ("orquesta", "orchestra"):
            if not entry_point.endswith((".yaml", ".yml")):
                problems.append(
                    "%s: orquesta entry_point %r should be a .yaml workflow definition"
                    % (rel, entry_point)
                )
            workflow = _read_meta(target)
            if workflow is _MISSING:
                problems.append("%s: workflow %s is not valid YAML" % (rel, _rel(pack.dir, target)))
            elif not isinstance(workflow, dict):
                problems.append("%s: workflow %s must be a mapping" % (rel, _rel(pack.dir, target)))
    return problems


def _check_runner_overrides(rel, runner, params, problems):
    """st2common/validators/api/action.py _validate_parameters and util/schema
    validate_runner_parameter_attribute_override."""
    runner_params = _runner_params(runner)
    allowed = ", ".join(sorted(RUNNER_PARAM_OVERRIDABLE_ATTRS))
    for name, definition in params.items():
        if not isinstance(definition, dict):
            continue
        if name not in runner_params:
            if definition.get("immutable") is True and "default" not in definition:
                problems.append("%s: immutable parameter %r needs a default" % (rel, name))
            continue
        runner_meta = runner_params[name]
        for attr, value in definition.items():
            # "secret" is left alone: the runner tables here do not record it.
            if attr in RUNNER_PARAM_OVERRIDABLE_ATTRS or attr == "secret":
                continue
            if attr == "type" and value == runner_meta.get("type"):
                continue
            problems.append(
                "%s: parameter %r is a %s runner parameter; its %r cannot be overridden "
                "(only %s)" % (rel, name, runner, attr, allowed)
            )
        if "immutable" in definition and runner_meta.get("immutable"):
            problems.append(
                "%s: parameter %r is immutable in the %s runner and cannot be redeclared "
                "immutable" % (rel, name, runner)
            )


def _check_positions(rel, params, problems):
    positions = {}
    for name, definition in params.items():
        if isinstance(definition, dict) and isinstance(definition.get("position"), int):
            pos = definition["position"]
            if pos in positions:
                problems.append(
                    "%s: parameters %r and %r have the same position %d"
                    % (rel, positions[pos], name, pos)
                )
            positions[pos] = name
    if positions:
        ordered = sorted(positions)
        if ordered != list(range(ordered[0], ordered[-1] + 1)):
            problems.append("%s: parameter positions %s are not contiguous" % (rel, ordered))


def _check_python_action(pack, rel, target, declared, problems):
    pyfile = _python_file(pack, rel, target, problems)
    if pyfile is None:
        return
    where = "%s: %s" % (rel, _rel(pack.dir, target))
    entry_dir = os.path.dirname(target)
    # python_runner puts the entry point's directory and its lib/ on sys.path
    # (st2common/content/utils.py get_action_libs_abs_path).
    finder = _ModuleFinder([entry_dir, os.path.join(entry_dir, "lib")])
    lineages = {name: _lineage(pyfile, node, finder) for name, node in pyfile.classes.items()}
    action_classes = sorted(n for n, lin in lineages.items() if "Action" in lin.st2_bases)
    # Classes whose run() st2's loader would accept (own or inherited through the pack).
    runnable = sorted(n for n, lin in lineages.items() if "run" in lin.methods)
    if not action_classes:
        problems.append(
            "%s defines no class deriving from st2common.runners.base_action.Action" % where
        )
        return
    concrete = [n for n in action_classes if "run" in lineages[n].methods]
    if not concrete:
        problems.append(
            "%s: Action subclass %s does not implement run()" % (where, ", ".join(action_classes))
        )
        return
    chosen = runnable[0] if runnable else concrete[0]
    if len(concrete) > 1:
        problems.append(
            "%s defines %d Action subclasses with run() (%s); st2 expects exactly one per file "
            "and would load %s" % (where, len(concrete), ", ".join(concrete), chosen)
        )
    if chosen not in action_classes:
        problems.append(
            "%s: st2 loads the first class (by name) that has run(), which is %r, not the "
            "Action subclass %r" % (where, chosen, concrete[0])
        )
        chosen = concrete[0]
    run = lineages[chosen].methods.get("run")
    if not isinstance(run, _METHOD_NODES):
        return
    accepted, without_default, posonly, has_kwargs = _signature(run)
    runner_params = _runner_params("python-script")
    passed = sorted(n for n in declared if n not in runner_params)
    run_where = "%s: %s.run()" % (rel, chosen)
    for name in passed:
        if name in posonly:
            problems.append(
                "%s takes declared parameter %r positional-only; st2 calls run(**parameters)"
                % (run_where, name)
            )
        elif name not in accepted and not has_kwargs:
            problems.append(
                "%s does not accept declared parameter %r (st2 calls run(**parameters) with "
                "every declared parameter)" % (run_where, name)
            )
    for name in without_default:
        if name in runner_params:
            problems.append(
                "%s requires %r, a python-script runner parameter that st2 never passes to "
                "run()" % (run_where, name)
            )
        elif name not in passed:
            problems.append(
                "%s requires %r, which is not a declared parameter (st2 passes only declared "
                "parameters)" % (run_where, name)
            )
    # A runner parameter declared to tune the action (e.g. timeout) never reaches run():
    # run() reading it would always see its own default.
    for name in sorted(set(accepted) & set(runner_params) & set(declared) - set(without_default)):
        problems.append(
            "%s takes %r, but that is a python-script runner parameter: st2 keeps it and never "
            "passes it to run(); give the action's own parameter another name" % (run_where, name)
        )


# --------------------------------------------------------------------------------------------
# 3. Orquesta workflows
# --------------------------------------------------------------------------------------------

_CTX_PATTERNS = [
    re.compile(r"(?<=\bctx\(\)\.)([a-zA-Z0-9_-]+)\b(?!\()"),
    re.compile(r"\bctx\(([a-zA-Z0-9_-]+)\)"),
    re.compile(r"\bctx\('([a-zA-Z0-9_-]+)'\)"),
    re.compile(r'\bctx\("([a-zA-Z0-9_-]+)"\)'),
]
_JINJA = re.compile(r"{{.*?}}|{%.*?%}", re.DOTALL)
_YAQL = re.compile(r"<%.*?%>", re.DOTALL)
# Keys of the context st2 hands to the workflow (orquesta_runner.py _construct_st2_context).
_ST2_CONTEXT_KEYS = frozenset(["st2", "parent"])


def _strings(value):
    """Every string in a YAML value, mapping keys included."""
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from _strings(key)
            yield from _strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from _strings(item)


def _ctx_refs(value):
    refs = set()
    for text in _strings(value):
        for block in _JINJA.findall(text) + _YAQL.findall(text):
            for pattern in _CTX_PATTERNS:
                refs.update(pattern.findall(block))
    return refs


def _one_key_names(items, allow_strings):
    names = []
    if not isinstance(items, list):
        return None
    for item in items:
        if isinstance(item, dict) and len(item) == 1:
            names.append(str(list(item)[0]))
        elif allow_strings and isinstance(item, str):
            names.append(item)
        else:
            return None
    return names


def _split_do(do):
    if isinstance(do, str):
        return [x.strip() for x in do.split(",")]
    if isinstance(do, list):
        return list(do)
    return None


def check_workflows(pack_dir):
    """Orquesta workflows (entry points of orquesta actions), checked as orquesta's
    native v1 spec (orquesta/specs/native/v1/models.py) and st2's inspection
    (st2common/services/workflows.py inspect / inspect_task_contents) would:

    * only version/description/input/vars/output/tasks at the top; version 1.0;
    * tasks a non-empty mapping of ^\\w+$ names, none of them an engine command;
    * task keys delay/join/with/action/input/retry/next; next[] keys when/publish/do;
    * every next[].do target (string, comma-separated string or list) is a task or an
      engine command (continue, fail, noop, retry — orquesta/events.py ENGINE_EVENT_MAP);
    * some task has no inbound transition (a start task);
    * action refs (before inline params) exist: this pack's actions, actions of the packs
      st2 ships, or of packs in pack.yaml dependencies; their input has no unexpected and
      no missing required parameters (st2's validate_action_parameters);
    * a string mixing YAQL <% %> and Jinja {{ }} is rejected by orquesta;
    * ctx() references name an input, var, publish or st2 context key (a flow-insensitive
      version of orquesta's inspect_context);
    * the workflow's input names are exactly the action's non-runner parameters: st2 passes
      every declared parameter as input (orquesta ignores inputs it does not declare, and an
      input the action does not declare can never be set); and a workflow input default is
      dead when the action parameter has no default (st2 passes None for it).

    Stricter than st2: a YAML file in actions/workflows/ that no orquesta action uses.
    """
    pack = _Pack(pack_dir)
    problems = []
    used = set()
    for _name, meta in sorted(pack.actions.items()):
        if meta.get("runner_type") not in ("orquesta", "orchestra"):
            continue
        entry_point = meta.get("entry_point")
        if not entry_point or _entry_point_problem("actions", entry_point):
            continue
        target = os.path.join(pack.dir, "actions", entry_point)
        used.add(os.path.normpath(target))
        if not os.path.isfile(target):
            continue
        workflow = _read_meta(target)
        if not isinstance(workflow, dict):
            continue
        _check_workflow(pack, _rel(pack.dir, target), workflow, meta, problems)
    wf_dir = os.path.join(pack.dir, "actions", "workflows")
    if os.path.isdir(wf_dir):
        for fname in sorted(os.listdir(wf_dir)):
            path = os.path.normpath(os.path.join(wf_dir, fname))
            if fname.endswith((".yaml", ".yml")) and path not in used:
                problems.append(
                    "%s: no orquesta action uses this workflow as its entry_point"
                    % _rel(pack.dir, path)
                )
    return problems


def _check_workflow(pack, rel, wf, action_meta, problems):
    _check_keys(rel, wf, WORKFLOW_KEYS, problems, " at the top level")
    version = wf.get("version")
    if version not in ("1.0", 1.0):
        problems.append("%s: 'version: 1.0' is required (got %r)" % (rel, version))
    tasks = wf.get("tasks")
    if not isinstance(tasks, dict) or not tasks:
        problems.append("%s: 'tasks' must be a non-empty mapping" % rel)
        return
    defined = set(_ST2_CONTEXT_KEYS)
    inputs = _one_key_names(wf.get("input"), True) if "input" in wf else []
    if inputs is None:
        problems.append("%s: 'input' must be a list of names or one-key mappings" % rel)
        inputs = []
    defined.update(inputs)
    for key in ("vars", "output"):
        if key in wf:
            names = _one_key_names(wf[key], False)
            if names is None:
                problems.append("%s: %r must be a list of one-key mappings" % (rel, key))
            elif key == "vars":
                defined.update(names)
    inbound = set()
    for task_name, task in tasks.items():
        where = "%s: task %r" % (rel, task_name)
        if not isinstance(task_name, str) or not _PARAM_NAME.match(task_name):
            problems.append("%s: invalid task name (must match ^\\w+$)" % where)
        if task_name in ORQUESTA_ENGINE_COMMANDS:
            problems.append("%s: task name is reserved for an orquesta engine command" % where)
        if not isinstance(task, dict):
            problems.append("%s: must be a mapping (an empty task is written {})" % where)
            continue
        _check_keys(where, task, TASK_KEYS, problems)
        if "with" in task and not task.get("action"):
            problems.append("%s: a with-items task needs an action" % where)
        transitions = task.get("next") or []
        if not isinstance(transitions, list):
            problems.append("%s: 'next' must be a list" % where)
            transitions = []
        for index, transition in enumerate(transitions):
            twhere = "%s next[%d]" % (where, index)
            if not isinstance(transition, dict):
                problems.append("%s: must be a mapping" % twhere)
                continue
            _check_keys(twhere, transition, TRANSITION_KEYS, problems)
            publish = transition.get("publish")
            if isinstance(publish, list):
                names = _one_key_names(publish, False)
                if names is None:
                    problems.append("%s: publish must be a list of one-key mappings" % twhere)
                else:
                    defined.update(names)
            elif isinstance(publish, str):
                defined.update(re.findall(r"(\w+)=", publish))
            elif publish is not None:
                problems.append("%s: publish must be a list of one-key mappings" % twhere)
            targets = _split_do(transition.get("do")) if transition.get("do") else []
            if targets is None:
                problems.append("%s: 'do' must be a task name, a comma list or a list" % twhere)
                continue
            for target in targets:
                if isinstance(target, str) and target in ORQUESTA_ENGINE_COMMANDS:
                    continue
                if not isinstance(target, str) or target not in tasks:
                    problems.append(
                        "%s: do %r is neither a task of this workflow nor an engine command "
                        "(%s)" % (twhere, target, ", ".join(sorted(ORQUESTA_ENGINE_COMMANDS)))
                    )
                else:
                    inbound.add(target)
        _check_task_action(pack, where, task, problems)
    if not [t for t in tasks if t not in inbound]:
        problems.append("%s: no start task (every task is the target of a transition)" % rel)
    for text in _strings(wf):
        if ("<%" in text and "%>" in text) and ("{{" in text or "{%" in text):
            problems.append(
                "%s: %r mixes YAQL <%% %%> and Jinja {{ }} in one string (orquesta refuses it)"
                % (rel, text if len(text) < 80 else text[:77] + "...")
            )
    for ref in sorted(_ctx_refs(wf) - defined):
        problems.append(
            "%s: ctx(%s) is not an input, var or published variable of the workflow" % (rel, ref)
        )
    # Action parameters <-> workflow input.
    params = action_meta.get("parameters")
    params = params if isinstance(params, dict) else {}
    runner_params = _runner_params(action_meta.get("runner_type"))
    declared = set(n for n in params if n not in runner_params)
    action_rel = action_meta.get("name")
    for name in inputs:
        if name not in declared:
            problems.append(
                "%s: workflow input %r is not a parameter of action %s.%s, so it can never be "
                "set" % (rel, name, pack.ref, action_rel)
            )
    for name in sorted(declared - set(inputs)):
        problems.append(
            "%s: action %s.%s parameter %r is not a workflow input, so the workflow never "
            "sees it" % (rel, pack.ref, action_rel, name)
        )
    for item in wf.get("input") if isinstance(wf.get("input"), list) else []:
        if isinstance(item, dict) and len(item) == 1:
            name = list(item)[0]
            spec = params.get(name)
            if isinstance(spec, dict) and "default" not in spec:
                problems.append(
                    "%s: input %r has a default in the workflow but not in the action "
                    "metadata; st2 passes None for it, so the workflow default never applies"
                    % (rel, name)
                )


def _check_task_action(pack, where, task, problems):
    action = task.get("action")
    if action is None:
        return
    if not isinstance(action, str) or not action.strip():
        problems.append("%s: 'action' must be a non-empty string" % where)
        return
    if _is_expression(action.split(None, 1)[0]):
        return
    parts = action.strip().split(None, 1)
    ref = parts[0]
    inline = re.findall(r"(\w+)=", parts[1]) if len(parts) > 1 else []
    kind, detail = pack.resolve_action(ref)
    if kind == "missing":
        problems.append("%s: %s" % (where, detail))
        return
    specs = pack.action_parameter_specs(ref)
    if specs is None:
        return
    task_input = task.get("input")
    if isinstance(task_input, str):
        return  # an expression: cannot be checked statically
    supplied = set(inline)
    if isinstance(task_input, dict):
        supplied.update(task_input)
    elif task_input is not None:
        problems.append("%s: 'input' must be a mapping" % where)
        return
    for name in sorted(supplied - set(specs)):
        problems.append("%s: action %s has no parameter %r" % (where, ref, name))
    for name in _required_params(specs):
        if name not in supplied:
            problems.append("%s: action %s requires input %r" % (where, ref, name))


# --------------------------------------------------------------------------------------------
# 6. Trigger types
# --------------------------------------------------------------------------------------------


def check_trigger_schemas(pack_dir):
    """Trigger types declared under ``trigger_types:`` in sensors/*.yaml and in triggers/*.yaml
    (st2common/services/triggers.py + models/api/trigger.py TriggerTypeAPI): a mapping with a
    name, only TriggerTypeAPI keys, pack (if given) equal to the pack ref, names unique, and
    payload_schema / parameters_schema valid JSON schemas (draft 4 unless the schema names
    its own $schema; st2's draft-3 ``required: true`` is accepted). A payload_schema must
    describe an object, since sensors dispatch dicts."""
    pack = _Pack(pack_dir)
    problems = []
    for path, meta in _meta_files(pack.dir, "sensors"):
        items = meta.get("trigger_types", []) if isinstance(meta, dict) else []
        if not isinstance(items, list):
            problems.append("%s: trigger_types must be a list" % _rel(pack.dir, path))
            continue
        for index, item in enumerate(items):
            if not isinstance(item, dict):
                problems.append(
                    "%s: trigger_types[%d] must be a mapping" % (_rel(pack.dir, path), index)
                )
    seen = {}
    for path, definition in pack.iter_trigger_type_definitions():
        rel = _rel(pack.dir, path)
        name = definition.get("name")
        if not isinstance(name, str) or not name:
            problems.append("%s: a trigger type needs a 'name'" % rel)
            continue
        where = "%s: trigger type %r" % (rel, name)
        if name in seen:
            problems.append("%s: also declared in %s" % (where, seen[name]))
        seen.setdefault(name, rel)
        _check_api_keys(where, definition, "trigger type", TRIGGER_TYPE_KEYS, pack, problems)
        for key in ("payload_schema", "parameters_schema"):
            schema = definition.get(key)
            if schema in (None, {}):
                continue
            if not isinstance(schema, dict):
                problems.append("%s: %s must be a mapping" % (where, key))
                continue
            found = []
            _check_nested_types(schema, "schema", "%s: %s" % (where, key), found)
            if not found:
                found = [
                    "%s: %s is not a valid JSON schema: %s" % (where, key, error)
                    for error in _schema_errors(schema)
                ]
            problems.extend(found)
            if not found and key == "payload_schema" and schema.get("type", "object") != "object":
                problems.append(
                    "%s: payload_schema type must be 'object' (payloads are dicts)" % where
                )
    return problems


# --------------------------------------------------------------------------------------------
# 6. Sensors
# --------------------------------------------------------------------------------------------


def check_sensors(pack_dir):
    """sensors/*.yaml as st2 registers and runs them (st2common/bootstrap/sensorsregistrar.py,
    models/utils/sensor_type_utils.py, st2reactor/container/sensor_wrapper.py):
    class_name and entry_point required; entry_point normalized, relative, a .py file under
    sensors/; the class exists in it and derives (directly or through classes of the pack)
    from Sensor or PollingSensor imported from st2reactor.sensor.base; it implements the
    abstract methods st2 checks (setup, cleanup, add_trigger, update_trigger, remove_trigger,
    plus run for Sensor / poll for PollingSensor); poll_interval, when set, is >= 4
    (MINIMUM_POLL_INTERVAL); class names unique (the sensor's name is its class_name).

    Decision: a PollingSensor WITHOUT poll_interval in its metadata is reported as a problem
    (not a mere warning) — st2 then silently polls every 5 s (PollingSensor's default),
    which is never what a pack author meant to leave implicit."""
    pack = _Pack(pack_dir)
    problems = []
    for rel, meta in _resources(pack, "sensors", problems):
        class_name = meta.get("class_name")
        entry_point = meta.get("entry_point")
        poll_interval = meta.get("poll_interval")
        if poll_interval is not None and (
            isinstance(poll_interval, bool)
            or not isinstance(poll_interval, (int, float))
            or poll_interval < MINIMUM_POLL_INTERVAL
        ):
            problems.append(
                "%s: poll_interval must be a number >= %d seconds" % (rel, MINIMUM_POLL_INTERVAL)
            )
        if not entry_point:
            problems.append("%s: 'entry_point' is required" % rel)
            continue
        target = _entry_point_file(pack, "sensors", rel, entry_point, problems)
        pyfile = _python_file(pack, rel, target, problems) if target else None
        if pyfile is None or not isinstance(class_name, str) or not class_name:
            continue
        target_rel = _rel(pack.dir, target)
        # sensor_wrapper puts only the sensor file's directory on sys.path.
        finder = _ModuleFinder([os.path.dirname(target)])
        found = _find_class(pyfile, class_name, finder)
        if found is None:
            problems.append("%s: class %r is not defined in %s" % (rel, class_name, target_rel))
            continue
        lineage = _lineage(found[0], found[1], finder)
        kinds = lineage.st2_bases & set(["Sensor", "PollingSensor"])
        if not kinds:
            if lineage.unresolved:
                problems.append(
                    "%s: %s derives from %s, which is not Sensor/PollingSensor from "
                    "st2reactor.sensor.base" % (rel, class_name, ", ".join(lineage.unresolved))
                )
            else:
                problems.append(
                    "%s: %s does not derive from Sensor or PollingSensor (st2reactor.sensor.base)"
                    % (rel, class_name)
                )
            continue
        polling = "PollingSensor" in kinds
        required = list(SENSOR_ABSTRACT_METHODS) + (["poll"] if polling else ["run"])
        if not lineage.unresolved:
            missing = [m for m in required if m not in lineage.methods]
            if missing:
                problems.append(
                    "%s: %s does not implement %s (abstract in st2's base class)"
                    % (rel, class_name, ", ".join(missing))
                )
        if polling and poll_interval is None:
            problems.append(
                "%s: %s is a PollingSensor but the metadata sets no poll_interval (st2 would "
                "poll every 5 s)" % (rel, class_name)
            )
    return problems


# --------------------------------------------------------------------------------------------
# 4. Rules
# --------------------------------------------------------------------------------------------


def _trigger_parameters_schema(pack, trigger_ref):
    """(exists, parameters schema or None) for a trigger type ref."""
    if trigger_ref in SYSTEM_TRIGGER_TYPES:
        return True, SYSTEM_TRIGGER_TYPES[trigger_ref]
    if trigger_ref in SHIPPED_TRIGGER_TYPES:
        return True, SHIPPED_TRIGGER_TYPES[trigger_ref]
    pack_name, _, name = trigger_ref.partition(".")
    if pack_name == pack.ref:
        if name not in pack.trigger_types:
            return False, None
        schema = pack.trigger_types[name].get("parameters_schema")
        # An invalid schema is reported by check_trigger_schemas.
        valid = isinstance(schema, dict) and schema and not _schema_errors(schema)
        return True, schema if valid else None
    if pack_name in pack.dependencies:
        return True, None
    return False, None


def check_rules(pack_dir):
    """rules/*.yaml as st2 registers them (st2common/bootstrap/rulesregistrar.py,
    models/api/rule.py RuleAPI, validators/api/reactor.py): only RuleAPI keys; name, trigger.type
    and action.ref required; action has only ref/description/parameters; pack (if given)
    equals the pack ref; the trigger type exists (this pack's sensors/triggers as
    <ref>.<name>, st2's core.st2.* types from st2common/constants/triggers.py, shipped
    linux.file_watch.line, or a pack in pack.yaml dependencies); trigger.parameters validate
    against the trigger type's parameters_schema (st2 does so by default); every criterion has
    an operator from st2common/operators.py and a pattern; the action exists; the parameters
    it is given are declared by the action or its runner and its required ones are given
    (st2 validates this per execution and the execution fails otherwise).

    Stricter than st2: ``enabled`` must be set explicitly — RuleAPI's default is false, so a
    rule without it registers disabled and never fires."""
    pack = _Pack(pack_dir)
    problems = []
    for rel, meta in _resources(pack, "rules", problems):
        if "enabled" not in meta:
            problems.append(
                "%s: 'enabled' is not set; st2 registers rules disabled by default "
                "(models/api/rule.py), so it would never fire" % rel
            )
        trigger = meta.get("trigger")
        if not isinstance(trigger, dict) or not isinstance(trigger.get("type"), str):
            problems.append("%s: 'trigger.type' is required" % rel)
        else:
            ttype = trigger["type"]
            exists, schema = _trigger_parameters_schema(pack, ttype)
            if not exists:
                problems.append(
                    "%s: trigger type %r does not exist (not a trigger type of this pack, "
                    "not a StackStorm core trigger type)" % (rel, ttype)
                )
            params = trigger.get("parameters")
            if params is not None and not isinstance(params, dict):
                problems.append("%s: trigger.parameters must be a mapping" % rel)
            elif exists and schema:
                for error in _instance_errors(params or {}, schema):
                    problems.append("%s: trigger.parameters for %s: %s" % (rel, ttype, error))
            elif exists and ttype in SYSTEM_TRIGGER_TYPES and params:
                problems.append("%s: trigger %s takes no parameters" % (rel, ttype))
        criteria = meta.get("criteria")
        if criteria is not None and not isinstance(criteria, dict):
            problems.append("%s: criteria must be a mapping" % rel)
        for key, criterion in criteria.items() if isinstance(criteria, dict) else ():
            if not isinstance(criterion, dict):
                problems.append("%s: criteria %r must be a mapping" % (rel, key))
                continue
            operator = criterion.get("type")
            if operator is None:
                problems.append("%s: criteria %r has no operator ('type')" % (rel, key))
            elif not isinstance(operator, str) or operator not in CRITERIA_OPERATORS:
                problems.append(
                    "%s: criteria %r: operator %r is not supported by st2 (%s)"
                    % (rel, key, operator, ", ".join(sorted(CRITERIA_OPERATORS)))
                )
            if criterion.get("pattern") is None:
                problems.append(
                    "%s: criteria %r has no 'pattern' (st2 requires one, even for "
                    "exists/nexists)" % (rel, key)
                )
        action = meta.get("action")
        action = action if isinstance(action, dict) else {}
        _check_keys(rel + ": action", action, RULE_ACTION_KEYS, problems)
        ref = action.get("ref")
        specs = pack.referenced_action_specs(rel, ref, "action.ref", problems)
        params = action.get("parameters")
        if params is not None and not isinstance(params, dict):
            problems.append("%s: action.parameters must be a mapping" % rel)
        elif specs is not None:
            params = params or {}
            for pname in sorted(set(params) - set(specs)):
                problems.append(
                    "%s: passes parameter %r, which action %s does not declare" % (rel, pname, ref)
                )
            for pname in _required_params(specs):
                if pname not in params:
                    problems.append(
                        "%s: does not pass %r, which action %s requires" % (rel, pname, ref)
                    )
    return problems


# --------------------------------------------------------------------------------------------
# 5. Aliases
# --------------------------------------------------------------------------------------------

# st2common/models/utils/action_alias_utils.py: a placeholder is "{{" + \s*(\S+?)\s* +
# optional "= default" + "}}".
_PLACEHOLDER = re.compile(r"{{\s*(\S+?)\s*(?:=(.*?))?}}", re.DOTALL)
# Trailing "key=value" pairs are cut off the command BEFORE the format is matched
# (ActionAliasFormatParser.match_kv_pairs_at_end), so a format that ends with
# "name={{ name }}" can never match what a user types.
_TRAILING_KV_PLACEHOLDER = re.compile(r"(?:^|\s)\S+=\s*{{[^}]*}}\s*$")


def _alias_format_strings(fmt):
    """(display, representations) per st2common/util/actionalias_matching.py
    normalise_alias_format_string()."""
    if isinstance(fmt, str):
        return fmt, [fmt]
    if isinstance(fmt, dict):
        rep = fmt.get("representation") or []
        if isinstance(rep, str):
            rep = [rep]
        return fmt.get("display"), rep if isinstance(rep, list) else []
    return None, None


def _format_regex_problem(fmt):
    names = [m.group(1) for m in _PLACEHOLDER.finditer(fmt)]
    duplicates = sorted(set(n for n in names if names.count(n) > 1))
    if duplicates:
        return "uses placeholder(s) %s twice (st2 fails to compile it)" % ", ".join(duplicates)
    regex = _PLACEHOLDER.sub(lambda m: "(?P<%s>.+?)" % m.group(1), fmt)
    try:
        re.compile(regex, re.DOTALL)
    except re.error as exc:
        return "is not a valid pattern once placeholders are substituted: %s" % exc
    return None


def check_aliases(pack_dir):
    """aliases/*.yaml as st2 registers and matches them (st2common/bootstrap/aliasesregistrar.py,
    models/api/action.py ActionAliasAPI, models/db/actionalias.py get_format_strings,
    util/actionalias_matching.py, models/utils/action_alias_utils.py): only ActionAliasAPI
    keys; name, action_ref and formats required; formats are strings or mappings with
    display (string) and representation (list of strings); action_ref exists; every
    {{ param }} / {{ param=default }} in every display and representation, and every
    immutable_parameters key, is a parameter of the action (or its runner) — st2 rejects
    undeclared parameters when it creates the execution; a format compiles once its
    placeholders become groups (no placeholder twice); a format does not END with
    "key={{ key }}" (st2 strips trailing key=value pairs from the command before matching,
    so it would never match); and no two formats of the pack's aliases are identical
    (st2 refuses ambiguous commands)."""
    pack = _Pack(pack_dir)
    problems = []
    seen_formats = {}
    for rel, meta in _resources(pack, "aliases", problems):
        ref = meta.get("action_ref")
        specs = pack.referenced_action_specs(rel, ref, "action_ref", problems)
        formats = meta.get("formats")
        if not isinstance(formats, list) or not formats:
            problems.append("%s: 'formats' must be a non-empty list" % rel)
            formats = []
        for index, fmt in enumerate(formats):
            fwhere = "%s: formats[%d]" % (rel, index)
            display, reps = _alias_format_strings(fmt)
            if reps is None:
                problems.append("%s: must be a string or a mapping" % fwhere)
                continue
            if isinstance(fmt, dict):
                _check_keys(fwhere, fmt, ALIAS_FORMAT_KEYS, problems)
                if display is not None and not isinstance(display, str):
                    problems.append("%s: display must be a string" % fwhere)
                    display = None
                if not isinstance(fmt.get("representation", []), list):
                    problems.append("%s: representation must be a list of strings" % fwhere)
                if not reps:
                    problems.append(
                        "%s: has no representation, so no command can match it" % fwhere
                    )
            texts = ([display] if isinstance(display, str) else []) + list(reps)
            for text in texts:
                if not isinstance(text, str):
                    problems.append("%s: %r is not a string" % (fwhere, text))
                    continue
                if specs is not None:
                    for match in _PLACEHOLDER.finditer(text):
                        param = match.group(1)
                        if param not in specs:
                            problems.append(
                                "%s: %r uses {{ %s }}, which action %s does not declare"
                                % (fwhere, text, param, ref)
                            )
            for text in reps:
                if not isinstance(text, str):
                    continue
                why = _format_regex_problem(text)
                if why:
                    problems.append("%s: %r %s" % (fwhere, text, why))
                if _TRAILING_KV_PLACEHOLDER.search(text):
                    problems.append(
                        "%s: %r ends with key={{ ... }}; st2 strips trailing key=value pairs "
                        "from the command before matching, so it never matches (write "
                        "'{{ key }}' and let users add key=value)" % (fwhere, text)
                    )
                normalized = " ".join(text.split())
                if normalized in seen_formats and seen_formats[normalized] != rel:
                    problems.append(
                        "%s: %r is also a format of %s (ambiguous command)"
                        % (fwhere, text, seen_formats[normalized])
                    )
                seen_formats.setdefault(normalized, rel)
        immutable = meta.get("immutable_parameters")
        if immutable is not None:
            if not isinstance(immutable, dict):
                problems.append("%s: immutable_parameters must be a mapping" % rel)
            elif specs is not None:
                for pname in sorted(set(immutable) - set(specs)):
                    problems.append(
                        "%s: immutable_parameters %r is not a parameter of %s" % (rel, pname, ref)
                    )
        for key in ("ack", "result", "extra"):
            if key in meta and not isinstance(meta[key], dict):
                problems.append("%s: %r must be a mapping" % (rel, key))
    return problems


# --------------------------------------------------------------------------------------------
# 7. Policies
# --------------------------------------------------------------------------------------------


def check_policies(pack_dir):
    """policies/*.yaml as st2 registers them (st2common/bootstrap/policiesregistrar.py,
    models/api/policy.py PolicyAPI, policies/meta/*.yaml): only PolicyAPI keys; name,
    resource_ref and policy_type required; policy_type one of action.concurrency,
    action.concurrency.attr, action.retry; parameters valid for that type (no unknown ones,
    types, enums, ranges, required); resource_ref an existing action; for
    action.concurrency.attr, every attribute a declared parameter of the action (st2 keys
    the concurrency on execution parameters, st2actions/policies/concurrency_by_attr.py)."""
    pack = _Pack(pack_dir)
    problems = []
    for rel, meta in _resources(pack, "policies", problems):
        ref = meta.get("resource_ref")
        specs = pack.referenced_action_specs(rel, ref, "resource_ref", problems)
        ptype = meta.get("policy_type")
        if not isinstance(ptype, str) or ptype not in POLICY_TYPES:
            problems.append(
                "%s: policy_type %r is not one StackStorm 3.9 ships (%s)"
                % (rel, ptype, ", ".join(sorted(POLICY_TYPES)))
            )
            continue
        params = meta.get("parameters")
        if params is None:
            params = {}
        if not isinstance(params, dict):
            problems.append("%s: parameters must be a mapping" % rel)
            continue
        for error in _instance_errors(params, _parameters_schema(POLICY_TYPES[ptype])):
            problems.append("%s: parameters for %s: %s" % (rel, ptype, error))
        if ptype == "action.concurrency.attr" and specs is not None:
            attributes = params.get("attributes") or []
            if isinstance(attributes, list):
                for attribute in attributes:
                    if not isinstance(attribute, str) or attribute not in specs:
                        problems.append(
                            "%s: attribute %r is not a parameter of %s" % (rel, attribute, ref)
                        )
    return problems


# --------------------------------------------------------------------------------------------
# Everything
# --------------------------------------------------------------------------------------------

ALL_CHECKS = (
    check_pack_yaml,
    check_yaml_parses,
    check_config_schema,
    check_actions,
    check_workflows,
    check_trigger_schemas,
    check_sensors,
    check_rules,
    check_aliases,
    check_policies,
)


def check_pack(pack_dir):
    """Run every check; return all problems (an empty list means the pack is clean)."""
    problems = []
    for check in ALL_CHECKS:
        problems.extend(check(pack_dir))
    return problems


if __name__ == "__main__":  # pragma: no cover
    found = check_pack(sys.argv[1] if len(sys.argv) > 1 else ".")
    for line in found:
        print(line)
    sys.exit(1 if found else 0)
