from st2common.runners.base_action import Action

from autoscale_core import lifecycle


class NodeForget(Action):
    def run(self, asg, node):
        return lifecycle.perform(self.action_service, self.config, lifecycle.node_forget,
                                 asg, node)
