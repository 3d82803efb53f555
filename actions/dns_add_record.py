from st2common.runners.base_action import Action

from autoscale_core.dns import DnsSettings, NotOwnedError, registry
from autoscale_core.errors import BackendError, ValidationError
from autoscale_core.services.action import reports_failure


class DnsAddRecord(Action):
    @reports_failure
    def run(self, name, domain, address=None, ttl=None, zone=None):
        try:
            settings = DnsSettings.from_config(self.config)
            if not address and not settings.service_address:
                raise ValidationError("no address given and config key dns.service_address "
                                      "is empty")
            record = registry(settings).add_record(
                name, domain, address or settings.service_address, ttl=ttl, zone=zone)
        except NotOwnedError as exc:
            return False, dict(exc.as_dict(), error=str(exc), not_owned=True)
        except BackendError as exc:
            return False, dict(exc.as_dict(), error=str(exc))
        except ValidationError as exc:
            return False, {"error": str(exc), "retryable": False}
        return True, {"fqdn": record.fqdn, "type": record.type, "address": record.address,
                      "ttl": record.ttl, "zone": record.zone, "change": record.change,
                      "verified": True}
