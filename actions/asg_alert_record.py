from st2common.runners.base_action import Action

from autoscale_core import alert_state, lifecycle
from autoscale_core.failure import reports_failure


class AsgAlertRecord(Action):
    @reports_failure
    def run(self, asg, state, severity, issue_id, title=""):
        return lifecycle.perform(self.action_service, self.config, alert_state.record_alert,
                                 asg, state, severity, issue_id, title=title, config=self.config)
