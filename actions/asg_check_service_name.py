from st2common.runners.base_action import Action

from autoscale_core import lifecycle
from autoscale_core.backend import BackendError
from autoscale_core.dns import DnsSettings, NotOwnedError, registry
from autoscale_core.failure import reports_failure
from autoscale_core.model import ValidationError


class AsgCheckServiceName(Action):
    @reports_failure
    def run(self, name, domain, dns_zone=None):
        ok, where = lifecycle.perform(self.action_service, self.config, lifecycle.service_name,
                                      name, domain, dns_zone=dns_zone, config=self.config)
        if not ok:
            return False, where
        try:
            settings = DnsSettings.from_config(self.config)
            state = registry(settings).check_record(
                where["name"], where["domain"], address=settings.service_address or None,
                zone=where["dns_zone"])
        except NotOwnedError as exc:
            return False, dict(exc.as_dict(), error=str(exc), not_owned=True)
        except BackendError as exc:
            return False, dict(exc.as_dict(), error=str(exc))
        except ValidationError as exc:
            return False, {"error": str(exc), "retryable": False}
        return True, {"fqdn": where["fqdn"], "zone": where["dns_zone"], "state": state}
