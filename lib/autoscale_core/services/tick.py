"""What a governor tick dispatches and reports: the triggers, the history kinds, and the
``TickReport`` (shared by services/governor.py and services/janitor.py)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Dict, List, NamedTuple

from ..domain.model import Event
from ..domain.policy import Action, ScaleDecision

PACK = "autoscale"
TRIGGERS = {
    Action.SCALE_OUT: PACK + ".scale_out",
    Action.SCALE_IN: PACK + ".scale_in",
    Action.REPAIR: PACK + ".repair",
}
ORPHAN_TRIGGER = PACK + ".orphan"
STUCK_TRIGGER = PACK + ".stuck_node"

# History event kinds written by the governor.
DECISION = "decision"
ALERT_EXPIRED = "alert_expired"
ORPHAN = "orphan"
NODE_STUCK = "node_stuck"


class Dispatched(NamedTuple):
    trigger: str
    payload: Dict[str, Any]


@dataclass
class Orphan:
    """A VM tagged for a group that no node record knows, as the governor remembers it."""

    server_id: str
    server_name: str
    group: str
    node: str
    status: str
    first_seen: float
    group_exists: bool
    # Why it is not dispatched ("" when it may be): paused, dry run, invalid tag.
    held: str = ""
    dispatched_at: float = 0.0


@dataclass
class TickReport:
    """What one tick did. ``decisions`` are the policy's, exactly as ``policy.decide`` returned
    them; ``dispatched`` what went to st2 (a dry run's decision is not there); ``recorded`` the
    history events written; ``problems`` unreadable records, per-group errors and a skipped
    orphan scan; ``orphans`` the orphans the scan found (empty when no scan ran)."""

    at: float
    decisions: List[ScaleDecision] = field(default_factory=list)
    dispatched: List[Dispatched] = field(default_factory=list)
    recorded: List[Event] = field(default_factory=list)
    problems: List[str] = field(default_factory=list)
    orphans: List[Orphan] = field(default_factory=list)
    # "" when no scan was due, "ok", or why it was skipped.
    orphan_scan: str = ""
