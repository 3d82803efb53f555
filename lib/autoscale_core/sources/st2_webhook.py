"""New Relic alerts that arrive through StackStorm's own webhook instead of the pack's sensor.

An operator who already exposes st2's API (with its API-key auth) can point New Relic at
``https://<st2>/api/v1/webhooks/newrelic``; the ``newrelic_st2_webhook`` rule hands the
``core.st2.webhook`` payload's body to the ``alert_route`` action, which reads it with the
very parse the sensor uses (the source's ``parse``) and routes it exactly as the sensor does
(routing.route). st2 has already decoded the body: JSON arrives as an object, a form as
``{field: [values]}`` (st2common/router.py uses ``urllib.parse.parse_qs``). It is put back
into its wire form (JSON, or a urlencoded form) so that one parser reads both paths.

The sensor's ``?asg=`` has no equivalent here (st2 does not pass the query string to rules),
so a payload template may name the group in a top-level ``asg`` field instead
(``Alert.group``).
"""

from __future__ import annotations

import json
import time
from typing import Any, Dict, List, Mapping, Optional, Tuple
from urllib.parse import urlencode

from .. import sources
from ..errors import ValidationError
from ..store import Store
from . import routing

SOURCE = "newrelic"
_JSON = "application/json"
_FORM = "application/x-www-form-urlencoded"
# The fields of New Relic's 2015 form hook; a body holding one and no alert state is a form.
_FORM_FIELDS = ("alert", "deployment")


def _is_form(body: Mapping[str, Any]) -> bool:
    if "state" in body or "current_state" in body:
        return False
    if not any(name in body for name in _FORM_FIELDS):
        return False
    # What st2's parse_qs makes: text keys, each holding a list of texts.
    return all(isinstance(key, str) and isinstance(value, (str, list))
               and all(isinstance(item, str) for item in
                       (value if isinstance(value, list) else [value]))
               for key, value in body.items())


def _wire(body: Any) -> Tuple[bytes, str]:
    """The body as it came over the wire, and its content type ("" when unknown)."""
    if isinstance(body, bytes):
        return body, ""
    if isinstance(body, str):
        return body.encode("utf-8", errors="surrogatepass"), ""
    if isinstance(body, Mapping) and _is_form(body):
        # A field st2 gave no value keeps its name, as in the request (alert= is empty).
        fields = [(key, value if isinstance(value, list) and value else
                   [value] if isinstance(value, str) else [""])
                  for key, value in body.items()]
        return urlencode(fields, doseq=True, errors="surrogatepass").encode("ascii"), _FORM
    try:
        return json.dumps(body).encode("ascii"), _JSON
    except (TypeError, ValueError, RecursionError):
        raise sources.AlertPayloadError("body is a %s, not an object" % type(body).__name__) \
            from None


def _check_named(body: Any) -> None:
    """Refuse a top-level asg that is no text: a group name can only be one (the source
    takes only text as ``Alert.group``)."""
    if isinstance(body, Mapping) and not _is_form(body):
        named = body.get("asg")
        if named is not None and not isinstance(named, str):
            raise ValidationError("the body's asg field must be a group name")


def route_body(store: Store, body: Any, now: Optional[float] = None,
               source: str = SOURCE) -> Dict[str, Any]:
    """``{alerts: [autoscale.alert payloads, one per group], groups, reason}`` for one body.

    A body that is not an alert of the source raises ``ValidationError`` with the one-line
    reason (the execution fails, so the operator sees it in ``st2 execution list``); an alert
    that matches no group, or a 2015 deployment notice, is a success with no alerts and the
    reason.
    """
    now = time.time() if now is None else now
    reader = sources.load(source)
    try:
        found = reader.parse(*_wire(body))
    except sources.NotAnAlert as exc:
        return {"alerts": [], "groups": [], "reason": str(exc)}
    except sources.AlertPayloadError as exc:
        raise ValidationError("not a %s alert: %s" % (sources.title(reader), exc)) from None
    _check_named(body)
    if not found:
        return {"alerts": [], "groups": [], "reason": "the body holds no alert"}
    groups, _ = store.load_all()
    payloads: List[Dict[str, Any]] = []
    names: List[str] = []
    reasons: List[str] = []
    for alert in found:
        route = routing.route(alert, groups, asg=alert.group or None)
        payloads.extend(routing.trigger_payload(alert, name, now) for name in route.groups)
        names.extend(name for name in route.groups if name not in names)
        reasons.append(route.reason if len(found) == 1 else
                       "issue %s: %s" % (alert.issue_id, route.reason))
    return {"alerts": payloads, "groups": names, "reason": "; ".join(reasons)}
