from st2common.runners.base_action import Action

from autoscale_core import lifecycle
from autoscale_core.failure import reports_failure


class AsgRegister(Action):
    @reports_failure
    def run(self, name, domain, check_only=False, **settings):
        return lifecycle.perform(self.action_service, self.config, lifecycle.register,
                                 name, domain, config=self.config, check_only=bool(check_only),
                                 **settings)
