from st2common.runners.base_action import Action

from autoscale_core import lifecycle
from autoscale_core.failure import reports_failure


class NodeStart(Action):
    @reports_failure
    def run(self, asg, node=None):
        return lifecycle.perform(self.action_service, self.config, lifecycle.node_start, asg,
                                 node=node)
