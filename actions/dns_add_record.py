from st2common.runners.base_action import Action

from autoscale_core.services import naming
from autoscale_core.services.action import reports_failure


class DnsAddRecord(Action):
    @reports_failure
    def run(self, name, domain, address=None, ttl=None, zone=None):
        return naming.add_record(self.config, name, domain, address=address, ttl=ttl,
                                 zone=zone)
