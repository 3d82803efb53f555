"""``action_service`` and ``sensor_service`` as st2 hands them to a pack's code."""

from __future__ import annotations

import logging
import threading
from typing import Any, Callable, Dict, List, NamedTuple, Optional

import jsonschema

from . import schema as st2schema
from .datastore import SYSTEM_SCOPE, DatastoreService


class _DatastoreMethods:
    datastore_service: DatastoreService

    def list_values(self, local=True, prefix=None, limit=None, offset=None):
        return self.datastore_service.list_values(
            local=local, prefix=prefix, limit=limit, offset=offset)

    def get_value(self, name, local=True, scope=SYSTEM_SCOPE, decrypt=False):
        return self.datastore_service.get_value(
            name=name, local=local, scope=scope, decrypt=decrypt)

    def set_value(self, name, value, ttl=None, local=True, scope=SYSTEM_SCOPE, encrypt=False):
        return self.datastore_service.set_value(
            name=name, value=value, ttl=ttl, local=local, scope=scope, encrypt=encrypt)

    def delete_value(self, name, local=True, scope=SYSTEM_SCOPE):
        return self.datastore_service.delete_value(name=name, local=local, scope=scope)


class ActionService(_DatastoreMethods):
    """st2common.runners.base_action's ActionService: datastore access for an action."""

    def __init__(self, datastore_service: DatastoreService):
        self.datastore_service = datastore_service


class Dispatch(NamedTuple):
    trigger: str
    payload: Any
    trace_tag: Optional[str]


class Dropped(NamedTuple):
    trigger: str
    payload: Any
    reason: str


class SensorService(_DatastoreMethods):
    """st2reactor.container.sensor_wrapper.SensorService.

    ``dispatch`` checks the payload against the trigger type's ``payload_schema`` the way st2
    does with ``system.validate_trigger_payload = True`` (the default): a trigger type that
    does not exist, or a payload that fails its schema, is logged and dropped, never raised to
    the sensor. Here the drop is also recorded in ``dropped`` so a test can see it.
    """

    def __init__(self, datastore_service: DatastoreService, trigger_types: Dict[str, dict],
                 pack: str = "autoscale", class_name: str = "Sensor",
                 on_dispatch: Optional[Callable[[Dispatch], None]] = None):
        self.datastore_service = datastore_service
        self.trigger_types = trigger_types
        self.dispatched: List[Dispatch] = []
        self.dropped: List[Dropped] = []
        self._on_dispatch = on_dispatch
        self._lock = threading.Lock()
        self._logger = logging.getLogger("SensorWrapper.%s.%s" % (pack, class_name))

    def get_logger(self, name):
        return self._logger.getChild(name)

    def dispatch(self, trigger, payload=None, trace_tag=None):
        return self.dispatch_with_context(trigger, payload=payload, trace_context=trace_tag)

    def dispatch_with_context(self, trigger, payload=None, trace_context=None):
        reason = self._validation_error(trigger, payload)
        if reason is not None:
            self._logger.warning(
                'Trigger payload validation failed and validation is enabled, not dispatching '
                'a trigger "%s" (%s): %s', trigger, payload, reason)
            with self._lock:
                self.dropped.append(Dropped(trigger, payload, reason))
            return None
        event = Dispatch(trigger, payload, trace_context)
        with self._lock:
            self.dispatched.append(event)
        if self._on_dispatch is not None:
            self._on_dispatch(event)
        return event

    def _validation_error(self, trigger: str, payload: Any) -> Optional[str]:
        trigger_type = self.trigger_types.get(trigger)
        if trigger_type is None:
            return 'Trigger type with reference "%s" doesn\'t exist in the database' % trigger
        payload_schema = trigger_type.get("payload_schema")
        if not payload_schema:
            return None
        try:
            st2schema.validate(payload, payload_schema)
        except (jsonschema.ValidationError, jsonschema.SchemaError) as exc:
            return exc.message
        return None
