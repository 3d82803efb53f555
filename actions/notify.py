from st2common.runners.base_action import Action

from autoscale_core.services.action import reports_failure
from autoscale_core.services.announce import announce


class Notify(Action):
    @reports_failure
    def run(self, group, kind="info", cause=None, node=None, count=None, dry_run=False,
            channel=None, detail=None, url=None):
        # announce() never raises for a message it could not post: a chat failure is reported
        # in the result (delivered: false, error), never as a failed step of a scaling
        # workflow.
        return True, announce(self.config, self.action_service, group, kind=kind, cause=cause,
                              node=node, count=count, dry_run=dry_run, channel=channel,
                              detail=detail, url=url)
