"""The policy simulator: the governor's real policy on a timeline, with a virtual clock.

Run it on a timeline file (JSON, or CSV of events)::

    python -m sandbox.simulator examples/timelines/short_spike.json --out spike.png

It prints every decision that acts and every change of the governor's reason, with the time
and the policy's own cause, then a summary; with ``--out`` it draws a PNG (matplotlib).

What is real and what is simulated: the decision is ``autoscale_core.domain.policy.decide``,
alert deliveries go through ``autoscale_core.domain.alert_state.apply``, scale-in victims are
chosen by ``autoscale_core.domain.victims.choose_victim`` and nodes move through
``Node.advance``. Simulated: the clock (a governor tick every ``--step`` seconds), nodes
booting (``boot_time`` seconds from the scale-out to in service), nodes leaving
(``drain_time`` seconds from draining to gone) and what the workflows do with a decision,
the way they do it:

* scale_out / repair: ``count`` new provisioning nodes, ``last_scale_out_at`` = now;
* scale_in: victims chosen among the nodes in service, draining, ``last_scale_in_at`` = now;
* an expired alert is ended as the governor ends it (``ended_at`` = last heard + max age);
* an open critical delivery asks the policy at once, as the alert workflow does
  (``asg_expand governed=true``): a scale-out or repair is carried out at the delivery's time;
* a node addition that finishes booting inside a ``boot_failures`` window fails: it counts as
  a failed addition (``consecutive_failures``, hence the backoff) and is cleaned up; a
  successful addition resets the count, as ``activity(node_added)`` does;
* ``node_failure``: an in-service node (the oldest) fails; it stops counting as capacity at
  once (so the policy repairs) and is gone ``drain_time`` seconds later.

The timeline (JSON)::

    {"name": "Short spike",
     "group": {"min_size": 2, "max_size": 6, "desired": 2, "expand_by": 2, "deflate_by": 1,
               "scale_out_cooldown": 300, "scale_in_cooldown": 900},
     "settings": {"warning_step": 1},          # governor section keys (optional)
     "boot_time": 120, "drain_time": 30,       # seconds (optional)
     "until": "02:00",                         # how long to run (optional)
     "events": [
       {"at": "00:10", "type": "alert_open", "issue": "cpu-1", "severity": "critical",
        "title": "High CPU"},
       {"at": "00:25", "type": "alert_close", "issue": "cpu-1"},
       {"at": "01:00", "type": "node_failure", "count": 1},
       {"at": "01:00", "type": "boot_failures", "until": "01:30"}]}

Times are seconds (a number) or "HH:MM" / "HH:MM:SS" from the start. The CSV form has a header
``at,type,issue,severity,title,until,count`` and one event a line; a line whose type is
``set`` puts a timeline key in the issue column and its value in the severity column
(``,set,group.max_size,6``; ``,set,boot_time,180``). Lines starting with ``#`` are comments.

A bad timeline raises ``TimelineError`` naming the event (JSON: its index and field; CSV: its
line number); the command prints it and exits with status 2.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import os
import re
import sys
from dataclasses import dataclass, field, replace
from typing import Any, Dict, List, Optional, Sequence, Tuple

_LIB = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "lib")
if _LIB not in sys.path:
    sys.path.insert(0, _LIB)

from autoscale_core.config import policy_settings  # noqa: E402
from autoscale_core.domain import alert_state, policy  # noqa: E402
from autoscale_core.domain.model import (  # noqa: E402
    AlertLevel,
    AlertState,
    Group,
    GroupState,
    Node,
    NodeState,
)
from autoscale_core.domain.settings import PolicySettings  # noqa: E402
from autoscale_core.domain.victims import choose_victim  # noqa: E402
from autoscale_core.domain.words import duration  # noqa: E402
from autoscale_core.errors import ValidationError  # noqa: E402

GROUP_NAME = "sim"
GROUP_DOMAIN = "sim.example"
DEFAULT_BOOT_TIME = 120
DEFAULT_DRAIN_TIME = 30
DEFAULT_STEP = 30
EVENT_TYPES = ("alert_open", "alert_close", "alert_ack", "node_failure", "boot_failures")
SEVERITIES = ("critical", "warning")
TOP_KEYS = ("name", "description", "group", "settings", "boot_time", "drain_time", "until",
            "events")
CSV_COLUMNS = ("at", "type", "issue", "severity", "title", "until", "count")
_CLOCK_RE = re.compile(r"(\d+):([0-5]\d)(?::([0-5]\d))?")


class TimelineError(ValueError):
    """A timeline that cannot be simulated; the message names the line, event or field."""


# ---------------------------------------------------------------------------------------------
# The timeline


@dataclass(frozen=True)
class Event:
    at: float
    type: str
    issue: str = ""
    severity: str = ""
    title: str = ""
    until: float = 0.0
    count: int = 1
    where: str = ""


@dataclass(frozen=True)
class Timeline:
    name: str
    group: Group
    settings: PolicySettings
    boot_time: float
    drain_time: float
    events: Tuple[Event, ...]
    until: Optional[float] = None
    description: str = ""


def clock(seconds: float) -> str:
    seconds = int(round(seconds))
    hours, rest = divmod(seconds, 3600)
    return "%02d:%02d:%02d" % (hours, rest // 60, rest % 60)


def parse_time(value: Any, where: str) -> float:
    """Seconds (a number, or a string of digits) or HH:MM[:SS]; never negative."""
    if isinstance(value, bool):
        raise TimelineError("%s: a time must be seconds or HH:MM, not %r" % (where, value))
    if isinstance(value, (int, float)):
        seconds = float(value)
    elif isinstance(value, str) and value.strip():
        text = value.strip()
        match = _CLOCK_RE.fullmatch(text)
        if match:
            seconds = (int(match.group(1)) * 3600 + int(match.group(2)) * 60
                       + int(match.group(3) or 0))
        else:
            try:
                seconds = float(text)
            except ValueError:
                raise TimelineError("%s: %r is not a time (seconds, HH:MM or HH:MM:SS)"
                                    % (where, value)) from None
    else:
        raise TimelineError("%s: a time must be seconds or HH:MM, not %r" % (where, value))
    if seconds != seconds or seconds in (float("inf"), float("-inf")):
        raise TimelineError("%s: %r is not a time" % (where, value))
    if seconds < 0:
        raise TimelineError("%s: a time must not be negative (%r)" % (where, value))
    return seconds


def _seconds_setting(raw: Dict[str, Any], key: str, default: float, source: str) -> float:
    if key not in raw or raw[key] is None:
        return float(default)
    return parse_time(raw[key], "%s: field %r" % (source, key))


def _event(raw: Any, where: str) -> Event:
    if not isinstance(raw, dict):
        raise TimelineError("%s: an event must be an object, not %r" % (where, raw))
    unknown = sorted(set(raw) - set(CSV_COLUMNS))
    if unknown:
        raise TimelineError("%s: unknown field(s) %s; known: %s"
                            % (where, ", ".join(unknown), ", ".join(CSV_COLUMNS)))
    for key in ("at", "type"):
        if raw.get(key) in (None, ""):
            raise TimelineError("%s: field %r is missing" % (where, key))
    kind = raw["type"]
    if kind not in EVENT_TYPES:
        raise TimelineError("%s: field 'type': %r is not one of %s"
                            % (where, kind, ", ".join(EVENT_TYPES)))
    at = parse_time(raw["at"], "%s: field 'at'" % where)
    values: Dict[str, Any] = {"at": at, "type": kind, "where": where}
    if kind.startswith("alert_"):
        issue = raw.get("issue")
        if issue in (None, "") or not isinstance(issue, (str, int)):
            raise TimelineError("%s: field 'issue' is missing (the New Relic issue id)" % where)
        values["issue"] = str(issue)
        title = raw.get("title") or ""
        if not isinstance(title, str):
            raise TimelineError("%s: field 'title' must be a string" % where)
        values["title"] = title
        severity = raw.get("severity") or ""
        if kind == "alert_open" and not severity:
            raise TimelineError("%s: field 'severity' is missing (critical or warning)" % where)
        if severity and severity not in SEVERITIES:
            raise TimelineError("%s: field 'severity': %r is not one of %s"
                                % (where, severity, ", ".join(SEVERITIES)))
        values["severity"] = severity or "critical"
    if kind == "boot_failures":
        if raw.get("until") in (None, ""):
            raise TimelineError("%s: field 'until' is missing (when additions work again)"
                                % where)
        values["until"] = parse_time(raw["until"], "%s: field 'until'" % where)
        if values["until"] <= at:
            raise TimelineError("%s: field 'until' must be after 'at'" % where)
    if kind == "node_failure":
        count = raw.get("count", 1)
        if isinstance(count, str) and count.strip().isdigit():
            count = int(count)
        if count in (None, ""):
            count = 1
        if isinstance(count, bool) or not isinstance(count, int) or count < 1:
            raise TimelineError("%s: field 'count' must be a whole number of at least 1, not %r"
                                % (where, count))
        values["count"] = count
    return Event(**values)


def build(raw: Any, source: str = "timeline", wheres: Optional[Sequence[str]] = None
          ) -> Timeline:
    """A Timeline from parsed JSON-like data; TimelineError names what is wrong."""
    if not isinstance(raw, dict):
        raise TimelineError("%s: the timeline must be an object" % source)
    unknown = sorted(set(raw) - set(TOP_KEYS))
    if unknown:
        raise TimelineError("%s: unknown key(s) %s; known: %s"
                            % (source, ", ".join(unknown), ", ".join(TOP_KEYS)))
    spec = raw.get("group")
    if not isinstance(spec, dict):
        raise TimelineError("%s: field 'group' is missing (min_size, max_size, desired, ...)"
                            % source)
    spec = dict(spec)
    spec.setdefault("name", GROUP_NAME)
    spec.setdefault("domain", GROUP_DOMAIN)
    try:
        group = Group.create(**spec)
    except (ValidationError, TypeError) as exc:
        raise TimelineError("%s: field 'group': %s" % (source, exc)) from None
    settings_raw = raw.get("settings") or {}
    if not isinstance(settings_raw, dict):
        raise TimelineError("%s: field 'settings' must be an object" % source)
    try:
        settings = policy_settings({"governor": {
            k: v for k, v in settings_raw.items() if k != "interval"}})
    except ValidationError as exc:
        raise TimelineError("%s: field 'settings': %s" % (source, exc)) from None
    events_raw = raw.get("events")
    if not isinstance(events_raw, list):
        raise TimelineError("%s: field 'events' is missing (a list of events)" % source)
    events = []
    for index, item in enumerate(events_raw):
        where = wheres[index] if wheres else "%s: event %d" % (source, index)
        events.append(_event(item, where))
    until = None
    if raw.get("until") not in (None, ""):
        until = parse_time(raw["until"], "%s: field 'until'" % source)
    name = raw.get("name") or os.path.splitext(os.path.basename(source))[0]
    return Timeline(
        name=str(name),
        description=str(raw.get("description") or ""),
        group=group,
        settings=settings,
        boot_time=_seconds_setting(raw, "boot_time", DEFAULT_BOOT_TIME, source),
        drain_time=_seconds_setting(raw, "drain_time", DEFAULT_DRAIN_TIME, source),
        # Stable: events at one time happen in file order.
        events=tuple(sorted(events, key=lambda e: e.at)),
        until=until,
    )


def _csv_value(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return text


def parse_csv(text: str, source: str = "timeline.csv") -> Timeline:
    raw: Dict[str, Any] = {"events": []}
    wheres: List[str] = []
    header: Optional[List[str]] = None
    for number, row in enumerate(csv.reader(io.StringIO(text)), start=1):
        if not row or not "".join(row).strip() or row[0].lstrip().startswith("#"):
            continue
        cells = [cell.strip() for cell in row]
        where = "%s: line %d" % (source, number)
        if header is None:
            if cells[:2] != ["at", "type"] or not set(cells) <= set(CSV_COLUMNS):
                raise TimelineError("%s: the header must be %s (at and type first)"
                                    % (where, ",".join(CSV_COLUMNS)))
            header = cells
            continue
        if len(cells) > len(header):
            raise TimelineError("%s: %d fields, the header has %d"
                                % (where, len(cells), len(header)))
        item = {key: value for key, value in zip(header, cells) if value != ""}
        if item.get("type") == "set":
            key, value = item.get("issue"), item.get("severity")
            if not key or value is None:
                raise TimelineError("%s: a set line is ,set,<key>,<value>" % where)
            section, _, sub = key.partition(".")
            if sub and section in ("group", "settings"):
                raw.setdefault(section, {})[sub] = _csv_value(value)
            elif not sub and section in TOP_KEYS and section not in ("group", "settings",
                                                                     "events"):
                raw[section] = value
            else:
                raise TimelineError("%s: unknown setting %r (group.<key>, settings.<key>, "
                                    "name, boot_time, drain_time or until)" % (where, key))
            continue
        raw["events"].append(item)
        wheres.append(where)
    if header is None:
        raise TimelineError("%s: no header line (%s)" % (source, ",".join(CSV_COLUMNS)))
    return build(raw, source, wheres)


def load(path: str) -> Timeline:
    """Read a timeline file: .csv as CSV, anything else as JSON."""
    try:
        with open(path, encoding="utf-8") as handle:
            text = handle.read()
    except OSError as exc:
        raise TimelineError("%s: cannot read: %s" % (path, exc.strerror)) from None
    if path.lower().endswith(".csv"):
        return parse_csv(text, path)
    try:
        raw = json.loads(text)
    except ValueError as exc:
        line = getattr(exc, "lineno", None)
        raise TimelineError("%s: line %s: not valid JSON: %s"
                            % (path, line, getattr(exc, "msg", exc))) from None
    return build(raw, path)


# ---------------------------------------------------------------------------------------------
# The simulation


@dataclass(frozen=True)
class Decision:
    at: float
    action: str
    count: int
    reason: str
    cause: str
    current: int
    target: int
    dry_run: bool = False


@dataclass(frozen=True)
class Sample:
    at: float
    in_service: int
    adding: int
    leaving: int
    failed: int
    level: str


@dataclass
class Result:
    timeline: Timeline
    step: float
    until: float
    decisions: List[Decision] = field(default_factory=list)
    samples: List[Sample] = field(default_factory=list)
    lines: List[str] = field(default_factory=list)

    @property
    def acting(self) -> List[Decision]:
        """The decisions carried out (a dry run's are only printed)."""
        return [d for d in self.decisions
                if d.count > 0 and d.action != policy.Action.NONE and not d.dry_run]

    def summary(self) -> Dict[str, Any]:
        group = self.timeline.group
        peak = max((s.in_service + s.adding for s in self.samples), default=0)
        vm_seconds = in_service_seconds = at_max = 0.0
        for here, after in zip(self.samples, self.samples[1:]):
            span = after.at - here.at
            vm_seconds += span * (here.in_service + here.adding + here.leaving + here.failed)
            in_service_seconds += span * here.in_service
            if here.in_service + here.adding >= group.max_size:
                at_max += span
        acting = self.acting
        return {
            "peak_capacity": peak,
            "peak_in_service": max((s.in_service for s in self.samples), default=0),
            "node_hours": vm_seconds / 3600.0,
            "in_service_hours": in_service_seconds / 3600.0,
            "time_at_max": at_max,
            "scale_outs": sum(1 for d in acting if d.action == policy.Action.SCALE_OUT),
            "scale_ins": sum(1 for d in acting if d.action == policy.Action.SCALE_IN),
            "repairs": sum(1 for d in acting if d.action == policy.Action.REPAIR),
        }

    def summary_text(self) -> str:
        s = self.summary()
        return ("summary: %s simulated; peak %d nodes (%d in service); %.1f node-hours "
                "(%.1f in service); at max %s; %d scale-out(s), %d scale-in(s), %d repair(s)"
                % (clock(self.until), s["peak_capacity"], s["peak_in_service"], s["node_hours"],
                   s["in_service_hours"], duration(s["time_at_max"]), s["scale_outs"],
                   s["scale_ins"], s["repairs"]))


def _print(line: str) -> None:
    """Print; when the reader has gone (``| head``), keep going quietly so the plot is still
    written."""
    try:
        print(line, flush=True)
    except BrokenPipeError:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)


class _Sim:
    def __init__(self, timeline: Timeline, step: float, until: float, echo: bool) -> None:
        self.t = timeline
        self.step = step
        self.echo = echo
        self.result = Result(timeline, step, until)
        group = timeline.group
        self.state = GroupState(group=group)
        self.serial = 0
        self.ready_at: Dict[str, float] = {}
        self.gone_at: Dict[str, float] = {}
        self.last_key: Optional[Tuple[str, str]] = None
        for _ in range(group.desired):
            node = self._new_node(0.0, NodeState.IN_SERVICE)
            self.state.nodes[node.name] = node

    # -- output ------------------------------------------------------------------------------

    def say(self, at: float, what: str, text: str) -> None:
        line = "%s  %-10s %s" % (clock(at), what, text)
        self.result.lines.append(line)
        if self.echo:
            _print(line)

    # -- nodes -------------------------------------------------------------------------------

    def _new_node(self, now: float, state: str = NodeState.PROVISIONING) -> Node:
        self.serial += 1
        name = "%s-%06x" % (self.t.group.name, self.serial)
        return Node(name=name, group=self.t.group.name, state=state, created_at=now,
                    updated_at=now)

    def _replace_node(self, node: Node) -> None:
        self.state.nodes[node.name] = node

    def _failing(self, at: float) -> Optional[Event]:
        for event in self.t.events:
            if event.type == "boot_failures" and event.at <= at < event.until:
                return event
        return None

    def advance_nodes(self, now: float) -> None:
        scaling = self.state.scaling
        for name in sorted(self.ready_at, key=lambda n: (self.ready_at[n], n)):
            if self.ready_at[name] > now:
                continue
            ready = self.ready_at.pop(name)
            node = self.state.nodes[name]
            if self._failing(ready):
                cause = "boot failure (simulated): the node did not come into service"
                node = node.advance(NodeState.FAILED, ready, cause)
                scaling = replace(scaling,
                                  consecutive_failures=scaling.consecutive_failures + 1,
                                  last_failure_at=ready, last_failure_cause=cause)
                self.gone_at[name] = ready + self.t.drain_time
                self.say(ready, "node", "%s failed to boot (%d failure(s) in a row)"
                         % (name, scaling.consecutive_failures))
            else:
                for state in (NodeState.CONFIGURING, NodeState.REGISTERING,
                              NodeState.IN_SERVICE):
                    node = node.advance(state, ready)
                scaling = replace(scaling, consecutive_failures=0)
            self._replace_node(node)
        self.state.scaling = scaling
        for name in [n for n, at in self.gone_at.items() if at <= now]:
            del self.gone_at[name]
            del self.state.nodes[name]

    # -- events ------------------------------------------------------------------------------

    def apply_event(self, event: Event) -> None:
        now = event.at
        if event.type.startswith("alert_"):
            state = {"alert_open": "open", "alert_close": "closed",
                     "alert_ack": "acknowledged"}[event.type]
            delivery = alert_state.Delivery(state=state, severity=event.severity,
                                            issue_id=event.issue, title=event.title)
            change = alert_state.apply(self.state.alert, delivery, now,
                                       self.t.settings.alert_max_age)
            self.state.alert = change.alert
            self.say(now, "alert", change.cause)
            if state == "open" and event.severity == "critical":
                # The alert workflow's scale_out_now: the governed expand, at once.
                self.advance_nodes(now)
                decision = policy.decide({self.state.group.name: self.state}, now,
                                         self.t.settings)[0]
                if decision.action in (policy.Action.SCALE_OUT, policy.Action.REPAIR) and \
                        decision.acts and not decision.dry_run:
                    self.carry_out(decision, now, "on the alert")
        elif event.type == "node_failure":
            victims = sorted((n for n in self.state.nodes.values()
                              if n.state == NodeState.IN_SERVICE),
                             key=lambda n: (n.created_at, n.name))[:event.count]
            for node in victims:
                cause = "node failure (simulated)"
                self._replace_node(node.advance(NodeState.FAILED, now, cause))
                self.gone_at[node.name] = now + self.t.drain_time
                self.say(now, "node", "%s failed and leaves service" % node.name)
            if len(victims) < event.count:
                self.say(now, "node", "only %d node(s) in service to fail, not %d"
                         % (len(victims), event.count))
        elif event.type == "boot_failures":
            self.say(now, "node", "node additions fail until %s" % clock(event.until))

    # -- decisions ---------------------------------------------------------------------------

    def carry_out(self, decision: policy.ScaleDecision, now: float, note: str = "") -> None:
        self.result.decisions.append(Decision(now, decision.action, decision.count,
                                              decision.reason, decision.cause,
                                              decision.current, decision.target))
        self.last_key = (decision.action, decision.reason)
        sign = "-" if decision.action == policy.Action.SCALE_IN else "+"
        cause = decision.cause + (" [%s]" % note if note else "")
        self.say(now, decision.action, "%s%d  %s" % (sign, decision.count, cause))
        if decision.action in (policy.Action.SCALE_OUT, policy.Action.REPAIR):
            for _ in range(decision.count):
                node = self._new_node(now)
                self.state.nodes[node.name] = node
                self.ready_at[node.name] = now + self.t.boot_time
            self.state.scaling = replace(self.state.scaling, last_scale_out_at=now)
        elif decision.action == policy.Action.SCALE_IN:
            for _ in range(decision.count):
                serving = GroupState(group=self.state.group, nodes={
                    n.name: n for n in self.state.nodes.values()
                    if n.state == NodeState.IN_SERVICE})
                victim = choose_victim(serving)
                if victim is None:
                    break
                self._replace_node(victim.advance(NodeState.DRAINING, now, "scale-in"))
                self.gone_at[victim.name] = now + self.t.drain_time
            self.state.scaling = replace(self.state.scaling, last_scale_in_at=now)

    def tick(self, now: float) -> None:
        decision = policy.decide({self.state.group.name: self.state}, now, self.t.settings)[0]
        if decision.alert_expired:
            alert = self.state.alert
            last_heard = max(alert.opened_at, alert.updated_at)
            self.state.alert = AlertState(level=AlertLevel.NONE, issue_id=alert.issue_id,
                                          title=alert.title,
                                          ended_at=last_heard + self.t.settings.alert_max_age)
            self.say(now, "alert", "alert expired: no update for %s"
                     % duration(self.t.settings.alert_max_age))
        if decision.acts and not decision.dry_run:
            self.carry_out(decision, now)
        elif self.last_key != (decision.action, decision.reason):
            self.last_key = (decision.action, decision.reason)
            self.result.decisions.append(Decision(now, decision.action, decision.count,
                                                  decision.reason, decision.cause,
                                                  decision.current, decision.target,
                                                  decision.dry_run))
            self.say(now, decision.action, "    %s" % decision.cause)

    def sample(self, now: float) -> None:
        state = self.state
        level, _, _ = policy.alert_status(state, now, self.t.settings)
        in_service, adding = state.capacity()
        self.result.samples.append(Sample(now, in_service, adding,
                                          state.count(*NodeState.LEAVING),
                                          state.count(NodeState.FAILED), level))

    def run(self) -> Result:
        events = list(self.t.events)
        index = 0
        now = 0.0
        until = self.result.until
        while now <= until:
            while index < len(events) and events[index].at <= now:
                self.advance_nodes(events[index].at)
                self.apply_event(events[index])
                index += 1
            self.advance_nodes(now)
            self.tick(now)
            self.sample(now)
            now += self.step
        return self.result


def default_until(timeline: Timeline) -> float:
    """Long enough to settle: the last event, then every extra node removed, plus an hour."""
    group = timeline.group
    last = max((max(e.at, e.until) for e in timeline.events), default=0.0)
    extra = group.max_size - group.desired
    steps = -(-extra // group.deflate_by)
    return last + steps * group.scale_in_cooldown + 3600


def simulate(timeline: Timeline, step: float = DEFAULT_STEP, until: Optional[float] = None,
             echo: bool = False) -> Result:
    """Run the policy over the timeline, one governor tick every ``step`` seconds."""
    if step <= 0:
        raise TimelineError("the step must be a positive number of seconds")
    if until is None:
        until = timeline.until if timeline.until is not None else default_until(timeline)
    return _Sim(timeline, float(step), float(until), echo).run()


# ---------------------------------------------------------------------------------------------
# The plot


def _alert_periods(samples: Sequence[Sample], step: float) -> List[Tuple[float, float, str]]:
    periods: List[Tuple[float, float, str]] = []
    for sample in samples:
        if sample.level == AlertLevel.NONE:
            continue
        if periods and periods[-1][2] == sample.level and periods[-1][1] >= sample.at:
            periods[-1] = (periods[-1][0], sample.at + step, sample.level)
        else:
            periods.append((sample.at, sample.at + step, sample.level))
    return periods


def plot(result: Result, path: str) -> str:
    """Draw the result as a PNG at ``path``; returns the path."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import FuncFormatter, MaxNLocator, MultipleLocator

    timeline = result.timeline
    group = timeline.group
    samples = result.samples
    times = [s.at for s in samples]
    fig, ax = plt.subplots(figsize=(12, 5), dpi=100)
    try:
        colours = {AlertLevel.CRITICAL: "#f4a6a6", AlertLevel.WARNING: "#fde2a1"}
        labelled = set()
        for start, end, level in _alert_periods(samples, result.step):
            ax.axvspan(start, end, color=colours[level], alpha=0.6, linewidth=0,
                       label=None if level in labelled else "%s alert" % level)
            labelled.add(level)
        ax.step(times, [s.in_service + s.adding for s in samples], where="post",
                color="#7f9fcf", linestyle="--", label="capacity (in service + booting)")
        ax.step(times, [s.in_service for s in samples], where="post", color="#1f4e9c",
                linewidth=2, label="in service")
        ax.axhline(group.desired, color="#2e8b57", linestyle=":", label="normal size %d"
                   % group.desired)
        ax.axhline(group.min_size, color="#555555", linestyle="-.", linewidth=1,
                   label="min %d" % group.min_size)
        ax.axhline(group.max_size, color="#b22222", linestyle="-.", linewidth=1,
                   label="max %d" % group.max_size)
        markers = {policy.Action.SCALE_OUT: ("^", "#d62728", "scale-out"),
                   policy.Action.SCALE_IN: ("v", "#2ca02c", "scale-in"),
                   policy.Action.REPAIR: ("P", "#9467bd", "repair")}
        for action, (marker, colour, label) in markers.items():
            acts = [d for d in result.acting if d.action == action]
            if acts:
                ax.scatter([d.at for d in acts], [d.target for d in acts], marker=marker,
                           color=colour, s=80, zorder=5, label="%s (%d)" % (label, len(acts)))
        ax.set_xlim(0, result.until)
        ax.set_ylim(0, group.max_size + 1.5)
        ax.yaxis.set_major_locator(MaxNLocator(integer=True))
        tick = next((t for t in (300, 600, 900, 1800, 3600, 7200, 10800, 21600)
                     if result.until / t <= 12), 43200)
        ax.xaxis.set_major_locator(MultipleLocator(tick))
        ax.xaxis.set_major_formatter(FuncFormatter(lambda x, _: clock(x)[:5]))
        ax.set_xlabel("simulated time (hh:mm)")
        ax.set_ylabel("nodes")
        ax.set_title("%s: group %d–%d (normal %d), +%d/−%d, cooldowns %d/%d s"
                     % (timeline.name, group.min_size, group.max_size, group.desired,
                        group.expand_by, group.deflate_by, group.scale_out_cooldown,
                        group.scale_in_cooldown))
        ax.grid(True, alpha=0.3)
        ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize="small",
                  framealpha=0.9)
        fig.tight_layout()
        fig.savefig(path, format="png")
    finally:
        plt.close(fig)
    return path


# ---------------------------------------------------------------------------------------------
# The command


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m sandbox.simulator",
        description="Run the governor's policy over a timeline with a virtual clock.")
    parser.add_argument("timeline", help="timeline file: JSON, or CSV (.csv)")
    parser.add_argument("--out", help="write a PNG plot here (needs matplotlib)")
    parser.add_argument("--step", type=float, default=DEFAULT_STEP,
                        help="seconds between governor ticks (default %(default)s)")
    parser.add_argument("--until", help="simulate this long (seconds or HH:MM); default: the "
                        "timeline's until, or long enough to settle")
    args = parser.parse_args(argv)
    try:
        timeline = load(args.timeline)
        until = parse_time(args.until, "--until") if args.until else None
        _print("%s: group min %d, max %d, normal %d; boot %s, drain %s"
               % (timeline.name, timeline.group.min_size, timeline.group.max_size,
                  timeline.group.desired, duration(timeline.boot_time),
                  duration(timeline.drain_time)))
        result = simulate(timeline, args.step, until, echo=True)
    except TimelineError as exc:
        print("error: %s" % exc, file=sys.stderr)
        return 2
    _print(result.summary_text())
    if args.out:
        try:
            plot(result, args.out)
        except ImportError:
            print("error: the plot needs matplotlib: pip install 'matplotlib>=3.7,<4'",
                  file=sys.stderr)
            return 1
        _print("plot written to %s" % args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
