"""The New Relic webhook sensor: an HTTP listener that turns New Relic alerts into
``autoscale.alert`` triggers, one per group the alert is for.

Everything it does is ``autoscale_core.sources`` (read ``sources/receiver.py``'s docstring for
the requests, the answers, authentication, dedup and routing, and ``sources/server.py``'s for
slow clients); this file only builds the server from the pack config's ``webhook`` section
(which also names the alert source, ``webhook.source``: New Relic by default) and the sensor
service, serves in run() and stops in cleanup().

A bad config (no secret for the chosen auth_type without allow_insecure, say) or a port that
cannot be bound stops the sensor in setup(), with the config key's name in the error. The
running sensor does not see config changes: after editing /opt/stackstorm/configs/autoscale.yaml
run ``st2ctl reload --register-configs`` and restart the sensor container.
"""

from st2reactor.sensor.base import Sensor

from autoscale_core.services.action import store_for
from autoscale_core.sources import server
from autoscale_core.sources.settings import WebhookSettings


class NewRelicWebhookSensor(Sensor):
    def __init__(self, sensor_service, config=None):
        super().__init__(sensor_service=sensor_service, config=config)
        self._logger = self.sensor_service.get_logger(name=self.__class__.__name__)
        self._server = None

    def setup(self):
        settings = WebhookSettings.from_config(self.config)
        store = store_for(self.sensor_service, self.config)
        self._server = server.build_server(
            settings, dispatch=self.sensor_service.dispatch,
            load_groups=lambda: store.load_all()[0], logger=self._logger)

    def run(self):
        self._server.serve()

    def cleanup(self):
        if self._server is not None:
            self._server.stop()

    @property
    def port(self):
        """The port the listener is bound to (the config's, or the system's choice for 0)."""
        return self._server.port if self._server is not None else None

    def add_trigger(self, trigger):
        pass

    def update_trigger(self, trigger):
        pass

    def remove_trigger(self, trigger):
        pass
