from st2common.runners.base_action import Action

from autoscale_core.errors import BackendError, ValidationError
from autoscale_core.lb import HAProxySettings, load_balancer
from autoscale_core.services.action import reports_failure


class LbAddNode(Action):
    @reports_failure
    def run(self, node, address, backend=None, port=None, health_check=None):
        try:
            settings = HAProxySettings.from_config(self.config)
            backend = settings.backend_or_default(backend)
            check = settings.health_checks if health_check is None else health_check
            server = load_balancer(settings).add_server(
                backend, node, address, settings.server_port if port is None else port, check)
        except (BackendError, ValidationError) as exc:
            return False, {"error": str(exc), "backend": backend, "server": node}
        return True, server.to_dict()
