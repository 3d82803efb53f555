from st2common.runners.base_action import Action

from autoscale_core import lifecycle
from autoscale_core.failure import reports_failure


class AsgActivity(Action):
    @reports_failure
    def run(self, asg, kind, cause="", node=None, count=None, ok=True):
        return lifecycle.perform(self.action_service, self.config, lifecycle.activity,
                                 asg, kind, cause=cause, node=node, count=count, ok=ok)
