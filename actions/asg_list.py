from st2common.runners.base_action import Action

from autoscale_core import lifecycle
from autoscale_core.failure import reports_failure


class AsgList(Action):
    @reports_failure
    def run(self):
        return lifecycle.perform(self.action_service, self.config, lifecycle.list_groups,
                                 config=self.config)
