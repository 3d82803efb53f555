from st2common.runners.base_action import Action

from autoscale_core.services import nodes
from autoscale_core.services.action import perform, reports_failure


class NodePick(Action):
    @reports_failure
    def run(self, asg, node=None, force=False):
        return perform(self.action_service, self.config, nodes.node_pick,
                       asg, node=node, force=force)
