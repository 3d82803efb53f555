from st2common.runners.base_action import Action

from autoscale_core.services import nodes
from autoscale_core.services.action import perform, reports_failure


class AsgActivity(Action):
    @reports_failure
    def run(self, asg, kind, cause="", node=None, count=None, ok=True):
        return perform(self.action_service, self.config, nodes.activity,
                       asg, kind, cause=cause, node=node, count=count, ok=ok)
