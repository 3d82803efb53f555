from st2common.runners.base_action import Action

from autoscale_core.backend import BackendError
from autoscale_core.dns import DnsSettings, registry
from autoscale_core.failure import reports_failure
from autoscale_core.model import ValidationError


class DnsDeleteRecord(Action):
    @reports_failure
    def run(self, name, domain, zone=None):
        try:
            fqdn = registry(DnsSettings.from_config(self.config)).delete_record(
                name, domain, zone=zone)
        except BackendError as exc:
            return False, dict(exc.as_dict(), error=str(exc))
        except ValidationError as exc:
            return False, {"error": str(exc), "retryable": False}
        return True, {"fqdn": fqdn, "deleted": True}
