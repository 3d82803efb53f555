"""The pack's datastore layout: one key per record, so parallel workflows never overwrite each
other (the st2 datastore has no compare-and-set).

    autoscale.asg.<group>                 the group's spec (Group)
    autoscale.asg.<group>.alert           alert state (AlertState), written by alert handling
    autoscale.asg.<group>.scaling         scaling state (ScalingState), governor and workflows
    autoscale.asg.<group>.node.<node>     one record per node (Node)
    autoscale.history.<group>.<t>-<id>    history events (Event), kept with a TTL
    autoscale.governor.announced          which unreadable records the governor announced
    ssh_pub_key                           the SSH keys new VMs accept, set by the operator

This is the only module that knows these names and calls the datastore (``get_value``,
``set_value``, ``list_values``, ``delete_value``); everything else asks a ``Store``.

History lives under its own prefix so that the governor's one ``list_values`` per tick reads
only what it decides on, not hours of history.

``datastore`` is anything with st2's datastore methods: an action's ``action_service`` or a
sensor's ``sensor_service``. Every key is global (``local=False``): with ``local=True`` st2
prefixes keys per class, and actions and sensors would not see each other's records.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import uuid
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, NamedTuple, Optional, Set, Tuple, TypeVar

from .domain.model import (
    SCHEMA_VERSION,
    AlertState,
    Event,
    Group,
    GroupState,
    Node,
    ScalingState,
)
from .domain.names import validate_group_name, validate_node_name
from .errors import RecordError, ValidationError

LOG = logging.getLogger(__name__)

GROUP_PREFIX = "autoscale.asg."
HISTORY_PREFIX = "autoscale.history."
# st2's API caps a page at api.max_page_size (100) unless the caller is an admin, which every
# user is with RBAC off (the default). Ask for a large page; a short page ends the listing, a
# full one means there may be more, so the next page is read. With RBAC on and a non-admin
# service user, set the pack config's datastore_page_size to api.max_page_size.
DEFAULT_PAGE_SIZE = 100000
DEFAULT_HISTORY_TTL = 7 * 24 * 3600
# Where the governor remembers which unreadable records it announced (outside
# autoscale.asg.: the tick's listing does not read it).
ANNOUNCED_KEY = "autoscale.governor.announced"
# The operator's: the OpenSSH public keys (one per line) every new VM accepts (README: st2 key
# set ssh_pub_key "$(cat ~/.ssh/autoscale.pub)").
SSH_KEY_NAME = "ssh_pub_key"
_SSH_KEY_RE = re.compile(
    r"(ssh-(rsa|dss|ed25519)|ecdsa-sha2-nistp(256|384|521)"
    r"|sk-(ssh-ed25519|ecdsa-sha2-nistp256)@openssh\.com) [A-Za-z0-9+/]+=*( [^\r\n]*)?"
)

R = TypeVar("R")


def group_key(group: str) -> str:
    return GROUP_PREFIX + validate_group_name(group)


def alert_key(group: str) -> str:
    return group_key(group) + ".alert"


def scaling_key(group: str) -> str:
    return group_key(group) + ".scaling"


def node_key(group: str, node: str) -> str:
    return "%s.node.%s" % (group_key(group), validate_node_name(node))


def history_prefix(group: str) -> str:
    return HISTORY_PREFIX + validate_group_name(group) + "."


def _list(datastore: Any, prefix: str, page_size: int) -> List[Any]:
    items: List[Any] = []
    offset = 0
    while True:
        page = datastore.list_values(local=False, prefix=prefix, limit=page_size, offset=offset)
        page = list(page or [])
        items.extend(page)
        if len(page) < page_size:
            return items
        offset += len(page)


_PARSERS = {"spec": Group.from_json, "alert": AlertState.from_json,
            "scaling": ScalingState.from_json, "node": Node.from_json}


class Unreadable(NamedTuple):
    """A key under ``autoscale.asg.`` that could not be used, and why.

    ``group``: the group it belongs to ("" when the key names no valid group); ``kind``: spec,
    alert, scaling, node (a record that could not be read) or layout (not a key of the
    layout); ``fingerprint``: a digest of the stored text, so that a reader can tell the same
    bad record from a new one without keeping the text."""

    key: str
    group: str
    kind: str
    reason: str
    fingerprint: str

    @property
    def record(self) -> bool:
        return self.kind != "layout"


@dataclass
class Listing:
    """One listing of ``autoscale.asg.``: the readable groups, and what could not be read."""

    groups: Dict[str, GroupState] = field(default_factory=dict)
    problems: List[str] = field(default_factory=list)
    unreadable: List[Unreadable] = field(default_factory=list)

    def troubled_groups(self) -> Set[str]:
        """Groups with a key that could not be used, their spec's included."""
        return {entry.group for entry in self.unreadable if entry.group}


def ssh_public_keys(value: Any) -> List[str]:
    """The datastore's ``ssh_pub_key``: one or more OpenSSH public keys, one per line."""
    hint = 'set it with: st2 key set %s "$(cat ~/.ssh/id_ed25519.pub)"' % SSH_KEY_NAME
    if value is None or (isinstance(value, str) and not value.strip()):
        raise ValidationError("datastore key %s is not set: new nodes need an SSH public key; %s"
                              % (SSH_KEY_NAME, hint))
    if not isinstance(value, str):
        raise ValidationError("datastore key %s must be a string" % SSH_KEY_NAME)
    keys = [line.strip() for line in value.splitlines() if line.strip()]
    for key in keys:
        if not _SSH_KEY_RE.fullmatch(key):
            raise ValidationError(
                "datastore key %s does not hold an OpenSSH public key (\"ssh-ed25519 AAAA... "
                "comment\"); was it stored encrypted, or is it a private key? %s"
                % (SSH_KEY_NAME, hint))
    return keys


def fingerprint(value: Any) -> str:
    text = value if isinstance(value, str) else repr(value)
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:16]


def _group_of(name: str) -> str:
    try:
        return validate_group_name(name)
    except ValidationError:
        return ""


def read_records(items: List[Any], cache: Optional[Dict[str, Tuple[Any, Any]]] = None,
                 log: bool = True) -> Listing:
    """Groups from the key-value pairs under ``autoscale.asg.``.

    A record that cannot be read is reported (``problems``, ``unreadable``) and skipped; a
    group whose spec cannot be read is skipped whole (its nodes are reported, not lost: their
    keys stay in the datastore for an operator to inspect). A group's other records that
    cannot be read are named in its ``GroupState.unreadable``.

    ``cache`` (key -> (stored text, parsed record)), kept by a long-lived reader such as the
    governor: a record whose stored text has not changed since the last listing is not
    decoded again (records are immutable). Keys no longer listed are dropped from it.
    ``log``: log each problem at warning level (the governor logs them itself, once).
    """
    specs: Dict[str, Group] = {}
    parts: Dict[str, Dict[str, Any]] = {}
    listing = Listing()
    seen = set()

    def skip(key: str, group: str, kind: str, reason: str, value: Any) -> None:
        listing.problems.append("%s: %s; skipped" % (key, reason))
        listing.unreadable.append(Unreadable(key, group, kind, reason, fingerprint(value)))

    for item in items:
        key = item.name
        if not isinstance(key, str) or not key.startswith(GROUP_PREFIX):
            continue
        rest = key[len(GROUP_PREFIX):].split(".")
        name = rest[0]
        group = _group_of(name)
        if len(rest) == 1:
            kind = "spec"
        elif len(rest) == 2 and rest[1] in ("alert", "scaling"):
            kind = rest[1]
        elif len(rest) == 3 and rest[1] == "node":
            kind = "node"
        else:
            skip(key, group, "layout", "not a key of the autoscale layout", item.value)
            continue
        try:
            if not group:
                raise RecordError("%r is not a valid group name" % name)
            hit = cache.get(key) if cache is not None else None
            if hit is not None and hit[0] == item.value:
                record = hit[1]
            else:
                record = _PARSERS[kind](item.value)
                if kind == "spec" and record.name != name:
                    raise RecordError("its name does not match its key")
                if kind == "node" and (record.name != rest[2] or record.group != name):
                    raise RecordError("its names do not match its key")
                if cache is not None:
                    cache[key] = (item.value, record)
            seen.add(key)
        except Exception as exc:  # RecordError; anything else is a reader's bug, same effect
            why = str(exc) if isinstance(exc, (RecordError, ValidationError)) else \
                "unexpected %s: %s" % (type(exc).__name__, exc)
            skip(key, group, kind, why, item.value)
            if group and kind != "spec":
                parts.setdefault(name, {}).setdefault("unreadable", {})[key] = why
            continue
        if kind == "spec":
            specs[name] = record
        elif kind == "node":
            parts.setdefault(name, {}).setdefault("nodes", {})[record.name] = record
        else:
            parts.setdefault(name, {})[kind] = record
    if cache is not None:
        for key in [key for key in cache if key not in seen]:
            del cache[key]

    for name, spec in specs.items():
        extra = parts.pop(name, {})
        listing.groups[name] = GroupState(
            group=spec,
            alert=extra.get("alert", AlertState()),
            scaling=extra.get("scaling", ScalingState()),
            nodes=dict(extra.get("nodes", {})),
            unreadable=dict(extra.get("unreadable", {})),
        )
    for name, extra in sorted(parts.items()):
        count = len(extra.get("nodes", {})) + len(extra.get("unreadable", {})) + len(
            [k for k in extra if k not in ("nodes", "unreadable")])
        listing.problems.append(
            "%s%s: %d record(s) without a readable group spec; group skipped"
            % (GROUP_PREFIX, name, count)
        )
    if log:
        for problem in listing.problems:
            LOG.warning("autoscale datastore: %s", problem)
    return listing


def parse_records(items: List[Any], cache: Optional[Dict[str, Tuple[Any, Any]]] = None
                  ) -> Tuple[Dict[str, GroupState], List[str]]:
    """``read_records`` as (groups, problems)."""
    listing = read_records(items, cache)
    return listing.groups, listing.problems


class Store:
    """Reads and writes the pack's records through an st2 datastore service."""

    def __init__(self, datastore: Any, page_size: int = DEFAULT_PAGE_SIZE,
                 history_ttl: int = DEFAULT_HISTORY_TTL, keep_parsed: bool = False) -> None:
        self.datastore = datastore
        self.page_size = page_size
        self.history_ttl = history_ttl
        # For a long-lived reader (the governor): records whose text did not change since the
        # last load_all are not decoded again.
        self._parsed: Optional[Dict[str, Tuple[Any, Any]]] = {} if keep_parsed else None

    # -- reading -----------------------------------------------------------------------------

    def load(self, log: bool = True) -> Listing:
        """Every group with its alert, scaling state and nodes, and what could not be read:
        one ``list_values`` call (more only past ``page_size`` records)."""
        return read_records(_list(self.datastore, GROUP_PREFIX, self.page_size),
                            cache=self._parsed, log=log)

    def load_all(self) -> Tuple[Dict[str, GroupState], List[str]]:
        """``load()`` as (groups, problems)."""
        listing = self.load()
        return listing.groups, listing.problems

    def load_group(self, name: str) -> Optional[GroupState]:
        """One group and its records, or None when it does not exist. Raises RecordError when
        its spec is unreadable, since an action on one group must not guess."""
        prefix = group_key(name)
        items = [
            item for item in _list(self.datastore, prefix, self.page_size)
            if item.name == prefix or item.name.startswith(prefix + ".")
        ]
        groups, problems = parse_records(items)
        if name not in groups:
            spec_problems = [p for p in problems if p.startswith(prefix + ":")]
            if spec_problems:
                raise RecordError(spec_problems[0])
            return None
        return groups[name]

    def history(self, group: str, limit: int = 20) -> List[Event]:
        """The newest ``limit`` events of a group, oldest first."""
        events = []
        for item in _list(self.datastore, history_prefix(group), self.page_size):
            try:
                events.append(Event.from_json(item.value))
            except RecordError as exc:
                LOG.warning("autoscale datastore: %s: %s; skipped", item.name, exc)
        events.sort(key=lambda event: event.at)
        return events[-limit:] if limit else events

    def _get(self, key: str) -> Any:
        return self.datastore.get_value(key, local=False)

    def _read(self, key: str, parse: Callable[[Any], R]) -> Optional[R]:
        """The record at ``key`` (None when there is none); RecordError naming the key."""
        raw = self._get(key)
        if raw is None:
            return None
        try:
            return parse(raw)
        except RecordError as exc:
            raise RecordError("%s: %s" % (key, exc)) from None

    def group_exists(self, name: str) -> bool:
        return self._get(group_key(name)) is not None

    def read_group(self, name: str) -> Optional[Group]:
        """A group's spec with one datastore read; None when there is none."""
        return self._read(group_key(name), Group.from_json)

    def node_exists(self, group: str, node: str) -> bool:
        return self._get(node_key(group, node)) is not None

    def read_node(self, group: str, node: str) -> Optional[Node]:
        return self._read(node_key(group, node), Node.from_json)

    def node_names(self, group: str) -> List[str]:
        """The names of a group's node records, read or not, sorted."""
        prefix = group_key(group) + ".node."
        return sorted(item.name[len(prefix):]
                      for item in _list(self.datastore, prefix, self.page_size))

    def read_alert(self, group: str) -> Optional[AlertState]:
        return self._read(alert_key(group), AlertState.from_json)

    def read_scaling(self, group: str) -> ScalingState:
        """A group's scaling state; the default (never scaled) when it has none yet."""
        return self._read(scaling_key(group), ScalingState.from_json) or ScalingState()

    def ssh_public_keys(self) -> List[str]:
        """The SSH keys new VMs accept; ValidationError saying how to set them when unset or
        not OpenSSH public keys."""
        return ssh_public_keys(self._get(SSH_KEY_NAME))

    def load_announced(self) -> Dict[str, str]:
        """The governor's announced records (key -> fingerprint); RecordError when the record
        cannot be read."""
        raw = self._get(ANNOUNCED_KEY)
        if raw is None:
            return {}
        try:
            data = json.loads(raw)
            version = data.get("v") if isinstance(data, dict) else None
            announced = data.get("announced") if type(version) is int and \
                version == SCHEMA_VERSION else None
            if not isinstance(announced, dict) or not all(
                    isinstance(k, str) and isinstance(v, str) for k, v in announced.items()):
                raise ValueError("not a mapping of keys to fingerprints")
            return dict(announced)
        except (ValueError, RecursionError) as exc:
            raise RecordError(str(exc)) from None

    # -- writing -----------------------------------------------------------------------------

    def _set(self, key: str, value: str, ttl: Optional[int] = None) -> None:
        self.datastore.set_value(key, value, ttl=ttl, local=False)

    def save_group(self, group: Group) -> None:
        self._set(group_key(group.name), group.to_json())

    def save_alert(self, group: str, alert: AlertState) -> None:
        self._set(alert_key(group), alert.to_json())

    def save_scaling(self, group: str, scaling: ScalingState) -> None:
        self._set(scaling_key(group), scaling.to_json())

    def save_node(self, node: Node) -> None:
        self._set(node_key(node.group, node.name), node.to_json())

    def reserve_node(self, node: Node) -> bool:
        """Write a new node's record unless its key is taken; False when it is, or when
        another writer took it at the same moment (the datastore has no compare-and-set: the
        record is read back)."""
        key = node_key(node.group, node.name)
        if self._get(key) is not None:
            return False
        text = node.to_json()
        self._set(key, text)
        return self._get(key) == text

    def delete_node(self, group: str, node: str) -> bool:
        """Delete a node's record; True when it is gone (st2's delete_value returns False for
        any failure, a missing key included: the key is read again)."""
        key = node_key(group, node)
        if self.datastore.delete_value(key, local=False):
            return True
        return self._get(key) is None

    def save_announced(self, announced: Dict[str, str]) -> None:
        self._set(ANNOUNCED_KEY, json.dumps({"v": SCHEMA_VERSION, "announced": announced},
                                            sort_keys=True))

    def record_event(self, event: Event) -> str:
        # Time first so keys sort chronologically; a random tail keeps two events of the same
        # millisecond apart.
        key = "%s%013d-%s" % (history_prefix(event.group), int(event.at * 1000),
                              uuid.uuid4().hex[:8])
        self._set(key, event.to_json(), ttl=self.history_ttl)
        return key

    def delete_group(self, name: str) -> List[str]:
        """Delete every key of a group, its history included; returns the deleted keys."""
        prefix = group_key(name)
        keys = [
            item.name for item in _list(self.datastore, prefix, self.page_size)
            if item.name == prefix or item.name.startswith(prefix + ".")
        ]
        keys += [item.name for item in _list(self.datastore, history_prefix(name), self.page_size)]
        # The spec last: if deletion stops half-way the group is still listed and can be
        # deleted again.
        keys.sort(key=lambda key: key == prefix)
        for key in keys:
            self.datastore.delete_value(key, local=False)
        return keys
