"""Pack-wide settings read from the pack config (``/opt/stackstorm/configs/autoscale.yaml``).

A missing or malformed key is refused here with the key's full name, before anything acts.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Dict, Iterable, Mapping

from .model import ValidationError


def backend_section(config: Mapping[str, Any], name: str,
                    required: Iterable[str] = ()) -> Mapping[str, Any]:
    """A backend's config section, refusing a missing section or required key by name."""
    section = config.get(name) if config else None
    if not isinstance(section, Mapping):
        raise ValidationError("config key %s is missing: see config.schema.yaml" % name)
    for key in required:
        if not section.get(key):
            raise ValidationError("config key %s.%s is missing" % (name, key))
    return section


def _section(config: Mapping[str, Any], name: str) -> Mapping[str, Any]:
    section = config.get(name) if config else None
    if section is None:
        return {}
    if not isinstance(section, Mapping):
        raise ValidationError("config key %s must be a mapping" % name)
    return section


def _number(section: Mapping[str, Any], prefix: str, key: str, default: float,
            minimum: float, integer: bool = True) -> Any:
    value = section.get(key, default)
    ok = isinstance(value, int) if integer else isinstance(value, (int, float))
    if isinstance(value, bool) or not ok or value < minimum:
        raise ValidationError(
            "config key %s.%s must be a %s of at least %s, not %r"
            % (prefix, key, "whole number" if integer else "number", minimum, value)
        )
    return value


@dataclass(frozen=True)
class PolicySettings:
    """What the governor's policy needs besides the groups themselves."""

    # Across every group: no scale-out takes the total number of nodes above this.
    global_max_nodes: int = 100
    # Nodes added per scale-out cooldown while a group has a warning (critical: expand_by).
    warning_step: int = 1
    # An alert with no update for this long is treated as over (New Relic may never close it).
    alert_max_age: int = 6 * 3600
    # After this many failed node additions in a row, the group backs off ...
    failure_threshold: int = 3
    # ... for this long, doubling with every further failure up to backoff_max.
    backoff_initial: int = 300
    backoff_max: int = 1800

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> PolicySettings:
        governor = _section(config, "governor")
        values: Dict[str, Any] = {}
        for key, minimum in (
            ("global_max_nodes", 0),
            ("warning_step", 1),
            ("alert_max_age", 60),
            ("failure_threshold", 1),
            ("backoff_initial", 0),
            ("backoff_max", 0),
        ):
            values[key] = _number(governor, "governor", key, getattr(cls, key), minimum)
        if values["backoff_max"] < values["backoff_initial"]:
            raise ValidationError(
                "config key governor.backoff_max (%d) must not be smaller than "
                "governor.backoff_initial (%d)" % (values["backoff_max"], values["backoff_initial"])
            )
        return cls(**values)


def group_defaults(config: Mapping[str, Any]) -> Dict[str, Any]:
    """The config's per-group defaults, applied under every ``asg create``."""
    return dict(_section(config, "group_defaults"))


def governor_interval(config: Mapping[str, Any]) -> int:
    return _number(_section(config, "governor"), "governor", "interval", 30, 5)
