"""The st2 adapter: what every python action does around its service call.

``perform`` runs a service function for an action: it builds the action's ``Store`` from the
pack config (``store_for``) and turns a refusal, bad input or an unreadable record into an
action's ``(False, {"error": "<sentence>"})``, the sentence ending with what the operator may
run next (present/hints.py), so a workflow can always publish ``result().result.error``.

``reports_failure``: what a python action returns when something it did not expect goes
wrong. st2's python runner turns an exception in ``run()`` into a task result whose
``result`` is the string "None" (exit code 1, the traceback in stderr). The workflows cope
with that shape too, but an action that answers ``(False, {"error": ...})`` gives them, the
history and chat a sentence instead of a traceback. ``reports_failure`` does that for every
action: the error is one line, and no value of a secret config key appears in it or in the
log.
"""

from __future__ import annotations

import functools
import logging
import traceback
from typing import Any, Callable, Dict, Iterable, Mapping, Optional, Tuple

from ..config import secret_values, store_settings
from ..errors import RecordError, Refusal, ValidationError, redact
from ..present.hints import explain
from ..store import Store

LOG = logging.getLogger(__name__)

# An error longer than this is cut: it goes into chat and a node record.
MAX_ERROR = 400


def one_line(text: Any, secrets: Iterable[str] = (), limit: int = MAX_ERROR) -> str:
    """``text`` redacted, on one line, at most ``limit`` characters."""
    flat = " ".join(redact(text, secrets).split())
    return flat if len(flat) <= limit else flat[:limit - 1] + "…"


def unexpected(what: str, exc: BaseException, config: Optional[Mapping[str, Any]]) -> str:
    """``<what> failed unexpectedly: KeyError: 'x'``, secrets masked, one line."""
    detail = str(exc)
    text = "%s: %s" % (type(exc).__name__, detail) if detail else type(exc).__name__
    return one_line("%s failed unexpectedly: %s" % (what, text), secret_values(config))


def masked_traceback(config: Optional[Mapping[str, Any]]) -> str:
    """The exception being handled, as a traceback with the config's secrets masked."""
    return redact(traceback.format_exc(), secret_values(config))


def reports_failure(run: Callable[..., Any]) -> Callable[..., Any]:
    """Decorate an Action's ``run``: an unexpected exception becomes
    ``(False, {"error": <one line>, "retryable": False})``, with the traceback, secrets
    masked, in the action's log. Exits (SystemExit, KeyboardInterrupt) are not caught."""

    @functools.wraps(run)
    def guarded(self: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            return run(self, *args, **kwargs)
        except Exception as exc:
            config = getattr(self, "config", None)
            what = type(self).__name__
            message = unexpected(what, exc, config)
            logger = getattr(self, "logger", None) or LOG
            logger.error("%s\n%s", message, masked_traceback(config))
            return False, {"error": message, "retryable": False}

    guarded.reports_failure = True  # type: ignore[attr-defined]
    return guarded


def store_for(datastore: Any, config: Optional[Mapping[str, Any]]) -> Store:
    """The Store an action uses: page size and history TTL from the config's governor
    section."""
    page_size, history_ttl = store_settings(config)
    return Store(datastore, page_size=page_size, history_ttl=history_ttl)


def perform(datastore: Any, config: Optional[Mapping[str, Any]],
            function: Callable[..., Dict[str, Any]], /, *args: Any,
            **kwargs: Any) -> Tuple[bool, Dict[str, Any]]:
    """Run a service function for an action: ``(True, result)``, or ``(False, {"error":
    "<sentence>"})`` for a refusal, bad input, an unreadable record or an unexpected failure
    (so a workflow can always publish ``result().result.error``)."""
    try:
        store = store_for(datastore, config)
        return True, function(store, *args, **kwargs)
    except (Refusal, ValidationError, RecordError) as exc:
        return False, {"error": explain(exc)}
    except Exception as exc:  # the datastore API, a bug: still a sentence for the workflow
        message = unexpected(function.__name__, exc, config)
        LOG.error("autoscale: %s\n%s", message, masked_traceback(config))
        return False, {"error": message}
