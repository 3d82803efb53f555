from st2common.runners.base_action import Action

from autoscale_core import lifecycle
from autoscale_core.failure import reports_failure


class NodePick(Action):
    @reports_failure
    def run(self, asg, node=None, force=False):
        return lifecycle.perform(self.action_service, self.config, lifecycle.node_pick,
                                 asg, node=node, force=force)
