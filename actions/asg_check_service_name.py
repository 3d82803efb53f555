from st2common.runners.base_action import Action

from autoscale_core.dns import DnsSettings, NotOwnedError, registry
from autoscale_core.errors import BackendError, ValidationError
from autoscale_core.services import groups
from autoscale_core.services.action import perform, reports_failure


class AsgCheckServiceName(Action):
    @reports_failure
    def run(self, name, domain, dns_zone=None):
        ok, where = perform(self.action_service, self.config, groups.service_name,
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
