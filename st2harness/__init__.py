"""A small mirror of the StackStorm 3.9 APIs the pack uses, for its tests and local sandbox.

Never imported by the pack itself. When ``st2common`` is importable (a real StackStorm
install), the real ``Action``, ``Sensor`` and ``PollingSensor`` base classes are used instead
of the mirrors in ``st2harness.base``.
"""

from .base import install_st2_modules
from .datastore import Datastore, DatastoreService, KeyValuePair
from .loader import PackLoader
from .services import ActionService, Dispatch, SensorService

__all__ = [
    "ActionService",
    "Datastore",
    "DatastoreService",
    "Dispatch",
    "KeyValuePair",
    "PackLoader",
    "SensorService",
    "install_st2_modules",
]
