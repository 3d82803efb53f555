"""Groups, nodes, alert and scaling state: validated on entry, (de)serialised as versioned JSON.

Every record the pack writes to the st2 datastore is one of the classes here. Each field is
declared once, with its type, its default and the check of its stored value (``stored``, see
records.py): ``Group.FIELDS``, the record checks and the defaults are derived from the
dataclasses, never listed again by hand.

Reading (``from_json``) checks every field, types included: a whole number is an int and
never a bool, a time is a finite number of seconds in [0, MAX_TIME], text is a string, a
list is a list. Anything else is a ``RecordError`` naming the field, never a record that
makes a later comparison raise ``TypeError`` (the governor reads every record every tick).
A field that is absent takes its default (records written before the field existed).
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field, fields
from typing import Any, ClassVar, Dict, List, Optional, Tuple

from ..errors import RecordError, ValidationError
from . import fields as f
from .health import NodeHealth
from .names import validate_domain, validate_group_name, validate_label, validate_node_name
from .records import (
    SCHEMA_VERSION,
    checks_of,
    decode,
    defaults_of,
    encode,
    known_fields,
    read_record,
    stored,
)

__all__ = ["SCHEMA_VERSION", "MATCHER_KINDS", "LABEL_KIND", "Group", "NodeState",
           "TransitionError", "Node", "AlertLevel", "AlertState", "ScalingState", "Event",
           "GroupState"]

MATCHER_KINDS = ("entities", "applications", "servers", "policies", "conditions")
# A label matcher's kind: this prefix and the label's name ("label:service"). Its values are
# compared exactly (case included), not as patterns: see sources/routing.py.
LABEL_KIND = "label:"
_LABEL_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,99}")
# Values of one label a group may name (any of them matches).
LABEL_VALUES_MAX = 20


def is_label_kind(kind: str) -> bool:
    return kind.startswith(LABEL_KIND)


def label_matchers(value: Any, what: str = "match_labels") -> Dict[str, List[str]]:
    """An operator's label matchers, ``{label: value or [values]}`` (``{"service":
    "checkout", "env": "prod"}``), as alert matcher kinds (``{"label:service": ["checkout"],
    "label:env": ["prod"]}``). A value is taken as it is: no pattern, no splitting, no
    trimming, case kept (Alertmanager's own ``=`` matcher)."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ValidationError("%s must be a mapping of label names to values, not %s"
                              % (what, f.kind_of(value)))
    found = {}
    for name, values in value.items():
        if not isinstance(name, str) or not _LABEL_NAME.fullmatch(name):
            raise ValidationError("%s: %r is not a label name (letters, digits and _, not "
                                  "starting with a digit)" % (what, name))
        found[LABEL_KIND + name] = _label_values(values, "%s.%s" % (what, name))
    return found


def _label_values(value: Any, what: str) -> List[str]:
    values = value if isinstance(value, list) else [value]
    if not values or len(values) > LABEL_VALUES_MAX:
        raise ValidationError("%s must be a value or a list of 1 to %d values"
                              % (what, LABEL_VALUES_MAX))
    for item in values:
        if not isinstance(item, str) or not item:
            raise ValidationError("%s must be a non-empty string (or a list of them), not %r"
                                  % (what, item))
        if any(ch in item for ch in "\r\n\x00"):
            raise ValidationError("%s must be a single line" % what)
    return list(values)


def matchers(value: Any) -> Dict[str, List[str]]:
    """An operator's alert matchers: {kind: [patterns]} of the known kinds, or label kinds
    (``label:<name>``: exact values; see routing)."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ValidationError("alert_matchers must be a mapping of %s" % ", ".join(MATCHER_KINDS))
    unknown = sorted(kind for kind in value
                     if kind not in MATCHER_KINDS and not (
                         isinstance(kind, str) and is_label_kind(kind)))
    if unknown:
        raise ValidationError(
            "alert_matchers has unknown kind(s) %s; known kinds: %s, and label:<name>"
            % (", ".join(map(str, unknown)), ", ".join(MATCHER_KINDS))
        )
    found = {}
    for kind, items in value.items():
        if is_label_kind(kind):
            found.update(label_matchers({kind[len(LABEL_KIND):]: items}, "alert_matchers"))
        else:
            found[kind] = f.str_list(items, "alert_matchers.%s" % kind)
    return found


def _stored_matchers(value: Any, what: str) -> Dict[str, List[str]]:
    if not isinstance(value, dict):
        raise ValidationError("%s must be an object, not %s" % (what, f.kind_of(value)))
    for kind, items in value.items():
        f.strings(items, "%s.%s" % (what, kind))
    return value  # kinds are checked by matchers()


def _label(value: Any, what: str) -> str:
    return validate_label(value, what)


def _optional_label(value: Any, what: str) -> str:
    return value if value == "" else validate_label(value, what)


# ---------------------------------------------------------------------------------------------
# Group


@dataclass(frozen=True)
class Group:
    """An autoscaling group's spec: what an operator asked for. Changed only by asg_create."""

    name: str = stored(f.line)
    domain: str = stored(f.line)
    min_size: int = stored(f.whole(), 1)
    max_size: int = stored(f.whole(), 4)
    # The group's normal size: created with it, repaired back up to it, and scaled in down to
    # it once an alert is over. Always within [min_size, max_size].
    desired: Optional[int] = stored(f.optional_whole(), None)
    expand_by: int = stored(f.whole(1), 2)
    deflate_by: int = stored(f.whole(1), 1)
    scale_out_cooldown: int = stored(f.whole(), 300)
    scale_in_cooldown: int = stored(f.whole(), 900)
    # The settings below are the backends': each is stored here as it was given and checked
    # by the backend that uses it when the group is created (backends/ check_group). The
    # compute's: names or ids.
    flavor: str = stored(f.line, "")
    image: str = stored(f.line, "")
    network: str = stored(f.line, "")
    # The DNS's; empty: the domain.
    dns_zone: str = stored(f.line, "")
    # The load balancer's pool; empty: the group's name.
    lb_backend: str = stored(f.line, "")
    # The provisioner's run list and environment. Their names are the stored records', the
    # asg_create parameters' and the config's group_defaults', older than the backends.
    chef_run_list: List[str] = stored(f.strings, factory=list)
    chef_environment: str = stored(f.line, "_default")
    # The chat's; empty: the chat's default channel.
    chat_channel: str = stored(f.line, "")
    alert_matchers: Dict[str, List[str]] = stored(_stored_matchers, factory=dict)
    paused: bool = stored(f.flag, False)
    dry_run: bool = stored(f.flag, False)

    # Every field's name, in order (set below, from the dataclass).
    FIELDS: ClassVar[Tuple[str, ...]] = ()

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
        # What the backends take of the group's settings (a backend name, a run list, a
        # channel) is theirs to check, on entry (services/groups.py asks them), not when a
        # stored group is read: a group created by an earlier version keeps being governed.
        return cls._validated(merged)

    @classmethod
    def _validated(cls, raw: Dict[str, Any]) -> Group:
        default = defaults_of(cls)

        def get(key: str) -> Any:
            return raw.get(key, default[key])

        def count(key: str, minimum: int) -> int:
            return f.int_field(get(key), key, minimum)

        name = validate_group_name(raw["name"])
        domain = validate_domain(raw["domain"])
        min_size = count("min_size", 0)
        max_size = count("max_size", 0)
        if min_size > max_size:
            raise ValidationError(
                "min_size (%d) must not be larger than max_size (%d)" % (min_size, max_size)
            )
        desired = raw.get("desired")
        desired = min_size if desired is None else f.int_field(desired, "desired", 0)
        if not min_size <= desired <= max_size:
            raise ValidationError(
                "desired (%d) must be between min_size (%d) and max_size (%d)"
                % (desired, min_size, max_size)
            )
        return cls(
            name=name,
            domain=domain,
            min_size=min_size,
            max_size=max_size,
            desired=desired,
            expand_by=count("expand_by", 1),
            deflate_by=count("deflate_by", 1),
            scale_out_cooldown=count("scale_out_cooldown", 0),
            scale_in_cooldown=count("scale_in_cooldown", 0),
            flavor=f.str_field(get("flavor"), "flavor"),
            image=f.str_field(get("image"), "image"),
            network=f.str_field(get("network"), "network"),
            dns_zone=validate_domain(raw.get("dns_zone") or domain, "dns_zone"),
            lb_backend=f.str_field(raw.get("lb_backend") or name, "lb_backend"),
            chef_run_list=f.str_list(get("chef_run_list"), "chef_run_list"),
            chef_environment=f.str_field(raw.get("chef_environment") or default[
                "chef_environment"], "chef_environment"),
            chat_channel=f.str_field(get("chat_channel"), "chat_channel"),
            alert_matchers=matchers(raw.get("alert_matchers")),
            paused=f.bool_field(get("paused"), "paused"),
            dry_run=f.bool_field(get("dry_run"), "dry_run"),
        )

    @property
    def fqdn(self) -> str:
        """The group's service name, pointing at the load balancer."""
        return "%s.%s" % (self.name, self.domain)

    def node_fqdn(self, node_name: str) -> str:
        return "%s.%s" % (validate_node_name(node_name), self.domain)

    def to_json(self) -> str:
        return encode(self)

    @classmethod
    def from_json(cls, text: Any) -> Group:
        data = known_fields(cls, decode(text, "group"), "group")
        try:
            f.check_fields(checks_of(cls), data, required=("name", "domain"))
            return cls._validated(data)
        except ValidationError as exc:
            raise RecordError("group record is invalid: %s" % exc) from None


Group.FIELDS = tuple(item.name for item in fields(Group))


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

    name: str = stored(_label)
    group: str = stored(_label)
    state: str = stored(f.one_of(NodeState.ALL), NodeState.PROVISIONING)
    created_at: float = stored(f.seconds, 0.0)
    updated_at: float = stored(f.seconds, 0.0)
    server_id: str = stored(f.line, "")
    address: str = stored(f.line, "")
    protected: bool = stored(f.flag, False)
    # Why the node is in its state, in words: "Chef run did not converge within 900 s".
    cause: str = stored(f.text, "")

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
        return encode(self)

    @classmethod
    def from_json(cls, text: Any) -> Node:
        return read_record(cls, text, "node", ("name", "group"))


# ---------------------------------------------------------------------------------------------
# Alert state and scaling state


class AlertLevel:
    NONE = "none"
    WARNING = "warning"
    CRITICAL = "critical"
    ALL = (NONE, WARNING, CRITICAL)


_ISSUE_FIELDS = {
    "level": f.one_of((AlertLevel.WARNING, AlertLevel.CRITICAL)), "title": f.text,
    "opened_at": f.seconds, "updated_at": f.seconds, "acknowledged": f.flag,
}


def _issues(value: Any, what: str) -> Dict[str, Dict[str, Any]]:
    if not isinstance(value, dict):
        raise ValidationError("%s must be an object, not %s" % (what, f.kind_of(value)))
    for issue_id, issue in value.items():
        name = "%s[%s]" % (what, f.brief(issue_id, 40))
        f.text(issue_id, name)
        if not isinstance(issue, dict):
            raise ValidationError("%s must be an object, not %s" % (name, f.kind_of(issue)))
        f.check_fields(_ISSUE_FIELDS, issue, ("level", "opened_at", "updated_at"), name)
    return value


@dataclass(frozen=True)
class AlertState:
    """What monitoring last said about a group. Written only by alert handling."""

    level: str = stored(f.one_of(AlertLevel.ALL), AlertLevel.NONE)
    issue_id: str = stored(f.text, "")
    title: str = stored(f.text, "")
    acknowledged: bool = stored(f.flag, False)
    opened_at: float = stored(f.seconds, 0.0)
    updated_at: float = stored(f.seconds, 0.0)
    # When the last alert ended (closed or expired): the scale-in stabilisation starts here.
    ended_at: float = stored(f.seconds, 0.0)
    # Every issue open for the group, by issue id: {"level", "title", "opened_at",
    # "updated_at", "acknowledged"}. The fields above summarise them (see alert_state.py).
    issues: Dict[str, Dict[str, Any]] = stored(_issues, factory=dict)

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
        return encode(self)

    @classmethod
    def from_json(cls, text: Any) -> AlertState:
        return read_record(cls, text, "alert")


@dataclass(frozen=True)
class ScalingState:
    """When the group last scaled and how its node additions have been failing."""

    last_scale_out_at: float = stored(f.seconds, 0.0)
    last_scale_in_at: float = stored(f.seconds, 0.0)
    consecutive_failures: int = stored(f.whole(), 0)
    last_failure_at: float = stored(f.seconds, 0.0)
    last_failure_cause: str = stored(f.text, "")

    def to_json(self) -> str:
        return encode(self)

    @classmethod
    def from_json(cls, text: Any) -> ScalingState:
        return read_record(cls, text, "scaling")


@dataclass(frozen=True)
class Event:
    """One entry of a group's history: a decision or an activity, with its cause."""

    group: str = stored(_label)
    at: float = stored(f.seconds)
    kind: str = stored(f.line)
    cause: str = stored(f.text)
    node: str = stored(_optional_label, "")
    count: int = stored(f.whole(), 0)
    ok: bool = stored(f.flag, True)

    def to_json(self) -> str:
        return encode(self)

    @classmethod
    def from_json(cls, text: Any) -> Event:
        return read_record(cls, text, "event", ("group", "at", "kind", "cause"))


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
    # Not stored: what the governor saw this tick (node name -> NodeHealth; a node without an
    # entry counts as healthy), and which new node replaces which unhealthy one (new node name
    # -> name of the node it replaces), from the governor's own bookkeeping.
    health: Dict[str, NodeHealth] = field(default_factory=dict)
    replacements: Dict[str, str] = field(default_factory=dict)

    @property
    def unreadable_nodes(self) -> int:
        """Node records that could not be read: their VMs may well exist."""
        return sum(1 for key in self.unreadable if ".node." in key)

    def count(self, *states: str) -> int:
        return sum(1 for node in self.nodes.values() if node.state in states)

    def capacity(self) -> Tuple[int, int]:
        """(in service, pending): the nodes that serve or soon will."""
        return self.count(NodeState.IN_SERVICE), self.count(*NodeState.PENDING)
