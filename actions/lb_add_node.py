from st2common.runners.base_action import Action

from autoscale_core.services import balancing
from autoscale_core.services.action import reports_failure


class LbAddNode(Action):
    @reports_failure
    def run(self, node, address, backend=None, port=None, health_check=None):
        return balancing.add_node(self.config, node, address, backend=backend, port=port,
                                  health_check=health_check)
