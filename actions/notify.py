from st2common.runners.base_action import Action

from autoscale_core.notify import announce
from autoscale_core.services.action import reports_failure


class Notify(Action):
    @reports_failure
    def run(self, group, kind="info", cause=None, node=None, count=None, dry_run=False,
            channel=None, detail=None, url=None):
        # announce() never raises: a chat failure is reported in the result
        # (delivered: false, error), never as a failed step of a scaling workflow.
        return True, announce(self.config, self.action_service, group, kind=kind, cause=cause,
                              node=node, count=count, dry_run=dry_run, channel=channel,
                              detail=detail, url=url)
