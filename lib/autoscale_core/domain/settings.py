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
