"""A pack's rules as StackStorm 3.9's rules engine sees them: registration, matching, rendering.

``RuleEngine(loader).match("autoscale.alert", payload)`` returns a ``RuleMatch`` (rule ref,
action ref, the action parameters as st2 would request them) for every rule that fires. Written
from st2 v3.9.0, behaviour for behaviour (a smaller implementation, not a copy):

* Registration (``st2common/bootstrap/rulesregistrar.py``, ``models/api/rule.py`` RuleAPI,
  ``validators/api/reactor.py``): ``rules/*.yaml`` / ``*.yml``, sorted; the RuleAPI schema
  (``enabled`` defaults to false, so a rule without it never fires); ``pack`` if given must be
  the pack's ref; trigger parameters are validated against the trigger type's
  ``parameters_schema`` (``core.st2.webhook``: ``url`` required; the timers'; a pack trigger's);
  a parameterless rule on a trigger type that does not exist is refused (st2 finds no simple
  trigger for it); every criterion needs an operator st2 knows and a ``pattern``. A later file
  with the same rule name replaces the earlier one. A rule that fails raises
  ``RuleRegistrationError`` (``st2ctl reload --register-fail-on-failure``). Whether the action
  exists is not checked here: st2 checks it when the rule fires.
* Which rules see a trigger instance (``st2reactor/rules/engine.py``, ``matcher.py``,
  ``services/triggers.py``): st2 gives each distinct (trigger type, trigger parameters) its own
  trigger; a dispatch of a type ref with no parameters is the type's parameterless trigger. So
  a rule sees a trigger instance when its trigger type is the instance's and its trigger
  parameters equal the instance's (``trigger_params``; none and ``{}`` are the same). Enabled
  rules only; ``type: {ref: backstop}`` rules fire only when no standard rule did.
* Criteria (``st2reactor/rules/filter.py``, ``st2common/util/payload.py``,
  ``st2common/operators.py``): a rule with criteria never matches an empty payload. The key is a
  jsonpath_rw expression over ``{"trigger": payload}`` (``#suffix`` stripped, so one key can be
  tested twice); the first match is the value, no match is None. A string pattern is rendered
  with st2's Jinja environment first (``{{ x }}`` through ``to_complex`` and JSON-decoded, so a
  pattern ``"{{ trigger.limit }}"`` keeps its type; otherwise plain text). Every operator of
  operators.py with its exact semantics (``contains``: pattern in value; ``inside``: value in
  pattern; ``lessthan``: value < pattern, no casting; ``nequals`` is the only one that does not
  refuse a None pattern; ...). An exception anywhere (a bad key, a render error, comparing str
  with int) means no match, as in st2.
* Action parameters (``st2reactor/rules/enforcer.py``, ``st2common/util/param.py``
  ``render_live_params``, ``st2common/util/casts.py``): the rule's parameters, plus the action's
  (and runner's) defaults, form a dependency graph rendered in order with ``trigger`` (the
  payload), ``action_context``, ``config_context`` (the pack config) and ``st2kv`` in the
  context; an undefined name is an error. Rendered strings are then cast to the declared type
  of the parameter (the runner's declaration wins over the action's): ``integer`` ``int(s)``,
  ``number`` ``float(s)``, ``boolean`` ``literal_eval(s.capitalize())``, ``object``/``array``
  JSON or else a Python literal, ``string`` must be a string. A parameter the action does not
  declare is passed on uncast (the request then fails validation). Parameters not given by the
  rule are added only when their default is a Jinja expression. A failure here is the rule
  enforcement's failure (``RuleMatch.error``): st2 runs no action.

Left out: ``st2kv.user``, the ``decrypt_kv`` and ``version_*`` filters, the ``system.``
criteria keys, jsonpath's ``..``, ``where``, ``|``, ``&`` and named operators (they raise
``UnsupportedCriteria`` instead of silently not matching), the CronTimer's extra checks.
"""

from __future__ import annotations

import copy
import datetime
import fnmatch
import glob
import json
import os
import re
import uuid
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Optional, Tuple

import dateutil.parser
import dateutil.tz
import jsonschema
import yaml
from jinja2 import TemplateSyntaxError, meta

from . import schema as st2schema
from .aliases import jinja_environment
from .keyvalue import KeyValueLookup, is_jinja_expression
from .loader import PackLoader
from .workflows import CORE_ACTIONS, RUNNER_PARAMETERS, _cast

__all__ = ["OPERATORS", "Rule", "RuleCheck", "RuleEngine", "RuleMatch", "RuleRegistrationError",
           "SYSTEM_TRIGGER_TYPES", "UnsupportedCriteria", "jsonpath_find", "load_rules",
           "render_live_params"]


class RuleRegistrationError(Exception):
    """What st2-register-content reports for a rule it refuses."""


class UnsupportedCriteria(NotImplementedError):
    """A criteria key that uses jsonpath syntax this mirror does not implement."""


class ParamException(Exception):
    """st2common.exceptions.param.ParamException"""


# -- st2common/constants/triggers.py -------------------------------------------------------------

def _params_schema(properties: dict) -> dict:
    return {"type": "object", "properties": properties, "additionalProperties": False}


_CRON_FIELD = {"anyOf": [{"type": "string"}, {"type": "integer"}]}
_TIMER_PAYLOAD = {"type": "object", "properties": {
    "executed_at": {"type": "string", "format": "date-time",
                    "default": "2014-07-30 05:04:24.578325"},
    "schedule": {"type": "object", "default": {"delta": 30, "units": "seconds"}}}}
WEBHOOK_TRIGGER = "core.st2.webhook"
WEBHOOK_PAYLOAD_SCHEMA = {"type": "object", "properties": {
    "headers": {"type": "object"},
    "body": {"anyOf": [{"type": "array"}, {"type": "object"}]}}}

# Trigger types with a parameters schema (SYSTEM_TRIGGER_TYPES).
SYSTEM_TRIGGER_TYPES: Dict[str, dict] = {
    WEBHOOK_TRIGGER: {
        "parameters_schema": _params_schema({"url": {"type": "string", "required": True}}),
        "payload_schema": WEBHOOK_PAYLOAD_SCHEMA},
    "core.st2.IntervalTimer": {
        "parameters_schema": _params_schema({
            "timezone": {"type": "string"},
            "unit": {"enum": ["weeks", "days", "hours", "minutes", "seconds"], "required": True},
            "delta": {"type": "integer", "required": True}}),
        "payload_schema": _TIMER_PAYLOAD},
    "core.st2.DateTimer": {
        "parameters_schema": _params_schema({
            "timezone": {"type": "string"},
            "date": {"type": "string", "format": "date-time", "required": True}}),
        "payload_schema": _TIMER_PAYLOAD},
    "core.st2.CronTimer": {
        "parameters_schema": _params_schema(dict(
            {"timezone": {"type": "string"}, "year": _CRON_FIELD},
            **{name: dict(_CRON_FIELD, minimum=low, maximum=high) for name, low, high in [
                ("month", 1, 12), ("day", 1, 31), ("week", 1, 53), ("day_of_week", 0, 6),
                ("hour", 0, 23), ("minute", 0, 59), ("second", 0, 59)]})),
        "payload_schema": _TIMER_PAYLOAD},
}
# INTERNAL_TRIGGER_TYPES: parameterless, registered by st2 itself.
INTERNAL_TRIGGER_TYPES = frozenset([
    "core.st2.generic.actiontrigger", "core.st2.generic.notifytrigger",
    "core.st2.action.file_written", "core.st2.generic.inquiry", "core.st2.sensor.process_spawn",
    "core.st2.sensor.process_exit", "core.st2.key_value_pair.create",
    "core.st2.key_value_pair.update", "core.st2.key_value_pair.value_change",
    "core.st2.key_value_pair.delete",
])

# -- st2common/models/api/rule.py: RuleAPI.schema ------------------------------------------------

RULE_SCHEMA = {
    "type": "object",
    "properties": {
        "id": {"type": "string", "default": None},
        "ref": {"type": "string"},
        "uid": {"type": "string"},
        "name": {"type": "string", "required": True},
        "pack": {"type": "string", "default": "default"},
        "description": {"type": "string"},
        "type": {"type": "object", "properties": {
            "ref": {"type": "string", "required": True}, "parameters": {"type": "object"}},
            "additionalProperties": False},
        "trigger": {"type": "object", "required": True, "properties": {
            "type": {"type": "string", "required": True},
            "description": {"type": "string"},
            "parameters": {"type": "object", "default": {}},
            "ref": {"type": "string"}}, "additionalProperties": True},
        "criteria": {"type": "object", "default": {}},
        "action": {"type": "object", "required": True, "properties": {
            "ref": {"type": "string", "required": True},
            "description": {"type": "string"},
            "parameters": {"type": "object"}}, "additionalProperties": False},
        "enabled": {"type": "boolean", "default": False},
        "context": {"type": "object"},
        "tags": {"type": "array", "items": {"type": "object"}},
        "metadata_file": {"type": "string", "default": ""},
    },
    "additionalProperties": False,
}

BACKSTOP = "backstop"

# -- jsonpath_rw (1.4, the version st2 3.9 pins): the subset rules use ---------------------------

_JSONPATH_TOKEN = re.compile(r"""
    (?P<ws>[ \t\n]+)
  | (?P<ddot>\.\.)
  | (?P<lit>[*.\[\]()$,:|&])
  | (?P<id>[a-zA-Z_@][a-zA-Z0-9_@]*)
  | (?P<num>\d+)
  | '(?P<sq>(?:[^']|\\')*)'
  | "(?P<dq>(?:[^"]|\\")*)"
  | (?P<named>`(?:[^`]|\\`)*`)
""", re.VERBOSE)


class JsonPathError(ValueError):
    """A lexer or parser error of jsonpath_rw (in st2: no match)."""


def _jsonpath_tokens(text: str) -> List[Tuple[str, Any]]:
    tokens, pos = [], 0
    while pos < len(text):
        found = _JSONPATH_TOKEN.match(text, pos)
        if found is None:
            raise JsonPathError("Unexpected character: %s" % text[pos])
        pos = found.end()
        kind = found.lastgroup
        if kind == "ws":
            continue
        if kind in ("ddot", "named") or (kind == "lit" and found.group() in "()|&"):
            raise UnsupportedCriteria(
                "st2harness.rules does not implement jsonpath %r (in %r)" % (found.group(), text))
        if kind == "id" and found.group() == "where":
            raise UnsupportedCriteria("st2harness.rules does not implement jsonpath 'where'")
        value = found.group(kind)
        tokens.append(("id" if kind in ("sq", "dq") else kind,
                       int(value) if kind == "num" else value))
    return tokens


def _parse_jsonpath(text: str) -> List[Tuple[str, Any]]:
    """Steps: ("fields", names) / ("index", n) / ("slice", (start, end)) / ("root", None)."""
    tokens = _jsonpath_tokens(text)
    steps: List[Tuple[str, Any]] = []
    pos = 0

    def peek(offset=0):
        return tokens[pos + offset] if pos + offset < len(tokens) else (None, None)

    def fields():
        nonlocal pos
        names = []
        while True:
            kind, value = peek()
            if kind != "id":
                raise JsonPathError("Parse error near token %s" % (value,))
            names.append(value)
            pos += 1
            if peek() != ("lit", ","):
                return names
            pos += 1

    def bracket():
        nonlocal pos
        pos += 1  # "["
        kind, value = peek()
        if (kind, value) == ("lit", "*"):
            pos += 1
            step = ("slice", (None, None))
        elif kind == "id":
            step = ("fields", fields())
        else:
            start = None
            if kind == "num":
                start, pos = value, pos + 1
            if peek() == ("lit", ":"):
                pos += 1
                end = None
                if peek()[0] == "num":
                    end, pos = peek()[1], pos + 1
                step = ("slice", (start, end))
            elif start is not None:
                step = ("index", start)
            else:
                raise JsonPathError("Parse error near token %s" % (value,))
        if peek() != ("lit", "]"):
            raise JsonPathError("Parse error near token %s" % (peek()[1],))
        pos += 1
        steps.append(step)

    def term(first: bool):
        nonlocal pos
        kind, value = peek()
        if (kind, value) == ("lit", "$"):
            if not first:
                raise UnsupportedCriteria("st2harness.rules: '$' only at the start of a key")
            pos += 1
            steps.append(("root", None))
        elif (kind, value) == ("lit", "*"):
            pos += 1
            steps.append(("fields", ["*"]))
        elif kind == "id":
            steps.append(("fields", fields()))
        elif (kind, value) == ("lit", "["):
            pass  # "[0]", "a.[0]": brackets applied to the current value
        else:
            raise JsonPathError("Parse error near token %s" % (value,))
        while peek() == ("lit", "["):
            bracket()

    if not tokens:
        raise JsonPathError("Parse error at end of input")
    term(first=True)
    while pos < len(tokens):
        if peek() != ("lit", "."):
            raise JsonPathError("Parse error near token %s" % (peek()[1],))
        pos += 1
        term(first=False)
    return steps


def jsonpath_find(expression: str, data: Any) -> List[Any]:
    """``[match.value for match in jsonpath_rw.parse(expression).find(data)]``."""
    values = [data]
    for kind, arg in _parse_jsonpath(expression):
        found: List[Any] = []
        for value in values:
            if kind == "root":
                found = [data]
            elif kind == "fields":
                names = arg
                if "*" in names:
                    try:
                        names = tuple(value.keys())
                    except AttributeError:
                        names = ()
                for name in names:
                    try:
                        found.append(value[name])
                    except (TypeError, KeyError, AttributeError):
                        pass
            elif kind == "index":
                # Index.find: no match when falsy or too short; other errors propagate.
                if value and len(value) > arg:
                    found.append(value[arg])
            else:
                if isinstance(value, (dict, int, str)):
                    value = [value]
                start, end = arg
                found.extend(value[i] for i in range(len(value))[start:end])
        values = found
    return values


def _payload_value(key: str, context: Dict[str, Any]) -> Any:
    """filter.py: PayloadLookup.get_value, then the first match (None when nothing matched)."""
    matches = jsonpath_find(key, context)
    return matches[0] if matches else None


# -- st2common/operators.py ---------------------------------------------------------------------

def _strings(value, pattern):
    """ensure_operators_are_strings: bytes become text; nothing else is converted."""
    if isinstance(value, bytes):
        value = value.decode("utf-8")
    if isinstance(pattern, bytes):
        pattern = pattern.decode("utf-8")
    return value, pattern


def _needs_pattern(compare: Callable[[Any, Any], bool]) -> Callable[[Any, Any], bool]:
    def operator(value, pattern):
        if pattern is None:
            return False
        return compare(*_strings(value, pattern))
    return operator


def _timediff(compare: Callable[[float, float], bool]) -> Callable[..., bool]:
    def operator(value, pattern, now: Callable[[], datetime.datetime]):
        if pattern is None:
            return False
        when = dateutil.parser.parse(str(value))  # st2's date_utils.parse (ciso8601, dateutil)
        if when.tzinfo is None:
            when = when.replace(tzinfo=dateutil.tz.tzutc())
        return compare((now() - when).total_seconds(), float(pattern))
    return operator


_equals = _needs_pattern(lambda v, p: v == p)
_iequals = _needs_pattern(lambda v, p: v.lower() == p.lower())
_contains = _needs_pattern(lambda v, p: p in v)
_icontains = _needs_pattern(lambda v, p: p.lower() in v.lower())
_ncontains = _needs_pattern(lambda v, p: p not in v)
_incontains = _needs_pattern(lambda v, p: p.lower() not in v.lower())
_startswith = _needs_pattern(lambda v, p: v.startswith(p))
_istartswith = _needs_pattern(lambda v, p: v.lower().startswith(p.lower()))
_endswith = _needs_pattern(lambda v, p: v.endswith(p))
_iendswith = _needs_pattern(lambda v, p: v.lower().endswith(p.lower()))
_wildcard = _needs_pattern(lambda v, p: fnmatch.fnmatch(v, p))
_matchregex = _needs_pattern(lambda v, p: re.compile(p, re.DOTALL).match(v) is not None)
_regex = _needs_pattern(lambda v, p: re.compile(p).search(v) is not None)
_iregex = _needs_pattern(lambda v, p: re.compile(p, re.IGNORECASE).search(v) is not None)
_inside = _needs_pattern(lambda v, p: v in p)
_ninside = _needs_pattern(lambda v, p: v not in p)


def _nequals(value, pattern):
    """nequals: the one operator without a None-pattern guard."""
    value, pattern = _strings(value, pattern)
    return value != pattern


def _less(value, pattern):
    return False if pattern is None else value < pattern


def _greater(value, pattern):
    return False if pattern is None else value > pattern


OPERATORS: Dict[str, Callable[..., bool]] = {
    "matchwildcard": _wildcard,
    "matchregex": _matchregex,
    "regex": _regex,
    "iregex": _iregex,
    "eq": _equals, "equals": _equals,
    "neq": _nequals, "nequals": _nequals,
    "ieq": _iequals, "iequals": _iequals,
    "contains": _contains,
    "icontains": _icontains,
    "ncontains": _ncontains,
    "incontains": _incontains,
    "startswith": _startswith,
    "istartswith": _istartswith,
    "endswith": _endswith,
    "iendswith": _iendswith,
    "lt": _less, "lessthan": _less,
    "gt": _greater, "greaterthan": _greater,
    "td_lt": _timediff(lambda diff, period: diff < period),
    "timediff_lt": _timediff(lambda diff, period: diff < period),
    "td_gt": _timediff(lambda diff, period: diff > period),
    "timediff_gt": _timediff(lambda diff, period: diff > period),
    "exists": lambda v, p: v is not None,
    "nexists": lambda v, p: v is None,
    "inside": _inside, "in": _inside,
    "ninside": _ninside, "nin": _ninside,
    "search": lambda v, p: False,  # placeholder: RuleEngine evaluates search itself
}
TIMEDIFF = frozenset(["td_lt", "timediff_lt", "td_gt", "timediff_gt"])
SEARCH_CONDITIONS = ("any", "all", "all2any", "any2any")


# -- Jinja (st2common/util/jinja.py, util/templating.py, services/keyvalues.py) -----------------

MATCH_CRITERIA = re.compile(r"({{)\s*(.*)\s*(}})")  # st2common.constants.rules
_COMPLEX_PARAM = re.compile(r'"{{([A-z0-9_-]+)}}"')  # util/param.py _render


def _environment():
    env = jinja_environment(allow_undefined=False)

    def jsonpath_query(value, query):
        matches = jsonpath_find(query, value)
        return matches or None

    env.filters["jsonpath_query"] = jsonpath_query
    return env


_ENV = _environment()


def render_criteria_pattern(pattern: Any, context: Dict[str, Any]) -> Any:
    """filter.py _render_criteria_pattern."""
    if pattern is None or not isinstance(pattern, str):
        return pattern
    if MATCH_CRITERIA.search(pattern):
        complex_pattern = MATCH_CRITERIA.sub(r"\1\2 | to_complex\3", pattern)
        try:
            return json.loads(_ENV.from_string(complex_pattern).render(context))
        except ValueError:
            pass
    return _ENV.from_string(pattern).render(context)


# -- st2common/util/param.py: render_live_params -----------------------------------------------

def render_live_params(params: Dict[str, Any], action_parameters: Dict[str, dict],
                       runner_parameters: Dict[str, dict],
                       context: Dict[str, Any]) -> Dict[str, Any]:
    """The rule's action parameters rendered (dependency order) and cast, as st2 requests them.

    ``context`` holds the graph's fixed nodes (``trigger``, ``action_context``,
    ``config_context``, ``st2kv``). Raises ParamException for a missing or cyclic dependency or a
    render error, ValueError/SyntaxError from a cast."""
    nodes: Dict[str, Dict[str, Any]] = {name: {"value": value} for name, value in context.items()}
    edges: Dict[str, set] = {}  # node -> the nodes it depends on

    def process(name: str, value: Any) -> None:
        # networkx's add_node on an existing node updates its attributes; mirrored on purpose.
        attrs = nodes.setdefault(name, {})
        text = str(value) if isinstance(value, (list, dict)) else value
        if is_jinja_expression(text):
            try:
                dependencies = meta.find_undeclared_variables(_ENV.parse(text))
            except TemplateSyntaxError:
                attrs["value"] = value
                return
            attrs["template"] = value
            for dependency in dependencies:
                nodes.setdefault(dependency, {})
                edges.setdefault(name, set()).add(dependency)
        else:
            attrs["value"] = value

    for name, value in params.items():
        process(name, value)
    for schema in (action_parameters, runner_parameters):
        for name, spec in schema.items():
            spec = spec or {}
            if (name not in nodes or nodes[name].get("value") is None
                    or spec.get("immutable", False)):
                process(name, spec.get("default"))

    for name, attrs in nodes.items():
        if "value" not in attrs and "template" not in attrs:
            raise ParamException('Dependency unsatisfied in variable "%s"' % name)
    order = _topological(nodes, edges)

    rendered: Dict[str, Any] = {}
    for name in order:
        attrs = nodes[name]
        if "template" not in attrs:
            rendered[name] = attrs["value"]
            continue
        template, structured = attrs["template"], False
        if isinstance(template, (list, dict)):
            template = _COMPLEX_PARAM.sub(r"{{\1 | to_complex}}",
                                          json.dumps(template, separators=(",", ":"),
                                                     ensure_ascii=False))
            structured = True
        try:
            result = _ENV.from_string(str(template)).render(rendered)
            rendered[name] = json.loads(result) if structured else result
        except Exception as exc:
            raise ParamException('Failed to render parameter "%s": %s' % (name, exc)) from exc

    # _cast_params_from: the given parameters, then defaults that are Jinja expressions.
    schemas = (action_parameters, runner_parameters)
    live: Dict[str, Any] = {}
    for name in params:
        spec: dict = {}
        for schema in schemas:
            if name in schema:
                spec = schema[name] or {}
        live[name] = _cast(rendered[name], spec)
    for schema in schemas:
        for name, spec in schema.items():
            spec = spec or {}
            if spec.get("immutable") or "default" not in spec:
                continue
            if spec.get("default") == rendered[name] or not is_jinja_expression(spec["default"]):
                continue
            if name in params:
                continue
            live[name] = _cast(rendered[name], spec)
    return live


def _topological(nodes: Dict[str, dict], edges: Dict[str, set]) -> List[str]:
    """Dependencies first; a cycle raises st2's ParamException."""
    order: List[str] = []
    state: Dict[str, int] = {}  # 1: visiting, 2: done
    cyclic: set = set()

    def visit(name: str, path: List[str]) -> None:
        if state.get(name) == 2:
            return
        if state.get(name) == 1:
            cyclic.update(path[path.index(name):])
            return
        state[name] = 1
        for dependency in sorted(edges.get(name, ())):
            visit(dependency, path + [name])
        state[name] = 2
        order.append(name)

    for name in nodes:
        visit(name, [])
    if cyclic:
        raise ParamException(
            "Cyclic dependency found in the following variables: %s. Likely the variable is "
            "referencing itself" % ", ".join(sorted(cyclic)))
    return order


# -- rules ---------------------------------------------------------------------------------------

@dataclass
class Rule:
    ref: str
    name: str
    pack: str
    enabled: bool
    trigger_type: str
    trigger_parameters: Dict[str, Any]
    criteria: Dict[str, dict]
    action_ref: str
    action_parameters: Dict[str, Any]
    type: str = "standard"
    metadata_file: str = ""
    id: str = field(default_factory=lambda: uuid.uuid4().hex[:24])


@dataclass
class RuleMatch:
    """A rule that fired, and the action execution st2 would request for it."""

    rule: str  # <pack>.<name>
    action: str  # the action's ref
    parameters: Dict[str, Any]  # rendered and cast (render_live_params); {} when error is set
    error: Optional[str] = None  # the rule enforcement failed: st2 runs no action
    trigger: str = ""
    payload: Any = None
    trigger_params: Optional[Dict[str, Any]] = None


@dataclass
class RuleCheck:
    """Why a rule did or did not match (for tests: ``RuleEngine.explain``)."""

    rule: str
    matched: bool
    reason: str = ""


def _read_yaml(path: str) -> Any:
    with open(path, encoding="utf-8") as handle:
        return yaml.safe_load(handle)


def _rule_files(pack_dir: str) -> List[str]:
    folder = os.path.join(pack_dir, "rules")
    files: List[str] = []
    for ext in (".yaml", ".yml"):
        files.extend(glob.glob(os.path.join(folder, "*" + ext)))
    return sorted(files)


def load_rules(pack_dir: str, pack: Optional[str] = None,
               trigger_types: Optional[Dict[str, dict]] = None) -> List[Rule]:
    """Every rule of the pack as st2 registers it, disabled ones included (``Rule.enabled``).

    ``trigger_types``: the pack's trigger types by ref (``PackLoader.trigger_types()``)."""
    if pack is None:
        pack = _read_yaml(os.path.join(pack_dir, "pack.yaml"))["ref"]
    trigger_types = trigger_types or {}
    rules: Dict[str, Rule] = {}
    for path in _rule_files(pack_dir):
        rel = os.path.relpath(path, pack_dir)
        try:
            rule = _register(_read_yaml(path), pack, rel, trigger_types)
        except (RuleRegistrationError, jsonschema.ValidationError, jsonschema.SchemaError,
                yaml.YAMLError, ValueError, TypeError, AttributeError) as exc:
            reason = getattr(exc, "message", None) or str(exc)
            raise RuleRegistrationError('Failed to register rule "%s" from pack "%s": %s'
                                        % (path, pack, reason)) from exc
        rules.pop(rule.ref, None)
        rules[rule.ref] = rule
    return list(rules.values())


def _register(content: Any, pack: str, rel: str, trigger_types: Dict[str, dict]) -> Rule:
    if not isinstance(content, dict):
        raise RuleRegistrationError("not a mapping")
    content = dict(content)
    if not content.get("pack"):
        content["pack"] = pack
    if content["pack"] != pack:
        raise RuleRegistrationError('Model is in pack "%s" but field "pack" is different: %s'
                                    % (pack, content["pack"]))
    content["metadata_file"] = rel
    content = st2schema.validate(content, RULE_SCHEMA)

    trigger = content["trigger"]
    trigger_type, parameters = trigger["type"], trigger.get("parameters") or {}
    known = trigger_type in SYSTEM_TRIGGER_TYPES or trigger_type in INTERNAL_TRIGGER_TYPES \
        or trigger_type in trigger_types
    if trigger_type in SYSTEM_TRIGGER_TYPES:
        st2schema.validate(parameters, SYSTEM_TRIGGER_TYPES[trigger_type]["parameters_schema"])
    elif (trigger_types.get(trigger_type) or {}).get("parameters_schema"):
        st2schema.validate(parameters, trigger_types[trigger_type]["parameters_schema"])
    if not parameters and not known:
        raise RuleRegistrationError(
            "A simple trigger should have been created when registering triggertype. Cannot "
            "create trigger: %s." % {"type": trigger_type, "parameters": parameters})

    criteria = content.get("criteria") or {}
    for key, value in criteria.items():
        operator = value.get("type", None)
        if operator is None:
            raise RuleRegistrationError("Operator not specified for field: " + key)
        if operator not in OPERATORS:
            raise RuleRegistrationError(
                "For field: %s, operator %s not in list of allowed operators: %s"
                % (key, operator, str(list(OPERATORS))))
        if value.get("pattern", None) is None:
            raise RuleRegistrationError("For field: %s, no pattern specified for operator %s"
                                        % (key, operator))

    action = content["action"]
    return Rule(
        ref="%s.%s" % (content["pack"], content["name"]), name=content["name"],
        pack=content["pack"], enabled=bool(content.get("enabled")), trigger_type=trigger_type,
        trigger_parameters=copy.deepcopy(parameters), criteria=copy.deepcopy(criteria),
        action_ref=action["ref"], action_parameters=copy.deepcopy(action.get("parameters") or {}),
        type=(content.get("type") or {}).get("ref", "standard"), metadata_file=rel)


class RuleEngine:
    """st2's rules engine for one pack's rules (see the module docstring)."""

    def __init__(self, loader: PackLoader,
                 now: Optional[Callable[[], datetime.datetime]] = None, user: str = "stanley"):
        self.loader = loader
        self.now = now or (lambda: datetime.datetime.now(datetime.timezone.utc))
        self.user = user
        self.all_rules: List[Rule] = load_rules(loader.pack_dir, loader.pack,
                                                loader.trigger_types())
        self.rules: List[Rule] = [rule for rule in self.all_rules if rule.enabled]
        self._actions: Optional[Dict[str, dict]] = None

    @classmethod
    def from_pack(cls, pack_dir: str, **kwargs: Any) -> RuleEngine:
        return cls(PackLoader(pack_dir), **kwargs)

    def rule(self, ref: str) -> Rule:
        for rule in self.all_rules:
            if rule.ref == ref:
                return rule
        raise LookupError("pack %s has no rule %r" % (self.loader.pack, ref))

    # -- matching ----------------------------------------------------------------------------

    def candidates(self, trigger_ref: str,
                   trigger_params: Optional[Dict[str, Any]] = None) -> List[Rule]:
        """The enabled rules of the trigger st2 resolves (trigger_ref, trigger_params) to."""
        params = trigger_params or {}
        return [rule for rule in self.rules
                if rule.trigger_type == trigger_ref and rule.trigger_parameters == params]

    def explain(self, trigger_ref: str, payload: Any,
                trigger_params: Optional[Dict[str, Any]] = None) -> List[RuleCheck]:
        """Every candidate rule, matched or not, with the criterion that failed."""
        checks = []
        for rule in self.candidates(trigger_ref, trigger_params):
            matched, reason = self.filter(rule, payload)
            checks.append(RuleCheck(rule.ref, matched, reason))
        return checks

    def match(self, trigger_ref: str, payload: Any,
              trigger_params: Optional[Dict[str, Any]] = None) -> List[RuleMatch]:
        """RulesMatcher.get_matching_rules, then each rule's parameters as RuleEnforcer
        renders them."""
        payload = copy.deepcopy(payload)
        candidates = self.candidates(trigger_ref, trigger_params)
        matched = [rule for rule in candidates
                   if rule.type != BACKSTOP and self.filter(rule, payload)[0]]
        if not matched:
            matched = [rule for rule in candidates
                       if rule.type == BACKSTOP and self.filter(rule, payload)[0]]
        return [self.enforce(rule, trigger_ref, payload, trigger_params) for rule in matched]

    def filter(self, rule: Rule, payload: Any) -> Tuple[bool, str]:
        """RuleFilter.filter: (matched, why not)."""
        if not rule.enabled:
            return False, "rule is disabled"
        if rule.criteria and not payload:
            return False, "rule has criteria and the payload is empty"
        context = {"trigger": payload}
        for key, criterion in rule.criteria.items():
            ok, reason = self._check(key, criterion, context)
            if not ok:
                return False, reason
        return True, ""

    def _check(self, key: str, criterion: dict, context: Dict[str, Any]) -> Tuple[bool, str]:
        """RuleFilter._check_criterion: (result, explanation)."""
        operator = criterion.get("type")
        if operator is None:
            return False, "%s: no operator" % key
        pattern = criterion.get("pattern")
        try:
            pattern = render_criteria_pattern(pattern, self._pattern_context(context))
        except Exception as exc:
            return False, 'Failed to render pattern value "%s" for key "%s": %s' % (
                criterion.get("pattern"), key, exc)
        try:
            value = _payload_value(key.split("#", 1)[0], context)
        except UnsupportedCriteria:
            raise
        except Exception as exc:
            return False, "Failed transforming criteria key %s: %s" % (key, exc)
        try:
            if operator == "search":
                result = self._search(value, pattern, criterion.get("condition"))
            elif operator in TIMEDIFF:
                result = OPERATORS[operator](value, pattern, self.now)
            else:
                result = OPERATORS[operator.lower()](value, pattern)
        except UnsupportedCriteria:
            raise
        except Exception as exc:
            return False, "%s: %s %r against %r raised %s: %s" % (
                key, operator, value, pattern, type(exc).__name__, exc)
        if not result:
            return False, "%s: %r does not satisfy %s %r" % (key, value, operator, pattern)
        return True, ""

    def _pattern_context(self, context: Dict[str, Any]) -> Dict[str, Any]:
        lookup = KeyValueLookup(self.loader.datastore)
        scope = dict(context)
        scope["system"] = lookup
        scope["st2kv"] = {"system": lookup}
        return scope

    def _search(self, value: Any, pattern: dict, condition: Optional[str]) -> bool:
        """operators.search: each item of the payload list against the child criteria, which
        see the item as ``item``."""
        if isinstance(value, dict):
            value = [value]
        if condition not in SEARCH_CONDITIONS:
            raise ValueError("The '%s' condition is not recognized for type search, 'any', "
                             "'all', 'any2any' and 'all2any' are allowed" % condition)
        items_match = any if condition in ("any", "any2any") else all
        patterns_match = any if condition in ("all2any", "any2any") else all
        return items_match([
            patterns_match([self._check(key, child, {"item": item})[0]
                            for key, child in pattern.items()])
            for item in value])

    # -- enforcing: the action parameters ----------------------------------------------------

    def action_metadata(self, ref: str) -> Optional[dict]:
        """The action's metadata, as registered: the pack's own and core.noop/echo/local."""
        if ref in CORE_ACTIONS:
            return CORE_ACTIONS[ref]
        if self._actions is None:
            self._actions = self.loader.action_metadata()
        pack, _, name = ref.partition(".")
        return self._actions.get(name) if pack == self.loader.pack else None

    def enforce(self, rule: Rule, trigger_ref: str, payload: Any,
                trigger_params: Optional[Dict[str, Any]] = None) -> RuleMatch:
        """RuleEnforcer up to the request: the action exists, its parameters render."""
        found = RuleMatch(rule.ref, rule.action_ref, {}, None, trigger_ref, payload,
                          trigger_params)
        meta_ = self.action_metadata(rule.action_ref)
        if meta_ is None:
            found.error = 'Action "%s" doesn\'t exist' % rule.action_ref
            return found
        pack = rule.action_ref.split(".")[0]
        context = {
            "trigger": payload,
            "action_context": {
                "trigger_instance": {"id": uuid.uuid4().hex[:24], "name": None},
                "rule": {"id": rule.id, "name": rule.name},
                "user": self.user,
                "pack": pack,
            },
            "config_context": self.loader.runtime_config() if pack == self.loader.pack else {},
            "st2kv": {"system": KeyValueLookup(self.loader.datastore)},
        }
        try:
            found.parameters = render_live_params(
                rule.action_parameters, meta_.get("parameters") or {},
                RUNNER_PARAMETERS.get(meta_.get("runner_type"), {}), context)
        except Exception as exc:  # ParamException, or a cast's ValueError / SyntaxError
            found.error = str(exc)
        return found
