from st2common.runners.base_action import Action

from autoscale_core import lifecycle


class NodeAdopt(Action):
    def run(self, asg, node, server_id, cause=""):
        return lifecycle.perform(self.action_service, self.config, lifecycle.node_adopt, asg,
                                 node, server_id, cause=cause)
