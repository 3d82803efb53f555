from st2common.runners.base_action import Action

from autoscale_core.services import nodes
from autoscale_core.services.action import perform, reports_failure


class NodeAdopt(Action):
    @reports_failure
    def run(self, asg, node, server_id, cause=""):
        return perform(self.action_service, self.config, nodes.node_adopt, asg,
                       node, server_id, cause=cause)
