from st2common.runners.base_action import Action

from autoscale_core.services import balancing
from autoscale_core.services.action import reports_failure


class LbDrainNode(Action):
    @reports_failure
    def run(self, node, backend=None, drain_timeout=None):
        return balancing.drain_node(self.config, node, backend=backend,
                                    drain_timeout=drain_timeout)
