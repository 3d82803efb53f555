from st2common.runners.base_action import Action

from autoscale_core.services import nodes
from autoscale_core.services.action import perform, reports_failure


class NodeUpdate(Action):
    @reports_failure
    def run(self, asg, node, state, server_id=None, address=None, cause=None):
        return perform(self.action_service, self.config, nodes.node_update,
                       asg, node, state, server_id=server_id, address=address,
                       cause=cause)
