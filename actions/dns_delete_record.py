from st2common.runners.base_action import Action

from autoscale_core.services import naming
from autoscale_core.services.action import reports_failure


class DnsDeleteRecord(Action):
    @reports_failure
    def run(self, name, domain, zone=None, address=None, service_name=False):
        return naming.delete_record(self.config, name, domain, zone=zone, address=address,
                                    service_name=service_name, log=self.logger)
