"""Alert deliveries: ``record_alert`` (the ``asg_alert_record`` action) reads a group's stored
alert state, applies one delivery (``domain.alert_state.apply``, pure), writes the record back
only when it changed, and records the delivery in the group's history. The datastore has no
compare-and-set: two deliveries for one group at the same moment are serialised by the
``asg_alert_record`` action's concurrency policy (policies/).
"""

from __future__ import annotations

from typing import Any, Dict, Mapping, Optional

from ..config import policy_settings
from ..domain.alert_state import Delivery, apply
from ..domain.alerts import CRITICAL, OPEN
from ..domain.model import AlertState, Event
from ..domain.names import validate_group_name
from ..errors import RecordError
from ..store import Store
from .common import now_or, unknown_group


def record_alert(store: Store, asg: Any, state: Any, severity: Any, issue_id: Any,
                 title: Any = "", config: Optional[Mapping[str, Any]] = None,
                 now: Optional[float] = None) -> Dict[str, Any]:
    """Apply one delivery to a group's stored alert state; record it in the history.

    Returns ``{asg, changed, announce, cause, level, previous_level, scale_now}``;
    ``scale_now`` is true for an open critical delivery, after which the caller asks the
    policy whether to add capacity at once.
    """
    now = now_or(now)
    settings = policy_settings(config)
    name = validate_group_name(asg)
    delivery = Delivery(state=state, severity=severity, issue_id=str(issue_id or ""),
                        title=" ".join(str(title or "").split()))
    if not store.group_exists(name):
        raise unknown_group(name)
    try:
        current = store.read_alert(name) or AlertState()
    except RecordError:
        # An unreadable alert record must not stop alert handling: start again from this
        # delivery (the policy treats an unreadable record the same way: skipped).
        current = AlertState()
    change = apply(current, delivery, now, settings.alert_max_age)
    if change.changed:
        store.save_alert(name, change.alert)
    store.record_event(Event(group=name, at=now, kind=change.event, cause=change.cause))
    return {
        "asg": name,
        "changed": change.changed,
        "announce": change.announce,
        "cause": change.cause,
        "level": change.alert.level,
        "previous_level": current.level,
        "open_issues": sorted(change.alert.issues),
        "scale_now": delivery.state == OPEN and delivery.severity == CRITICAL,
    }

