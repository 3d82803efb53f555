"""The pack config an action or sensor gets, as st2's ContentPackConfigLoader builds it.

st2common/st2common/util/config_loader.py (v3.9.0), at every action execution and sensor
start:

1. ``_assign_dynamic_config_values``: every string value holding ``{{`` or ``{%`` (nested
   objects and arrays included) is rendered with ``st2kv.system`` / ``st2kv.user`` in a
   sandboxed Jinja environment with StrictUndefined. The lookup gives the key's stored value
   as is (the ciphertext of a key set with ``--encrypt``); an empty result becomes None. For
   a ``secret: true`` schema item the rendered value is then decrypted
   (``deserialize_key_value``): a key stored WITHOUT ``--encrypt`` fails there with
   ``binascii.Error: Odd-length string`` (or "Non-hexadecimal digit found"), and every
   action and sensor of the pack fails with it.
2. ``_assign_default_values``, after rendering (defaults are never rendered): a missing key
   takes its schema default; an object (or array) item whose schema has properties (items)
   is created as ``{}`` (``[]``) when absent or falsy, even without a default, and filled
   recursively.

A failure here happens before the action's code runs: st2 fails the execution with the
error, not with the action's result.
"""

from __future__ import annotations

import copy
from typing import Any, Dict, Mapping, Optional

import jinja2
import jinja2.sandbox

from .datastore import Datastore, symmetric_decrypt
from .keyvalue import KeyValueLookup, is_jinja_expression

_ENV = jinja2.sandbox.SandboxedEnvironment(undefined=jinja2.StrictUndefined,
                                           trim_blocks=True, lstrip_blocks=True)


class ConfigRenderError(RuntimeError):
    """st2's RuntimeError for a value that does not render."""


def _properties(schema: Mapping[str, Any]) -> Dict[str, Any]:
    properties = schema.get("properties") if isinstance(schema, Mapping) else None
    return dict(properties) if isinstance(properties, Mapping) else {}


def _item_schema(schema: Mapping[str, Any], key: str) -> Dict[str, Any]:
    """_get_object_properties_schema, reduced to what config.schema.yaml uses: a named
    property, else additionalProperties when it is a schema."""
    item = _properties(schema).get(key)
    if isinstance(item, Mapping):
        return dict(item)
    extra = schema.get("additionalProperties") if isinstance(schema, Mapping) else None
    return dict(extra) if isinstance(extra, Mapping) else {}


class ContentPackConfigLoader:
    def __init__(self, pack: str, schema: Mapping[str, Any], datastore: Datastore,
                 user: str = "stanley"):
        # ``schema`` is config.schema.yaml as a whole: {key: item schema}.
        self.pack = pack
        self.schema = {"type": "object", "properties": dict(schema or {})}
        self.datastore = datastore
        self.user = user

    def get_config(self, values: Optional[Mapping[str, Any]]) -> Dict[str, Any]:
        config = copy.deepcopy(dict(values or {}))
        self._assign_dynamic_config_values(self.schema, config, ())
        self._assign_default_values(self.schema, config)
        return config

    # -- 1. render -------------------------------------------------------------------------

    def _assign_dynamic_config_values(self, schema, config, path) -> None:
        if isinstance(config, dict):
            entries = list(config.items())
            item_of = lambda key: _item_schema(schema, key)  # noqa: E731
        else:
            items = schema.get("items") if isinstance(schema, Mapping) else None
            entries = list(enumerate(config))
            item_of = lambda _: dict(items) if isinstance(items, Mapping) else {}  # noqa: E731
        for key, value in entries:
            item = item_of(key)
            if isinstance(value, (dict, list)):
                self._assign_dynamic_config_values(item, value, path + (str(key),))
            elif is_jinja_expression(value):
                config[key] = self._render(".".join(path + (str(key),)), value, item)

    def _render(self, key: str, value: str, item: Mapping[str, Any]) -> Any:
        context = {"st2kv": {"system": KeyValueLookup(self.datastore),
                             "user": KeyValueLookup(None)}}
        try:
            rendered = _ENV.from_string(value).render(context)
        except Exception as exc:
            raise ConfigRenderError(
                'Failed to render dynamic configuration value for key "%s" with value "%s" '
                'for pack "%s" config: %s %s ' % (key, value, self.pack, type(exc), exc)) \
                from None
        if not rendered:
            return None
        if item.get("secret", False):
            # Outside the try above, as in st2: the decrypt error surfaces as it is.
            return symmetric_decrypt(rendered)
        return rendered

    # -- 2. defaults -----------------------------------------------------------------------

    def _assign_default_values(self, schema, config) -> None:
        if isinstance(config, dict):
            keys = list(_properties(schema))
        else:
            return
        for key in keys:
            item = _item_schema(schema, key)
            if "default" in item and key not in config:
                config[key] = copy.deepcopy(item["default"])
            kind = item.get("type")
            structured = item.get("properties") or item.get("patternProperties") or \
                item.get("additionalProperties")
            if kind == "object" and structured:
                if not config.get(key):
                    config[key] = {}
                self._assign_default_values(item, config[key])
            elif kind == "array" and (item.get("items") or item.get("additionalItems")):
                if not config.get(key):
                    config[key] = []
                items = item.get("items")
                if isinstance(items, Mapping):
                    for element in config[key]:
                        self._assign_default_values(dict(items), element)
