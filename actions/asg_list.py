from st2common.runners.base_action import Action

from autoscale_core import lifecycle


class AsgList(Action):
    def run(self):
        return lifecycle.perform(self.action_service, self.config, lifecycle.list_groups,
                                 config=self.config)
