from st2common.runners.base_action import Action

from autoscale_core import lifecycle


class AsgResume(Action):
    def run(self, asg):
        return lifecycle.perform(self.action_service, self.config, lifecycle.set_paused,
                                 asg, False)
