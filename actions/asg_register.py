from st2common.runners.base_action import Action

from autoscale_core import lifecycle


class AsgRegister(Action):
    def run(self, name, domain, **settings):
        return lifecycle.perform(self.action_service, self.config, lifecycle.register,
                                 name, domain, config=self.config, **settings)
