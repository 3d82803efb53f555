"""What every source's JSON bodies need: decoding, and refusing text that is no Unicode."""

from __future__ import annotations

import json
import re
from typing import Any, Mapping

from . import AlertPayloadError

# json.loads joins a valid pair into one character: any surrogate left is a lone one.
_SURROGATE = re.compile("[\ud800-\udfff]")


def load_json(text: str, what: str = "body") -> Any:
    """The JSON document ``text`` holds; ``AlertPayloadError`` when it is not JSON or holds a
    lone surrogate (see ``check_unicode``)."""
    try:
        document = json.loads(text)
    except (ValueError, RecursionError):
        raise AlertPayloadError("%s is not valid JSON" % what) from None
    check_unicode(document, what)
    return document


def decode(body: bytes) -> str:
    try:
        return body.decode("utf-8")
    except UnicodeDecodeError:
        raise AlertPayloadError("body is not UTF-8") from None


def check_unicode(document: Any, what: str = "body") -> None:
    """Refuse text holding a lone surrogate (``"\\ud800"`` in JSON): Python's json takes it,
    but it is no Unicode character, and StackStorm stores trigger instances in MongoDB, which
    takes only valid UTF-8. Walks the whole document (keys too), without recursion."""
    stack = [document]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            texts = [item]
        elif isinstance(item, Mapping):
            texts = [key for key in item if isinstance(key, str)]
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
            continue
        else:
            continue
        for text in texts:
            found = _SURROGATE.search(text)
            if found:
                raise AlertPayloadError(
                    "%s holds a lone surrogate (\\u%04x), which is not valid Unicode"
                    % (what, ord(found.group())))
