from st2common.runners.base_action import Action

from autoscale_core.services import groups
from autoscale_core.services.action import perform, reports_failure


class AsgRegister(Action):
    @reports_failure
    def run(self, name, domain, check_only=False, **settings):
        return perform(self.action_service, self.config, groups.register,
                       name, domain, config=self.config, check_only=bool(check_only),
                       **settings)
