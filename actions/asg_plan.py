from st2common.runners.base_action import Action

from autoscale_core import lifecycle
from autoscale_core.failure import reports_failure


class AsgPlan(Action):
    @reports_failure
    def run(self, asg, direction, count=None, cause="", governed=False):
        return lifecycle.perform(self.action_service, self.config, lifecycle.plan_change,
                                 asg, direction, count=count, config=self.config, cause=cause,
                                 governed=governed)
