from st2common.runners.base_action import Action

from autoscale_core import lifecycle, st2_webhook


class AlertRoute(Action):
    def run(self, body):
        return lifecycle.perform(self.action_service, self.config, st2_webhook.route_body, body)
