from st2common.runners.base_action import Action

from autoscale_core.services.action import perform, reports_failure
from autoscale_core.sources import st2_webhook


class AlertRoute(Action):
    @reports_failure
    def run(self, body):
        return perform(self.action_service, self.config, st2_webhook.route_body, body)
