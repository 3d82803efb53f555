"""The pack's exception vocabulary, shared by every layer.

* ``ValidationError``: bad input; the message says which field and why, in words an operator
  can act on. Nothing has been changed.
* ``RecordError``: a stored record that cannot be read (corrupt JSON, wrong shape, unknown
  version).
* ``Refusal``: a request the pack turns down although its input is well-formed: an unknown
  group or node, a conflicting spec, a protected node, nothing to remove.
* ``BackendError``: a remote system (compute, configuration management, DNS, load balancer,
  chat) refused or failed an operation. It names the system, the operation and the object, so
  an operator reading chat or an execution result knows where to look: ``Nova: create server
  web-3f9a1c: Quota exceeded for instances``. ``retry`` re-runs idempotent calls, ``redact``
  keeps secrets out of the messages.

Errors never name a chat command: what an operator may do next is a ``hint`` (a name and its
parameters, set with ``hinted``) that the chat layer words (``present/hints.py``).
"""

from __future__ import annotations

import logging
import time
from typing import Any, Callable, Iterable, Optional, Tuple, Type, TypeVar

LOG = logging.getLogger(__name__)
T = TypeVar("T")
E = TypeVar("E", bound=BaseException)

REDACTED = "[redacted]"


class ValidationError(ValueError):
    """Bad input: the message says which field and why, in words an operator can act on."""


class RecordError(ValueError):
    """A stored record that cannot be read (corrupt JSON, wrong shape, unknown version)."""


class Refusal(ValueError):
    """A refusal an operator can act on: an unknown group or node, a conflicting spec, a
    protected node, nothing to remove."""


def hinted(exc: E, hint: str, **params: Any) -> E:
    """``exc`` carrying what the operator may do next: ``hint`` names it (see
    ``present/hints.py``), ``params`` fill it in (the group's name, the node's ...)."""
    exc.hint = hint  # type: ignore[attr-defined]
    exc.hint_params = params  # type: ignore[attr-defined]
    return exc


class BackendError(Exception):
    """A remote system refused or failed an operation.

    ``retryable`` tells a caller that the same call may succeed later (a timeout, a 5xx, a
    429); it is not a promise that retrying is safe: only idempotent calls are retried.
    """

    def __init__(self, system: str, operation: str, obj: str, message: str,
                 retryable: bool = False) -> None:
        self.system = system
        self.operation = operation
        self.obj = obj
        self.message = message
        self.retryable = retryable
        super().__init__(str(self))

    def __str__(self) -> str:
        target = " %s" % self.obj if self.obj else ""
        return "%s: %s%s: %s" % (self.system, self.operation, target, self.message)

    def as_dict(self) -> dict:
        return {
            "system": self.system,
            "operation": self.operation,
            "object": self.obj,
            "error": self.message,
            "retryable": self.retryable,
        }


def retry(call: Callable[[], T], attempts: int = 3, first_delay: float = 0.5,
          max_delay: float = 8.0, retry_on: Tuple[Type[BaseException], ...] = (BackendError,),
          sleep: Callable[[float], None] = time.sleep) -> T:
    """Run an idempotent ``call``, retrying retryable failures with exponential backoff.

    A BackendError that is not ``retryable`` is raised at once.
    """
    delay = first_delay
    for attempt in range(1, attempts + 1):
        try:
            return call()
        except retry_on as exc:
            if isinstance(exc, BackendError) and not exc.retryable:
                raise
            if attempt == attempts:
                raise
            LOG.info("attempt %d of %d failed (%s); retrying in %.1f s",
                     attempt, attempts, exc, delay)
            sleep(delay)
            delay = min(delay * 2, max_delay)
    raise AssertionError("unreachable")


def redact(text: Any, secrets: Iterable[Optional[str]]) -> str:
    """``text`` with every secret value replaced, for messages that quote a remote answer."""
    text = str(text)
    for secret in secrets:
        if secret and len(secret) >= 4:
            text = text.replace(secret, REDACTED)
    return text
