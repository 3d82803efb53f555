"""st2kv lookups in templates (st2common/services/keyvalues.py KeyValueLookup), shared by the
rules engine and the config loader."""

from __future__ import annotations

from typing import Any

from .datastore import _ciphertext


def is_jinja_expression(value: Any) -> bool:
    return isinstance(value, str) and ("{{" in value or "{%" in value)


class KeyValueLookup:
    """st2kv.system as templates see it: ``st2kv.system.a.b`` reads key ``a.b`` from the
    harness datastore; a missing key renders as ""; a secret renders as its ciphertext."""

    def __init__(self, datastore, key: str = ""):
        object.__setattr__(self, "_datastore", datastore)
        object.__setattr__(self, "_key", key)

    def __getattr__(self, name: str) -> KeyValueLookup:
        if name.startswith("__"):
            raise AttributeError(name)
        key = object.__getattribute__(self, "_key")
        return KeyValueLookup(object.__getattribute__(self, "_datastore"),
                              "%s.%s" % (key, name) if key else name)

    __getitem__ = __getattr__

    def __str__(self) -> str:
        datastore = object.__getattribute__(self, "_datastore")
        item = datastore.get(object.__getattribute__(self, "_key")) if datastore else None
        if item is None:
            return ""
        value, secret, _ = item
        return _ciphertext(value) if secret else value

    def __int__(self) -> int:
        return int(float(self))

    def __float__(self) -> float:
        return float(str(self))
