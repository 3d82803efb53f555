from st2common.runners.base_action import Action

from autoscale_core.services import planning
from autoscale_core.services.action import perform, reports_failure


class AsgPlan(Action):
    @reports_failure
    def run(self, asg, direction, count=None, cause="", governed=False):
        return perform(self.action_service, self.config, planning.plan_change,
                       asg, direction, count=count, config=self.config, cause=cause,
                       governed=governed)
