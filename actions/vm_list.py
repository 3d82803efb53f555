from st2common.runners.base_action import Action

from autoscale_core.compute import ComputeSettings, NovaCompute
from autoscale_core.errors import BackendError, ValidationError
from autoscale_core.services.action import reports_failure


class VmList(Action):
    @reports_failure
    def run(self, group):
        try:
            servers = NovaCompute(ComputeSettings.from_config(self.config)).servers(group)
        except BackendError as exc:
            return False, dict(exc.as_dict(), error=str(exc))
        except ValidationError as exc:
            return False, {"error": str(exc), "retryable": False}
        return True, {"group": group, "count": len(servers),
                      "servers": [server.listing() for server in servers]}
