from st2common.runners.base_action import Action

from autoscale_core import lifecycle
from autoscale_core.failure import reports_failure


class AsgForget(Action):
    @reports_failure
    def run(self, name, force=False):
        return lifecycle.perform(self.action_service, self.config, lifecycle.forget,
                                 name, force=force)
