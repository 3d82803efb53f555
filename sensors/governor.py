"""The governor sensor: every ``governor.interval`` seconds, one look at every group.

Everything it does is ``autoscale_core.services.governor.Governor`` (read its docstring); this file
only builds it from the pack config and the sensor service, and calls ``tick()``.

Poll interval: st2 starts a PollingSensor with the ``poll_interval`` of its metadata
(sensors/governor.yaml, 30 s) and never reads the pack config for it. ``setup()`` then sets
the config's ``governor.interval`` (default 30, at least 5), so the config wins. A running
sensor does not see config changes: after editing /opt/stackstorm/configs/autoscale.yaml run
``st2ctl reload --register-configs`` and restart the sensor
(``sudo st2ctl restart-component st2sensorcontainer``).
"""

from st2reactor.sensor.base import PollingSensor

from autoscale_core.services.governor import Governor


class GovernorSensor(PollingSensor):
    def setup(self):
        self._logger = self.sensor_service.get_logger(name=self.__class__.__name__)
        # A bad config stops the sensor here, with the key's name in the error.
        self.governor = Governor(self.sensor_service, self.config, logger=self._logger)
        self.set_poll_interval(self.governor.settings.interval)

    def poll(self):
        try:
            report = self.governor.tick()
        except Exception:  # the datastore API is down, say: try again next interval
            self._logger.exception("governor tick failed; next try in %s s",
                                   self.get_poll_interval())
            return None
        self._logger.debug(
            "governor tick: %d groups, %d dispatched, %d recorded, %d problems, %d orphans",
            len(report.decisions), len(report.dispatched), len(report.recorded),
            len(report.problems), len(report.orphans))
        return report

    def cleanup(self):
        pass

    def add_trigger(self, trigger):
        pass

    def update_trigger(self, trigger):
        pass

    def remove_trigger(self, trigger):
        pass
