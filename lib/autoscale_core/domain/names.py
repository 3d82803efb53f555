"""Names, validated once, on entry: a group or node name becomes a datastore key, a DNS name
and a load balancer server name, where two spellings of one name would be a trap. So names are
DNS labels (RFC 1035 / RFC 1123 LDH rule), lowercase only."""

from __future__ import annotations

import re
import secrets
from typing import Any, Callable, Iterable, Optional

from ..errors import Refusal, ValidationError

_LABEL_RE = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?")

LABEL_MAX = 63
NODE_SUFFIX_LEN = 6
# A node is named "<group>-<6 characters>", which must itself be a DNS label.
GROUP_NAME_MAX = LABEL_MAX - 1 - NODE_SUFFIX_LEN
# Tries at a node name no other node has before giving up (2**24 names per group).
NAME_TRIES = 20


def validate_label(value: Any, what: str = "name", max_len: int = LABEL_MAX) -> str:
    if not isinstance(value, str):
        raise ValidationError("%s must be a string, not %s" % (what, type(value).__name__))
    if not value:
        raise ValidationError("%s must not be empty" % what)
    if len(value) > max_len:
        raise ValidationError(
            "%s %r is %d characters long; the limit is %d" % (what, value, len(value), max_len)
        )
    if not _LABEL_RE.fullmatch(value):
        raise ValidationError(
            "%s %r is not a DNS label: use lowercase letters, digits and '-', "
            "starting and ending with a letter or digit" % (what, value)
        )
    return value


def validate_group_name(value: Any) -> str:
    return validate_label(value, "group name", GROUP_NAME_MAX)


def validate_node_name(value: Any) -> str:
    return validate_label(value, "node name")


def validate_domain(value: Any, what: str = "domain") -> str:
    """A DNS name of one or more labels; case is ignored and a trailing dot is dropped."""
    if not isinstance(value, str):
        raise ValidationError("%s must be a string, not %s" % (what, type(value).__name__))
    name = value.lower()
    if name.endswith("."):
        name = name[:-1]
    if not name:
        raise ValidationError("%s must not be empty" % what)
    if len(name) > 253:
        raise ValidationError("%s %r is longer than 253 characters" % (what, value))
    for label in name.split("."):
        if not label or len(label) > LABEL_MAX or not _LABEL_RE.fullmatch(label):
            raise ValidationError(
                "%s %r is not a valid DNS name (label %r): use labels of letters, digits "
                "and '-', separated by dots" % (what, value, label)
            )
    return name


def new_node_name(group: str, existing: Iterable[str],
                  token: Optional[Callable[[], str]] = None) -> str:
    """``<group>-<6 lowercase hex>``, different from every name in ``existing``.

    ``token`` returns the 6 characters (default: 3 random bytes from ``secrets``).
    """
    validate_group_name(group)
    token = token or (lambda: secrets.token_hex(3))
    taken = set(existing)
    for _ in range(NAME_TRIES):
        name = "%s-%s" % (group, token())
        if name not in taken:
            return validate_node_name(name)
    raise Refusal("could not find a free node name for group %s in %d tries"
                  % (group, NAME_TRIES))
