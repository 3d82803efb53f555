from st2common.runners.base_action import Action

from autoscale_core.services import groups
from autoscale_core.services.action import perform, reports_failure


class AsgStatus(Action):
    @reports_failure
    def run(self, asg):
        return perform(self.action_service, self.config, groups.status,
                       asg, config=self.config)
