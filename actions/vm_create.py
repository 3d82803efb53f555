from st2common.runners.base_action import Action

from autoscale_core.compute import (
    SSH_KEY_DATASTORE_NAME,
    ComputeSettings,
    NovaCompute,
    ServerSpec,
    build_user_data,
    ssh_public_keys,
)
from autoscale_core.configuration import ChefSettings, cloud_config
from autoscale_core.errors import BackendError, ValidationError
from autoscale_core.services.action import reports_failure


class VmCreate(Action):
    @reports_failure
    def run(self, group, node, flavor, image, network, chef_run_list, chef_environment,
            boot_timeout):
        try:
            settings = ComputeSettings.from_config(self.config)
            spec = ServerSpec(group, node, flavor, image, network)  # names checked first
            keys = ssh_public_keys(
                self.action_service.get_value(SSH_KEY_DATASTORE_NAME, local=False))
            chef = cloud_config(ChefSettings.from_config(self.config), node,
                                chef_run_list or [], chef_environment or "_default")
            spec = spec.with_user_data(build_user_data(keys, chef))
            boot = NovaCompute(settings).boot(spec, boot_timeout or settings.boot_timeout)
        except BackendError as exc:
            failure = {"server_id": ""}  # a ServerError names the server left to destroy
            failure.update(exc.as_dict(), error=str(exc))
            return False, failure
        except ValidationError as exc:
            return False, {"error": str(exc), "retryable": False, "server_id": ""}
        return True, boot.as_dict()
