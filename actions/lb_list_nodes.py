from st2common.runners.base_action import Action

from autoscale_core.errors import BackendError, ValidationError
from autoscale_core.lb import HAProxySettings, load_balancer
from autoscale_core.services.action import reports_failure


class LbListNodes(Action):
    @reports_failure
    def run(self, backend=None):
        try:
            settings = HAProxySettings.from_config(self.config)
            backend = settings.backend_or_default(backend)
            servers = load_balancer(settings).list_servers(backend)
        except (BackendError, ValidationError) as exc:
            return False, {"error": str(exc), "backend": backend}
        return True, {"backend": backend, "servers": [server.to_dict() for server in servers]}
