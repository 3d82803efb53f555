from st2common.runners.base_action import Action

from autoscale_core import lifecycle
from autoscale_core.failure import reports_failure


class NodeUpdate(Action):
    @reports_failure
    def run(self, asg, node, state, server_id=None, address=None, cause=None):
        return lifecycle.perform(self.action_service, self.config, lifecycle.node_update,
                                 asg, node, state, server_id=server_id, address=address,
                                 cause=cause)
