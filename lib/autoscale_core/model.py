"""Groups, nodes, alert and scaling state: validated on entry, (de)serialised as versioned JSON.

Every record the pack writes to the st2 datastore is one of the classes here. Each carries a
schema version ``v`` so that a newer record is refused with a clear error instead of being
misread by an older pack.

Reading (``from_json``) checks every field, types included: a whole number is an int and
never a bool, a time is a finite number of seconds in [0, MAX_TIME], text is a string, a
list is a list. Anything else is a ``RecordError`` naming the field, never a record that
makes a later comparison raise ``TypeError`` (the governor reads every record every tick).
A field that is absent takes its default (records written before the field existed).
"""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass, field, fields
from typing import Any, Callable, Dict, List, Optional, Tuple

SCHEMA_VERSION = 1

# A DNS label (RFC 1035 / RFC 1123 LDH rule), lowercase only: names become datastore keys,
# DNS names and HAProxy server names, where two spellings of one name would be a trap.
_LABEL_RE = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?")
# HAProxy allows these characters in proxy names (cfgparse.c invalid_char()).
_BACKEND_RE = re.compile(r"[A-Za-z0-9_.:-]{1,64}")

LABEL_MAX = 63
# The largest whole number a stored record may hold: JSON's safe integers. A bigger one would
# overflow when mixed with a float (``now - 10**400`` raises OverflowError).
INT_MAX = 2 ** 53 - 1
# The latest time a stored record may hold (seconds since the epoch: the year 5138).
MAX_TIME = 1e11
NODE_SUFFIX_LEN = 6
# A node is named "<group>-<6 characters>", which must itself be a DNS label.
GROUP_NAME_MAX = LABEL_MAX - 1 - NODE_SUFFIX_LEN


class ValidationError(ValueError):
    """Bad input: the message says which field and why, in words an operator can act on."""


class RecordError(ValueError):
    """A stored record that cannot be read (corrupt JSON, wrong shape, unknown version)."""


def validate_label(value: Any, what: str = "name", max_len: int = LABEL_MAX) -> str:
    if not isinstance(value, str):
        raise ValidationError("%s must be a string, not %s" % (what, type(value).__name__))
    if not value:
        raise ValidationError("%s must not be empty" % what)
    if len(value) > max_len:
        raise ValidationError(
            "%s %r is %d characters long; the limit is %d" % (what, value, len(value), max_len)
        )
    if not _LABEL_RE.fullmatch(value):
        raise ValidationError(
            "%s %r is not a DNS label: use lowercase letters, digits and '-', "
            "starting and ending with a letter or digit" % (what, value)
        )
    return value


def validate_group_name(value: Any) -> str:
    return validate_label(value, "group name", GROUP_NAME_MAX)


def validate_node_name(value: Any) -> str:
    return validate_label(value, "node name")


def validate_domain(value: Any, what: str = "domain") -> str:
    """A DNS name of one or more labels; case is ignored and a trailing dot is dropped."""
    if not isinstance(value, str):
        raise ValidationError("%s must be a string, not %s" % (what, type(value).__name__))
    name = value.lower()
    if name.endswith("."):
        name = name[:-1]
    if not name:
        raise ValidationError("%s must not be empty" % what)
    if len(name) > 253:
        raise ValidationError("%s %r is longer than 253 characters" % (what, value))
    for label in name.split("."):
        if not label or len(label) > LABEL_MAX or not _LABEL_RE.fullmatch(label):
            raise ValidationError(
                "%s %r is not a valid DNS name (label %r): use labels of letters, digits "
                "and '-', separated by dots" % (what, value, label)
            )
    return name


def validate_backend_name(value: Any) -> str:
    if not isinstance(value, str) or not _BACKEND_RE.fullmatch(value):
        raise ValidationError(
            "load balancer backend %r is not a valid HAProxy backend name: use 1 to 64 of "
            "letters, digits, '-', '_', '.' and ':'" % (value,)
        )
    return value


def _int_field(value: Any, what: str, minimum: int, maximum: int = INT_MAX) -> int:
    # bool is an int in Python; "true" nodes would be a silent bug.
    if isinstance(value, bool) or not isinstance(value, int):
        if isinstance(value, str) and value.strip().lstrip("-").isdigit() and \
                len(value.strip()) <= 20:
            value = int(value)
        else:
            raise ValidationError("%s must be a whole number, not %s" % (what, _brief(value)))
    if value < minimum:
        raise ValidationError("%s must be at least %d, not %d" % (what, minimum, value))
    if value > maximum:
        raise ValidationError("%s must be at most %d, not %s" % (what, maximum, _brief(value)))
    return value


def _bool_field(value: Any, what: str) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in ("true", "false", "yes", "no"):
        return value.lower() in ("true", "yes")
    raise ValidationError("%s must be true or false, not %r" % (what, value))


def _str_field(value: Any, what: str, allow_empty: bool = True) -> str:
    if not isinstance(value, str):
        raise ValidationError("%s must be a string, not %r" % (what, value))
    if not allow_empty and not value.strip():
        raise ValidationError("%s must not be empty" % what)
    if any(ch in value for ch in "\r\n\x00"):
        raise ValidationError("%s must be a single line" % what)
    return value


def _str_list(value: Any, what: str) -> List[str]:
    if isinstance(value, str):
        value = [part.strip() for part in value.split(",") if part.strip()]
    if not isinstance(value, list):
        raise ValidationError("%s must be a list of strings, not %r" % (what, value))
    return [_str_field(item, "%s entry" % what, allow_empty=False) for item in value]


MATCHER_KINDS = ("entities", "applications", "servers", "policies", "conditions")


def _matchers(value: Any) -> Dict[str, List[str]]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ValidationError("alert_matchers must be a mapping of %s" % ", ".join(MATCHER_KINDS))
    unknown = sorted(set(value) - set(MATCHER_KINDS))
    if unknown:
        raise ValidationError(
            "alert_matchers has unknown kind(s) %s; known kinds: %s"
            % (", ".join(unknown), ", ".join(MATCHER_KINDS))
        )
    return {kind: _str_list(items, "alert_matchers.%s" % kind) for kind, items in value.items()}


# ---------------------------------------------------------------------------------------------
# Formats the backends need, checked when a group is created (asg create): a value that every
# later node add or announcement would trip over is refused at once, naming the field.

# Chef names: chef-client's Chef::Node#chef_environment takes /^[\-[:alnum:]_]+$/ and erchef's
# chef_regex environment_name /^[.[:alnum:]_-]+$/; both at once: ASCII letters, digits, "_",
# "-" (no ".": chef-client refuses it on the node).
_CHEF_ENVIRONMENT_RE = re.compile(r"[A-Za-z0-9_-]{1,255}")
# Run list items as both chef-client (Chef::RunList::RunListItem) and erchef (chef_regex
# qualified_recipe, qualified_role, unqualified_recipe) take them: recipe[cookbook],
# recipe[cookbook::recipe], either with @MAJOR.MINOR[.PATCH], role[name], or a bare recipe
# name, which both read as recipe[name].
_CHEF_NAME = r"[A-Za-z0-9_.-]+"
_CHEF_RECIPE = r"(?:%s::)?%s(?:@[0-9]+\.[0-9]+(?:\.[0-9]+)?)?" % (_CHEF_NAME, _CHEF_NAME)
_CHEF_RUN_LIST_ITEM_RE = re.compile(r"recipe\[%s\]|role\[%s\]|%s"
                                    % (_CHEF_RECIPE, _CHEF_NAME, _CHEF_RECIPE))
# Slack: chat.postMessage takes a conversation ID (C… channel, G… private group, D… direct
# message, U…/W… a user's direct message with the app) or a channel name. Names are at most
# 80 lowercase letters, digits, "-" and "_" (conversations.create/rename), not punctuation
# alone.
SLACK_CHANNEL_MAX = 80
_SLACK_ID_RE = re.compile(r"[CDGUW][A-Z0-9]{8,20}")


def validate_chef_run_list(value: Any, what: str = "chef_run_list") -> List[str]:
    items = _str_list(value, what)
    for item in items:
        if not _CHEF_RUN_LIST_ITEM_RE.fullmatch(item):
            raise ValidationError(
                "%s entry %s is not a Chef run list item: use recipe[cookbook], "
                "recipe[cookbook::recipe], recipe[cookbook@1.2.3] or role[name], with names "
                "of letters, digits, '_', '-' and '.'" % (what, _brief(item)))
    return items


def validate_chef_environment(value: Any, what: str = "chef_environment") -> str:
    if not isinstance(value, str) or not _CHEF_ENVIRONMENT_RE.fullmatch(value):
        raise ValidationError(
            "%s %s is not a Chef environment name: use letters, digits, '_' and '-' "
            "(chef-client refuses anything else, '.' and spaces included)" % (what, _brief(value)))
    return value


def _slack_name_char(ch: str) -> bool:
    return ch in "-_" or (ch.isalnum() and not ch.isupper())


def validate_chat_channel(value: Any, what: str = "chat_channel") -> str:
    """A Slack conversation ID (C0123ABCD) or channel name (#web-ops or web-ops); "" for the
    default channel."""
    if not isinstance(value, str):
        raise ValidationError("%s must be a string, not %s" % (what, _brief(value)))
    if value == "" or _SLACK_ID_RE.fullmatch(value):
        return value
    name = value[1:] if value.startswith("#") else value
    if not (0 < len(name) <= SLACK_CHANNEL_MAX and all(_slack_name_char(ch) for ch in name)
            and any(ch.isalnum() for ch in name)):
        raise ValidationError(
            "%s %s is not a Slack channel: use a channel name such as #web-ops (at most %d "
            "lowercase letters, digits, '-' and '_') or a channel ID such as C0123ABCD"
            % (what, _brief(value), SLACK_CHANNEL_MAX))
    return value


# ---------------------------------------------------------------------------------------------
# Reading stored records: every field checked, types included.


def _brief(value: Any, limit: int = 60) -> str:
    """A value for an error message: its repr, cut short (a record may hold anything)."""
    try:
        text = repr(value)
    except Exception:  # a repr that fails (a huge int on Python 3.11+) must not hide the error
        text = "a %s" % type(value).__name__
    return text if len(text) <= limit else text[:limit - 1] + "…"


def _kind_of(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean (%s)" % ("true" if value else "false")
    return "%s %s" % ({"str": "a string", "int": "the number", "float": "the number",
                       "list": "a list", "dict": "an object"}.get(type(value).__name__,
                                                                 "a " + type(value).__name__),
                      _brief(value, 40))


def _whole(minimum: int = 0) -> Callable[[Any, str], int]:
    def check(value: Any, what: str) -> int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValidationError("%s must be a whole number, not %s" % (what, _kind_of(value)))
        if not minimum <= value <= INT_MAX:
            raise ValidationError("%s must be between %d and %d, not %s"
                                  % (what, minimum, INT_MAX, _brief(value)))
        return value
    return check


def _optional_whole(minimum: int = 0) -> Callable[[Any, str], Optional[int]]:
    whole = _whole(minimum)
    return lambda value, what: None if value is None else whole(value, what)


def _time(value: Any, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValidationError("%s must be a time in seconds, not %s" % (what, _kind_of(value)))
    # One chained comparison: False for NaN, and no float() of a huge int (OverflowError).
    if not 0 <= value <= MAX_TIME:
        raise ValidationError("%s must be a time between 0 and %d seconds, not %s"
                              % (what, MAX_TIME, _brief(value)))
    return value


def _flag(value: Any, what: str) -> bool:
    if not isinstance(value, bool):
        raise ValidationError("%s must be true or false, not %s" % (what, _kind_of(value)))
    return value


def _text(value: Any, what: str) -> str:
    if not isinstance(value, str):
        raise ValidationError("%s must be a string, not %s" % (what, _kind_of(value)))
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate ("\ud800"): not text any system takes
        raise ValidationError("%s is not valid Unicode text" % what) from None
    return value


def _line(value: Any, what: str) -> str:
    _text(value, what)
    if any(ch in value for ch in "\r\n\x00"):
        raise ValidationError("%s must be a single line" % what)
    return value


def _strings(value: Any, what: str) -> List[str]:
    if not isinstance(value, list):
        raise ValidationError("%s must be a list of strings, not %s" % (what, _kind_of(value)))
    for index, item in enumerate(value):
        _line(item, "%s[%d]" % (what, index))
    return value


def _one_of(choices: Tuple[str, ...]) -> Callable[[Any, str], str]:
    def check(value: Any, what: str) -> str:
        if not isinstance(value, str) or value not in choices:
            raise ValidationError("%s must be one of %s, not %s"
                                  % (what, ", ".join(choices), _kind_of(value)))
        return value
    return check


def _stored_matchers(value: Any, what: str) -> Dict[str, List[str]]:
    if not isinstance(value, dict):
        raise ValidationError("%s must be an object, not %s" % (what, _kind_of(value)))
    for kind, items in value.items():
        _strings(items, "%s.%s" % (what, kind))
    return value  # kinds are checked by _matchers()


def _fields(checks: Dict[str, Callable[[Any, str], Any]], data: Dict[str, Any],
            required: Tuple[str, ...] = (), what: str = "") -> Dict[str, Any]:
    """``data`` with every field checked by its check; raises ValidationError naming it."""
    missing = [name for name in required if name not in data]
    if missing:
        raise ValidationError("%s%s missing" % (
            "".join("%s.%s" % (what, name) if what else name for name in missing[:1]),
            "" if len(missing) == 1 else " (and %d more field(s))" % (len(missing) - 1)))
    for name, value in data.items():
        check = checks.get(name)
        if check is None:
            raise ValidationError("unknown field %s%s" % (what + "." if what else "", name))
        check(value, "%s%s" % (what + "." if what else "", name))
    return data


def _check_version(data: Any, kind: str) -> Dict[str, Any]:
    if not isinstance(data, dict):
        raise RecordError("%s record is not a JSON object" % kind)
    version = data.get("v")
    # type(): True == 1 and 1.0 == 1 in Python, but neither is version 1.
    if type(version) is not int or version != SCHEMA_VERSION:
        if type(version) is int and version > SCHEMA_VERSION:
            raise RecordError(
                "%s record has schema version %d, newer than this pack understands (%d); "
                "upgrade the autoscale pack" % (kind, version, SCHEMA_VERSION)
            )
        raise RecordError("%s record has unknown schema version %s" % (kind, _brief(version)))
    return data


def _decode(text: Any, kind: str) -> Dict[str, Any]:
    if isinstance(text, (bytes, str)):
        try:
            data = json.loads(text)
        except (ValueError, RecursionError) as exc:  # RecursionError: "[[[[…" nested too deep
            raise RecordError("%s record is not valid JSON: %s"
                              % (kind, _brief(str(exc), 200))) from None
    else:
        data = text
    return _check_version(data, kind)


def _encode(record: Any) -> str:
    data = {"v": SCHEMA_VERSION}
    data.update(asdict(record))
    return json.dumps(data, sort_keys=True, separators=(",", ":"))


_FIELD_NAMES: Dict[Any, frozenset] = {}


def _known_fields(cls: Any, data: Dict[str, Any], kind: str) -> Dict[str, Any]:
    # Once per class: the governor reads every record of every group each tick.
    names = _FIELD_NAMES.get(cls)
    if names is None:
        names = _FIELD_NAMES[cls] = frozenset(f.name for f in fields(cls))
    unknown = data.keys() - names - {"v"}
    if unknown:
        raise RecordError("%s record has unknown field(s): %s" % (kind, ", ".join(sorted(unknown))))
    values = dict(data)
    values.pop("v", None)
    return values


# ---------------------------------------------------------------------------------------------
# Group


@dataclass(frozen=True)
class Group:
    """An autoscaling group's spec: what an operator asked for. Changed only by asg_create."""

    name: str
    domain: str
    min_size: int = 1
    max_size: int = 4
    # The group's normal size: created with it, repaired back up to it, and scaled in down to
    # it once an alert is over. Always within [min_size, max_size].
    desired: Optional[int] = None
    expand_by: int = 2
    deflate_by: int = 1
    scale_out_cooldown: int = 300
    scale_in_cooldown: int = 900
    flavor: str = ""
    image: str = ""
    network: str = ""
    dns_zone: str = ""
    lb_backend: str = ""
    chef_run_list: List[str] = field(default_factory=list)
    chef_environment: str = "_default"
    chat_channel: str = ""
    alert_matchers: Dict[str, List[str]] = field(default_factory=dict)
    paused: bool = False
    dry_run: bool = False

    FIELDS = (
        "name domain min_size max_size desired expand_by deflate_by scale_out_cooldown "
        "scale_in_cooldown flavor image network dns_zone lb_backend chef_run_list "
        "chef_environment chat_channel alert_matchers paused dry_run"
    ).split()

    @classmethod
    def create(cls, defaults: Optional[Dict[str, Any]] = None, **spec: Any) -> Group:
        """Validate an operator's spec (over the config's group defaults) into a Group.

        Raises ValidationError naming the first bad field. Unknown fields are refused so a
        typo such as ``max_szie=10`` is not silently ignored.
        """
        unknown = sorted(set(spec) - set(cls.FIELDS))
        if unknown:
            raise ValidationError(
                "unknown group setting(s): %s; known settings: %s"
                % (", ".join(unknown), ", ".join(cls.FIELDS))
            )
        merged: Dict[str, Any] = {}
        for key, value in (defaults or {}).items():
            if key in cls.FIELDS and value is not None:
                merged[key] = value
        merged.update({k: v for k, v in spec.items() if v is not None})
        if "name" not in merged:
            raise ValidationError("a group needs a name")
        if "domain" not in merged:
            raise ValidationError("group %r needs a domain" % merged["name"])
        group = cls._validated(merged)
        # What Chef and Slack take (see validate_chef_run_list ...): checked here, on entry,
        # not when a stored group is read, so that a group created by an earlier version
        # keeps being governed.
        validate_chef_run_list(group.chef_run_list)
        validate_chef_environment(group.chef_environment)
        validate_chat_channel(group.chat_channel)
        return group

    @classmethod
    def _validated(cls, raw: Dict[str, Any]) -> Group:
        name = validate_group_name(raw["name"])
        domain = validate_domain(raw["domain"])
        min_size = _int_field(raw.get("min_size", 1), "min_size", 0)
        max_size = _int_field(raw.get("max_size", 4), "max_size", 0)
        if min_size > max_size:
            raise ValidationError(
                "min_size (%d) must not be larger than max_size (%d)" % (min_size, max_size)
            )
        desired = raw.get("desired")
        desired = min_size if desired is None else _int_field(desired, "desired", 0)
        if not min_size <= desired <= max_size:
            raise ValidationError(
                "desired (%d) must be between min_size (%d) and max_size (%d)"
                % (desired, min_size, max_size)
            )
        dns_zone = raw.get("dns_zone") or domain
        return cls(
            name=name,
            domain=domain,
            min_size=min_size,
            max_size=max_size,
            desired=desired,
            expand_by=_int_field(raw.get("expand_by", 2), "expand_by", 1),
            deflate_by=_int_field(raw.get("deflate_by", 1), "deflate_by", 1),
            scale_out_cooldown=_int_field(
                raw.get("scale_out_cooldown", 300), "scale_out_cooldown", 0
            ),
            scale_in_cooldown=_int_field(raw.get("scale_in_cooldown", 900), "scale_in_cooldown", 0),
            flavor=_str_field(raw.get("flavor", ""), "flavor"),
            image=_str_field(raw.get("image", ""), "image"),
            network=_str_field(raw.get("network", ""), "network"),
            dns_zone=validate_domain(dns_zone, "dns_zone"),
            lb_backend=validate_backend_name(raw.get("lb_backend") or name),
            chef_run_list=_str_list(raw.get("chef_run_list", []), "chef_run_list"),
            chef_environment=_str_field(
                raw.get("chef_environment") or "_default", "chef_environment"
            ),
            chat_channel=_str_field(raw.get("chat_channel", ""), "chat_channel"),
            alert_matchers=_matchers(raw.get("alert_matchers")),
            paused=_bool_field(raw.get("paused", False), "paused"),
            dry_run=_bool_field(raw.get("dry_run", False), "dry_run"),
        )

    @property
    def fqdn(self) -> str:
        """The group's service name, pointing at the load balancer."""
        return "%s.%s" % (self.name, self.domain)

    def node_fqdn(self, node_name: str) -> str:
        return "%s.%s" % (validate_node_name(node_name), self.domain)

    def to_json(self) -> str:
        return _encode(self)

    @classmethod
    def from_json(cls, text: Any) -> Group:
        data = _known_fields(cls, _decode(text, "group"), "group")
        try:
            _fields(_GROUP_FIELDS, data, required=("name", "domain"))
            return cls._validated(data)
        except ValidationError as exc:
            raise RecordError("group record is invalid: %s" % exc) from None


_GROUP_FIELDS = {
    "name": _line, "domain": _line, "min_size": _whole(), "max_size": _whole(),
    "desired": _optional_whole(), "expand_by": _whole(1), "deflate_by": _whole(1),
    "scale_out_cooldown": _whole(), "scale_in_cooldown": _whole(), "flavor": _line,
    "image": _line, "network": _line, "dns_zone": _line, "lb_backend": _line,
    "chef_run_list": _strings, "chef_environment": _line, "chat_channel": _line,
    "alert_matchers": _stored_matchers, "paused": _flag, "dry_run": _flag,
}


# ---------------------------------------------------------------------------------------------
# Node


class NodeState:
    PROVISIONING = "provisioning"
    CONFIGURING = "configuring"
    REGISTERING = "registering"
    IN_SERVICE = "in_service"
    DRAINING = "draining"
    TERMINATING = "terminating"
    FAILED = "failed"

    ALL = (
        PROVISIONING,
        CONFIGURING,
        REGISTERING,
        IN_SERVICE,
        DRAINING,
        TERMINATING,
        FAILED,
    )
    # Being added: counts toward capacity, blocks scale-in.
    PENDING = (PROVISIONING, CONFIGURING, REGISTERING)
    # Being removed: no longer counts toward capacity.
    LEAVING = (DRAINING, TERMINATING)


# Which state may follow which. Any state may fail; a failed node is only cleaned up
# (terminating) so that its undo can be retried.
_TRANSITIONS = {
    NodeState.PROVISIONING: (NodeState.CONFIGURING, NodeState.TERMINATING),
    NodeState.CONFIGURING: (NodeState.REGISTERING, NodeState.TERMINATING),
    NodeState.REGISTERING: (NodeState.IN_SERVICE, NodeState.TERMINATING),
    NodeState.IN_SERVICE: (NodeState.DRAINING,),
    NodeState.DRAINING: (NodeState.TERMINATING, NodeState.IN_SERVICE),
    NodeState.TERMINATING: (),
    NodeState.FAILED: (NodeState.TERMINATING,),
}


class TransitionError(ValueError):
    pass


@dataclass(frozen=True)
class Node:
    """One VM of a group and where it is in its lifecycle."""

    name: str
    group: str
    state: str = NodeState.PROVISIONING
    created_at: float = 0.0
    updated_at: float = 0.0
    server_id: str = ""
    address: str = ""
    protected: bool = False
    # Why the node is in its state, in words: "Chef run did not converge within 900 s".
    cause: str = ""

    def __post_init__(self) -> None:
        validate_node_name(self.name)
        validate_group_name(self.group)
        if self.state not in NodeState.ALL:
            raise ValidationError(
                "node state %r is not one of %s" % (self.state, ", ".join(NodeState.ALL))
            )

    @property
    def pending(self) -> bool:
        return self.state in NodeState.PENDING

    @property
    def leaving(self) -> bool:
        return self.state in NodeState.LEAVING

    def advance(self, state: str, now: float, cause: str = "", **changes: Any) -> Node:
        """The node in its next lifecycle state; refuses a jump the lifecycle does not allow."""
        # The same state again is allowed: a retried workflow step records it twice.
        allowed = _TRANSITIONS[self.state] + (NodeState.FAILED, self.state)
        if state not in allowed:
            raise TransitionError(
                "node %s cannot go from %s to %s" % (self.name, self.state, state)
            )
        values = asdict(self)
        values.update(changes)
        values.update(state=state, updated_at=now, cause=cause)
        return Node(**values)

    def to_json(self) -> str:
        return _encode(self)

    @classmethod
    def from_json(cls, text: Any) -> Node:
        return _read(cls, text, "node", _NODE_FIELDS, ("name", "group"))


# ---------------------------------------------------------------------------------------------
# Alert state and scaling state


class AlertLevel:
    NONE = "none"
    WARNING = "warning"
    CRITICAL = "critical"
    ALL = (NONE, WARNING, CRITICAL)


@dataclass(frozen=True)
class AlertState:
    """What monitoring last said about a group. Written only by alert handling."""

    level: str = AlertLevel.NONE
    issue_id: str = ""
    title: str = ""
    acknowledged: bool = False
    opened_at: float = 0.0
    updated_at: float = 0.0
    # When the last alert ended (closed or expired): the scale-in stabilisation starts here.
    ended_at: float = 0.0
    # Every New Relic issue open for the group, by issue id: {"level", "title", "opened_at",
    # "updated_at", "acknowledged"}. The fields above summarise them (see alert_state.py).
    issues: Dict[str, Dict[str, Any]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.level not in AlertLevel.ALL:
            raise ValidationError(
                "alert level %r is not one of %s" % (self.level, ", ".join(AlertLevel.ALL))
            )
        if not isinstance(self.issues, dict) or not all(
                isinstance(value, dict) for value in self.issues.values()):
            raise ValidationError("alert issues must be a mapping of issue id to a record")

    @property
    def active(self) -> bool:
        return self.level != AlertLevel.NONE

    def to_json(self) -> str:
        return _encode(self)

    @classmethod
    def from_json(cls, text: Any) -> AlertState:
        return _read(cls, text, "alert", _ALERT_FIELDS)


@dataclass(frozen=True)
class ScalingState:
    """When the group last scaled and how its node additions have been failing."""

    last_scale_out_at: float = 0.0
    last_scale_in_at: float = 0.0
    consecutive_failures: int = 0
    last_failure_at: float = 0.0
    last_failure_cause: str = ""

    def to_json(self) -> str:
        return _encode(self)

    @classmethod
    def from_json(cls, text: Any) -> ScalingState:
        return _read(cls, text, "scaling", _SCALING_FIELDS)


@dataclass(frozen=True)
class Event:
    """One entry of a group's history: a decision or an activity, with its cause."""

    group: str
    at: float
    kind: str
    cause: str
    node: str = ""
    count: int = 0
    ok: bool = True

    def to_json(self) -> str:
        return _encode(self)

    @classmethod
    def from_json(cls, text: Any) -> Event:
        return _read(cls, text, "event", _EVENT_FIELDS, ("group", "at", "kind", "cause"))


def _read(cls: Any, text: Any, kind: str, checks: Dict[str, Callable[[Any, str], Any]],
          required: Tuple[str, ...] = ()) -> Any:
    data = _known_fields(cls, _decode(text, kind), kind)
    try:
        _fields(checks, data, required)
        return cls(**data)
    except (ValidationError, TypeError) as exc:
        raise RecordError("%s record is invalid: %s" % (kind, exc)) from None


def _node_label(value: Any, what: str) -> str:
    return validate_label(value, what)


def _optional_node(value: Any, what: str) -> str:
    return value if value == "" else validate_label(value, what)


_NODE_FIELDS = {
    "name": _node_label, "group": _node_label, "state": _one_of(NodeState.ALL),
    "created_at": _time, "updated_at": _time, "server_id": _line, "address": _line,
    "protected": _flag, "cause": _text,
}
_ISSUE_FIELDS = {
    "level": _one_of((AlertLevel.WARNING, AlertLevel.CRITICAL)), "title": _text,
    "opened_at": _time, "updated_at": _time, "acknowledged": _flag,
}


def _issues(value: Any, what: str) -> Dict[str, Dict[str, Any]]:
    if not isinstance(value, dict):
        raise ValidationError("%s must be an object, not %s" % (what, _kind_of(value)))
    for issue_id, issue in value.items():
        name = "%s[%s]" % (what, _brief(issue_id, 40))
        _text(issue_id, name)
        if not isinstance(issue, dict):
            raise ValidationError("%s must be an object, not %s" % (name, _kind_of(issue)))
        _fields(_ISSUE_FIELDS, issue, ("level", "opened_at", "updated_at"), name)
    return value


_ALERT_FIELDS = {
    "level": _one_of(AlertLevel.ALL), "issue_id": _text, "title": _text,
    "acknowledged": _flag, "opened_at": _time, "updated_at": _time, "ended_at": _time,
    "issues": _issues,
}
_SCALING_FIELDS = {
    "last_scale_out_at": _time, "last_scale_in_at": _time,
    "consecutive_failures": _whole(), "last_failure_at": _time, "last_failure_cause": _text,
}
_EVENT_FIELDS = {
    "group": _node_label, "at": _time, "kind": _line, "cause": _text,
    "node": _optional_node, "count": _whole(), "ok": _flag,
}


@dataclass
class GroupState:
    """Everything stored about one group, as loaded in one datastore pass.

    ``unreadable``: the group's alert, scaling and node records that could not be read (key ->
    why). Their place holds the default (no alert, never scaled, no such node), which is a
    guess: the policy holds such a group (see policy.py)."""

    group: Group
    alert: AlertState = field(default_factory=AlertState)
    scaling: ScalingState = field(default_factory=ScalingState)
    nodes: Dict[str, Node] = field(default_factory=dict)
    unreadable: Dict[str, str] = field(default_factory=dict)

    @property
    def unreadable_nodes(self) -> int:
        """Node records that could not be read: their VMs may well exist."""
        return sum(1 for key in self.unreadable if ".node." in key)

    def count(self, *states: str) -> int:
        return sum(1 for node in self.nodes.values() if node.state in states)

    def capacity(self) -> Tuple[int, int]:
        """(in service, pending): the nodes that serve or soon will."""
        return self.count(NodeState.IN_SERVICE), self.count(*NodeState.PENDING)
