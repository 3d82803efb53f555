"""The ``webhook`` section of the pack config, validated: where the webhook sensor listens,
which alert source its path receives, how senders authenticate, and its limits.

``WebhookSettings.from_config(config)`` refuses a bad section with ``ValidationError`` naming
the config key at fault (``config key webhook.<name>``), and refuses to build without the
secret(s) of the chosen ``auth_type`` unless ``webhook.allow_insecure`` is true.
``webhook.source`` names the alert source (``sources.load``; default ``newrelic``) whose
payloads ``webhook.path`` receives; ``webhook.paths`` adds more paths on the same listener,
each with its own source (``{"/st2/amhook": "alertmanager"}``), so that one sensor receives
New Relic and Alertmanager at once, with the same credentials, limits and dedup window. Each
source is configured from its own section of the pack config (``sources.configured``).
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass, field
from typing import Any, Dict, Mapping, Optional, Tuple

from .. import sources
from ..errors import ValidationError

AUTH_TYPES = ("bearer", "basic", "header")
HEALTH_SUFFIX = "/health"
REQUEST_TIMEOUT = 10.0
IDLE_TIMEOUT = 5.0
TIMEOUT_MIN = 1.0
TIMEOUT_MAX = 300.0
BODY_LIMIT_MIN = 1024
BODY_LIMIT_MAX = 16 * 1024 * 1024
PATHS_MAX = 10

# RFC 7230 token characters: what a header name may hold.
_HEADER_NAME = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]{1,64}")


def _key(name: str) -> str:
    return "config key webhook.%s" % name


def _string(section: Mapping[str, Any], name: str, default: str) -> str:
    value = section.get(name)
    if value is None:
        return default
    if not isinstance(value, str):
        raise ValidationError("%s must be a string, not %s" % (_key(name), type(value).__name__))
    if any(ch in value for ch in "\r\n\x00"):
        raise ValidationError("%s must be a single line" % _key(name))
    return value


def _health(path: str) -> str:
    return (path.rstrip("/") or "") + HEALTH_SUFFIX


def _path(value: Any, name: str) -> str:
    if not isinstance(value, str) or not value.startswith("/") or len(value) > 200 or any(
            ch in value for ch in "?# \t\r\n\x00"):
        raise ValidationError(
            "%s %r must be a URL path starting with '/', without '?', '#' or spaces"
            % (_key(name), value))
    return value.rstrip("/") or "/"


def _source(value: Any, name: str, config: Optional[Mapping[str, Any]]) -> Any:
    try:
        return sources.configured(value, config)
    except sources.UnknownSource as exc:
        raise ValidationError("%s: %s" % (_key(name), exc)) from None


def _paths(section: Mapping[str, Any], primary: str,
           config: Optional[Mapping[str, Any]]) -> Tuple[Tuple[Tuple[str, str], ...],
                                                          Dict[str, Any]]:
    """webhook.paths, checked: ((path, source), ...) and each path's configured source."""
    value = section.get("paths")
    if value is None:
        return (), {}
    if not isinstance(value, Mapping):
        raise ValidationError("%s must map URL paths to source names, e.g. "
                              '{"/st2/amhook": "alertmanager"}' % _key("paths"))
    if len(value) > PATHS_MAX:
        raise ValidationError("%s names more than %d paths" % (_key("paths"), PATHS_MAX))
    found = []
    readers = {}
    taken = {primary: "webhook.path", _health(primary): "webhook.path's health path"}
    for raw, source in value.items():
        path = _path(raw, "paths")
        if path in taken:
            raise ValidationError("%s %r is already %s" % (_key("paths"), raw, taken[path]))
        if _health(path) in taken:
            raise ValidationError("%s %r: its health path %s is already %s"
                                  % (_key("paths"), raw, _health(path), taken[_health(path)]))
        taken[path] = "webhook.paths %s" % path
        taken[_health(path)] = "the health path of webhook.paths %s" % path
        if not isinstance(source, str):
            raise ValidationError("%s.%s must be a source name, not %s"
                                  % (_key("paths"), path, type(source).__name__))
        readers[path] = _source(source, "paths.%s" % path, config)
        found.append((path, source))
    return tuple(found), readers


def _seconds(section: Mapping[str, Any], name: str, default: float) -> float:
    value = section.get(name)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, (int, float)) \
            or not TIMEOUT_MIN <= value <= TIMEOUT_MAX:
        raise ValidationError("%s must be a number of seconds from %g to %g, not %r"
                              % (_key(name), TIMEOUT_MIN, TIMEOUT_MAX, value))
    return float(value)


def _integer(section: Mapping[str, Any], name: str, default: int, minimum: int,
             maximum: int) -> int:
    value = section.get(name)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int) or not minimum <= value <= maximum:
        raise ValidationError("%s must be a whole number from %d to %d, not %r"
                              % (_key(name), minimum, maximum, value))
    return value


@dataclass(frozen=True)
class WebhookSettings:
    """The ``webhook`` section of the pack config, validated."""

    bind_address: str = "0.0.0.0"
    # 0 lets the system choose a free port (tests); the server reports the one it got.
    port: int = 10001
    path: str = "/st2/nrhook"
    # The alert source (sources.load) whose payloads the path receives.
    source: str = "newrelic"
    # More paths, each with the source whose payloads it receives (webhook.paths).
    paths: Tuple[Tuple[str, str], ...] = ()
    auth_type: str = "bearer"
    token: str = field(default="", repr=False)
    username: str = ""
    password: str = field(default="", repr=False)
    header_name: str = "X-Autoscale-Token"
    allow_insecure: bool = False
    body_limit: int = 65536
    dedup_window: int = 600
    request_timeout: float = REQUEST_TIMEOUT
    idle_timeout: float = IDLE_TIMEOUT
    # Each path's source with its settings from the pack config (from_config fills it; a path
    # missing here gets its source with default settings).
    readers: Mapping[str, Any] = field(default_factory=dict, compare=False, repr=False)

    @property
    def health_path(self) -> str:
        return _health(self.path)

    @property
    def receivers(self) -> Dict[str, str]:
        """Every path the webhook receives alerts on -> the name of its source."""
        return dict(((self.path, self.source),) + tuple(self.paths))

    @property
    def health_paths(self) -> Tuple[str, ...]:
        return tuple(_health(path) for path in self.receivers)

    def reader(self, path: str) -> Any:
        """The source (configured) whose payloads ``path`` receives."""
        found = self.readers.get(path)
        return found if found is not None else sources.configured(self.receivers[path])

    @property
    def has_secret(self) -> bool:
        if self.auth_type == "basic":
            return bool(self.username and self.password)
        return bool(self.token)

    @property
    def insecure(self) -> bool:
        """True when every request is accepted: no secret, and allow_insecure set. (No secret
        without allow_insecure, which from_config refuses, accepts nothing.)"""
        return not self.has_secret and self.allow_insecure

    @classmethod
    def from_config(cls, config: Optional[Mapping[str, Any]]) -> WebhookSettings:
        """Raises ValidationError naming the config key at fault."""
        section = (config or {}).get("webhook")
        if section is None:
            section = {}
        if not isinstance(section, Mapping):
            raise ValidationError("config key webhook must be a mapping")

        bind_address = _string(section, "bind_address", cls.bind_address).strip()
        if not bind_address:
            raise ValidationError("%s must not be empty" % _key("bind_address"))
        try:
            ipaddress.ip_address(bind_address)
        except ValueError:
            raise ValidationError(
                "%s %r is not an IP address (use 0.0.0.0, :: or one of the host's addresses)"
                % (_key("bind_address"), bind_address)
            ) from None

        path = _path(_string(section, "path", cls.path), "path")
        source = _string(section, "source", cls.source)
        readers = {path: _source(source, "source", config)}
        paths, more = _paths(section, path, config)
        readers.update(more)

        auth_type = _string(section, "auth_type", cls.auth_type)
        if auth_type not in AUTH_TYPES:
            raise ValidationError("%s must be one of %s, not %r"
                                  % (_key("auth_type"), ", ".join(AUTH_TYPES), auth_type))
        header_name = _string(section, "header_name", cls.header_name).strip()
        if not _HEADER_NAME.fullmatch(header_name):
            raise ValidationError("%s %r is not a valid HTTP header name"
                                  % (_key("header_name"), header_name))
        username = _string(section, "username", "")
        if ":" in username:
            raise ValidationError("%s must not contain ':' (HTTP basic auth)" % _key("username"))
        allow_insecure = section.get("allow_insecure", False)
        if not isinstance(allow_insecure, bool):
            raise ValidationError("%s must be true or false" % _key("allow_insecure"))

        settings = cls(
            bind_address=bind_address,
            port=_integer(section, "port", cls.port, 0, 65535),
            path=path,
            source=source,
            paths=paths,
            readers=readers,
            auth_type=auth_type,
            token=_string(section, "token", ""),
            username=username,
            password=_string(section, "password", ""),
            header_name=header_name,
            allow_insecure=allow_insecure,
            body_limit=_integer(section, "body_limit", cls.body_limit, BODY_LIMIT_MIN,
                                BODY_LIMIT_MAX),
            dedup_window=_integer(section, "dedup_window", cls.dedup_window, 0, 7 * 24 * 3600),
            request_timeout=_seconds(section, "request_timeout", cls.request_timeout),
            idle_timeout=_seconds(section, "idle_timeout", cls.idle_timeout),
        )
        if settings.idle_timeout > settings.request_timeout:
            raise ValidationError(
                "%s (%g s) must not exceed webhook.request_timeout (%g s): a request's first "
                "byte is awaited within both" % (_key("idle_timeout"), settings.idle_timeout,
                                                settings.request_timeout))
        if not settings.has_secret and not allow_insecure:
            if auth_type == "basic":
                missing = [_key(k) for k in ("username", "password") if not getattr(settings, k)]
                what = "%s %s empty" % (" and ".join(missing), "are" if len(missing) > 1 else "is")
                fix = "set %s" % ("them" if len(missing) > 1 else "it")
            else:
                what = "%s is empty" % _key("token")
                fix = 'set it (e.g. to "{{ st2kv.system.newrelic_webhook_token }}")'
            raise ValidationError(
                "%s, so the webhook (auth_type %s) would accept anyone's alerts: %s, or set "
                "webhook.allow_insecure: true to accept unauthenticated requests (never in "
                "production)" % (what, auth_type, fix)
            )
        return settings

