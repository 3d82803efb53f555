"""What every backend (compute, config, dns, lb, notify) shares: its error, retries of
idempotent calls, and keeping secrets out of messages.

A backend error names the system, the operation and the object, so an operator reading chat
or an execution result knows where to look: ``Nova: create server web-3f9a1c: Quota exceeded
for instances``.
"""

from __future__ import annotations

import logging
import time
from typing import Any, Callable, Iterable, Optional, Tuple, Type, TypeVar

LOG = logging.getLogger(__name__)
T = TypeVar("T")

REDACTED = "[redacted]"


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
