"""Alert sources: one module per monitoring system, and the HTTP receiver apart from parsing.

A source turns a webhook body into alerts; nothing else here knows any vendor's payload:

* ``newrelic``: New Relic's three payload families;
* ``alertmanager``: Prometheus Alertmanager's webhook (payload version 4), several alerts a
  body, with its settings in the pack config's ``alertmanager`` section;
* ``receiver`` (settings, authentication, dedup, routing cache, what to answer), ``server``
  and ``connections`` (the HTTP listener): the webhook sensor, generic over sources;
* ``payload``: reading a JSON body (UTF-8, no lone surrogate), for every source;
* ``routing``: which groups an alert is for, by their matchers (generic: kind -> patterns);
* ``st2_webhook``: bodies that reach StackStorm's own webhook, read by the same parse.

A source is a module (or any object) with:

* ``NAME``: its type name, the value of the ``webhook.source`` config key (or of a path in
  ``webhook.paths``) that selects it;
* ``TITLE``: how people call it, for messages ("New Relic");
* ``parse(body: bytes, content_type: str) -> List[Alert]``: the alerts one body carries
  (``domain.alerts.Alert``, with its ``matcher_values`` filled in the source's vocabulary);
  it raises ``AlertPayloadError`` with a one-line reason for a body it cannot read (the
  webhook answers 400), or ``NotAnAlert`` for a message of the source that asks nothing of
  anyone (answered 2xx: a sender retries anything else). It may return a ``Batch`` (a list
  with a ``note`` for the operator, such as alerts the sender left out): the webhook logs the
  note as a warning and puts it in its answer;
* optionally ``configure(config) -> source``: a source with settings reads them from its own
  section of the pack config (named like the source: ``alertmanager:``) and returns the
  object whose ``parse`` is used; it raises ``ValidationError`` naming the config key at
  fault. ``configured(name, config)`` calls it (or returns the source as it is).

``load(name)`` finds a source: one that ships with the pack (``BUILTIN``, imported with this
package, so that a sensor or action process has them from its own import) or one registered
with ``register(name, source)`` (a third-party or test source). Adding a source is adding its
module, its import at the end of this file and its entry in ``BUILTIN``; nothing else changes.
"""

from __future__ import annotations

import re
from typing import Any, Dict, List, Mapping, Optional

_NAME = re.compile(r"[a-z][a-z0-9_]{0,39}")


class AlertPayloadError(ValueError):
    """The body is not an alert its source can read; the message is the 400's reason."""


class NotAnAlert(AlertPayloadError):
    """A well-formed message of the source that is no alert (New Relic's 2015 deployment
    notice): nothing to do. Senders count any answer but a 2xx as a failed delivery and
    retry it, so the webhook answers it 2xx (and logs it at debug level only)."""


class UnknownSource(LookupError):
    """No source of that name."""


class Batch(list):
    """The alerts of one body, with a note for the operator about the body as a whole
    (alerts the sender left out, say); ``note`` is one line, or empty."""

    def __init__(self, alerts: Any = (), note: str = "") -> None:
        super().__init__(alerts)
        self.note = note


def _check_name(name: Any) -> str:
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise UnknownSource("%r is not a source name (lower-case letters, digits and _)"
                            % (name,))
    return name


def register(name: str, source: Any) -> None:
    """Make ``source`` (a module or any object with ``parse``) the source named ``name``."""
    _check_name(name)
    if not callable(getattr(source, "parse", None)):
        raise TypeError("a source needs parse(body, content_type)")
    _REGISTERED[name] = source


def unregister(name: str) -> None:
    """Forget a registered source (one that ships with the pack comes back)."""
    _REGISTERED.pop(name, None)


def load(name: str) -> Any:
    """The source named ``name``; ``UnknownSource`` when there is none."""
    _check_name(name)
    found = _REGISTERED.get(name, BUILTIN.get(name))
    if found is None:
        raise UnknownSource("no alert source %r (known: %s)" % (name, ", ".join(known())))
    return found


def configured(name: str, config: Optional[Mapping[str, Any]] = None) -> Any:
    """The source named ``name`` with its settings from the pack config (``configure``), or
    as it is when it has none. Raises ``UnknownSource``, or ``ValidationError`` for a bad
    setting."""
    found = load(name)
    configure = getattr(found, "configure", None)
    return configure(config or {}) if callable(configure) else found


def known() -> List[str]:
    """The names of every source ``load`` finds."""
    return sorted(set(BUILTIN) | set(_REGISTERED))


def title(source: Any) -> str:
    """How messages name a source."""
    return str(getattr(source, "TITLE", None) or getattr(source, "NAME", None) or "source")


# The sources that ship with the pack (imported last: each imports the errors above).
from . import alertmanager, newrelic  # noqa: E402

BUILTIN: Dict[str, Any] = {newrelic.NAME: newrelic, alertmanager.NAME: alertmanager}
_REGISTERED: Dict[str, Any] = {}
