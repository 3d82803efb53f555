"""Field checkers: the one place that says what a whole number, a flag, a time or a line of
text is, for an operator's input and for a stored record alike.

Two families:

* input (``int_field``, ``bool_field``, ``str_field``, ``str_list``): what an operator or a
  workflow passes; lenient where st2 is (``"3"`` is 3, ``"yes"`` is true, ``"a, b"`` is a list)
  and a ValidationError naming the field otherwise;
* records (``whole``, ``optional_whole``, ``seconds``, ``flag``, ``text``, ``line``, ``strings``,
  ``one_of``, checked by ``check_fields``): what a stored record holds, strictly, types
  included: a whole number is an int and never a bool, a time is a finite number of seconds
  in [0, MAX_TIME], text is a string, a list is a list. Anything else is a ValidationError
  naming the field, never a value that makes a later comparison raise ``TypeError`` (the
  governor reads every record every tick).
"""

from __future__ import annotations

from typing import Any, Callable, Dict, List, Optional, Tuple

from ..errors import ValidationError

Check = Callable[[Any, str], Any]

# The largest whole number a stored record may hold: JSON's safe integers. A bigger one would
# overflow when mixed with a float (``now - 10**400`` raises OverflowError).
INT_MAX = 2 ** 53 - 1
# The latest time a stored record may hold (seconds since the epoch: the year 5138).
MAX_TIME = 1e11


def brief(value: Any, limit: int = 60) -> str:
    """A value for an error message: its repr, cut short (a record may hold anything)."""
    try:
        text = repr(value)
    except Exception:  # a repr that fails (a huge int on Python 3.11+) must not hide the error
        text = "a %s" % type(value).__name__
    return text if len(text) <= limit else text[:limit - 1] + "…"


def kind_of(value: Any) -> str:
    """'a string 'x'', 'the number 3', 'null': what a value is, for an error message."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean (%s)" % ("true" if value else "false")
    return "%s %s" % ({"str": "a string", "int": "the number", "float": "the number",
                       "list": "a list", "dict": "an object"}.get(type(value).__name__,
                                                                 "a " + type(value).__name__),
                      brief(value, 40))


# ---------------------------------------------------------------------------------------------
# Input


def int_field(value: Any, what: str, minimum: int, maximum: int = INT_MAX) -> int:
    # bool is an int in Python; "true" nodes would be a silent bug.
    if isinstance(value, bool) or not isinstance(value, int):
        if isinstance(value, str) and value.strip().lstrip("-").isdigit() and \
                len(value.strip()) <= 20:
            value = int(value)
        else:
            raise ValidationError("%s must be a whole number, not %s" % (what, brief(value)))
    if value < minimum:
        raise ValidationError("%s must be at least %d, not %d" % (what, minimum, value))
    if value > maximum:
        raise ValidationError("%s must be at most %d, not %s" % (what, maximum, brief(value)))
    return value


def bool_field(value: Any, what: str) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in ("true", "false", "yes", "no"):
        return value.lower() in ("true", "yes")
    raise ValidationError("%s must be true or false, not %r" % (what, value))


def str_field(value: Any, what: str, allow_empty: bool = True) -> str:
    if not isinstance(value, str):
        raise ValidationError("%s must be a string, not %r" % (what, value))
    if not allow_empty and not value.strip():
        raise ValidationError("%s must not be empty" % what)
    if any(ch in value for ch in "\r\n\x00"):
        raise ValidationError("%s must be a single line" % what)
    return value


def str_list(value: Any, what: str) -> List[str]:
    if isinstance(value, str):
        value = [part.strip() for part in value.split(",") if part.strip()]
    if not isinstance(value, list):
        raise ValidationError("%s must be a list of strings, not %r" % (what, value))
    return [str_field(item, "%s entry" % what, allow_empty=False) for item in value]


def one_line(value: Any, what: str, limit: int = 255) -> str:
    """A single line of at most ``limit`` characters (a server id, an address)."""
    if not isinstance(value, str):
        raise ValidationError("%s must be a string, not %r" % (what, value))
    if len(value) > limit or any(ch in value for ch in "\r\n\x00"):
        raise ValidationError("%s must be a single line of at most %d characters"
                              % (what, limit))
    return value


# ---------------------------------------------------------------------------------------------
# Records


def whole(minimum: int = 0) -> Check:
    def check(value: Any, what: str) -> int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValidationError("%s must be a whole number, not %s" % (what, kind_of(value)))
        if not minimum <= value <= INT_MAX:
            raise ValidationError("%s must be between %d and %d, not %s"
                                  % (what, minimum, INT_MAX, brief(value)))
        return value
    return check


def optional_whole(minimum: int = 0) -> Check:
    check = whole(minimum)
    return lambda value, what: None if value is None else check(value, what)


def seconds(value: Any, what: str) -> float:
    """A time: seconds since the epoch, in [0, MAX_TIME]."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValidationError("%s must be a time in seconds, not %s" % (what, kind_of(value)))
    # One chained comparison: False for NaN, and no float() of a huge int (OverflowError).
    if not 0 <= value <= MAX_TIME:
        raise ValidationError("%s must be a time between 0 and %d seconds, not %s"
                              % (what, MAX_TIME, brief(value)))
    return value


def flag(value: Any, what: str) -> bool:
    if not isinstance(value, bool):
        raise ValidationError("%s must be true or false, not %s" % (what, kind_of(value)))
    return value


def text(value: Any, what: str) -> str:
    if not isinstance(value, str):
        raise ValidationError("%s must be a string, not %s" % (what, kind_of(value)))
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate ("\ud800"): not text any system takes
        raise ValidationError("%s is not valid Unicode text" % what) from None
    return value


def line(value: Any, what: str) -> str:
    text(value, what)
    if any(ch in value for ch in "\r\n\x00"):
        raise ValidationError("%s must be a single line" % what)
    return value


def strings(value: Any, what: str) -> List[str]:
    if not isinstance(value, list):
        raise ValidationError("%s must be a list of strings, not %s" % (what, kind_of(value)))
    for index, item in enumerate(value):
        line(item, "%s[%d]" % (what, index))
    return value


def one_of(choices: Tuple[str, ...]) -> Check:
    def check(value: Any, what: str) -> str:
        if not isinstance(value, str) or value not in choices:
            raise ValidationError("%s must be one of %s, not %s"
                                  % (what, ", ".join(choices), kind_of(value)))
        return value
    return check


def check_fields(checks: Dict[str, Check], data: Dict[str, Any],
                 required: Tuple[str, ...] = (), what: str = "") -> Dict[str, Any]:
    """``data`` with every field checked by its check; raises ValidationError naming it."""
    missing = [name for name in required if name not in data]
    if missing:
        raise ValidationError("%s%s missing" % (
            "".join("%s.%s" % (what, name) if what else name for name in missing[:1]),
            "" if len(missing) == 1 else " (and %d more field(s))" % (len(missing) - 1)))
    for name, value in data.items():
        check: Optional[Check] = checks.get(name)
        if check is None:
            raise ValidationError("unknown field %s%s" % (what + "." if what else "", name))
        check(value, "%s%s" % (what + "." if what else "", name))
    return data
