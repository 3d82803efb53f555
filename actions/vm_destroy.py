from st2common.runners.base_action import Action

from autoscale_core.services import vms
from autoscale_core.services.action import reports_failure


class VmDestroy(Action):
    @reports_failure
    def run(self, group, node, server_id, delete_timeout):
        return vms.destroy_vm(self.config, group, node, server_id, delete_timeout)
