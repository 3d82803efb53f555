from st2common.runners.base_action import Action

from autoscale_core import lifecycle, st2_webhook
from autoscale_core.failure import reports_failure


class AlertRoute(Action):
    @reports_failure
    def run(self, body):
        return lifecycle.perform(self.action_service, self.config, st2_webhook.route_body, body)
