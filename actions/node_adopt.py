from st2common.runners.base_action import Action

from autoscale_core import lifecycle
from autoscale_core.failure import reports_failure


class NodeAdopt(Action):
    @reports_failure
    def run(self, asg, node, server_id, cause=""):
        return lifecycle.perform(self.action_service, self.config, lifecycle.node_adopt, asg,
                                 node, server_id, cause=cause)
