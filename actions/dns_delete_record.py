from st2common.runners.base_action import Action

from autoscale_core.dns import DnsSettings, NotOwnedError, registry
from autoscale_core.errors import BackendError, ValidationError
from autoscale_core.services.action import reports_failure


class DnsDeleteRecord(Action):
    @reports_failure
    def run(self, name, domain, zone=None, address=None, service_name=False):
        try:
            settings = DnsSettings.from_config(self.config)
            recorded = address or (settings.service_address if service_name else None)
            removal = registry(settings).delete_record(name, domain, zone=zone,
                                                       address=recorded or None)
        except NotOwnedError as exc:
            # Someone else's name: nothing of ours is there, so the removal's job is done.
            self.logger.warning("%s", exc)
            return True, {"fqdn": exc.fqdn, "deleted": False, "outcome": "not ours",
                          "left_alone": str(exc)}
        except BackendError as exc:
            return False, dict(exc.as_dict(), error=str(exc))
        except ValidationError as exc:
            return False, {"error": str(exc), "retryable": False}
        return True, {"fqdn": removal.fqdn, "deleted": True, "outcome": removal.outcome}
