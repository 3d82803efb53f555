from st2common.runners.base_action import Action

from autoscale_core.services import nodes
from autoscale_core.services.action import perform, reports_failure


class NodeStart(Action):
    @reports_failure
    def run(self, asg, node=None):
        return perform(self.action_service, self.config, nodes.node_start, asg,
                       node=node)
