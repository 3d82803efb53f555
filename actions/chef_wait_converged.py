from st2common.runners.base_action import Action

from autoscale_core.configuration import ChefSettings, configuration
from autoscale_core.errors import BackendError, ValidationError
from autoscale_core.services.action import reports_failure


class ChefWaitConverged(Action):
    @reports_failure
    def run(self, node, since, converge_timeout=None):
        try:
            with configuration(ChefSettings.from_config(self.config)) as chef:
                status = chef.wait_converged(node, since, timeout=converge_timeout)
        except BackendError as exc:
            return False, dict(exc.as_dict(), error=str(exc), node=node)
        except ValidationError as exc:
            return False, {"error": str(exc), "retryable": False, "node": node}
        return True, dict(status.as_dict(), converged=True, since=since)
