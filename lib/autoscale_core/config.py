"""The pack config (``/opt/stackstorm/configs/autoscale.yaml``), parsed one way.

Every key is read through the helpers here: a section is a mapping or absent, a number is a
whole number (never a bool) of at least its minimum, a string is a non-empty string. A missing
or malformed key is refused with a ValidationError naming the key in full
(``config key governor.backoff_max ...``), before anything acts.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Dict, Iterable, List, Mapping, Optional, Tuple

from .domain.settings import PolicySettings
from .errors import ValidationError
from .store import DEFAULT_HISTORY_TTL, DEFAULT_PAGE_SIZE

# Every ``secret: true`` key of config.schema.yaml (a test keeps the two equal).
SECRET_KEYS: Tuple[Tuple[str, str], ...] = (
    ("openstack", "password"),
    ("openstack", "application_credential_secret"),
    ("chef", "client_key"),
    ("chef", "validation_key"),
    ("dns", "tsig_secret"),
    ("slack", "token"),
    ("webhook", "token"),
    ("webhook", "password"),
)


def section(config: Optional[Mapping[str, Any]], name: str) -> Mapping[str, Any]:
    """An optional section: {} when absent, refused when it is not a mapping."""
    part = config.get(name) if config else None
    if part is None:
        return {}
    if not isinstance(part, Mapping):
        raise ValidationError("config key %s must be a mapping" % name)
    return part


def backend_section(config: Optional[Mapping[str, Any]], name: str,
                    required: Iterable[str] = ()) -> Mapping[str, Any]:
    """A backend's config section, refusing a missing section or required key by name."""
    part = config.get(name) if config else None
    if not isinstance(part, Mapping):
        raise ValidationError("config key %s is missing: see config.schema.yaml" % name)
    for key in required:
        if not part.get(key):
            raise ValidationError("config key %s.%s is missing" % (name, key))
    return part


def number(part: Mapping[str, Any], prefix: str, key: str, default: float,
           minimum: float, integer: bool = True) -> Any:
    """``part[key]`` (``default`` when absent): a whole number (or any number with
    ``integer`` false) of at least ``minimum``; the error names ``prefix.key``."""
    value = part.get(key, default)
    ok = isinstance(value, int) if integer else isinstance(value, (int, float))
    if isinstance(value, bool) or not ok or value < minimum:
        raise ValidationError(
            "config key %s.%s must be a %s of at least %s, not %r"
            % (prefix, key, "whole number" if integer else "number", minimum, value)
        )
    return value


def policy_settings(config: Optional[Mapping[str, Any]]) -> PolicySettings:
    """The governor's policy settings from the ``governor`` section."""
    governor = section(config, "governor")
    values: Dict[str, Any] = {}
    for key, minimum in (
        ("global_max_nodes", 0),
        ("warning_step", 1),
        ("alert_max_age", 60),
        ("failure_threshold", 1),
        ("backoff_initial", 0),
        ("backoff_max", 0),
    ):
        values[key] = number(governor, "governor", key, getattr(PolicySettings, key), minimum)
    if values["backoff_max"] < values["backoff_initial"]:
        raise ValidationError(
            "config key governor.backoff_max (%d) must not be smaller than "
            "governor.backoff_initial (%d)" % (values["backoff_max"], values["backoff_initial"])
        )
    return PolicySettings(**values)


def group_defaults(config: Optional[Mapping[str, Any]]) -> Dict[str, Any]:
    """The config's per-group defaults, applied under every ``asg create``."""
    return dict(section(config, "group_defaults"))


def governor_interval(config: Optional[Mapping[str, Any]]) -> int:
    return number(section(config, "governor"), "governor", "interval", 30, 5)


def store_settings(config: Optional[Mapping[str, Any]]) -> Tuple[int, int]:
    """(page size, history TTL) for a Store, from the ``governor`` section."""
    governor = section(config, "governor")
    return (number(governor, "governor", "datastore_page_size", DEFAULT_PAGE_SIZE, 1),
            number(governor, "governor", "history_ttl", DEFAULT_HISTORY_TTL, 1))


@dataclass(frozen=True)
class GovernorSettings:
    """The config's ``governor`` section, checked once when the sensor starts."""

    # Seconds between ticks (the sensor's poll interval).
    interval: int = 30
    # A dispatched action with no visible effect after this long is dispatched again.
    dispatch_timeout: int = 300
    # Seconds between two orphan scans; 0 turns them off.
    orphan_scan_interval: int = 300
    # An orphan VM is cleaned up once it has been seen this long.
    orphan_grace: int = 900
    # A node still being added this long after its last step belongs to a workflow that died
    # (or a reservation whose expand died): it is removed. Longer than a boot plus a Chef run.
    stuck_after: int = 3600
    page_size: int = DEFAULT_PAGE_SIZE
    history_ttl: int = DEFAULT_HISTORY_TTL
    policy: PolicySettings = field(default_factory=PolicySettings)

    @classmethod
    def from_config(cls, config: Optional[Mapping[str, Any]]) -> GovernorSettings:
        """Raises ValidationError naming the key (``config key governor.orphan_grace ...``)."""
        config = config or {}
        governor = section(config, "governor")

        def whole(key: str, default: int, minimum: int) -> int:
            return number(governor, "governor", key, default, minimum)

        return cls(
            interval=governor_interval(config),
            dispatch_timeout=whole("dispatch_timeout", cls.dispatch_timeout, 1),
            orphan_scan_interval=whole("orphan_scan_interval", cls.orphan_scan_interval, 0),
            orphan_grace=whole("orphan_grace", cls.orphan_grace, 0),
            stuck_after=whole("stuck_after", cls.stuck_after, 60),
            page_size=whole("datastore_page_size", DEFAULT_PAGE_SIZE, 1),
            history_ttl=whole("history_ttl", DEFAULT_HISTORY_TTL, 1),
            policy=policy_settings(config),
        )


def secret_values(config: Optional[Mapping[str, Any]]) -> List[str]:
    """The values of the config's secret keys (and each line of a multi-line one, such as a
    PEM key, so that a message quoting part of it is masked too)."""
    found: List[str] = []
    for section, key in SECRET_KEYS:
        part = config.get(section) if isinstance(config, Mapping) else None
        value = part.get(key) if isinstance(part, Mapping) else None
        if isinstance(value, str) and value:
            found.append(value)
            found.extend(line.strip() for line in value.splitlines() if len(line.strip()) >= 8)
    return sorted(set(found), key=len, reverse=True)
