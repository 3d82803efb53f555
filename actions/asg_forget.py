from st2common.runners.base_action import Action

from autoscale_core.services import groups
from autoscale_core.services.action import perform, reports_failure


class AsgForget(Action):
    @reports_failure
    def run(self, name, force=False):
        return perform(self.action_service, self.config, groups.forget,
                       name, force=force)
