"""Backends: the systems the pack talks to, one type per module, chosen by the pack config.

Each role (a port, ports/) has a config section whose ``type`` key names the implementation;
a config without the key gets today's:

    role            section     type (default)
    compute         openstack   nova
    dns             dns         rfc2136
    load_balancer   haproxy     haproxy
    provisioner     chef        chef
    chat            slack       slack

A type is a module of this package, ``<type>.py``: what the pack knows of the system without
talking to it, cheap to import (no library that is not StackStorm's own): its settings, its
``TITLE``, and ``check_group(group)`` when the group has settings of its own that it checks
when the group is created. Its implementation of a role, ``new_<role>(config)``, is there or
in ``<type>_api.py``, imported only when the pack talks to the system: a library that does
not import (keystoneauth1, slack_sdk) costs what uses it, never the rest.

Adding a backend is adding its module(s) here and its keys to config.schema.yaml; nothing
else changes. A backend made elsewhere (a test's double) may also be registered in-process
(``register``). An unknown type is refused naming the key and the known types.
"""

from __future__ import annotations

import importlib
import re
from typing import Any, Callable, Dict, List, Mapping, NamedTuple, Optional

from ..domain.model import Group
from ..errors import ValidationError
from ..ports.chat import Chat
from ..ports.compute import Compute
from ..ports.dns import Dns
from ..ports.load_balancer import LoadBalancer
from ..ports.provisioner import Provisioner

Factory = Callable[[Mapping[str, Any]], Any]
_TYPE_NAME = re.compile(r"[a-z][a-z0-9_]{0,39}")


class Role(NamedTuple):
    section: str
    default: str
    words: str


# In the order check_group asks them.
ROLES: Dict[str, Role] = {
    "compute": Role("openstack", "nova", "compute"),
    "dns": Role("dns", "rfc2136", "DNS"),
    "load_balancer": Role("haproxy", "haproxy", "load balancer"),
    "provisioner": Role("chef", "chef", "provisioner"),
    "chat": Role("slack", "slack", "chat"),
}


class Registered(NamedTuple):
    factory: Factory
    check_group: Optional[Callable[[Group], None]] = None
    title: str = ""


_REGISTERED: Dict[str, Dict[str, Registered]] = {role: {} for role in ROLES}


def register(role: str, type_name: str, factory: Factory,
             check_group: Optional[Callable[[Group], None]] = None, title: str = "") -> None:
    """Make ``factory(config)`` the ``role`` implementation of type ``type_name`` in this
    process (before a module of the same name)."""
    _role(role)
    if not isinstance(type_name, str) or not _TYPE_NAME.fullmatch(type_name):
        raise ValueError("%r is not a backend type name (lower-case letters, digits, _)"
                         % (type_name,))
    _REGISTERED[role][type_name] = Registered(factory, check_group, title)


def unregister(role: str, type_name: str) -> None:
    _REGISTERED[_role(role)].pop(type_name, None)


def known(role: str) -> List[str]:
    """The types of ``role`` that ship with the pack or are registered (a module added here
    is found by its name too)."""
    return sorted({ROLES[_role(role)].default} | set(_REGISTERED[role]))


def _role(role: str) -> str:
    if role not in ROLES:
        raise ValueError("no backend role %r (roles: %s)" % (role, ", ".join(ROLES)))
    return role


def type_of(config: Optional[Mapping[str, Any]], role: str) -> str:
    """The type the config's section names for ``role`` (its default when unset)."""
    section, default, _ = ROLES[_role(role)]
    part = config.get(section) if isinstance(config, Mapping) else None
    value = part.get("type") if isinstance(part, Mapping) else None
    if value is None or value == "":
        return default
    if not isinstance(value, str) or not _TYPE_NAME.fullmatch(value):
        raise ValidationError("config key %s.type %r is not a backend type (lower-case "
                              "letters, digits and _; known: %s)"
                              % (section, value, ", ".join(known(role))))
    return value


def _unknown(role: str, type_name: str) -> ValidationError:
    section, _, words = ROLES[role]
    return ValidationError("config key %s.type: no %s type %r (known: %s)"
                           % (section, words, type_name, ", ".join(known(role))))


def _module(name: str) -> Optional[Any]:
    """This package's module ``name``, or None when there is none (a library it imports that
    does not import is raised, not taken for a missing type)."""
    full = "%s.%s" % (__name__, name)
    try:
        return importlib.import_module(full)
    except ModuleNotFoundError as exc:
        if exc.name == full:
            return None
        raise


def _face(config: Optional[Mapping[str, Any]], role: str) -> Any:
    """What the registry reads of the role's configured type: the registered entry or the
    type's module; ValidationError for an unknown type."""
    name = type_of(config, role)
    registered = _REGISTERED[role].get(name)
    if registered is not None:
        return registered
    module = _module(name)
    if module is None:
        raise _unknown(role, name)
    return module


def factory(config: Optional[Mapping[str, Any]], role: str) -> Factory:
    """``new_<role>`` of the configured type (``<type>.py``, else ``<type>_api.py``, which
    this imports with its library). ValidationError for an unknown type."""
    face = _face(config, role)
    if isinstance(face, Registered):
        return face.factory
    attribute = "new_" + role
    make = getattr(face, attribute, None)
    if make is None:
        api = _module(face.__name__.rsplit(".", 1)[1] + "_api")
        make = getattr(api, attribute, None) if api is not None else None
    if make is None:
        raise _unknown(role, type_of(config, role))
    return make


def title(config: Optional[Mapping[str, Any]], role: str) -> str:
    """How messages name the configured system of ``role`` ("Slack"), its type name when it
    does not say."""
    try:
        face = _face(config, role)
    except ValidationError:
        return ROLES[role].words
    return getattr(face, "title", "") or getattr(face, "SYSTEM", "") or getattr(
        face, "TITLE", "") or type_of(config, role)


def check_group(config: Optional[Mapping[str, Any]], group: Group) -> None:
    """Each configured backend's checks of the group's settings it uses (the load
    balancer's backend name, the provisioner's run list, the chat channel ...);
    ValidationError naming the field."""
    for role in ROLES:
        check = getattr(_face(config, role), "check_group", None)
        if check is not None:
            check(group)


def compute(config: Mapping[str, Any]) -> Compute:
    return factory(config, "compute")(config)


def provisioner(config: Mapping[str, Any]) -> Provisioner:
    return factory(config, "provisioner")(config)


def dns(config: Mapping[str, Any]) -> Dns:
    return factory(config, "dns")(config)


def load_balancer(config: Mapping[str, Any]) -> LoadBalancer:
    return factory(config, "load_balancer")(config)


def chat(config: Mapping[str, Any]) -> Chat:
    return factory(config, "chat")(config)
