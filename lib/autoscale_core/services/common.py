"""What the services share: reading a group or a node for an action, and the refusals an
unknown one gives."""

from __future__ import annotations

import time
from dataclasses import asdict
from typing import Any, Dict, Optional

from ..domain.model import Group, GroupState, Node
from ..domain.names import validate_group_name
from ..errors import RecordError, Refusal, hinted
from ..store import Store

# A cause is one line of chat: longer text (a traceback in an error) is cut.
CAUSE_MAX = 1000


def now_or(now: Optional[float]) -> float:
    return time.time() if now is None else float(now)


def clean_cause(cause: Any) -> str:
    """A cause as one line of at most CAUSE_MAX characters (error texts may hold newlines)."""
    if cause is None:
        return ""
    text = " ".join(str(cause).split())
    if len(text) > CAUSE_MAX:
        text = text[:CAUSE_MAX - 1] + "…"
    return text


def unknown_group(name: str) -> Refusal:
    return hinted(Refusal("no autoscaling group named %r" % name), "list")


def unknown_node(group: str, node: str) -> Refusal:
    return hinted(Refusal("group %s has no node named %s" % (group, node)), "status", asg=group)


def group_dict(group: Group) -> Dict[str, Any]:
    """A group's spec as the actions return it: every Group field."""
    return asdict(group)


def node_dict(node: Node) -> Dict[str, Any]:
    return asdict(node)


def load_spec(store: Store, name: str) -> Group:
    """One group's spec with one datastore read; Refusal when there is none."""
    try:
        spec = store.read_group(name)
    except RecordError as exc:
        raise hinted(RecordError(str(exc)), "delete_group", name=name) from None
    if spec is None:
        raise unknown_group(name)
    return spec


def load_group(store: Store, name: str) -> GroupState:
    """One group with all its records; Refusal when there is none."""
    validate_group_name(name)
    try:
        state = store.load_group(name)
    except RecordError as exc:
        raise hinted(RecordError(str(exc)), "delete_group", name=name) from None
    if state is None:
        raise unknown_group(name)
    return state


def load_node(store: Store, group: str, node: str) -> Node:
    record = store.read_node(group, node)
    if record is None:
        raise unknown_node(group, node)
    return record
