"""ChatOps as StackStorm 3.9 does it: which alias a chat command hits, the parameters it yields,
and what the bot posts back (the ``ack`` and ``result`` messages).

Written from st2 3.9's source, behaviour for behaviour (file references are to that tag):

* ``st2common/models/utils/action_alias_utils.py`` (``ActionAliasFormatParser``): the trailing
  ``key=value`` pairs are cut off the command *before* the rest is matched against a format.
  A format is itself a regular expression in which ``{{ p }}`` and ``{{ p = default }}`` become
  named groups; it is anchored with ``^\\s*`` / ``\\s*$`` unless it already holds an anchor, and
  searched (case-sensitively) in the command padded with one space each side. Every value is a
  string; a default applies when its placeholder captured nothing; the trailing pairs win over
  both. ``inject_immutable_parameters`` renders the alias's ``immutable_parameters`` with Jinja
  and refuses a command that sets one of them.
* ``st2common/util/actionalias_matching.py`` (``get_matching_alias``): every format (every
  ``representation`` of a dict format) of every enabled alias is tried; more than one hit is an
  error, none is an error; aliases with ``match_multiple`` formats are only tried when nothing
  else matched.
* ``st2api/controllers/v1/aliasexecution.py``: the parameters are cast to the action's parameter
  types only when the execution is scheduled (``action_param_utils.cast_params``, with arrays
  split on commas), then validated against the action's schema; the ``ack.format`` is rendered
  with ``execution`` and ``actionalias`` in the context, undefined names being an error.
* ``contrib/chatops/actions/format_execution_result.py``: the ``result.format`` is rendered when
  the execution ends with ``execution`` (a plain dict), ``alias`` and ``six`` in the context,
  undefined names rendering as nothing; ``result.extra`` with undefined names being an error.
  Without a ``result.format`` st2 posts its default template (a key : value dump of the result).
* The bot: hubot-stackstorm strips its name or alias (the ``!``) through ``robot.respond``, turns
  Slack's curly quotes and non-breaking spaces into plain ones, picks the *first* format whose
  own (case-insensitive) regex matches and POSTs it to ``/aliasexecution``; that endpoint never
  checks for ambiguity. It appends `` (details available at <url>)`` to the ack unless
  ``ack.append_url`` is false, and posts nothing when ``ack.enabled`` is false; without an
  ``ack.format`` it posts one of its canned "execution ID" lines. err-stackstorm strips its
  prefix, asks ``/actionalias/match`` (ambiguity and no-match errors reach the user as
  "st2 command ... not found") and then ``/aliasexecution/match_and_execute``; it appends the
  URL only when ``append_url`` is true, and posts no ack when the alias JSON has no ``ack`` (an
  alias without one: modelled so here, not checked against the API's serialisation).

Not mirrored: RBAC, the datastore's encryption, the ``decrypt_kv``, ``jsonpath_query`` and
``version_*`` Jinja filters, and the text of st2's default result template.
"""

from __future__ import annotations

import copy
import datetime
import json
import os
import re
from typing import Any, Dict, List, Mapping, NamedTuple, Optional, Tuple, Union

import yaml

from . import schema as st2schema
from .casts import CASTS, NONE_MAGIC_VALUE

try:  # Python 3.11+: sre_parse is deprecated (st2 still imports it; same parser)
    from re import _constants as _sre_constants
    from re import _parser as _sre_parser
except ImportError:  # pragma: no cover - Python < 3.11
    import sre_constants as _sre_constants  # type: ignore[no-redef]
    import sre_parse as _sre_parser  # type: ignore[no-redef]

__all__ = [
    "Ack",
    "ActionAlias",
    "ActionAliasAmbiguityException",
    "ParseException",
    "ResultMessage",
    "cast_params",
    "extract_parameters",
    "get_matching_alias",
    "hubot_match",
    "hubot_regex",
    "inject_immutable_parameters",
    "jinja_environment",
    "list_format_strings",
    "load_aliases",
    "make_execution",
    "match_command",
    "match_command_to_alias",
    "normalise_command",
    "render_ack",
    "render_result",
    "render_values",
]


class ParseException(ValueError):
    """st2common.exceptions.content.ParseException: the command does not fit the format."""


class ActionAliasAmbiguityException(ValueError):
    """st2common.exceptions.actionalias.ActionAliasAmbiguityException: no or several matches."""

    def __init__(self, msg: str, command: str, matches: List[dict]):
        super().__init__(msg)
        self.command = command
        self.matches = matches


# -- the alias ------------------------------------------------------------------------------

# ActionAliasAPI.schema (st2common/models/api/action.py): what registration accepts.
ALIAS_SCHEMA = {
    "type": "object",
    "properties": {
        "id": {"type": "string"},
        "ref": {"type": "string"},
        "uid": {"type": "string"},
        "name": {"type": "string", "required": True},
        "pack": {"type": "string", "required": True},
        "description": {"type": "string", "default": None},
        "enabled": {"type": "boolean", "default": True},
        "action_ref": {"type": "string", "required": True},
        "formats": {
            "type": "array",
            "items": {"anyOf": [
                {"type": "string"},
                {"type": "object", "properties": {
                    "display": {"type": "string"},
                    "representation": {"type": "array", "items": {"type": "string"}},
                }},
            ]},
        },
        "ack": {"type": "object", "properties": {
            "enabled": {"type": "boolean"},
            "format": {"type": "string"},
            "extra": {"type": "object"},
            "append_url": {"type": "boolean"},
        }},
        "result": {"type": "object", "properties": {
            "enabled": {"type": "boolean"},
            "format": {"type": "string"},
            "extra": {"type": "object"},
        }},
        "extra": {"type": "object"},
        "immutable_parameters": {"type": "object"},
        "metadata_file": {"type": "string", "default": ""},
    },
    "additionalProperties": False,
}

_ALIAS_FIELDS = ("id", "ref", "uid", "name", "pack", "description", "enabled", "action_ref",
                 "formats", "ack", "result", "extra", "immutable_parameters", "metadata_file")


class ActionAlias:
    """An action alias as st2 stores it (ActionAliasDB / ActionAliasAPI)."""

    def __init__(self, name: str, action_ref: str, formats: Optional[list] = None,
                 pack: str = "autoscale", enabled: bool = True, description: Optional[str] = None,
                 ack: Optional[dict] = None, result: Optional[dict] = None,
                 extra: Optional[dict] = None, immutable_parameters: Optional[dict] = None,
                 metadata_file: str = "", **ignored: Any):
        self.name = name
        self.pack = pack
        self.ref = "%s.%s" % (pack, name)
        self.uid = "action:%s:%s" % (pack, name)
        self.id = "alias-%s" % self.ref  # stands in for the database id
        self.action_ref = action_ref
        self.formats = list(formats or [])
        self.enabled = enabled
        self.description = description
        self.ack = dict(ack or {})
        self.result = dict(result or {})
        self.extra = dict(extra or {})
        self.immutable_parameters = dict(immutable_parameters or {})
        self.metadata_file = metadata_file

    @classmethod
    def from_dict(cls, content: Mapping[str, Any]) -> ActionAlias:
        return cls(**dict(content))

    def to_dict(self) -> Dict[str, Any]:
        """ActionAliasAPI's JSON: what the API and the bots see."""
        return {name: copy.deepcopy(getattr(self, name)) for name in _ALIAS_FIELDS}

    def get_format_strings(self) -> list:
        """ActionAliasDB.get_format_strings: what a POST /aliasexecution may name as format.
        A dict format without ``representation`` is listed as the dict itself."""
        found: list = []
        for format_ in self.formats:
            if isinstance(format_, dict) and format_.get("representation"):
                found.extend(format_["representation"])
            else:
                found.append(format_)
        return found

    def __repr__(self) -> str:
        return "<ActionAlias %s -> %s>" % (self.ref, self.action_ref)


def load_aliases(pack_dir: str) -> List[ActionAlias]:
    """The pack's ``aliases/*.yaml|*.yml`` as ``st2ctl reload --register-aliases`` registers
    them: files in sorted order, ``pack`` filled in (or checked), each validated against
    ActionAliasAPI's schema (``jsonschema.ValidationError`` otherwise; unknown keys included).
    Two files with the same alias name would silently overwrite each other in st2; here that
    is a ValueError."""
    with open(os.path.join(pack_dir, "pack.yaml"), encoding="utf-8") as handle:
        pack_meta = yaml.safe_load(handle) or {}
    pack = pack_meta.get("ref") or pack_meta.get("name")
    folder = os.path.join(pack_dir, "aliases")
    names = sorted(n for n in os.listdir(folder) if n.endswith((".yaml", ".yml"))) \
        if os.path.isdir(folder) else []
    aliases: List[ActionAlias] = []
    seen: Dict[str, str] = {}
    for file_name in names:
        with open(os.path.join(folder, file_name), encoding="utf-8") as handle:
            content = yaml.safe_load(handle)
        if not isinstance(content, dict):
            raise ValueError("aliases/%s does not hold a mapping" % file_name)
        if not content.get("pack"):
            content["pack"] = pack
        elif content["pack"] != pack:
            raise ValueError('Model is in pack "%s" but field "pack" is different: %s'
                             % (pack, content["pack"]))
        content["metadata_file"] = "aliases/%s" % file_name
        content = st2schema.validate(content, ALIAS_SCHEMA)
        if content["name"] in seen:
            raise ValueError("aliases/%s and %s both define alias %r; st2 keeps only the last"
                             % (file_name, seen[content["name"]], content["name"]))
        seen[content["name"]] = "aliases/%s" % file_name
        aliases.append(ActionAlias.from_dict(content))
    return aliases


# -- ActionAliasFormatParser --------------------------------------------------------------------

# A key is a run of non-blanks; a value is "..." or '...' or {...} or one word.
_KEY = r"\s*(\S+?)\s*"
_VALUE = r'""|\'\'|"(.+?)"|\'(.+?)\'|({.+?})|(\S+)'
_LOOSE_VALUE = r'""|\'\'|"(.+?)"|\'(.+?)\'|({.+?})|(.+?)'  # a default: may hold blanks
_PAIR = r"(?:^|\s+)" + _KEY + "=(" + _VALUE + ")"
_TRAILING_PAIRS = r".*?((" + _PAIR + r"\s*)*)$"
_OPTIONAL = "{{" + _KEY + r"\s*=\s*(?:" + _LOOSE_VALUE + r")\s*" + "}}"
_REQUIRED = "{{" + _KEY + "}}"
# What a placeholder becomes: the value, optionally quoted; a quoted value may hold blanks.
_CAPTURE = r'["\']?(?P<%s>(?:(?<=\').+?(?=\')|(?<=").+?(?=")|{.+?}|.+?))["\']?'

_AT = _sre_constants.AT
_BEGINNINGS = ((_AT, _sre_constants.AT_BEGINNING), (_AT, _sre_constants.AT_BEGINNING_STRING))
_ENDS = ((_AT, _sre_constants.AT_END), (_AT, _sre_constants.AT_END_STRING))


def _has_anchor(anchors: tuple, tokens: Any, backwards: bool = False) -> bool:
    """st2's search_regex_tokens: looks into groups, and into the *second* alternative of a
    branch only; a repeat or lookaround is not looked into."""
    for kind, value in (reversed(tokens) if backwards else tokens):
        if kind is _sre_constants.SUBPATTERN:
            if _has_anchor(anchors, value[3]):
                return True
        elif kind is _sre_constants.BRANCH:
            if _has_anchor(anchors, value[1][1]):
                return True
        elif (kind, value) in anchors:
            return True
    return False


def _format_regex(format_str: str) -> re.Pattern:
    """The format string as the regex st2 searches the command with. A placeholder name that
    is not a Python identifier, or used twice, raises re.error (st2 fails the same way, and
    since only ParseException is caught while matching, every command then fails)."""
    def optional(match: re.Match) -> str:
        return "(?:" + match.group(1) + _CAPTURE % match.group(2) + ")?"

    def required(match: re.Match) -> str:
        return match.group(1) + _CAPTURE % match.group(2)

    pattern = re.sub(r"(\s*)" + _OPTIONAL, optional, format_str)
    pattern = re.sub(r"(\s*)" + _REQUIRED, required, pattern)
    tokens = _sre_parser.parse(pattern, re.DOTALL)
    if not _has_anchor(_BEGINNINGS, tokens):
        pattern = r"^\s*" + pattern
    if not _has_anchor(_ENDS, tokens, backwards=True):
        pattern = pattern + r"\s*$"
    return re.compile(pattern, re.DOTALL)


def _split_trailing_pairs(command: str) -> Tuple[List[Tuple[str, str]], str]:
    """The ``key=value`` pairs at the end of the command, and the command without them
    (padded with a blank each side). As in st2, the pairs' text is removed wherever else it
    occurs in the command too."""
    tail = re.match(_TRAILING_PAIRS, command, re.DOTALL)
    pairs: List[Tuple[str, str]] = []
    if tail and tail.group(1):
        for found in re.findall(_PAIR, tail.group(1), re.DOTALL):
            pairs.append((found[0], "".join(found[2:])))
        command = command.replace(tail.group(1), "")
    return pairs, " %s " % command


def extract_parameters(format_str: Optional[str], param_stream: Optional[str],
                       match_multiple: bool = False) -> Union[Dict[str, Any], List[dict]]:
    """st2's extract_parameters: the parameters ``param_stream`` yields under ``format_str``
    (all strings; None for a regex group that took no part). Raises ParseException when the
    command does not fit. With ``match_multiple`` every non-overlapping fit, as a list."""
    format_str = format_str or ""
    original = param_stream or ""
    pairs, stream = _split_trailing_pairs(original)
    defaults = [(found[0], "".join(found[1:]))
                for found in re.findall(_OPTIONAL, format_str, re.DOTALL)]
    regex = _format_regex(format_str)

    def params_of(match: Optional[re.Match]) -> Dict[str, Any]:
        if not match:
            raise ParseException('Command "%s" doesn\'t match format string "%s"'
                                 % (original, format_str))
        params = match.groupdict()
        for name, default in defaults:
            params[name] = params[name] or default
        for name, value in pairs:
            params[name] = value
        if format_str and not (stream.strip() or any(params.values())):
            raise ParseException("No value supplied and no default value found.")
        return params

    if match_multiple:
        return [params_of(match) for match in regex.finditer(stream)]
    return params_of(regex.search(stream))


# -- get_matching_alias ---------------------------------------------------------------------------

def _representations(format_: Any) -> Tuple[Optional[str], List[str], bool]:
    """normalise_alias_format_string: (display, representations, match_multiple)."""
    if isinstance(format_, str):
        return format_, [format_], False
    if isinstance(format_, dict):
        representation = format_.get("representation") or []
        if isinstance(representation, str):
            representation = [representation]
        return format_.get("display"), list(representation), format_.get("match_multiple", False)
    raise TypeError("alias_format '%r' is neither a dictionary or string type." % (format_,))


def list_format_strings(aliases: List[ActionAlias]) -> List[dict]:
    """list_format_strings_from_aliases: one entry per representation, in alias then format
    order. A dict format with a display and no representation yields one entry whose
    representation is "" (it matches a command made of ``key=value`` pairs only, and then
    fails at execution: "" is not among the alias's format strings)."""
    patterns = []
    for alias in aliases:
        for format_ in alias.formats:
            display, representations, multiple = _representations(format_)
            if display and not representations:
                patterns.append({"alias": alias, "format": format_, "display": display,
                                 "representation": ""})
            for representation in representations:
                patterns.append({"alias": alias, "format": format_, "display": display,
                                 "representation": representation,
                                 "match_multiple": multiple})
    return patterns


def match_command_to_alias(command: str, aliases: List[ActionAlias]) -> List[dict]:
    """Every (alias, representation) the command fits, in order."""
    results = []
    for pattern in list_format_strings(aliases):
        try:
            extract_parameters(pattern["representation"], command)
        except ParseException:
            continue
        results.append(pattern)
    return results


def _has_multiple_format(alias: ActionAlias) -> bool:
    return any(isinstance(f, dict) and f.get("match_multiple") is True for f in alias.formats)


def _has_single_format(alias: ActionAlias) -> bool:
    # Mongo's formats__match_multiple=None | False: some format lacks the flag or has it false
    return any(not isinstance(f, dict) or f.get("match_multiple") in (None, False)
               for f in alias.formats)


def get_matching_alias(aliases: List[ActionAlias], command: str) -> dict:
    """st2's get_matching_alias over the given aliases (the enabled ones count)."""
    enabled = [alias for alias in aliases if alias.enabled]
    matches = match_command_to_alias(command, [a for a in enabled if _has_single_format(a)])
    if len(matches) > 1:
        raise ActionAliasAmbiguityException(
            "Command '%s' matched more than 1 pattern" % command, command=command, matches=matches)
    if not matches:
        matches = match_command_to_alias(command, [a for a in enabled if _has_multiple_format(a)])
        if len(matches) > 1:
            raise ActionAliasAmbiguityException(
                "Command '%s' matched more than 1 (multi) pattern" % command,
                command=command, matches=matches)
        if not matches:
            raise ActionAliasAmbiguityException(
                "Command '%s' matched no patterns" % command, command=command, matches=[])
    return matches[0]


# -- the bot's side -------------------------------------------------------------------------------

_SLACK_CHARACTERS = {"\u201c": '"', "\u201d": '"', "\u2018": "'", "\u2019": "'", "\u00a0": " "}


def normalise_command(text: str, bot_prefix: Optional[str] = "!") -> str:
    """What the bot hands st2 for a chat line: the bot prefix (hubot's ``--alias !``, or
    err-stackstorm's plugin prefix) and the blanks after it removed, Slack's curly quotes and
    non-breaking spaces made plain (hubot-stackstorm's Slack adapter). A line without the
    prefix is taken as already stripped (st2 itself never sees the prefix)."""
    for special, plain in _SLACK_CHARACTERS.items():
        text = text.replace(special, plain)
    stripped = text.lstrip()
    if bot_prefix and stripped.startswith(bot_prefix):
        return stripped[len(bot_prefix):].lstrip()
    return text


def hubot_regex(format_str: str) -> re.Pattern:
    """hubot-stackstorm's CommandFactory.getRegexForFormatString, in Python: placeholders
    become lazy wildcards, any number of ``key=value`` pairs may follow, case-insensitive.
    Unlike st2 it does not cut the pairs off first, so it accepts ``name={{name}}`` formats
    that st2 then refuses."""
    def optional(match: re.Match) -> str:
        return r"\s*(" + match.group(1) + r"([\s\S]+?)" + match.group(3) + r")?\s*"

    pattern = re.sub(r"(\s*){{\s*\S+\s*=\s*(?:({.+?}|.+?))\s*}}(\s*)", optional, format_str)
    pattern = re.sub(r"\s*{{.+?}}\s*", lambda _: r"\s*([\s\S]+?)\s*", pattern)
    extra = r"""(\s+(\S+)\s*=("([\s\S]*?)"|'([\s\S]*?)'|({[\s\S]*?})|(\S+))\s*)*"""
    return re.compile(r"^\s*" + pattern + extra + r"\s*\Z", re.IGNORECASE)


def hubot_match(aliases: List[ActionAlias], command: str) -> Optional[Tuple[ActionAlias, str]]:
    """The (alias, format) hubot-stackstorm sends st2 for a (stripped) command: the first
    representation, in load order, whose hubot regex matches; None when hubot stays silent.
    A representation used by two aliases belongs to the last one loaded. An empty format, or
    a dict format without ``display``, makes hubot's command loading throw (and lose every
    alias after it): TypeError here."""
    table: Dict[str, ActionAlias] = {}
    for alias in aliases:
        if alias.enabled is False or not alias.formats:
            continue
        for format_ in alias.formats:
            if isinstance(format_, dict) and format_.get("display"):
                for representation in format_.get("representation") or []:
                    table[representation] = alias
            elif isinstance(format_, str) and format_:
                table[format_] = alias
            else:
                raise TypeError("hubot-stackstorm cannot load format %r of alias %s (a format "
                                "must be a non-empty string or have a display)"
                                % (format_, alias.ref))
    for representation, alias in table.items():
        if hubot_regex(representation).search(command):
            return alias, representation
    return None


# -- Jinja as st2 sets it up ----------------------------------------------------------------------



def _human_time(seconds: Any) -> Optional[str]:
    """to_human_time_from_seconds: 0s, 45s, 3m5s, 1h0m3s, 2d1h0m0s (fractions below 1s as
    microseconds, as st2 prints them)."""
    if not isinstance(seconds, (int, float)):
        raise TypeError("to_human_time_from_seconds wants a number, got %r" % (seconds,))
    if seconds == 0:
        return "0s"
    if seconds < 1:
        return "%s\u03bcs" % seconds
    when = datetime.datetime(1, 1, 1) + datetime.timedelta(seconds=int(round(seconds)))
    parts = [when.year - 1, when.day - 1, when.hour, when.minute, when.second]
    while parts and not parts[0]:
        parts.pop(0)
    if not parts:
        return "0s"
    units = ["y", "d", "h", "m", "s"][-len(parts):]
    return "".join("%s%s" % (value, unit) for value, unit in zip(parts, units))


def _text(value: Any) -> str:
    return value if isinstance(value, str) else str(value)


def _st2_filters() -> Dict[str, Any]:
    flags = lambda ignorecase: re.I if ignorecase else 0  # noqa: E731
    return {
        "from_json_string": lambda value: json.loads(str(value)),
        "from_yaml_string": lambda value: yaml.safe_load(str(value)),
        "json_escape": lambda value: json.dumps(value).strip('"'),
        "to_complex": lambda value: json.dumps(value),
        "to_json_string": lambda value, indent=None, sort_keys=False, separators=(",", ": "):
            json.dumps(value, indent=indent, sort_keys=bool(sort_keys), separators=separators),
        "to_yaml_string": lambda value, indent=None, allow_unicode=True: yaml.safe_dump(
            value, default_flow_style=False, allow_unicode=allow_unicode,
            **({"indent": indent} if indent is not None else {})),
        "regex_match": lambda value, pattern, ignorecase=False:
            bool(re.match(pattern, _text(value), flags(ignorecase))),
        "regex_search": lambda value, pattern, ignorecase=False:
            bool(re.search(pattern, _text(value), flags(ignorecase))),
        "regex_replace": lambda value, pattern, replacement, ignorecase=False:
            re.compile(pattern, flags(ignorecase)).sub(replacement, _text(value)),
        "regex_substring": lambda value, pattern, result_index=0, ignorecase=False:
            re.findall(pattern, _text(value), flags(ignorecase))[result_index],
        "to_human_time_from_seconds": _human_time,
        "use_none": lambda value: NONE_MAGIC_VALUE if value is None else value,
        "basename": os.path.basename,
        "dirname": os.path.dirname,
    }


def jinja_environment(allow_undefined: bool = False) -> Any:
    """st2common.util.jinja.get_jinja_environment: sandboxed, trim_blocks and lstrip_blocks,
    StrictUndefined unless ``allow_undefined``, st2's filters, an ``in`` test."""
    import jinja2
    import jinja2.sandbox

    env = jinja2.sandbox.SandboxedEnvironment(
        undefined=jinja2.Undefined if allow_undefined else jinja2.StrictUndefined,
        trim_blocks=True, lstrip_blocks=True)
    env.filters.update(_st2_filters())
    env.tests["in"] = lambda item, collection: item in collection
    return env


def render_values(mapping: Optional[Mapping[str, Any]], context: Optional[Mapping[str, Any]],
                  allow_undefined: bool = False) -> Any:
    """st2common.util.jinja.render_values: each value rendered as a template (a dict or list
    through its JSON text); a value the rendering leaves unchanged keeps its type. The context
    also answers to ``__context``."""
    if not context or not mapping:
        return mapping
    env = jinja_environment(allow_undefined=allow_undefined)
    scope = dict(context)
    scope.setdefault("__context", context)
    scope.update(context)
    rendered = {}
    for key, value in mapping.items():
        structured = isinstance(value, (dict, list))
        text = json.dumps(value, ensure_ascii=False) if structured else _text(value)
        try:
            out = env.from_string(text).render(scope)
        except Exception as exc:
            exc.key, exc.value = key, text  # type: ignore[attr-defined]
            raise
        if out == text:
            rendered[key] = value
        else:
            rendered[key] = json.loads(out) if structured else out
    return rendered


class _Model:
    """An API model object (ActionExecutionAPI, ActionAliasAPI, st2client's models) as Jinja
    sees it: fields as attributes, nothing else (no dict methods)."""

    def __init__(self, fields: Mapping[str, Any]):
        object.__setattr__(self, "_fields", dict(fields))

    def __getattr__(self, name: str) -> Any:
        fields = object.__getattribute__(self, "_fields")
        if name.startswith("__") or name not in fields:
            raise AttributeError(name)
        return fields[name]

    def __repr__(self) -> str:
        return "<%s>" % object.__getattribute__(self, "_fields")


class _KeyValueLookup:
    """st2kv.system / st2kv.user: ``st2kv.system.a.b`` reads key ``a.b``; a missing key is ""."""

    def __init__(self, values: Mapping[str, str], key: str = ""):
        object.__setattr__(self, "_values", values)
        object.__setattr__(self, "_key", key)

    def __getattr__(self, name: str) -> _KeyValueLookup:
        if name.startswith("__"):
            raise AttributeError(name)
        key = object.__getattribute__(self, "_key")
        values = object.__getattribute__(self, "_values")
        return _KeyValueLookup(values, "%s.%s" % (key, name) if key else name)

    __getitem__ = __getattr__

    def __str__(self) -> str:
        values = object.__getattribute__(self, "_values")
        return str(values.get(object.__getattribute__(self, "_key"), ""))


# -- execution parameters -----------------------------------------------------------------------

def inject_immutable_parameters(alias: ActionAlias, params_list: List[Dict[str, Any]],
                                context: Mapping[str, Any],
                                kv: Optional[Mapping[str, Mapping[str, str]]] = None
                                ) -> List[Dict[str, Any]]:
    """st2's inject_immutable_parameters: the alias's immutable_parameters rendered with
    ``st2kv`` (``kv={"system": {...}, "user": {...}}``) and the action context, added to every
    parameter set; a set that already names one of them raises ValueError."""
    immutable = alias.immutable_parameters or {}
    if not immutable:
        return params_list
    kv = kv or {}
    scope: Dict[str, Any] = {"st2kv": {"system": _KeyValueLookup(kv.get("system") or {}),
                                       "user": _KeyValueLookup(kv.get("user") or {})}}
    scope.update(context)
    rendered = render_values(immutable, scope)
    for params in params_list:
        overridden = [name for name in immutable if name in params]
        if overridden:
            raise ValueError("Immutable arguments cannot be overriden: {}".format(
                ",".join(overridden)))
        params.update(rendered)
    return params_list


def _alias_context(alias: ActionAlias, chat_user: Optional[str], st2_user: str,
                   source_channel: Optional[str]) -> Dict[str, Any]:
    """The execution context aliasexecution._post builds: ``user`` is the bot's st2 user,
    ``api_user`` the chat user."""
    return {"action_alias_ref": {"id": alias.id, "name": alias.name}, "api_user": chat_user,
            "user": st2_user, "source_channel": source_channel}


def match_command(aliases: List[ActionAlias], command: str, bot_prefix: Optional[str] = "!",
                  chat_user: Optional[str] = "operator", st2_user: str = "stanley",
                  source_channel: Optional[str] = "#ops",
                  kv: Optional[Mapping[str, Mapping[str, str]]] = None
                  ) -> Tuple[ActionAlias, str, Any]:
    """POST /aliasexecution/match_and_execute up to scheduling: (alias, representation,
    params). ``params`` are the strings the command yields plus the rendered immutable
    parameters, before any casting (a list of such dicts for a match_multiple format).
    Raises ActionAliasAmbiguityException (no match, several matches), ParseException,
    or ValueError (a format only a display, an immutable parameter overridden)."""
    command = normalise_command(command, bot_prefix)
    pattern = get_matching_alias(aliases, command)
    alias, representation = pattern["alias"], pattern["representation"]
    if representation not in alias.get_format_strings():
        raise ValueError('Format string "%s" is not available on the alias "%s"'
                         % (representation, alias.name))
    multiple = pattern.get("match_multiple", False)
    found = extract_parameters(representation, command, match_multiple=multiple)
    params_list = found if multiple else [found]
    inject_immutable_parameters(
        alias, params_list, _alias_context(alias, chat_user, st2_user, source_channel), kv)
    return alias, representation, (params_list if multiple else params_list[0])


def _cast_array(value: Any) -> Any:
    # aliasexecution.CAST_OVERRIDES: an alias's array is comma-separated text
    return value if isinstance(value, list) else [part.strip() for part in value.split(",")]


_CASTS = dict(CASTS, array=_cast_array)


def cast_params(params: Mapping[str, Any], parameters: Mapping[str, Mapping[str, Any]]
                ) -> Dict[str, Any]:
    """action_param_utils.cast_params with the alias execution's overrides: each parameter
    the action (or its runner) declares with a type is cast to it; the others stay strings.
    ``integer`` is int(): "3" is fine, "3.0" is not; ``boolean`` takes true/false in any
    case; ``array`` splits on commas; ``object`` takes JSON or a Python literal."""
    cast = dict(params)
    for name, value in params.items():
        kind = (parameters.get(name) or {}).get("type")
        caster = _CASTS.get(kind) if isinstance(kind, str) else None
        if caster is None:
            continue
        try:
            cast[name] = caster(value)
        except Exception as exc:
            raise ValueError(
                'Failed to cast value "%s" (type: %s) for parameter "%s" of type "%s": %s. '
                "Perhaps the value is of an invalid type?"
                % (value, type(value).__name__, name, kind, exc)) from exc
    return cast


# -- the messages ---------------------------------------------------------------------------------

HUBOT_START_MESSAGE = "I'll take it from here! Your execution ID for reference is %s"


class Ack(NamedTuple):
    enabled: bool           # False: the bot posts nothing
    message: Optional[str]  # st2's rendered ack.format (None without one)
    extra: Any              # st2's rendered ack.extra (None without one)
    text: Optional[str]     # what the bot posts in the channel


class ResultMessage(NamedTuple):
    enabled: bool           # False: nothing is posted
    message: Optional[str]  # rendered result.format; None when st2's default template applies
    extra: Any
    default_template: bool  # True: st2 would post its key : value dump of the result

    @property
    def pretext(self) -> str:
        """hubot's Slack adapter splits the message at "{~}": pretext above the attachment."""
        parts = (self.message or "").split("{~}")
        return parts[0] if len(parts) > 1 else ""

    @property
    def text(self) -> str:
        parts = (self.message or "").split("{~}")
        return parts[1] if len(parts) > 1 else parts[0]

    @property
    def color(self) -> str:
        """The Slack attachment colour hubot picks: extra.color, else ST2_SLACK_FAIL_COLOR
        ("danger") when the message says "status : failed", else ST2_SLACK_SUCCESS_COLOR."""
        if isinstance(self.extra, dict) and self.extra.get("color"):
            return self.extra["color"]
        return "danger" if "status : failed" in (self.message or "") else "dfdfdf"


def make_execution(alias: Optional[ActionAlias], parameters: Mapping[str, Any],
                   status: str = "requested", result: Any = None, runner: str = "orquesta",
                   execution_id: str = "5f0000000000000000000001",
                   web_url: Optional[str] = None, elapsed_seconds: Optional[float] = None,
                   chat_user: Optional[str] = "operator", st2_user: str = "stanley",
                   source_channel: Optional[str] = "#ops") -> Dict[str, Any]:
    """An execution as the API returns it: what ``execution`` is in the ack and result
    templates. ``result`` is the runner's: ``{"output": ..., "errors": [...]}`` for an
    orquesta workflow, ``{"result": ..., "stdout": ..., "stderr": ..., "exit_code": ...}`` for
    a python-script action; an execution just scheduled has ``{}``."""
    action_ref = alias.action_ref if alias else "core.noop"
    pack, _, name = action_ref.partition(".")
    context: Dict[str, Any] = {"pack": pack, "user": st2_user}
    if alias is not None:
        context.update(_alias_context(alias, chat_user, st2_user, source_channel))
    execution = {
        "id": execution_id,
        "action": {"ref": action_ref, "name": name, "pack": pack, "runner_type": runner},
        "runner": {"name": runner},
        "status": status,
        "parameters": dict(parameters),
        "result": {} if result is None else result,
        "context": context,
        "start_timestamp": "2024-01-01T00:00:00.000000Z",
        "web_url": web_url or "https://st2.example.com/#/history/%s/general" % execution_id,
    }
    if elapsed_seconds is not None:
        execution["elapsed_seconds"] = elapsed_seconds
    return execution


def render_ack(alias: ActionAlias, params: Mapping[str, Any],
               execution: Optional[Mapping[str, Any]] = None, client: str = "hubot",
               append_url_to: Optional[str] = None) -> Ack:
    """The acknowledgement for a scheduled execution: st2 renders ``ack.format`` (and
    ``ack.extra``) with ``execution`` (``execution.parameters`` are ``params``: pass them
    through cast_params first for the action's types) and ``actionalias``; an undefined name
    does not fail the execution, it becomes the message 'Cannot render "format" in field
    "ack" for alias. ...'. ``client`` ("hubot" or "errbot") applies that bot's ``enabled``
    and ``append_url`` handling; ``append_url_to`` overrides the execution's web_url."""
    import jinja2

    execution = dict(execution or make_execution(alias, params))
    url = append_url_to or execution.get("web_url")
    context = {"execution": _Model(execution), "actionalias": _Model(alias.to_dict())}
    message: Optional[str] = None
    extra: Any = None
    ack = alias.ack or {}
    if ack:
        if "format" in ack:
            try:
                message = render_values({"alias": ack["format"]}, context)["alias"]
            except jinja2.UndefinedError as exc:
                message = 'Cannot render "format" in field "ack" for alias. %s' % exc
        if "extra" in ack:
            try:
                extra = render_values(ack["extra"], context)
            except jinja2.UndefinedError as exc:
                extra = 'Cannot render "extra" in field "ack" for alias. %s' % exc
    if client == "hubot":
        if ack.get("enabled") is False:
            return Ack(False, message, extra, None)
        suffix = " (details available at %s)" % url if url and ack.get("append_url") is not False \
            else ""
        body = message if message else HUBOT_START_MESSAGE % execution["id"]
        return Ack(True, message, extra, body + suffix)
    if client == "errbot":
        if not ack or ack.get("enabled", True) is not True:
            return Ack(False, message, extra, None)
        suffix = " %s" % (url or "") if ack.get("append_url", False) else ""
        return Ack(True, message, extra, "%s%s" % (message or "", suffix))
    raise ValueError("client must be 'hubot' or 'errbot', not %r" % (client,))


class _Six:
    """The ``six`` st2 puts in the result context, for templates that call six.iteritems."""

    string_types = (str,)
    text_type = str
    integer_types = (int,)

    @staticmethod
    def iteritems(mapping: Mapping[str, Any]) -> Any:
        return iter(mapping.items())


def render_result(alias: Optional[ActionAlias], execution: Mapping[str, Any]) -> ResultMessage:
    """The message chatops.format_execution_result builds when an execution ends. The alias's
    ``result`` applies only to an execution whose context names an alias (as one started
    from chat does; see make_execution). Context: ``execution`` (the execution as a dict),
    ``alias`` (not ``actionalias``) and ``six``; undefined names render as nothing in the
    format, but fail ``result.extra``."""
    context: Dict[str, Any] = {"six": _Six, "execution": dict(execution)}
    alias_ref = (execution.get("context") or {}).get("action_alias_ref") or {}
    template: Optional[str] = None
    enabled, extra = True, None
    if alias is not None and alias_ref.get("id"):
        context["alias"] = _Model(alias.to_dict())
        settings = alias.result or {}
        if settings:
            if not settings.get("enabled", True):
                enabled = False
            else:
                if "format" in settings:
                    template = settings["format"]
                if "extra" in settings:
                    extra = render_values(settings["extra"], context)
    if not enabled:
        return ResultMessage(False, None, None, False)
    if template is None:
        return ResultMessage(True, None, extra, True)
    message = jinja_environment(allow_undefined=True).from_string(template).render(context)
    return ResultMessage(True, message, extra, False)
