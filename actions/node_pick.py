from st2common.runners.base_action import Action

from autoscale_core import lifecycle


class NodePick(Action):
    def run(self, asg, node=None, force=False):
        return lifecycle.perform(self.action_service, self.config, lifecycle.node_pick,
                                 asg, node=node, force=force)
