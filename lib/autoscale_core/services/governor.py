"""The governor: every ``governor.interval`` seconds, one look at every group, and the
dispatches that follow from it. ``sensors/governor.py`` runs it in st2's sensor container;
everything it does is here, so that it can be tested without st2.

One tick (``Governor.tick(now)``):

1. ``store.load()``: one datastore listing for every group, its alert, scaling state and
   nodes (more only past ``governor.datastore_page_size`` records).
   A record that cannot be read (bad JSON, cut short, a wrong type in any field, an unknown
   schema version) affects its group only: it is reported in every tick's ``problems``,
   logged as a warning when it first appears (debug after that), and announced once in the
   group's channel (the default channel when the group's own spec is the unreadable record).
   Which bad records were announced is kept in the datastore (``ANNOUNCED_KEY``, written only
   when that set changes): a sensor restart does not announce them again; a record that is
   fixed and breaks again, or breaks differently, is announced again. A group whose spec
   cannot be read is skipped; one whose alert, scaling or node record cannot be read is held
   by the policy (no scale-out, no scale-in; repairs go on).
2. ``policy.decide(groups, now, settings)``: one decision per group (pure; an unexpected
   error deciding one group gives it no action and is reported, the others are decided).
3. Per group (an unexpected error in one group is logged with its name and reported; the
   others still run):

   * paused: nothing at all (no history, no dispatch, no alert expiry). The memories below are
     dropped, so the first decision after ``asg resume`` is recorded and acted on at once.
   * ``alert_expired``: the governor ends the alert (level none, ``ended_at`` = last heard +
     ``alert_max_age``, issue id and title kept), records an ``alert_expired`` event and
     announces it. The alert record is read again just before it is written and left alone
     if a delivery changed it since the listing (the datastore has no compare-and-set).
   * a decision that acts: dispatched as ``autoscale.scale_out``, ``autoscale.scale_in`` or
     ``autoscale.repair`` with ``{asg, count, cause, reason, current, target, decided_at}``,
     and recorded in the group's history (event ``decision``), unless the same action is in
     flight (below). A dry-run group's decision is recorded and announced (``dry_run``), never
     dispatched; it follows the same in-flight rule, so a dry run shows what a real run would
     dispatch and when.
   * history (event ``decision``, cause and count): written when a decision is dispatched (or
     announced, for a dry run), and otherwise only when its (action, reason) differs from the
     last one this governor recorded for the group. A steady group costs no write at all,
     and every change of "why" is visible in ``asg status``. The memory is this process's: after
     a sensor restart each group's current decision is recorded once more.

   In flight: the governor remembers, per group, the action it last dispatched and when.
   While the group's decision is the same action and less than ``governor.dispatch_timeout``
   seconds have passed, it is not dispatched again; any other decision (for instance none,
   because the nodes are now being added) clears the memory. Past the timeout it is
   dispatched again, with a cause saying the previous dispatch had no effect for so long.
   Why: the scale workflows re-check the policy under a per-group concurrency policy before
   they act (``governed``), so a duplicate dispatch could never double-scale; but every tick
   would queue one more useless execution behind the running one.

4. Orphans and stuck nodes: services/janitor.py (``Janitor``), in the same tick.

The clock, the compute factory and the announcer are injectable; nothing here sleeps.
Backend libraries (the cloud's, the chat's) are imported only when used (backends/), so that
a broken one costs what needs it (the orphan scan, the chat lines), never the governor.
"""

from __future__ import annotations

import logging
import time
from typing import (
    Any,
    Callable,
    Dict,
    List,
    Mapping,
    NamedTuple,
    Optional,
    Set,
    Tuple,
)

from .. import backends
from ..config import GovernorSettings
from ..domain import policy
from ..domain.model import AlertLevel, AlertState, Event, GroupState
from ..domain.policy import Action, Reason, ScaleDecision
from ..domain.words import describe_alert, duration
from ..errors import RecordError
from ..ports.compute import Compute
from ..present.chat import Kind, unreadable_announcement
from ..store import ANNOUNCED_KEY, Listing, Store, Unreadable
from .announce import announce as default_announce
from .janitor import Janitor
from .tick import ALERT_EXPIRED, DECISION, TRIGGERS, Dispatched, TickReport

LOG = logging.getLogger(__name__)

_ANNOUNCE_KINDS = {
    Action.SCALE_OUT: Kind.SCALE_OUT,
    Action.SCALE_IN: Kind.SCALE_IN,
    Action.REPAIR: Kind.REPAIR,
}


class _InFlight(NamedTuple):
    action: str
    dry_run: bool
    at: float


def default_compute(config: Mapping[str, Any]) -> Compute:
    """The default compute factory: the configured cloud (backends/). Its library is
    imported here, at the first orphan scan: should it fail to import (a library version that
    does not load beside StackStorm's), the scan is skipped and reported, and the governor
    goes on."""
    return backends.compute(config)


# ---------------------------------------------------------------------------------------------
# The governor


class Governor:
    """``Governor(service, config)``: ``service`` is an st2 ``sensor_service`` (the datastore
    methods and ``dispatch``), ``config`` the pack config. Settings are read (and refused with
    the key's name) here.

    ``clock`` gives the time when ``tick()`` is called without one; ``compute_factory(config)``
    builds the compute for orphan scans, lazily, at the first scan; ``announce`` has
    ``services.announce.announce``'s signature.
    """

    def __init__(self, service: Any, config: Optional[Mapping[str, Any]] = None, *,
                 clock: Callable[[], float] = time.time,
                 compute_factory: Callable[[Mapping[str, Any]], Compute] = default_compute,
                 announce: Callable[..., Dict[str, Any]] = default_announce,
                 logger: Optional[logging.Logger] = None) -> None:
        self.service = service
        self.config: Mapping[str, Any] = config or {}
        self.settings = GovernorSettings.from_config(self.config)
        self.store = Store(service, page_size=self.settings.page_size,
                           history_ttl=self.settings.history_ttl, keep_parsed=True)
        self.clock = clock
        self.announce = announce
        self.log = logger or LOG
        self.janitor = Janitor(self.settings, self.store, self.config, compute_factory,
                               self._dispatch, self._say, self.log)
        self._last_recorded: Dict[str, Tuple[str, str]] = {}
        self._in_flight: Dict[str, _InFlight] = {}
        # Problems of the last tick, so that each is logged as a warning once.
        self._problems_seen: Set[str] = set()
        # Unreadable record key -> fingerprint of the text announced; None until read from
        # ANNOUNCED_KEY (only once there is something to announce or forget).
        self._announced: Optional[Dict[str, str]] = None

    # -- the tick ------------------------------------------------------------------------------

    def tick(self, now: Optional[float] = None) -> TickReport:
        """One look at every group (see the module's docstring). A failing datastore listing
        raises: nothing can be decided without it, and the caller keeps polling."""
        now = self.clock() if now is None else now
        listing = self.store.load(log=False)
        groups = listing.groups
        report = TickReport(at=now, problems=list(listing.problems))
        self._log_problems(listing.problems)
        try:
            self._announce_unreadable(listing)
        except Exception as exc:  # the datastore or chat: tried again next tick
            self.log.exception("autoscale governor: announcing unreadable records failed")
            report.problems.append("announcing unreadable records: unexpected %s: %s"
                                   % (type(exc).__name__, exc))
        report.decisions = policy.decide(groups, now, self.settings.policy)
        for decision in report.decisions:
            if decision.reason == Reason.ERROR:
                report.problems.append("group %s: %s" % (decision.group, decision.cause))
            try:
                self._govern(groups[decision.group], decision, now, report)
            except Exception as exc:  # one group's trouble must not stop the others
                self.log.exception("autoscale governor: group %s: %s failed", decision.group,
                                   decision.action)
                report.problems.append("group %s: unexpected %s: %s"
                                       % (decision.group, type(exc).__name__, exc))
        for memory in (self._last_recorded, self._in_flight):
            for name in [name for name in memory if name not in groups]:
                del memory[name]
        self.janitor.run(groups, listing, now, report)
        return report

    @property
    def compute_factory(self) -> Callable[[Mapping[str, Any]], Compute]:
        """The janitor's: builds the compute for orphan scans."""
        return self.janitor.compute_factory

    @compute_factory.setter
    def compute_factory(self, factory: Callable[[Mapping[str, Any]], Compute]) -> None:
        self.janitor.compute_factory = factory

    # -- records that cannot be read -----------------------------------------------------------

    def _log_problems(self, problems: List[str]) -> None:
        """Each problem as a warning when it first appears, at debug level while it lasts."""
        current = set(problems)
        for problem in problems:
            level = logging.DEBUG if problem in self._problems_seen else logging.WARNING
            self.log.log(level, "autoscale datastore: %s", problem)
        for problem in self._problems_seen - current:
            self.log.info("autoscale datastore: resolved: %s", problem)
        self._problems_seen = current

    def _announce_unreadable(self, listing: Listing) -> None:
        """Tell each group's channel, once, about its records that cannot be read."""
        current = {entry.key: entry for entry in listing.unreadable
                   if entry.record and entry.group}
        if not current and self._announced is None:
            return  # nothing to tell, nothing to forget: no datastore read
        if self._announced is None:
            self._announced = self._load_announced()
        announced = self._announced
        fresh: Dict[str, List[Unreadable]] = {}
        for key, entry in sorted(current.items()):
            if announced.get(key) != entry.fingerprint:
                fresh.setdefault(entry.group, []).append(entry)
        gone = [key for key in announced if key not in current]
        if not fresh and not gone:
            return
        for group, entries in sorted(fresh.items()):
            state = listing.groups.get(group)
            text = unreadable_announcement(
                group, [(entry.key, entry.reason) for entry in entries],
                any(entry.kind == "spec" for entry in entries))
            self._say(state, Kind.ERROR, text, group=group)
            for entry in entries:
                announced[entry.key] = entry.fingerprint
        for key in gone:
            del announced[key]
        # Remembered even when the chat line was not delivered: the problem stays in every
        # tick's report and the log; a chat outage must not turn into a message every tick.
        self.store.save_announced(announced)

    def _load_announced(self) -> Dict[str, str]:
        try:
            return self.store.load_announced()
        except RecordError as exc:
            # Worst case: the bad records are announced once more, and the key rewritten.
            self.log.warning("autoscale governor: %s cannot be read (%s); starting afresh",
                             ANNOUNCED_KEY, exc)
            return {}

    # -- one group -----------------------------------------------------------------------------

    def _govern(self, state: GroupState, decision: ScaleDecision, now: float,
                report: TickReport) -> None:
        name = decision.group
        if state.group.paused:
            self._in_flight.pop(name, None)
            self._last_recorded.pop(name, None)
            return
        if decision.alert_expired:
            self._expire_alert(state, now, report)
        if not decision.acts:
            self._in_flight.pop(name, None)
            if self._last_recorded.get(name) != (decision.action, decision.reason):
                self._record(decision, decision.cause, now, report)
            return

        previous = self._in_flight.get(name)
        same = previous is not None and (previous.action, previous.dry_run) == (
            decision.action, decision.dry_run)
        if same and now - previous.at < self.settings.dispatch_timeout:
            # In flight: the workflow has not shown its effect yet.
            if self._last_recorded.get(name) != (decision.action, decision.reason):
                self._record(decision, decision.cause, now, report)
            return
        cause = decision.cause
        if same and not decision.dry_run:
            cause = "the %s dispatched %s ago had no effect; dispatching it again: %s" % (
                decision.action.replace("_", "-"), duration(now - previous.at), cause)
        if decision.dry_run:
            # Chat says "would add 2 nodes (2 → 4, max 5)" itself: the why alone after it.
            self._say(state, _ANNOUNCE_KINDS[decision.action], decision.why,
                      count=decision.count, dry_run=True, detail=decision.detail)
        else:
            payload = {
                "asg": name,
                "count": decision.count,
                "cause": cause,
                "reason": decision.reason,
                "current": decision.current,
                "target": decision.target,
                "decided_at": now,
            }
            self._dispatch(TRIGGERS[decision.action], payload, report)
        # Remembered before the history is written: should that write fail, the dispatch is
        # still known and not repeated next tick.
        self._in_flight[name] = _InFlight(decision.action, decision.dry_run, now)
        self._record(decision, cause, now, report)

    def _record(self, decision: ScaleDecision, cause: str, now: float,
                report: TickReport) -> None:
        event = Event(group=decision.group, at=now, kind=DECISION, cause=cause,
                      count=decision.count)
        self.store.record_event(event)
        self._last_recorded[decision.group] = (decision.action, decision.reason)
        report.recorded.append(event)

    def _dispatch(self, trigger: str, payload: Dict[str, Any], report: TickReport) -> None:
        # st2 drops a payload that fails the trigger type's schema without telling the sensor
        # (sensors/governor.yaml declares them; the tests check every payload against them).
        self.service.dispatch(trigger, payload)
        self.log.info("autoscale governor: %s: dispatched %s: %s", payload["asg"], trigger,
                      payload["cause"])
        report.dispatched.append(Dispatched(trigger, payload))

    def _say(self, state: Optional[GroupState], kind: str, cause: str, group: str = "",
             node: str = "", count: int = 0, dry_run: bool = False, detail: str = "") -> None:
        """Tell the group's channel. Never raises: chat is not worth a governor step."""
        group = state.group.name if state is not None else group
        channel = (state.group.chat_channel if state is not None else "") or None
        try:
            result = self.announce(self.config, self.service, group, kind, cause,
                                   node=node or None, count=count or None, dry_run=dry_run,
                                   channel=channel, detail=detail or None)
        except Exception as exc:  # an announcer that raises (a chat library failing to import)
            self.log.warning("autoscale governor: %s: %s not announced: %s: %s", group, kind,
                             type(exc).__name__, exc)
            return
        if isinstance(result, Mapping) and not result.get("delivered", True):
            self.log.info("autoscale governor: %s: %s not announced: %s", group, kind,
                          result.get("error"))

    def _expire_alert(self, state: GroupState, now: float, report: TickReport) -> None:
        name, alert = state.group.name, state.alert
        try:
            current: Optional[AlertState] = self.store.read_alert(name) or AlertState()
        except RecordError:
            current = None
        if current != alert:
            self.log.info("autoscale governor: %s: alert changed since the listing; not "
                          "expiring it", name)
            return
        max_age = self.settings.policy.alert_max_age
        last_heard = max(alert.opened_at, alert.updated_at)
        self.store.save_alert(name, AlertState(level=AlertLevel.NONE, issue_id=alert.issue_id,
                                               title=alert.title,
                                               ended_at=last_heard + max_age))
        cause = "%s had no update for %s (last %s ago): counted as over" % (
            describe_alert(alert.level, alert.issue_id, alert.title), duration(max_age),
            duration(now - last_heard))
        event = Event(group=name, at=now, kind=ALERT_EXPIRED, cause=cause)
        self.store.record_event(event)
        report.recorded.append(event)
        self.log.info("autoscale governor: %s: %s", name, cause)
        self._say(state, Kind.ALERT_EXPIRED, cause)
