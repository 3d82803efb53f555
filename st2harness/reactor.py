"""StackStorm's trigger → rule → action path, in one process, for end-to-end tests.

``Reactor(loader, runner)`` plays st2's trigger dispatcher, rules engine (``st2harness.rules``)
and action runners (``st2harness.workflows.WorkflowRunner``)::

    reactor = Reactor(loader, WorkflowRunner(loader))
    sensor = loader.sensor("NewRelicWebhookSensor", on_dispatch=reactor.on_dispatch)
    ...                                  # the sensor dispatches from its own thread
    for match, result in reactor.drain(timeout=5):
        assert result.status == "succeeded", (match.rule, result.errors)

Mirrored from st2 v3.9.0:

* ``st2reactor/rules/engine.py`` / ``enforcer.py``: every matching rule is enforced; a rule
  whose parameters fail to render, whose action does not exist or whose request fails
  validation (``st2common/services/action.py`` create_request: undeclared or invalid
  parameters, an immutable one overridden, a disabled action) runs nothing: its result is
  ``failed`` with ``errors[0]["type"] == "enforcement"``. st2 runs the executions
  asynchronously; here they run one after the other, each to its end, in the thread that
  calls ``handle``/``drain``/``post_webhook`` (never in a sensor's thread: ``on_dispatch``
  only queues).
* Actions: orquesta workflows through ``WorkflowRunner.run``; python-script, ``core.noop``,
  ``core.echo`` and ``core.local`` through the runner's own action runners, so the result has
  the same shape as a workflow task's: ``ActionExecutionResult`` (a ``WorkflowResult``) whose
  ``output`` is what the action returned (python: ``run()``'s value) and whose ``result`` is
  the execution result as st2 shows it (python: ``stdout``, ``stderr``, ``exit_code``,
  ``result``).
* ``st2common/services/trigger_dispatcher.py`` (``dispatch``): a payload is checked against
  its trigger type's ``payload_schema``; an unknown trigger type or a failing payload is
  dropped (``validate_trigger_payload = True``, the default).
* ``st2api/controllers/v1/webhooks.py`` and ``st2common/router.py`` (``post_webhook``): the
  hook is the path after ``/api/v1/webhooks/``; it must equal some rule's ``url`` trigger
  parameter with leading and trailing ``/`` stripped (404 otherwise; rules disabled count, as
  their triggers exist); the body is parsed by Content-Type (missing: JSON; JSON must be an
  object or array; ``application/x-www-form-urlencoded`` → ``urllib.parse.parse_qs``: every
  value a list of strings; ``text/plain`` → 400 under gunicorn; anything else 400); the
  payload is ``{"headers", "headers_lower", "body"}`` with header names as WebOb spells them
  (``X-Newrelic-Id``), ``St2-Api-Key``, ``X-Auth-Token`` and ``Cookie`` removed and
  ``St2-Trace-Tag`` taken out; one trigger instance per distinct trigger (rules whose ``url``
  differ only in slashes are different triggers on the same hook). ``st2`` is the generic
  hook: body ``{"trigger": ..., "payload": ...}``.

Not mirrored: traces, rule enforcement records, the execution context (``rule``,
``trigger_instance``) passed to the action, st2's asynchronous concurrency, the headers a
real HTTP stack adds (only ``Content-Type`` and ``Content-Length`` are added here).
"""

from __future__ import annotations

import json
import queue
import threading
import traceback
import urllib.parse
from dataclasses import dataclass, field
from typing import Any, Dict, List, NamedTuple, Optional, Tuple

import jsonschema

from . import schema as st2schema
from .loader import PackLoader
from .rules import SYSTEM_TRIGGER_TYPES, WEBHOOK_TRIGGER, RuleEngine, RuleMatch
from .services import Dispatch, Dropped
from .workflows import _LOAD_LOCK, WorkflowResult, WorkflowRunner, _Action

__all__ = ["ActionExecutionResult", "Handled", "Reactor", "WebhookResponse"]

Executed = Tuple[RuleMatch, WorkflowResult]

# st2common.constants.auth
_AUTH_HEADERS = ("St2-Api-Key", "X-Auth-Token", "Cookie")
_TRACE_TAG_HEADER = "St2-Trace-Tag"
_WEBHOOK_PREFIXES = ("/api/v1/webhooks/", "/v1/webhooks/", "/webhooks/")


@dataclass
class ActionExecutionResult(WorkflowResult):
    """A non-workflow action's execution: ``output`` is what the action returned, ``result``
    the execution result as ``st2 execution get`` shows it."""

    execution_result: Any = None

    @property
    def result(self) -> Any:  # type: ignore[override]
        return self.execution_result


@dataclass
class Handled:
    """One trigger instance the reactor processed, and what each matching rule did."""

    trigger: str
    payload: Any
    trigger_params: Optional[Dict[str, Any]]
    results: List[Executed] = field(default_factory=list)


class WebhookResponse(NamedTuple):
    status: int  # 202, or st2api's 400 / 404
    body: Any  # the parsed body (202) or {"faultstring": message}
    payload: Optional[dict]  # the core.st2.webhook payload dispatched (None when refused)
    results: List[Executed]


def _enforcement_failure(match: RuleMatch, message: str) -> WorkflowResult:
    return WorkflowResult("failed", None, [{"type": "enforcement", "message": message}],
                          action=match.action)


def _webob_header_name(name: str) -> str:
    """The WSGI environ round trip: ``x-newrelic-id`` → HTTP_X_NEWRELIC_ID → X-Newrelic-Id."""
    return name.upper().replace("-", "_").replace("_", "-").title()


class Reactor:
    """Trigger dispatcher + rules engine + action runner (see the module docstring)."""

    def __init__(self, loader: PackLoader, runner: Optional[WorkflowRunner] = None,
                 engine: Optional[RuleEngine] = None):
        self.loader = loader
        self.runner = runner or WorkflowRunner(loader)
        self.engine = engine or RuleEngine(loader)
        self.handled: List[Handled] = []
        self.dropped: List[Dropped] = []
        self._queue: queue.Queue = queue.Queue()
        self._lock = threading.Lock()

    # -- records -------------------------------------------------------------------------------

    @property
    def results(self) -> List[Executed]:
        """Every (RuleMatch, result) so far, in order."""
        with self._lock:
            return [item for handled in self.handled for item in handled.results]

    def results_for(self, rule_ref: str) -> List[WorkflowResult]:
        return [result for match, result in self.results if match.rule == rule_ref]

    @property
    def pending(self) -> int:
        """Dispatches queued by ``on_dispatch`` and not processed yet."""
        return self._queue.qsize()

    # -- the rules engine ----------------------------------------------------------------------

    def handle(self, trigger_ref: str, payload: Any,
               trigger_params: Optional[Dict[str, Any]] = None) -> List[Executed]:
        """Process one trigger instance: every matching rule's action, run to its end."""
        handled = Handled(trigger_ref, payload, trigger_params)
        with self._lock:
            self.handled.append(handled)
        for match in self.engine.match(trigger_ref, payload, trigger_params):
            result = self.execute(match)
            with self._lock:
                handled.results.append((match, result))
        return list(handled.results)

    def execute(self, match: RuleMatch) -> WorkflowResult:
        """Request and run the execution a matched rule asks for."""
        if match.error is not None:
            return _enforcement_failure(match, match.error)
        meta = self.engine.action_metadata(match.action)
        if meta is None:
            return _enforcement_failure(match, 'Action "%s" doesn\'t exist' % match.action)
        action = _Action(match.action, meta)
        try:
            validated = action.check_request(match.parameters)
        except jsonschema.ValidationError as exc:
            return _enforcement_failure(match, exc.message)
        except (ValueError, TypeError, jsonschema.SchemaError) as exc:
            return _enforcement_failure(match, str(exc))
        if action.runner_type == "orquesta":
            return self.runner.run(match.action, **match.parameters)
        if action.runner_type == "python-script":
            with _LOAD_LOCK:
                try:
                    action.loaded = self.loader.action(meta["name"])
                except Exception as exc:
                    action.load_error = "".join(traceback.format_exception(
                        type(exc), exc, exc.__traceback__))
        try:
            status, result = self.runner._run_action(
                action, match.parameters, action.final_params(validated))
        except Exception as exc:  # the action runner container's own failure
            status, result = "failed", {"error": str(exc), "traceback": traceback.format_exc()}
        output = result.get("result") if action.runner_type == "python-script" else result
        errors = [] if status == "succeeded" else [{
            "type": "error", "message": (result.get("stderr") or result.get("error")
                                         or "the action failed")}]
        return ActionExecutionResult(status, output, errors, action=match.action,
                                     execution_result=result)

    # -- the trigger dispatcher ----------------------------------------------------------------

    def dispatch(self, trigger_ref: str, payload: Any = None,
                 trigger_params: Optional[Dict[str, Any]] = None) -> Optional[List[Executed]]:
        """TriggerDispatcherService.dispatch then handle: None when the payload is dropped."""
        reason = self._payload_error(trigger_ref, payload)
        if reason is not None:
            with self._lock:
                self.dropped.append(Dropped(trigger_ref, payload, reason))
            return None
        return self.handle(trigger_ref, payload, trigger_params)

    def _payload_error(self, trigger_ref: str, payload: Any) -> Optional[str]:
        if trigger_ref in SYSTEM_TRIGGER_TYPES:
            schema = SYSTEM_TRIGGER_TYPES[trigger_ref]["payload_schema"]
        elif trigger_ref in self.loader.trigger_types():
            schema = self.loader.trigger_types()[trigger_ref].get("payload_schema")
        else:
            return 'Trigger type with reference "%s" doesn\'t exist in the database' % (
                trigger_ref)
        if not schema:
            return None
        try:
            st2schema.validate(payload, schema)
        except (jsonschema.ValidationError, jsonschema.SchemaError) as exc:
            return exc.message
        return None

    def on_dispatch(self, event: Dispatch) -> None:
        """For ``SensorService(on_dispatch=...)``: queue the (already validated) dispatch."""
        self._queue.put((event.trigger, event.payload, None))

    def drain(self, timeout: float = 0.0) -> List[Executed]:
        """Process queued dispatches until none is left (waiting up to ``timeout`` seconds for
        the first one); returns what this call ran."""
        done: List[Executed] = []
        try:
            item = self._queue.get(timeout=timeout) if timeout else self._queue.get_nowait()
        except queue.Empty:
            return done
        while True:
            done.extend(self.handle(*item))
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                return done

    def sensor(self, class_name: str, **kwargs: Any) -> Any:
        """``loader.sensor(...)`` with its dispatches queued here."""
        return self.loader.sensor(class_name, on_dispatch=self.on_dispatch, **kwargs)

    # -- st2api's webhooks ---------------------------------------------------------------------

    def hooks(self) -> Dict[str, List[Dict[str, Any]]]:
        """Registered hook → the distinct core.st2.webhook triggers listening on it."""
        hooks: Dict[str, List[Dict[str, Any]]] = {}
        for rule in self.engine.all_rules:
            if rule.trigger_type != WEBHOOK_TRIGGER:
                continue
            triggers = hooks.setdefault(str(rule.trigger_parameters["url"]).strip("/"), [])
            if rule.trigger_parameters not in triggers:
                triggers.append(rule.trigger_parameters)
        return hooks

    def post_webhook(self, url: str, body: Any = None,
                     headers: Optional[Dict[str, str]] = None) -> WebhookResponse:
        """POST /api/v1/webhooks/<hook>. ``body``: bytes or str as sent, or a dict/list (sent
        as JSON, or form-encoded when the Content-Type says so)."""
        hook = url
        for prefix in _WEBHOOK_PREFIXES:
            if hook.startswith(prefix):
                hook = hook[len(prefix):]
                break
        headers = {_webob_header_name(k): str(v) for k, v in (headers or {}).items()}
        raw = self._encode_body(body, headers)
        headers.setdefault("Content-Length", str(len(raw)))

        def refuse(status: int, message: str) -> WebhookResponse:
            return WebhookResponse(status, {"faultstring": message}, None, [])

        content_type = headers.get("Content-Type", "application/json")
        media, options = _parse_content_type(content_type)
        if not raw and media == "application/json":
            raw = b"{}"
        try:
            if media == "application/json":
                data = json.loads(raw.decode(options.get("charset", "utf-8")))
            elif media == "text/plain":
                data = raw.decode("utf-8")
            elif media in ("application/x-www-form-urlencoded", "multipart/form-data"):
                data = urllib.parse.parse_qs(raw.decode("utf-8"))
            else:
                raise ValueError('Unsupported Content-Type: "%s"' % content_type)
        except Exception as exc:
            return refuse(400, "Failed to parse request body: %s" % exc)
        if not isinstance(data, (dict, list)):
            return refuse(400, "%r is not of type 'object', 'array'" % (data,))

        headers = {k: v for k, v in headers.items() if k not in _AUTH_HEADERS}
        headers.pop(_TRACE_TAG_HEADER, None)

        if hook in ("st2", "st2/"):
            if not isinstance(data, dict):
                return refuse(400, "Webhook body needs to be an object, got: array")
            trigger = data.get("trigger")
            if not trigger:
                return refuse(400, "Trigger not specified.")
            ref, params = ((trigger.get("type"), trigger.get("parameters"))
                           if isinstance(trigger, dict) else (trigger, None))
            payload = data.get("payload")
            reason = self._payload_error(ref, payload)
            if reason is not None:
                return refuse(400, "Trigger payload validation failed and validation is "
                              'enabled, not dispatching a trigger "%s" (%s): %s'
                              % (ref, payload, reason))
            return WebhookResponse(202, data, payload, self.handle(ref, payload, params))

        triggers = self.hooks().get(hook)
        if not triggers:
            return refuse(404, "Webhook %s not registered with st2" % hook)
        payload = {"headers": headers,
                   "headers_lower": {k.lower(): v for k, v in headers.items()},
                   "body": data}
        results: List[Executed] = []
        for params in triggers:
            results.extend(self.handle(WEBHOOK_TRIGGER, payload, params))
        return WebhookResponse(202, data, payload, results)

    @staticmethod
    def _encode_body(body: Any, headers: Dict[str, str]) -> bytes:
        if body is None:
            return b""
        if isinstance(body, bytes):
            return body
        if isinstance(body, str):
            return body.encode("utf-8")
        media = _parse_content_type(headers.get("Content-Type", ""))[0]
        if media == "application/x-www-form-urlencoded":
            return urllib.parse.urlencode(body, doseq=True).encode("utf-8")
        headers.setdefault("Content-Type", "application/json")
        return json.dumps(body).encode("utf-8")


def _parse_content_type(content_type: str) -> Tuple[str, Dict[str, str]]:
    """st2common.util.http.parse_content_type_header: no case folding."""
    media, _, rest = content_type.partition(";")
    options = {}
    for pair in rest.split(";") if rest else []:
        key, sep, value = pair.partition("=")
        if sep:
            options[key.strip()] = value.strip()
    return media, options
