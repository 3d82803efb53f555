from st2common.runners.base_action import Action

from autoscale_core.services import provisioning
from autoscale_core.services.action import reports_failure


class ChefDeleteNode(Action):
    @reports_failure
    def run(self, node):
        return provisioning.delete_node(self.config, node)
