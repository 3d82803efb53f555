"""New Relic alerts that arrive through StackStorm's own webhook instead of the pack's sensor.

An operator who already exposes st2's API (with its API-key auth) can point New Relic at
``https://<st2>/api/v1/webhooks/newrelic``; the ``newrelic_st2_webhook`` rule hands the
``core.st2.webhook`` payload's body to the ``alert_route`` action, which reads it exactly as
the sensor reads a request body (alerts.normalise) and routes it exactly as the sensor does
(routing.route). st2 has already parsed the body: JSON arrives as an object, a form as
``{field: [values]}`` (st2common/router.py uses ``urllib.parse.parse_qs``).

The sensor's ``?asg=`` has no equivalent here (st2 does not pass the query string to rules),
so a payload template may name the group in a top-level ``asg`` field instead.
"""

from __future__ import annotations

import json
import time
from typing import Any, Dict, List, Mapping, Optional

from . import alerts, routing
from .model import ValidationError
from .store import Store


def _document(body: Any) -> Mapping[str, Any]:
    if isinstance(body, (bytes, str)):
        raw = body.encode("utf-8") if isinstance(body, str) else body
        return alerts.parse_body(raw)
    if not isinstance(body, Mapping):
        raise alerts.AlertPayloadError("body is a %s, not an object" % type(body).__name__)
    for field in ("alert", "deployment"):
        if field in body and "state" not in body and "current_state" not in body:
            value = body[field]
            if isinstance(value, list):
                value = value[0] if value else ""
            if field == "deployment":
                raise alerts.DeploymentNotice("a deployment notice, not an alert")
            if not isinstance(value, str):
                raise alerts.AlertPayloadError("form field alert does not hold JSON text")
            try:
                document = json.loads(value)
            except (ValueError, RecursionError):
                raise alerts.AlertPayloadError("form field alert is not valid JSON") from None
            if not isinstance(document, Mapping):
                raise alerts.AlertPayloadError("form field alert is JSON but not an object")
            alerts.check_unicode(document, "form field alert")
            return document
    alerts.check_unicode(body)
    return body


def route_body(store: Store, body: Any, now: Optional[float] = None) -> Dict[str, Any]:
    """``{alerts: [autoscale.alert payloads, one per group], groups, reason}`` for one body.

    A body that is not a New Relic alert raises ``ValidationError`` with the one-line reason
    (the execution fails, so the operator sees it in ``st2 execution list``); an alert that
    matches no group, or a 2015 deployment notice, is a success with no alerts and the reason.
    """
    now = time.time() if now is None else now
    try:
        document = _document(body)
        alert = alerts.normalise(document)
    except alerts.DeploymentNotice as exc:
        return {"alerts": [], "groups": [], "reason": str(exc)}
    except alerts.AlertPayloadError as exc:
        raise ValidationError("not a New Relic alert: %s" % exc) from None
    explicit = document.get("asg") if isinstance(document, Mapping) else None
    if explicit is not None and not isinstance(explicit, str):
        raise ValidationError("the body's asg field must be a group name")
    groups, _ = store.load_all()
    route = routing.route(alert, groups, asg=explicit or None)
    payloads: List[Dict[str, Any]] = [routing.trigger_payload(alert, name, now)
                                      for name in route.groups]
    return {"alerts": payloads, "groups": list(route.groups), "reason": route.reason}
