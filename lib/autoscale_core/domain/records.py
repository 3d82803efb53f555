"""Records as versioned JSON: how every record the pack stores is written and read back.

Each record carries a schema version ``v`` so that a newer record is refused with a clear error
instead of being misread by an older pack. A record class declares each field once, with its
type, its default and the check its stored value must pass (``stored``); reading
(``read_record``) refuses an unknown field, checks every field, types included (see
fields.py), and gives an absent field its default (records written before the field existed).
Anything else is a ``RecordError`` naming the field.
"""

from __future__ import annotations

import json
from dataclasses import MISSING, asdict, field, fields
from typing import Any, Callable, Dict, Tuple

from ..errors import RecordError, ValidationError
from .fields import Check, brief, check_fields

SCHEMA_VERSION = 1


def stored(check: Check, default: Any = MISSING,
           factory: Callable[[], Any] = MISSING) -> Any:  # type: ignore[assignment]
    """A dataclass field whose stored value ``check`` must pass (see ``read_record``)."""
    metadata = {"check": check}
    if factory is not MISSING:
        return field(default_factory=factory, metadata=metadata)
    if default is not MISSING:
        return field(default=default, metadata=metadata)
    return field(metadata=metadata)


_CHECKS: Dict[Any, Dict[str, Check]] = {}


def checks_of(cls: Any) -> Dict[str, Check]:
    """Field name -> the check of its stored value, from the class's ``stored`` fields; once
    per class (the governor reads every record of every group each tick)."""
    checks = _CHECKS.get(cls)
    if checks is None:
        checks = _CHECKS[cls] = {f.name: f.metadata["check"] for f in fields(cls)}
    return checks


def defaults_of(cls: Any) -> Dict[str, Any]:
    """Field name -> its default value (a fresh one for list and dict fields)."""
    values = {}
    for item in fields(cls):
        if item.default is not MISSING:
            values[item.name] = item.default
        elif item.default_factory is not MISSING:  # type: ignore[misc]
            values[item.name] = item.default_factory()  # type: ignore[misc]
    return values


def _check_version(data: Any, kind: str) -> Dict[str, Any]:
    if not isinstance(data, dict):
        raise RecordError("%s record is not a JSON object" % kind)
    version = data.get("v")
    # type(): True == 1 and 1.0 == 1 in Python, but neither is version 1.
    if type(version) is not int or version != SCHEMA_VERSION:
        if type(version) is int and version > SCHEMA_VERSION:
            raise RecordError(
                "%s record has schema version %d, newer than this pack understands (%d); "
                "upgrade the autoscale pack" % (kind, version, SCHEMA_VERSION)
            )
        raise RecordError("%s record has unknown schema version %s" % (kind, brief(version)))
    return data


def decode(text: Any, kind: str) -> Dict[str, Any]:
    """A record's JSON (or an already decoded object) with its version checked."""
    if isinstance(text, (bytes, str)):
        try:
            data = json.loads(text)
        except (ValueError, RecursionError) as exc:  # RecursionError: "[[[[…" nested too deep
            raise RecordError("%s record is not valid JSON: %s"
                              % (kind, brief(str(exc), 200))) from None
    else:
        data = text
    return _check_version(data, kind)


def encode(record: Any) -> str:
    data = {"v": SCHEMA_VERSION}
    data.update(asdict(record))
    return json.dumps(data, sort_keys=True, separators=(",", ":"))


def known_fields(cls: Any, data: Dict[str, Any], kind: str) -> Dict[str, Any]:
    """``data`` without its version; RecordError for a field the class does not have."""
    unknown = data.keys() - checks_of(cls).keys() - {"v"}
    if unknown:
        raise RecordError("%s record has unknown field(s): %s" % (kind, ", ".join(sorted(unknown))))
    values = dict(data)
    values.pop("v", None)
    return values


def read_record(cls: Any, text: Any, kind: str, required: Tuple[str, ...] = ()) -> Any:
    """The record of class ``cls`` stored as ``text``; RecordError naming what is wrong."""
    data = known_fields(cls, decode(text, kind), kind)
    try:
        check_fields(checks_of(cls), data, required)
        return cls(**data)
    except (ValidationError, TypeError) as exc:
        raise RecordError("%s record is invalid: %s" % (kind, exc)) from None
