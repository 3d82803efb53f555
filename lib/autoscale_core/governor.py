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

4. Orphans, every ``governor.orphan_scan_interval`` seconds (0: never): one compute listing of
   every VM the pack tagged (``Compute.managed_servers``). An orphan is a VM whose (group,
   node) has no node record, its group unknown included; VMs of a group whose records could
   not all be read are not judged, nor VMs already being deleted. First seen: an ``orphan``
   event in the group's history (when the group exists) and a chat line, after one more read
   of its node (or group) record so that a node recorded since the listing is not taken for
   an orphan. Still there after ``governor.orphan_grace`` seconds: ``autoscale.orphan`` is
   dispatched with ``{asg, node, server_id, server_name, first_seen, cause}``, once, and again
   only after ``dispatch_timeout`` if it is still there. Gone (or recorded after all):
   forgotten. Orphans of a paused or dry-run group are reported, never dispatched; neither
   are VMs whose group or node tag is not a valid name (no workflow could take them).
   A compute that cannot be built (no ``openstack`` config, or a cloud library that does not
   import: keystoneauth1 and novaclient are imported by the first scan, never with this
   module) or whose listing fails is logged as a warning once per failure streak and reported
   in the tick's ``problems``; the scan is skipped, the rest of the tick runs.

   The orphan rule deletes VMs tagged for groups this datastore does not know: run one
   installation of the pack per OpenStack project.

5. Stuck nodes: a node still being added (or still leaving) ``governor.stuck_after`` seconds
   after its last step belongs to a workflow that died; it would hold every further
   scale-out (or scale-in). It is recorded
   (``node_stuck``), announced and dispatched as ``autoscale.stuck_node`` (rule → asg_remove_node
   with force), once, again only after ``dispatch_timeout``. Paused groups: nothing; dry-run
   groups: recorded and announced only.

The clock, the compute factory and the announcer are injectable; nothing here sleeps.
Backend libraries (Nova's, Slack's) are imported only when used, so that a broken one costs
what needs it (the orphan scan, the chat lines), never the governor.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass, field
from typing import (
    TYPE_CHECKING,
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

from . import policy
from .model import (
    SCHEMA_VERSION,
    AlertLevel,
    AlertState,
    Event,
    GroupState,
    RecordError,
    ValidationError,
    validate_group_name,
    validate_node_name,
)
from .policy import Action, Reason, ScaleDecision, duration
from .settings import PolicySettings, _number, _section, governor_interval
from .store import (
    DEFAULT_HISTORY_TTL,
    DEFAULT_PAGE_SIZE,
    Listing,
    Store,
    Unreadable,
    alert_key,
    group_key,
    node_key,
)

if TYPE_CHECKING:  # only for annotations: importing compute imports the cloud libraries
    from .compute import Compute, Server

LOG = logging.getLogger(__name__)

PACK = "autoscale"
TRIGGERS = {
    Action.SCALE_OUT: PACK + ".scale_out",
    Action.SCALE_IN: PACK + ".scale_in",
    Action.REPAIR: PACK + ".repair",
}
ORPHAN_TRIGGER = PACK + ".orphan"
STUCK_TRIGGER = PACK + ".stuck_node"

# History event kinds written by the governor.
DECISION = "decision"
ALERT_EXPIRED = "alert_expired"
ORPHAN = "orphan"
NODE_STUCK = "node_stuck"

# Where the governor remembers which unreadable records it announced (outside
# autoscale.asg.: the tick's listing does not read it).
ANNOUNCED_KEY = PACK + ".governor.announced"


class Kind:
    """notify.Kind's values the governor uses (notify, and with it slack_sdk, is imported only
    when a message is sent; tests check that these are notify's)."""

    SCALE_OUT = "scale_out"
    SCALE_IN = "scale_in"
    REPAIR = "repair"
    NODE_FAILED = "node_failed"
    ORPHAN = "orphan"
    ALERT_EXPIRED = "alert_expired"
    ERROR = "error"


_ANNOUNCE_KINDS = {
    Action.SCALE_OUT: Kind.SCALE_OUT,
    Action.SCALE_IN: Kind.SCALE_IN,
    Action.REPAIR: Kind.REPAIR,
}


# ---------------------------------------------------------------------------------------------
# Settings


@dataclass(frozen=True)
class GovernorSettings:
    """The config's ``governor`` section, checked once when the sensor starts."""

    # Seconds between ticks (the sensor's poll interval).
    interval: int = 30
    # A dispatched action with no visible effect after this long is dispatched again.
    dispatch_timeout: int = 300
    # Seconds between two orphan scans; 0 turns them off.
    orphan_scan_interval: int = 300
    # An orphan VM is cleaned up once it has been seen this long.
    orphan_grace: int = 900
    # A node still being added this long after its last step belongs to a workflow that died
    # (or a reservation whose expand died): it is removed. Longer than a boot plus a Chef run.
    stuck_after: int = 3600
    page_size: int = DEFAULT_PAGE_SIZE
    history_ttl: int = DEFAULT_HISTORY_TTL
    policy: PolicySettings = field(default_factory=PolicySettings)

    @classmethod
    def from_config(cls, config: Optional[Mapping[str, Any]]) -> GovernorSettings:
        """Raises ValidationError naming the key (``config key governor.orphan_grace ...``)."""
        config = config or {}
        section = _section(config, "governor")

        def number(key: str, default: int, minimum: int) -> int:
            return _number(section, "governor", key, default, minimum)

        return cls(
            interval=governor_interval(config),
            dispatch_timeout=number("dispatch_timeout", cls.dispatch_timeout, 1),
            orphan_scan_interval=number("orphan_scan_interval", cls.orphan_scan_interval, 0),
            orphan_grace=number("orphan_grace", cls.orphan_grace, 0),
            stuck_after=number("stuck_after", cls.stuck_after, 60),
            page_size=number("datastore_page_size", DEFAULT_PAGE_SIZE, 1),
            history_ttl=number("history_ttl", DEFAULT_HISTORY_TTL, 1),
            policy=PolicySettings.from_config(config),
        )


# ---------------------------------------------------------------------------------------------
# What a tick reports


class Dispatched(NamedTuple):
    trigger: str
    payload: Dict[str, Any]


@dataclass
class Orphan:
    """A VM tagged for a group that no node record knows, as the governor remembers it."""

    server_id: str
    server_name: str
    group: str
    node: str
    status: str
    first_seen: float
    group_exists: bool
    # Why it is not dispatched ("" when it may be): paused, dry run, invalid tag.
    held: str = ""
    dispatched_at: float = 0.0


@dataclass
class TickReport:
    """What one tick did. ``decisions`` are the policy's, exactly as ``policy.decide`` returned
    them; ``dispatched`` what went to st2 (a dry run's decision is not there); ``recorded`` the
    history events written; ``problems`` unreadable records, per-group errors and a skipped
    orphan scan; ``orphans`` the orphans the scan found (empty when no scan ran)."""

    at: float
    decisions: List[ScaleDecision] = field(default_factory=list)
    dispatched: List[Dispatched] = field(default_factory=list)
    recorded: List[Event] = field(default_factory=list)
    problems: List[str] = field(default_factory=list)
    orphans: List[Orphan] = field(default_factory=list)
    # "" when no scan was due, "ok", or why it was skipped.
    orphan_scan: str = ""


class _InFlight(NamedTuple):
    action: str
    dry_run: bool
    at: float


def nova_compute(config: Mapping[str, Any]) -> Compute:
    """The default compute factory: Nova from the config's ``openstack`` section. Imports
    keystoneauth1 and novaclient here, at the first orphan scan: should they fail to import
    (a library version that does not load beside StackStorm's), the scan is skipped and
    reported, and the governor goes on."""
    from .compute import ComputeSettings, NovaCompute

    return NovaCompute(ComputeSettings.from_config(config))


def slack_announce(*args: Any, **kwargs: Any) -> Dict[str, Any]:
    """The default announcer: ``notify.announce``, imported (with slack_sdk) when first used."""
    from . import notify

    return notify.announce(*args, **kwargs)


def _describe_alert(alert: AlertState) -> str:
    text = "%s alert" % alert.level
    if alert.title:
        text += " %r" % alert.title
    if alert.issue_id:
        text += " (issue %s)" % alert.issue_id
    return text


def _announcement(entries: List[Unreadable]) -> str:
    """What the group's channel is told about its records that cannot be read."""
    spec = any(entry.kind == "spec" for entry in entries)
    parts = []
    for entry in entries[:3]:
        why = entry.reason if len(entry.reason) <= 300 else entry.reason[:299] + "…"
        parts.append("%s: %s" % (entry.key, why))
    if len(entries) > 3:
        parts.append("and %d more" % (len(entries) - 3))
    group = entries[0].group
    if spec:
        then = ("the governor skips the group until its spec is fixed (or the group deleted: "
                "!asg delete name=%s)" % group)
    else:
        then = ("the governor holds the group (no scale-out, no scale-in; repairs go on) "
                "until the record is fixed or deleted (st2 key delete <key>)")
    return "reading its datastore records: %s; %s" % ("; ".join(parts), then)


def _valid_names(group: str, node: str) -> bool:
    try:
        validate_group_name(group)
        validate_node_name(node)
    except ValidationError:
        return False
    return True


# ---------------------------------------------------------------------------------------------
# The governor


class Governor:
    """``Governor(service, config)``: ``service`` is an st2 ``sensor_service`` (the datastore
    methods and ``dispatch``), ``config`` the pack config. Settings are read (and refused with
    the key's name) here.

    ``clock`` gives the time when ``tick()`` is called without one; ``compute_factory(config)``
    builds the compute for orphan scans, lazily, at the first scan; ``announce`` has
    ``notify.announce``'s signature.
    """

    def __init__(self, service: Any, config: Optional[Mapping[str, Any]] = None, *,
                 clock: Callable[[], float] = time.time,
                 compute_factory: Callable[[Mapping[str, Any]], Compute] = nova_compute,
                 announce: Callable[..., Dict[str, Any]] = slack_announce,
                 logger: Optional[logging.Logger] = None) -> None:
        self.service = service
        self.config: Mapping[str, Any] = config or {}
        self.settings = GovernorSettings.from_config(self.config)
        self.store = Store(service, page_size=self.settings.page_size,
                           history_ttl=self.settings.history_ttl, keep_parsed=True)
        self.clock = clock
        self.compute_factory = compute_factory
        self.announce = announce
        self.log = logger or LOG
        self._compute: Optional[Compute] = None
        self._compute_failing = False
        self._last_recorded: Dict[str, Tuple[str, str]] = {}
        self._in_flight: Dict[str, _InFlight] = {}
        self._orphans: Dict[str, Orphan] = {}
        # (group, node) -> when its removal was dispatched.
        self._stuck: Dict[Tuple[str, str], float] = {}
        self._last_scan_at: Optional[float] = None
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
        self._release_stuck(groups, now, report)
        interval = self.settings.orphan_scan_interval
        if interval and (self._last_scan_at is None or now - self._last_scan_at >= interval):
            self._scan_orphans(groups, listing, now, report)
        return report

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
            self._say(state, Kind.ERROR, _announcement(entries), group=group)
            for entry in entries:
                announced[entry.key] = entry.fingerprint
        for key in gone:
            del announced[key]
        # Remembered even when the chat line was not delivered: the problem stays in every
        # tick's report and the log; a chat outage must not turn into a message every tick.
        self.service.set_value(ANNOUNCED_KEY, json.dumps(
            {"v": SCHEMA_VERSION, "announced": announced}, sort_keys=True), local=False)

    def _load_announced(self) -> Dict[str, str]:
        raw = self.service.get_value(ANNOUNCED_KEY, local=False)
        if raw is None:
            return {}
        try:
            data = json.loads(raw)
            version = data.get("v") if isinstance(data, dict) else None
            announced = data.get("announced") if type(version) is int and \
                version == SCHEMA_VERSION else None
            if not isinstance(announced, dict) or not all(
                    isinstance(k, str) and isinstance(v, str) for k, v in announced.items()):
                raise ValueError("not a mapping of keys to fingerprints")
            return dict(announced)
        except (ValueError, RecursionError) as exc:
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
            self._say(state, _ANNOUNCE_KINDS[decision.action], cause, count=decision.count,
                      dry_run=True)
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
             node: str = "", count: int = 0, dry_run: bool = False) -> None:
        """Tell the group's channel. Never raises: chat is not worth a governor step."""
        group = state.group.name if state is not None else group
        channel = (state.group.chat_channel if state is not None else "") or None
        try:
            result = self.announce(self.config, self.service, group, kind, cause,
                                   node=node or None, count=count or None, dry_run=dry_run,
                                   channel=channel)
        except Exception as exc:  # an announcer that raises (slack_sdk failing to import)
            self.log.warning("autoscale governor: %s: %s not announced: %s: %s", group, kind,
                             type(exc).__name__, exc)
            return
        if isinstance(result, Mapping) and not result.get("delivered", True):
            self.log.info("autoscale governor: %s: %s not announced: %s", group, kind,
                          result.get("error"))

    def _expire_alert(self, state: GroupState, now: float, report: TickReport) -> None:
        name, alert = state.group.name, state.alert
        raw = self.service.get_value(alert_key(name), local=False)
        try:
            current = AlertState.from_json(raw) if raw is not None else AlertState()
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
            _describe_alert(alert), duration(max_age), duration(now - last_heard))
        event = Event(group=name, at=now, kind=ALERT_EXPIRED, cause=cause)
        self.store.record_event(event)
        report.recorded.append(event)
        self.log.info("autoscale governor: %s: %s", name, cause)
        self._say(state, Kind.ALERT_EXPIRED, cause)

    # -- stuck nodes ---------------------------------------------------------------------------

    def _release_stuck(self, groups: Mapping[str, GroupState], now: float,
                       report: TickReport) -> None:
        """Nodes still being added (or leaving) ``stuck_after`` seconds after their last step:
        the workflow adding (removing) them died (st2 restarted, the execution was
        cancelled), or the expand that reserved them did. Being added, they hold every
        further scale-out; leaving, every scale-in. Each is removed (``autoscale.stuck_node``
        → asg_remove_node, which finishes whatever the node got: LB server, Chef node, DNS
        record, VM) and announced; the repair then adds a fresh one if the group needs it.
        Dispatched once per node, again only after ``dispatch_timeout``."""
        seen = set()
        for name, state in groups.items():
            if state.group.paused:
                continue
            for node in state.nodes.values():
                if not (node.pending or node.leaving):
                    continue
                key = (name, node.name)
                try:
                    since = max(node.updated_at, node.created_at)
                    if now - since < self.settings.stuck_after:
                        continue
                    seen.add(key)
                    dispatched = self._stuck.get(key)
                    if dispatched is not None and \
                            now - dispatched < self.settings.dispatch_timeout:
                        continue
                    cause = ("node %s has been %s for %s (its last step: %s); the workflow %s "
                             "it is gone: removing it" % (
                                 node.name, node.state, duration(now - since),
                                 node.cause or "none recorded",
                                 "adding" if node.pending else "removing"))
                    if not state.group.dry_run:
                        self._dispatch(STUCK_TRIGGER, {
                            "asg": name, "node": node.name, "state": node.state,
                            "since": since, "cause": cause}, report)
                    self._stuck[key] = now
                    event = Event(group=name, at=now, kind=NODE_STUCK, cause=cause,
                                  node=node.name, ok=False)
                    self.store.record_event(event)
                    report.recorded.append(event)
                    self._say(state, Kind.NODE_FAILED, cause, node=node.name,
                              dry_run=state.group.dry_run)
                except Exception as exc:  # one node's trouble must not stop the others
                    self.log.exception("autoscale governor: %s: stuck node %s", name, node.name)
                    report.problems.append("group %s: stuck node %s: %s: %s"
                                           % (name, node.name, type(exc).__name__, exc))
        for key in [key for key in self._stuck if key not in seen]:
            del self._stuck[key]

    # -- orphans -------------------------------------------------------------------------------

    def _scan_orphans(self, groups: Mapping[str, GroupState], listing: Listing, now: float,
                      report: TickReport) -> None:
        self._last_scan_at = now
        try:
            if self._compute is None:
                self._compute = self.compute_factory(self.config)
            servers = self._compute.managed_servers()
        except Exception as exc:  # no config, Keystone or Nova down, a client bug: skip
            text = "orphan scan skipped: %s: %s" % (type(exc).__name__, exc)
            if self._compute_failing:
                self.log.debug("autoscale governor: %s", text)
            else:
                self.log.warning("autoscale governor: %s (said once until a scan works)", text)
            self._compute_failing = True
            report.orphan_scan = text
            report.problems.append(text)
            return
        if self._compute_failing:
            self.log.warning("autoscale governor: orphan scans work again")
            self._compute_failing = False
        report.orphan_scan = "ok"

        unreadable = listing.troubled_groups()
        found: Dict[str, Orphan] = {}
        for server in servers:
            try:
                orphan = self._judge(server, groups, unreadable, now, report)
            except Exception as exc:
                self.log.exception("autoscale governor: orphan check of server %s failed",
                                   server.id)
                report.problems.append("server %s: unexpected %s: %s"
                                       % (server.id, type(exc).__name__, exc))
                orphan = self._orphans.get(server.id)
            if orphan is not None:
                found[server.id] = orphan
        self._orphans = found  # gone, or recorded after all: forgotten
        report.orphans = list(found.values())

    def _judge(self, server: Server, groups: Mapping[str, GroupState], unreadable: Set[str],
               now: float, report: TickReport) -> Optional[Orphan]:
        if server.task_state == "deleting" or server.group in unreadable:
            return self._orphans.get(server.id)
        state = groups.get(server.group)
        if state is not None and server.node in state.nodes:
            return None
        valid = _valid_names(server.group, server.node)
        orphan = self._orphans.get(server.id)
        if orphan is None:
            # The listing came after the datastore's: a node recorded (or a group created)
            # in between is no orphan.
            if valid and state is not None and self.service.get_value(
                    node_key(server.group, server.node), local=False) is not None:
                return None
            if valid and state is None and self.service.get_value(
                    group_key(server.group), local=False) is not None:
                return None
            orphan = Orphan(server_id=server.id, server_name=server.name, group=server.group,
                            node=server.node, status=server.status, first_seen=now,
                            group_exists=state is not None, held=self._held(state, valid))
            self._orphans[server.id] = orphan
            self._first_seen(orphan, state, valid, now, report)
        orphan.status = server.status
        orphan.group_exists = state is not None
        orphan.held = self._held(state, valid)
        if orphan.held or now - orphan.first_seen < self.settings.orphan_grace:
            return orphan
        if orphan.dispatched_at and now - orphan.dispatched_at < self.settings.dispatch_timeout:
            return orphan
        age = duration(now - orphan.first_seen)
        cause = "orphan VM %s (%s) of group %s: no node record for %s" % (
            orphan.server_name, orphan.server_id, orphan.group, age)
        if orphan.dispatched_at:
            cause += "; still there %s after its clean-up was dispatched" % duration(
                now - orphan.dispatched_at)
        payload = {
            "asg": orphan.group,
            "node": orphan.node,
            "server_id": orphan.server_id,
            "server_name": orphan.server_name,
            "first_seen": orphan.first_seen,
            "cause": cause,
        }
        self._dispatch(ORPHAN_TRIGGER, payload, report)
        orphan.dispatched_at = now
        return orphan

    @staticmethod
    def _held(state: Optional[GroupState], valid: bool) -> str:
        if not valid:
            return "its autoscale_group or autoscale_node tag is not a valid name"
        if state is not None and state.group.paused:
            return "group is paused"
        if state is not None and state.group.dry_run:
            return "group is in dry run"
        return ""

    def _first_seen(self, orphan: Orphan, state: Optional[GroupState], valid: bool, now: float,
                    report: TickReport) -> None:
        why = ("the group has no record of node %s" % orphan.node if state is not None
               else "no group %s exists" % orphan.group)
        if orphan.held:
            then = "not cleaned up: %s" % orphan.held
        else:
            then = "clean-up in %s unless a record appears" % duration(
                self.settings.orphan_grace)
        cause = "VM %s (%s, %s) is tagged for group %s, but %s; %s" % (
            orphan.server_name, orphan.server_id, orphan.status, orphan.group, why, then)
        self.log.warning("autoscale governor: %s", cause)
        if not valid:
            return
        if state is not None:
            event = Event(group=orphan.group, at=now, kind=ORPHAN, cause=cause,
                          node=orphan.node)
            self.store.record_event(event)
            report.recorded.append(event)
        self._say(state, Kind.ORPHAN, cause, group=orphan.group, node=orphan.node)
