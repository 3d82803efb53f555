"""The janitor: what the governor's tick does besides deciding (``Governor.tick`` runs it), so
that nothing the workflows left behind lingers.

Orphans, every ``governor.orphan_scan_interval`` seconds (0: never): one compute listing of
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
A compute that cannot be built (no compute config, or a cloud library that does not import:
the configured compute's library is imported by the first scan, never with this module) or
whose listing fails is logged as a warning once per failure streak and reported
in the tick's ``problems``; the scan is skipped, the rest of the tick runs.

The orphan rule deletes VMs tagged for groups this datastore does not know: run one
installation of the pack per OpenStack project.

Stuck nodes: a node still being added (or still leaving) ``governor.stuck_after`` seconds
after its last step belongs to a workflow that died; it would hold every further
scale-out (or scale-in). It is recorded
(``node_stuck``), announced and dispatched as ``autoscale.stuck_node`` (rule → asg_remove_node
with force), once, again only after ``dispatch_timeout``. Paused groups: nothing; dry-run
groups: recorded and announced only.

The compute factory and the announcer are the governor's, injectable; nothing here sleeps.
"""

from __future__ import annotations

import logging
from typing import Any, Callable, Dict, Mapping, Optional, Set, Tuple

from ..config import GovernorSettings
from ..domain.model import Event, GroupState
from ..domain.names import validate_group_name, validate_node_name
from ..domain.words import duration
from ..errors import ValidationError
from ..ports.compute import Compute, Server
from ..present.chat import Kind
from ..store import Listing, Store
from .tick import NODE_STUCK, ORPHAN, ORPHAN_TRIGGER, STUCK_TRIGGER, Orphan, TickReport

# dispatch(trigger, payload, report) and say(state, kind, cause, group=, node=, dry_run=): the
# governor's.
Dispatch = Callable[[str, Dict[str, Any], TickReport], None]
Say = Callable[..., None]


def _valid_names(group: str, node: str) -> bool:
    try:
        validate_group_name(group)
        validate_node_name(node)
    except ValidationError:
        return False
    return True


class Janitor:
    """Orphans and stuck nodes, with what it remembers of them between ticks.

    ``compute_factory(config)`` builds the compute, lazily, at the first orphan scan;
    ``dispatch`` and ``say`` are the governor's (st2's dispatch, the group's channel)."""

    def __init__(self, settings: GovernorSettings, store: Store, config: Mapping[str, Any],
                 compute_factory: Callable[[Mapping[str, Any]], Compute], dispatch: Dispatch,
                 say: Say, log: logging.Logger) -> None:
        self.settings = settings
        self.store = store
        self.config = config
        self.compute_factory = compute_factory
        self._dispatch = dispatch
        self._say = say
        self.log = log
        self._compute: Optional[Compute] = None
        self._compute_failing = False
        self._orphans: Dict[str, Orphan] = {}
        # (group, node) -> when its removal was dispatched.
        self._stuck: Dict[Tuple[str, str], float] = {}
        self._last_scan_at: Optional[float] = None

    def run(self, groups: Mapping[str, GroupState], listing: Listing, now: float,
            report: TickReport) -> None:
        """Stuck nodes every tick; orphans every ``orphan_scan_interval``."""
        self.release_stuck(groups, now, report)
        interval = self.settings.orphan_scan_interval
        if interval and (self._last_scan_at is None or now - self._last_scan_at >= interval):
            self.scan_orphans(groups, listing, now, report)

    # -- stuck nodes ---------------------------------------------------------------------------

    def release_stuck(self, groups: Mapping[str, GroupState], now: float,
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
                    self._record(Event(group=name, at=now, kind=NODE_STUCK, cause=cause,
                                       node=node.name, ok=False), report)
                    self._say(state, Kind.NODE_FAILED, cause, node=node.name,
                              dry_run=state.group.dry_run)
                except Exception as exc:  # one node's trouble must not stop the others
                    self.log.exception("autoscale governor: %s: stuck node %s", name, node.name)
                    report.problems.append("group %s: stuck node %s: %s: %s"
                                           % (name, node.name, type(exc).__name__, exc))
        for key in [key for key in self._stuck if key not in seen]:
            del self._stuck[key]

    # -- orphans -------------------------------------------------------------------------------

    def scan_orphans(self, groups: Mapping[str, GroupState], listing: Listing, now: float,
                      report: TickReport) -> None:
        self._last_scan_at = now
        try:
            if self._compute is None:
                self._compute = self.compute_factory(self.config)
            servers = self._compute.managed_servers()
        except Exception as exc:  # no config, the cloud down, a client bug: skip
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
            if valid and state is not None and self.store.node_exists(server.group, server.node):
                return None
            if valid and state is None and self.store.group_exists(server.group):
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
            self._record(Event(group=orphan.group, at=now, kind=ORPHAN, cause=cause,
                               node=orphan.node), report)
        self._say(state, Kind.ORPHAN, cause, group=orphan.group, node=orphan.node)

    def _record(self, event: Event, report: TickReport) -> None:
        self.store.record_event(event)
        report.recorded.append(event)
