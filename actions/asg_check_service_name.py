from st2common.runners.base_action import Action

from autoscale_core.services import naming
from autoscale_core.services.action import reports_failure


class AsgCheckServiceName(Action):
    @reports_failure
    def run(self, name, domain, dns_zone=None):
        return naming.check_service_name(self.action_service, self.config, name, domain,
                                         dns_zone=dns_zone)
