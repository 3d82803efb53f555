"""JSON Schema validation the way st2common.util.schema does it (st2 3.9, jsonschema 3.2).

st2's ``CustomValidator`` is Draft 4 except for ``properties``, which is Draft 3's: a property's
own ``required: true`` is enforced. Its meta-schema wants ``required`` to be a boolean, and
``jsonschema.validate`` checks the schema first, so a schema with a Draft 4 ``required: [...]``
list fails every validation (for a trigger payload: every dispatch is dropped). ``minimum`` and
``maximum`` ignore ``exclusiveMinimum``/``exclusiveMaximum``. Defaults are filled in before
validation (also over an explicit null), and a property that is optional or defaults to None
also accepts null, nested objects and array items included. The error raised is jsonschema's
best match, as ``jsonschema.validate`` raises it.
"""

from __future__ import annotations

import copy

from jsonschema import Draft3Validator, Draft4Validator, Draft7Validator, validators
from jsonschema.exceptions import SchemaError, ValidationError, best_match

_DRAFT4_KEYWORDS = (
    "$ref additionalItems additionalProperties allOf anyOf dependencies enum format items "
    "maxItems maxLength maxProperties minItems minLength minProperties multipleOf not oneOf "
    "pattern patternProperties type uniqueItems"
).split()

CustomValidator = validators.create(
    meta_schema=Draft4Validator.META_SCHEMA,
    validators=dict(
        {name: Draft4Validator.VALIDATORS[name] for name in _DRAFT4_KEYWORDS},
        properties=Draft3Validator.VALIDATORS["properties"],
        minimum=Draft7Validator.VALIDATORS["minimum"],
        maximum=Draft7Validator.VALIDATORS["maximum"],
    ),
    version="st2-custom",
    type_checker=Draft4Validator.TYPE_CHECKER,
)


def _types(schema):
    kind = schema.get("type")
    return kind if isinstance(kind, list) else [kind]


def _is_null_alternative(schema):
    return isinstance(schema, dict) and "null" in _types(schema)


def check_schema(schema, where="schema"):
    """Raise SchemaError where st2's meta-schema would: ``required`` must be a boolean."""
    if isinstance(schema, list):
        for index, item in enumerate(schema):
            check_schema(item, "%s[%d]" % (where, index))
        return
    if not isinstance(schema, dict):
        return
    if "required" in schema and not isinstance(schema["required"], bool):
        raise SchemaError("%s.required: %r is not of type 'boolean'" % (where, schema["required"]))
    for key in ("properties", "patternProperties"):
        for name, sub in (schema.get(key) or {}).items():
            check_schema(sub, "%s.%s.%s" % (where, key, name))
    for key in ("items", "additionalItems", "additionalProperties", "not", "anyOf", "oneOf",
                "allOf"):
        if isinstance(schema.get(key), (dict, list)):
            check_schema(schema[key], "%s.%s" % (where, key))


def assign_defaults(instance, schema):
    """Fill in ``default`` values, recursively through objects and array items, as st2 does:
    a missing or null value takes the default."""
    if isinstance(instance, dict) and "object" in _types(schema):
        for name, prop in (schema.get("properties") or {}).items():
            if not isinstance(prop, dict):
                continue
            if instance.get(name) is None and "default" in prop:
                instance[name] = copy.deepcopy(prop["default"])
            if name in instance:
                assign_defaults(instance[name], prop)
    elif isinstance(instance, list) and "array" in _types(schema):
        items = schema.get("items")
        if isinstance(items, dict):
            for item in instance:
                assign_defaults(item, items)
    return instance


def allow_default_none(schema):
    """An optional property, or one whose default is None, also accepts null; nested object
    properties and array items likewise."""
    schema = copy.deepcopy(schema)
    _allow_null(schema)
    return schema


def _allow_null(schema):
    for prop in (schema.get("properties") or {}).values():
        if not isinstance(prop, dict):
            continue
        kinds = _types(prop)
        optional = not prop.get("required", False)
        if (optional or "default" in prop) and prop.get("default") is None:
            for combinator in ("anyOf", "oneOf"):
                if combinator in prop:
                    if not any(_is_null_alternative(alt) for alt in prop[combinator]):
                        prop[combinator].append({"type": "null"})
                    break
            else:
                if "null" not in kinds:
                    prop["type"] = [k if k is not None else "string" for k in kinds] + ["null"]
        if "object" in kinds and prop.get("properties"):
            _allow_null(prop)
        items = prop.get("items")
        if "array" in kinds and isinstance(items, dict) and items.get("properties"):
            _allow_null(items)


def validate(instance, schema, use_default=True, default_none=True):
    """The cleaned instance (defaults filled in); raises jsonschema's ValidationError, or
    SchemaError for a schema st2 itself would refuse."""
    check_schema(schema)
    instance = copy.deepcopy(instance)
    if use_default:
        instance = assign_defaults(instance, schema)
    if use_default and default_none:
        schema = allow_default_none(schema)
    error = best_match(CustomValidator(schema).iter_errors(instance))
    if error is not None:
        raise error
    return instance


__all__ = ["CustomValidator", "SchemaError", "ValidationError", "allow_default_none",
           "assign_defaults", "check_schema", "validate"]
