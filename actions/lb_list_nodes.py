from st2common.runners.base_action import Action

from autoscale_core.services import balancing
from autoscale_core.services.action import reports_failure


class LbListNodes(Action):
    @reports_failure
    def run(self, backend=None):
        return balancing.list_nodes(self.config, backend=backend)
