from st2common.runners.base_action import Action

from autoscale_core.services import provisioning
from autoscale_core.services.action import reports_failure


class ChefWaitConverged(Action):
    @reports_failure
    def run(self, node, since, converge_timeout=None):
        return provisioning.wait_converged(self.config, node, since, timeout=converge_timeout)
