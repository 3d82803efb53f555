from st2common.runners.base_action import Action

from autoscale_core.errors import BackendError, ValidationError
from autoscale_core.lb import HAProxySettings, load_balancer
from autoscale_core.services.action import reports_failure


class LbRemoveNode(Action):
    @reports_failure
    def run(self, node, backend=None, drain_timeout=None):
        try:
            settings = HAProxySettings.from_config(self.config)
            backend = settings.backend_or_default(backend)
            wait = settings.drain_timeout if drain_timeout is None else drain_timeout
            removed = load_balancer(settings).remove_server(backend, node, wait)
        except (BackendError, ValidationError) as exc:
            return False, {"error": str(exc), "backend": backend, "server": node}
        return True, {"backend": backend, "server": node, "removed": removed}
