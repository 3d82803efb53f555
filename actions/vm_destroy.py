from st2common.runners.base_action import Action

from autoscale_core.compute import ComputeSettings, NovaCompute, remove_servers
from autoscale_core.errors import BackendError, ValidationError
from autoscale_core.services.action import reports_failure


class VmDestroy(Action):
    @reports_failure
    def run(self, group, node, server_id, delete_timeout):
        try:
            compute = NovaCompute(ComputeSettings.from_config(self.config))
            deleted = remove_servers(compute, group, node=node, server_id=server_id,
                                     timeout=delete_timeout or 300)
        except BackendError as exc:
            return False, dict(exc.as_dict(), error=str(exc))
        except ValidationError as exc:
            return False, {"error": str(exc), "retryable": False}
        return True, {"group": group, "node": node or "", "server_id": server_id or "",
                      "deleted": deleted, "already_gone": not deleted}
