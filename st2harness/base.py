"""Mirrors of st2's Action, Sensor and PollingSensor base classes, and their module paths.

``install_st2_modules()`` makes ``st2common.runners.base_action`` and ``st2reactor.sensor.base``
importable when StackStorm is not installed, so the pack's files import exactly what they
import in production. With StackStorm installed it does nothing and the real classes load.
"""

from __future__ import annotations

import abc
import importlib.util
import logging
import sys
import time
import types


class Action(metaclass=abc.ABCMeta):
    """st2common.runners.base_action.Action"""

    description = None

    def __init__(self, config=None, action_service=None):
        self.config = config or {}
        self.action_service = action_service
        self.logger = logging.getLogger("actions.python.%s" % self.__class__.__name__)

    @abc.abstractmethod
    def run(self, **kwargs):
        pass


class BaseSensor(metaclass=abc.ABCMeta):
    """st2reactor.sensor.base.BaseSensor"""

    def __init__(self, sensor_service, config=None):
        self._sensor_service = sensor_service
        self.sensor_service = sensor_service
        self._config = config or {}
        self.config = self._config

    @abc.abstractmethod
    def setup(self):
        pass

    @abc.abstractmethod
    def run(self):
        pass

    @abc.abstractmethod
    def cleanup(self):
        pass

    @abc.abstractmethod
    def add_trigger(self, trigger):
        pass

    @abc.abstractmethod
    def update_trigger(self, trigger):
        pass

    @abc.abstractmethod
    def remove_trigger(self, trigger):
        pass


class Sensor(BaseSensor):
    @abc.abstractmethod
    def run(self):
        pass


class PollingSensor(BaseSensor):
    def __init__(self, sensor_service, config=None, poll_interval=5):
        super().__init__(sensor_service=sensor_service, config=config)
        self._poll_interval = poll_interval

    @abc.abstractmethod
    def poll(self):
        pass

    def run(self):
        while True:
            self.poll()
            time.sleep(self._poll_interval)

    def get_poll_interval(self):
        return self._poll_interval

    def set_poll_interval(self, poll_interval):
        self._poll_interval = poll_interval


def st2_installed() -> bool:
    try:
        return importlib.util.find_spec("st2common") is not None
    except (ImportError, ValueError):
        return False


def install_st2_modules() -> None:
    """Register the mirrors under st2's module names, unless StackStorm is installed."""
    if st2_installed() or "st2common.runners.base_action" in sys.modules:
        return
    modules = {
        "st2common": {},
        "st2common.runners": {},
        "st2common.runners.base_action": {"Action": Action},
        "st2reactor": {},
        "st2reactor.sensor": {},
        "st2reactor.sensor.base": {
            "BaseSensor": BaseSensor, "Sensor": Sensor, "PollingSensor": PollingSensor,
        },
    }
    for name, attrs in modules.items():
        module = types.ModuleType(name, "st2harness mirror of %s" % name)
        module.__dict__.update(attrs)
        if not name.endswith("base_action") and not name.endswith("sensor.base"):
            module.__path__ = []  # a package, so submodules resolve from sys.modules
        sys.modules[name] = module
        parent, _, child = name.rpartition(".")
        if parent:
            setattr(sys.modules[parent], child, module)


def base_classes():
    """(Action, Sensor, PollingSensor) as the pack's files will see them."""
    install_st2_modules()
    from st2common.runners.base_action import Action as action_base
    from st2reactor.sensor.base import PollingSensor as polling_base
    from st2reactor.sensor.base import Sensor as sensor_base

    return action_base, sensor_base, polling_base
