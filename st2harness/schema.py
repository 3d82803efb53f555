"""JSON Schema validation the way st2common.util.schema does it.

st2's ``CustomValidator`` is Draft 4 except for ``properties``, which is Draft 3's: a property's
own ``required: true`` is enforced and a Draft 4 ``required: [...]`` list is ignored. Defaults
are filled in before validation, and a property that is optional or defaults to None also
accepts null. Trigger payloads, action parameters and pack configs are all checked this way.
"""

from __future__ import annotations

import copy

from jsonschema import Draft3Validator, Draft4Validator, validators

_KEYWORDS = (
    "$ref additionalItems additionalProperties allOf anyOf dependencies enum format items "
    "maxItems maxLength maxProperties maximum minItems minLength minProperties minimum "
    "multipleOf not oneOf pattern patternProperties type uniqueItems"
).split()

CustomValidator = validators.create(
    meta_schema=Draft4Validator.META_SCHEMA,
    validators=dict(
        {name: Draft4Validator.VALIDATORS[name] for name in _KEYWORDS},
        properties=Draft3Validator.VALIDATORS["properties"],
    ),
    version="st2-custom",
    type_checker=Draft4Validator.TYPE_CHECKER,
)


def assign_defaults(instance, schema):
    """Fill in ``default`` values of object properties, recursively, as st2 does."""
    if not isinstance(instance, dict) or schema.get("type") != "object":
        return instance
    for name, prop in (schema.get("properties") or {}).items():
        if not isinstance(prop, dict):
            continue
        if name not in instance and "default" in prop:
            instance[name] = copy.deepcopy(prop["default"])
        if prop.get("type") == "object" and isinstance(instance.get(name), dict):
            assign_defaults(instance[name], prop)
    return instance


def allow_default_none(schema):
    """An optional property, or one whose default is None, also accepts null."""
    schema = copy.deepcopy(schema)
    for prop in (schema.get("properties") or {}).values():
        if not isinstance(prop, dict):
            continue
        optional = not prop.get("required", False)
        if (optional or "default" in prop) and prop.get("default") is None:
            for combinator in ("anyOf", "oneOf"):
                if combinator in prop:
                    if {"type": "null"} not in prop[combinator]:
                        prop[combinator].append({"type": "null"})
                    break
            else:
                kind = prop.get("type", "string")
                kinds = kind if isinstance(kind, list) else [kind]
                if "null" not in kinds:
                    prop["type"] = kinds + ["null"]
        if prop.get("type") == "object" and prop.get("properties"):
            prop.update(allow_default_none(prop))
    return schema


def validate(instance, schema, use_default=True, default_none=True):
    """The cleaned instance (defaults filled in); raises jsonschema.ValidationError."""
    instance = copy.deepcopy(instance)
    if use_default:
        instance = assign_defaults(instance, schema)
    if use_default and default_none:
        schema = allow_default_none(schema)
    CustomValidator(schema).validate(instance)
    return instance
