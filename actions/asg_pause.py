from st2common.runners.base_action import Action

from autoscale_core import lifecycle
from autoscale_core.failure import reports_failure


class AsgPause(Action):
    @reports_failure
    def run(self, asg):
        return lifecycle.perform(self.action_service, self.config, lifecycle.set_paused,
                                 asg, True)
