from st2common.runners.base_action import Action

from autoscale_core.services import vms
from autoscale_core.services.action import reports_failure


class VmList(Action):
    @reports_failure
    def run(self, group):
        return vms.list_vms(self.config, group)
