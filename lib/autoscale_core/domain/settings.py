"""What the governor's policy needs besides the groups themselves (the pack config's
``governor`` section, read by config.py)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class PolicySettings:
    """What the governor's policy needs besides the groups themselves."""

    # Across every group: no scale-out takes the total number of nodes above this.
    global_max_nodes: int = 100
    # Nodes added per scale-out cooldown while a group has a warning (critical: expand_by).
    warning_step: int = 1
    # An alert with no update for this long is treated as over (monitoring may never close it).
    alert_max_age: int = 6 * 3600
    # After this many failed node additions in a row, the group backs off ...
    failure_threshold: int = 3
    # ... for this long, doubling with every further failure up to backoff_max.
    backoff_initial: int = 300
    backoff_max: int = 1800
    # Node health (health.py): a node the load balancer has had DOWN for longer than this,
    # counted from its last good check, is unhealthy and replaced ...
    unhealthy_after: int = 120
    # ... but never during its first startup_grace seconds in service.
    startup_grace: int = 300
    # More than this share (percent) of a group's nodes in service unhealthy at once: replace
    # nothing (a shared dependency is likely down; replacing would make it worse).
    max_unhealthy_percent: int = 45
    # A replacement may take a group this many nodes above max_size (capacity first).
    replace_surge: int = 1
