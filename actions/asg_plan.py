from st2common.runners.base_action import Action

from autoscale_core import lifecycle


class AsgPlan(Action):
    def run(self, asg, direction, count=None, cause="", governed=False):
        return lifecycle.perform(self.action_service, self.config, lifecycle.plan_change,
                                 asg, direction, count=count, config=self.config, cause=cause,
                                 governed=governed)
