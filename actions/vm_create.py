from st2common.runners.base_action import Action

from autoscale_core.services import vms
from autoscale_core.services.action import reports_failure


class VmCreate(Action):
    @reports_failure
    def run(self, group, node, flavor, image, network, chef_run_list, chef_environment,
            boot_timeout):
        return vms.create_vm(self.action_service, self.config, group, node, flavor, image,
                             network, chef_run_list, chef_environment, boot_timeout)
