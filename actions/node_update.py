from st2common.runners.base_action import Action

from autoscale_core import lifecycle


class NodeUpdate(Action):
    def run(self, asg, node, state, server_id=None, address=None, cause=None):
        return lifecycle.perform(self.action_service, self.config, lifecycle.node_update,
                                 asg, node, state, server_id=server_id, address=address,
                                 cause=cause)
