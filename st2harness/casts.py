"""st2common.util.casts: how st2 turns parameter values given as text (CLI, chat, Jinja) into
their declared types. Shared by the workflow runner and the alias mirror."""

from __future__ import annotations

import ast
import json
from typing import Any

# st2common.constants.action.NONE_MAGIC_VALUE: a parameter explicitly set to None.
NONE_MAGIC_VALUE = "%*****__%NONE%__*****%"


def cast_none(value: Any) -> Any:
    return None if isinstance(value, str) and value == NONE_MAGIC_VALUE else value


def cast_object(value: Any) -> Any:
    value = cast_none(value)
    if isinstance(value, str):
        try:
            return json.loads(value)
        except ValueError:
            return ast.literal_eval(value)
    return value


def cast_boolean(value: Any) -> Any:
    value = cast_none(value)
    return ast.literal_eval(value.capitalize()) if isinstance(value, str) else value


def cast_string(value: Any) -> Any:
    if value is None:
        return value
    if not isinstance(value, str):
        raise ValueError('Value "%s" must either be a string or None. Got "%s".'
                         % (value, type(value).__name__))
    return cast_none(value)


CASTS = {
    "array": cast_object,
    "boolean": cast_boolean,
    "integer": lambda value: int(cast_none(value)),
    "number": lambda value: float(cast_none(value)),
    "object": cast_object,
    "string": cast_string,
}
