from st2common.runners.base_action import Action

from autoscale_core.services import alerts
from autoscale_core.services.action import perform, reports_failure


class AsgAlertRecord(Action):
    @reports_failure
    def run(self, asg, state, severity, issue_id, title=""):
        return perform(self.action_service, self.config, alerts.record_alert,
                       asg, state, severity, issue_id, title=title, config=self.config)
