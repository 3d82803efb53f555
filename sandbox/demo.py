"""The sandbox demo, ``make demo`` (or ``python -m sandbox.demo``): the pack's whole story on
this machine, in under two minutes.

It starts a ``World`` (a real BIND9 and HAProxy, fake Nova, Chef and Slack, every VM a real
little web server on 127.0.0.1), runs the pack's webhook sensor (real HTTP) and governor
sensor, its rules (st2's rules engine, ``st2harness.reactor``) and its workflows (orquesta),
then:

1. creates a group through the chat alias (``!asg create ...``, st2's alias matching);
2. POSTs a New Relic critical alert to the webhook sensor: the group scales out at once, then
   the governor adds more after the cooldown, up to max (node states printed as they change);
3. sends HTTP traffic through HAProxy and counts the answers per node;
4. POSTs the recovery: the governor scales in, one drained node per cooldown, down to min,
   under steady traffic (no request may fail);
5. deletes the group through the chat alias (``!asg delete ...``);
6. tells a second story, with real monitoring (a real Prometheus scraping HAProxy's exporter,
   a real Alertmanager posting to the sensor, both started at the beginning): a group that
   Alertmanager's alerts reach by their labels; its application is made sick (HTTP 500) under
   steady traffic, Prometheus's rule fires, Alertmanager POSTs, the group scales out; the
   application is made well, the alert resolves, the governor scales in, drained; the group
   is deleted;
7. checks that nothing is left: no VM, web node process, DNS record, HAProxy server, Chef node
   or datastore key; after stopping everything, no process of the sandbox either.

Accelerated: cooldowns of a few seconds instead of minutes, and the demo ticks the governor
itself every second (StackStorm polls it every ``governor.interval`` seconds). Exit status: 0
when every check passed, 1 otherwise, 130 on Ctrl-C (or SIGTERM); everything started is stopped
in every case.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import threading
import time
import urllib.request
from collections import Counter
from typing import Any, Callable, Dict, List, Optional, Tuple

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
_LIB = os.path.join(ROOT, "lib")
if _LIB not in sys.path:
    sys.path.insert(0, _LIB)

from autoscale_core.domain.model import NodeState  # noqa: E402
from autoscale_core.store import Store  # noqa: E402
from st2harness import Datastore, PackLoader  # noqa: E402
from st2harness.aliases import (  # noqa: E402
    cast_params,
    load_aliases,
    make_execution,
    match_command,
    render_ack,
    render_result,
)
from st2harness.reactor import Reactor  # noqa: E402
from st2harness.workflows import WorkflowRunner  # noqa: E402

from .fake_slack import readable  # noqa: E402
from .monitoring import Monitoring  # noqa: E402
from .net import LOOPBACK, free_port  # noqa: E402
from .process import alive  # noqa: E402
from .traffic import Load  # noqa: E402
from .world import World  # noqa: E402

ZONE = "example.test"
GROUP = "web"
CHANNEL = "#autoscale"
MIN, MAX, EXPAND_BY, DEFLATE_BY = 2, 5, 2, 1
COOLDOWN = 3  # seconds, for both scale-out and scale-in (minutes in production)
TICK = 1.0  # seconds between governor ticks (the demo ticks it itself)
REQUESTS = 200
CREATE = ("!asg create name=%s domain=%s min=%d max=%d expand_by=%d deflate_by=%d "
          "scale_out_cooldown=%d scale_in_cooldown=%d"
          % (GROUP, ZONE, MIN, MAX, EXPAND_BY, DEFLATE_BY, COOLDOWN, COOLDOWN))
DELETE = "!asg delete name=%s force=true" % GROUP
# The second story's group: Alertmanager's alerts reach it by their labels (the sandbox's rule
# labels each alert with its HAProxy backend as `service`).
CREATE_WATCHED = CREATE + ' match_labels={"service": "%s"}' % GROUP
AM_PATH = "/st2/amhook"

# A New Relic workflow webhook (the pack's documented payload template), critical.
ALERT = {
    "id": "7d1e8f0a-3c52-4b8e-9a61-2f4d5c6b7e80",
    "issueUrl": "https://radar-api.service.newrelic.com/accounts/1234567/issues/"
                "7d1e8f0a-3c52-4b8e-9a61-2f4d5c6b7e80?notifier=WEBHOOK",
    "title": "Checkout error rate above 5%",
    "priority": "CRITICAL",
    "impactedEntities": ["storefront"],
    "totalIncidents": 1,
    "state": "ACTIVATED",
    "trigger": "STATE_CHANGE",
    "isCorrelated": False,
    "createdAt": 1764086400000,
    "updatedAt": 1764086400000,
    "sources": ["newrelic"],
    "alertPolicyNames": ["Storefront golden signals"],
    "alertConditionNames": ["High error rate"],
    "workflowName": "autoscale-storefront",
}


class Interrupted(BaseException):
    """SIGTERM, handled like Ctrl-C."""


class Demo:
    def __init__(self, out: Any = None) -> None:
        self.out = out or sys.stdout
        self.started = time.monotonic()
        self.checks: List[Tuple[str, bool, str]] = []
        self.world: Optional[World] = None
        self.pids: set = set()
        self.shown_messages = 0
        self.shown_states: Dict[str, str] = {}
        self.shown_lb: Dict[str, str] = {}
        self.lock = threading.Lock()

    # -- printing -----------------------------------------------------------------------------

    def clock(self) -> str:
        return "%6.1fs" % (time.monotonic() - self.started)

    def print(self, text: str = "") -> None:
        with self.lock:
            self.out.write(text + "\n")
            self.out.flush()

    def say(self, text: str) -> None:
        self.print("%s  %s" % (self.clock(), text))

    def step(self, title: str) -> None:
        self.print("")
        self.print("%s  == %s" % (self.clock(), title))

    def chat(self, who: str, text: str, channel: str = CHANNEL) -> None:
        text = readable(text)
        self.print("%s  %-11s %s: %s" % (self.clock(), channel, who, text))

    def check(self, name: str, ok: bool, detail: str) -> bool:
        self.checks.append((name, bool(ok), detail))
        self.say("%s %s: %s" % ("ok  " if ok else "FAIL", name, detail))
        return bool(ok)

    def show_news(self) -> None:
        """New Slack messages as chat lines; node state changes; the World's processes."""
        world = self.world
        if world is None or world.slack is None:
            return
        messages = list(world.slack.messages)
        for message in messages[self.shown_messages:]:
            self.chat("autoscale", message.text, "#" + message.channel_name)
        self.shown_messages = max(self.shown_messages, len(messages))
        self.pids.update(world.pids())
        if getattr(self, "store", None) is None:
            return
        state = self.store.load_group(GROUP)
        states = {} if state is None else {n: node.state for n, node in state.nodes.items()}
        changes = ["%s %s" % (name, states.get(name, "gone"))
                   for name in sorted(set(states) | set(self.shown_states))
                   if states.get(name) != self.shown_states.get(name)]
        if changes:
            serving = sum(1 for s in states.values() if s == NodeState.IN_SERVICE)
            self.say("nodes: %s  [%d in service of %d]" % (", ".join(changes), serving,
                                                            len(states)))
        self.shown_states = states
        try:
            servers = world.lb_servers(GROUP)
        except Exception:  # HAProxy's socket busy or gone: shown next time
            return
        lb = {name: "%s/%s" % (s["admin_state"], s["op_state"]) for name, s in servers.items()}
        changes = ["%s %s" % (name, lb.get(name, "deleted"))
                   for name in sorted(set(lb) | set(self.shown_lb))
                   if lb.get(name) != self.shown_lb.get(name)]
        if changes:
            self.say("haproxy %s: %s" % (GROUP, ", ".join(changes)))
        self.shown_lb = lb

    def watching(self, work: Callable[[], Any]) -> Any:
        """Run ``work`` in a thread while printing what changes, every 0.1 s."""
        box: Dict[str, Any] = {}

        def target() -> None:
            try:
                box["value"] = work()
            except BaseException as exc:  # re-raised in the caller's thread
                box["error"] = exc

        thread = threading.Thread(target=target, daemon=True, name="demo-work")
        thread.start()
        while thread.is_alive():
            thread.join(0.1)
            self.show_news()
        self.show_news()
        if "error" in box:
            raise box["error"]
        return box.get("value")

    # -- the pieces ---------------------------------------------------------------------------

    def in_service(self) -> List[str]:
        state = self.store.load_group(GROUP)
        return [] if state is None else sorted(
            name for name, node in state.nodes.items() if node.state == NodeState.IN_SERVICE)

    def node_count(self) -> int:
        state = self.store.load_group(GROUP)
        return 0 if state is None else len(state.nodes)

    def command(self, text: str) -> Any:
        """A chat command as StackStorm runs it: the alias it matches, the parameters cast to
        the action's types and validated, the ack, the execution, the result message."""
        self.chat("operator", text)
        alias, _, params = match_command(self.aliases, text, source_channel=CHANNEL)
        action = self.loader.action(alias.action_ref.split(".", 1)[1])
        cast = cast_params(params, action.meta.get("parameters") or {})
        action.validate(cast)
        self.say("alias %s -> %s %s" % (alias.name, alias.action_ref, json.dumps(cast)))
        ack = render_ack(alias, cast, execution=make_execution(alias, cast,
                                                               source_channel=CHANNEL))
        if ack.enabled and ack.text:
            self.chat("stackstorm", ack.text)
        result = self.watching(lambda: self.reactor.runner.run(alias.action_ref, **cast))
        message = render_result(alias, make_execution(
            alias, cast, status=result.status, result=result.result, source_channel=CHANNEL))
        if message.enabled and message.message:
            self.chat("stackstorm", message.text)
        return result

    def post(self, document: Dict[str, Any]) -> Tuple[int, Any]:
        request = urllib.request.Request(
            self.url, data=json.dumps(document).encode("utf-8"), method="POST",
            headers={"Content-Type": "application/json",
                     "Authorization": "Bearer " + self.token})
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.loads(response.read().decode("utf-8") or "null")

    def tick(self) -> List[Any]:
        """One governor tick and whatever it dispatched, run to its end."""
        def work() -> List[Any]:
            self.governor.poll()
            return self.reactor.drain()
        done = self.watching(work)
        for match, result in done:
            self.say("governor -> rule %s: %s" % (match.rule, result.status))
            self.drains += [record for record in result.walk() if record.task_id == "drain"
                            and record.action == "autoscale.lb_drain_node"]
            if result.status != "succeeded":
                self.failures.append("%s: %s" % (match.rule, result.errors))
        return done

    def nova_creates(self) -> List[Any]:
        assert self.world is not None and self.world.openstack is not None
        return [r for r in self.world.openstack.service_requests()
                if r.method == "POST" and r.path.endswith("/servers")]

    def wait_lb_up(self, count: int, timeout: float = 15.0) -> bool:
        assert self.world is not None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            servers = self.world.lb_servers()
            if len(servers) == count and all(
                    s["op_state"] == "up" and s["admin_state"] == "ready"
                    for s in servers.values()):
                return True
            time.sleep(0.1)
        return False

    def scale_in_under_load(self, name: str) -> bool:
        """Tick the governor until the group is back to MIN, under steady traffic; check that
        each node left drained and that no request failed."""
        assert self.world is not None
        drains_before = len(self.drains)
        scale_ins_before = len(self.scale_ins())
        start = self.node_count()
        load = Load(self.world)
        load.start()
        try:
            deadline = time.monotonic() + 4 * COOLDOWN + 15
            while self.node_count() > MIN and time.monotonic() < deadline:
                time.sleep(TICK)
                self.tick()
            time.sleep(0.5)
        finally:
            load.stop()
        steps = len(self.scale_ins()) - scale_ins_before
        drained = [r for r in self.drains[drains_before:] if r.status == "succeeded"]
        for node, count in sorted(load.served.items()):
            self.say("  %-14s %4d requests during the scale-in" % (node, count))
        if load.errors:
            self.say("failed requests: %s" % ", ".join(sorted(set(load.errors))[:5]))
        return self.check(name, self.node_count() == MIN
                          and len(self.in_service()) == MIN and load.failed == 0
                          and load.ok > 0 and len(drained) == start - MIN,
                          "%d -> %d nodes in %d step(s), %d drained in HAProxy first; %d "
                          "requests during it, %d failed" % (
                              start, self.node_count(), steps, len(drained),
                              load.ok + load.failed, load.failed))

    def scale_ins(self) -> List[Any]:
        return [e for e in self.store.history(GROUP, limit=0) if e.kind == "scale_in"]

    def alerts_since(self, count: int, state: str) -> List[Any]:
        """The autoscale.alert dispatches of the webhook sensor after the first ``count``, in
        ``state`` (open or closed)."""
        return [d for d in self.webhook.sensor_service.dispatched[count:]
                if d.trigger.endswith(".alert") and d.payload.get("state") == state]

    def wait_alert(self, count: int, state: str, timeout: float) -> Optional[float]:
        """When (time.time()) the webhook sensor dispatched an alert in ``state`` after the
        first ``count`` dispatches; None if none came within ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.alerts_since(count, state):
                return time.time()
            time.sleep(0.05)
            self.show_news()
        return None

    def start_monitoring(self, url: str) -> None:
        """A real Prometheus scraping HAProxy and a real Alertmanager posting to ``url``,
        started now and made ready (about 6 s) while the first story runs."""
        assert self.world is not None and self.world.haproxy is not None
        self.monitoring = Monitoring([self.world.haproxy.metrics_target], url, token=self.token)
        self.monitoring_ready = threading.Event()
        self.monitoring_error: Optional[BaseException] = None

        def start() -> None:
            try:
                self.monitoring.start()
                self.pids.update(self.monitoring.pids())
                self.monitoring.wait_for_targets()
            except BaseException as exc:  # reported by the second story
                self.monitoring_error = exc
            finally:
                self.monitoring_ready.set()

        self.monitoring_thread = threading.Thread(target=start, daemon=True, name="monitoring")
        self.monitoring_thread.start()

    def watched_story(self) -> None:
        """The second story: real monitoring sees real trouble (issue 14)."""
        world = self.world
        assert world is not None
        self.step("7. A second group, watched by a real Prometheus and Alertmanager; its "
                  "Alertmanager alerts reach it by their labels (match_labels)")
        failures_before = len(self.failures)
        self.monitoring_ready.wait(60)
        if self.monitoring_error is not None or not self.monitoring_ready.is_set():
            raise RuntimeError("monitoring did not start: %s" % (self.monitoring_error,))
        prometheus, alertmanager = self.monitoring.prometheus, self.monitoring.alertmanager
        self.say("Prometheus %s scrapes HAProxy's exporter %s every 1 s; Alertmanager %s "
                 "posts to %s" % (prometheus.url if prometheus else "?",
                                  world.haproxy.metrics_target if world.haproxy else "?",
                                  alertmanager.url, self.am_url))
        created = self.command(CREATE_WATCHED)
        self.check("watched group created", created.status == "succeeded"
                   and len(self.in_service()) == MIN,
                   "%s, %d node(s) in service, match_labels service=%s" % (
                       created.status, len(self.in_service()), GROUP))

        self.step("8. The application is made sick (HTTP 500) under steady traffic")
        sick_load = Load(world, name="sick-load")
        sick_load.start()
        try:
            seen = len(self.webhook.sensor_service.dispatched)
            creates_before = len(self.nova_creates())
            sick_at = time.time()
            self.say("web nodes sick: %s (and every node started later)" % ", ".join(
                world.make_sick()))
            posted_at = self.wait_alert(seen, "open", 45)
            fired = self.alerts_since(seen, "open")
            self.check("sickness -> alert POST", posted_at is not None,
                       "%.1f s from the app made sick to Alertmanager's POST (%s, %s)" % (
                           (posted_at or float("nan")) - sick_at,
                           fired[0].payload["condition"] if fired else "no alert",
                           fired[0].payload["severity"] if fired else "-"))
            if posted_at is None:
                return
            for match, result in self.watching(lambda: self.reactor.drain(timeout=5)):
                self.say("rule %s: %s" % (match.rule, result.status))
            creates = self.nova_creates()[creates_before:]
            reaction = creates[0].at - posted_at if creates else float("nan")
            self.check("alert POST -> first VM create", bool(creates) and reaction < 5,
                       "%.2f s from Alertmanager's POST to the first Nova create" % reaction)
            deadline = time.monotonic() + COOLDOWN + 15
            while len(self.in_service()) < MAX and time.monotonic() < deadline:
                time.sleep(TICK)
                self.tick()
            self.check("scale-out (Alertmanager)", len(self.in_service()) == MAX,
                       "%d in service (max %d) %.1f s after the POST" % (
                           len(self.in_service()), MAX, time.time() - posted_at))

            self.step("9. The application is made well: the alert resolves")
            seen = len(self.webhook.sensor_service.dispatched)
            well_at = time.time()
            world.make_well()
            resolved_at = self.wait_alert(seen, "closed", 45)
            for match, result in self.watching(lambda: self.reactor.drain(timeout=2)):
                self.say("rule %s: %s" % (match.rule, result.status))
            state = self.store.load_group(GROUP)
            still_open = state is not None and bool(state.alert.issues)
            self.check("alert resolved", resolved_at is not None and not still_open,
                       "%.1f s from the app made well to the resolved POST; %s" % (
                           (resolved_at or float("nan")) - well_at,
                           "an issue is still open" if still_open else "no open issue"))
        finally:
            sick_load.stop()
        self.say("during the sickness: %d requests answered 200, %d failed (the alert's "
                 "cause)" % (sick_load.ok, sick_load.failed))

        self.step("10. The governor scales in with drain, under steady traffic")
        self.scale_in_under_load("scale-in drained (Alertmanager)")
        failures = self.failures[failures_before:]
        self.check("governor actions (Alertmanager)", not failures,
                   "every dispatched workflow succeeded" if not failures
                   else "; ".join(failures))

        self.step("11. Delete the group from chat")
        deleted = self.command(DELETE)
        self.check("watched group deleted", deleted.status == "succeeded"
                   and self.store.load_group(GROUP) is None, deleted.status)

    # -- the story ----------------------------------------------------------------------------

    def run(self) -> None:
        self.failures: List[str] = []
        self.drains: List[Any] = []
        self.step("Starting the sandbox: BIND9, HAProxy, fake Nova/Chef/Slack on 127.0.0.1")
        self.world = world = World(zone=ZONE, converge_after=0, drain_timeout=1,
                                   serve_http=True)
        world.start()
        self.pids.update(world.pids())
        self.say("BIND9 (zone %s) on port %d, HAProxy frontend %s"
                 % (ZONE, world.bind.port if world.bind else 0, world.lb_url))
        datastore = self.datastore = Datastore()
        service = datastore.service("autoscale", "Demo")
        service.set_value("ssh_pub_key", world.ssh_pub_key, local=False)
        self.store = Store(service)
        port = free_port()
        config = world.config(webhook={"port": port, "bind_address": LOOPBACK},
                              governor={"orphan_scan_interval": 0})
        self.loader = PackLoader(ROOT, datastore, config=config)
        self.aliases = load_aliases(ROOT)
        self.reactor = Reactor(self.loader, WorkflowRunner(self.loader))
        self.webhook = self.reactor.sensor("NewRelicWebhookSensor")
        self.webhook.setup()
        self.serving = threading.Thread(target=self.webhook.run, daemon=True,
                                        name="webhook-sensor")
        self.serving.start()
        self.governor = self.reactor.sensor("GovernorSensor")
        self.governor.setup()
        self.token = config["webhook"]["token"]
        base = "http://%s:%d%s" % (LOOPBACK, port, config["webhook"]["path"])
        self.url = base + "?asg=" + GROUP
        self._wait_serving(base + "/health")
        self.say("webhook sensor serving %s; governor sensor set up" % base)
        self.am_url = "http://%s:%d%s" % (LOOPBACK, port, AM_PATH)
        self.start_monitoring(self.am_url)
        self.say("accelerated: cooldowns of %d s instead of minutes; the demo ticks the "
                 "governor every %g s itself" % (COOLDOWN, TICK))

        # 1. The group, from chat.
        self.step("1. Create the group from chat (the asg_create alias)")
        created = self.command(CREATE)
        serving = self.in_service()
        self.check("group created via chat alias", created.status == "succeeded"
                   and len(serving) == MIN,
                   "%s, %d node(s) in service" % (created.status, len(serving)))

        # 2. The alert.
        self.step("2. New Relic: critical alert POSTed to the webhook sensor")
        before = len(self.nova_creates())
        posted_at = time.time()
        status, answer = self.post(dict(ALERT))
        self.say("webhook answered %d %s" % (status, json.dumps(answer)))
        handled = self.watching(lambda: self.reactor.drain(timeout=5))
        for match, result in handled:
            self.say("rule %s: %s" % (match.rule, result.status))
        creates = self.nova_creates()[before:]
        reaction = creates[0].at - posted_at if creates else float("nan")
        self.check("alert -> first VM create", bool(creates) and reaction < 5,
                   "%.2f s from the POST to the first Nova create" % reaction)
        self.check("immediate scale-out", len(self.in_service()) == MIN + EXPAND_BY,
                   "%d node(s) in service (+%d)" % (len(self.in_service()), EXPAND_BY))

        self.step("3. The governor, alert still open: one more step after the cooldown, "
                  "up to max %d" % MAX)
        deadline = time.monotonic() + COOLDOWN + 10
        while len(self.in_service()) < MAX and time.monotonic() < deadline:
            time.sleep(TICK)
            self.tick()
        time.sleep(TICK)
        extra = self.tick()
        self.check("nodes after scale-out", len(self.in_service()) == MAX and not extra,
                   "%d in service (max %d), nothing more dispatched" % (
                       len(self.in_service()), MAX))

        # 3. Traffic.
        self.step("4. Traffic: %d HTTP requests through HAProxy" % REQUESTS)
        up = self.wait_lb_up(MAX)
        self.say("HAProxy backend %s: %s" % (GROUP, ", ".join(
            "%s %s" % (name, s["op_state"]) for name, s in sorted(world.lb_servers().items()))))
        served: Counter = Counter()
        errors = 0
        for _ in range(REQUESTS):
            try:
                code, body = world.http_get(timeout=5)
            except OSError:
                errors += 1
                continue
            if code == 200:
                served[body] += 1
            else:
                errors += 1
        for name, count in sorted(served.items()):
            self.say("  %-14s %4d requests %s" % (name, count, "#" * (count // 4)))
        self.check("traffic spread", up and len(served) == MAX and errors == 0,
                   "%d requests over %d nodes, %d errors" % (sum(served.values()),
                                                               len(served), errors))

        # 4. Recovery and scale-in under load.
        self.step("5. New Relic: the alert closes; the governor scales in with drain, "
                  "under steady traffic")
        status, answer = self.post(dict(ALERT, state="CLOSED"))
        self.say("webhook answered %d %s" % (status, json.dumps(answer)))
        for match, result in self.watching(lambda: self.reactor.drain(timeout=5)):
            self.say("rule %s: %s" % (match.rule, result.status))
        self.scale_in_under_load("scale-in drained")
        self.check("governor actions", not self.failures,
                   "every dispatched workflow succeeded" if not self.failures
                   else "; ".join(self.failures))

        # 5. Delete from chat.
        self.step("6. Delete the group from chat (the asg_delete alias)")
        deleted = self.command(DELETE)
        output = deleted.output or {}
        self.check("group deleted", deleted.status == "succeeded"
                   and self.store.load_group(GROUP) is None,
                   "%s, %s node(s) removed" % (deleted.status, output.get("removed", "?")))

        self.watched_story()

        # Leftovers.
        self.step("12. Leftovers")
        deadline = time.monotonic() + 5
        inventory = world.inventory()
        while inventory.servers and time.monotonic() < deadline:
            time.sleep(0.1)
            inventory = world.inventory()
        keys = [key for key in datastore.keys() if key != "ssh_pub_key"]
        backend = inventory.haproxy.get(GROUP, {})
        self.say("servers %s, web nodes %s, DNS %s, HAProxy %s, Chef %s, datastore %s" % (
            len(inventory.servers), inventory.web_nodes, sorted(inventory.dns),
            sorted(backend), inventory.chef_nodes + inventory.chef_clients, keys))
        self.check("leftovers", not (inventory.servers or inventory.web_nodes or inventory.dns
                                     or backend or inventory.chef_nodes
                                     or inventory.chef_clients or keys),
                   "%d VMs / %d web processes / %d DNS records / %d HAProxy servers / "
                   "%d Chef nodes / %d datastore keys" % (
                       len(inventory.servers), len(inventory.web_nodes), len(inventory.dns),
                       len(backend), len(inventory.chef_nodes), len(keys)))

    def _wait_serving(self, url: str, timeout: float = 10.0) -> None:
        deadline = time.monotonic() + timeout
        while True:
            try:
                with urllib.request.urlopen(url, timeout=1):
                    return
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)

    def stop(self) -> None:
        """Stop everything started, whatever happened; then no process may be left."""
        webhook = getattr(self, "webhook", None)
        if webhook is not None:
            try:
                webhook.cleanup()
                self.serving.join(timeout=10)
            except Exception as exc:
                self.say("stopping the webhook sensor: %s" % exc)
        governor = getattr(self, "governor", None)
        if governor is not None:
            try:
                governor.cleanup()
            except Exception as exc:
                self.say("stopping the governor sensor: %s" % exc)
        monitoring = getattr(self, "monitoring", None)
        if monitoring is not None:
            self.monitoring_thread.join(timeout=60)
            try:
                monitoring.stop()
            except Exception as exc:
                self.say("stopping Prometheus and Alertmanager: %s" % exc)
        if self.world is not None:
            self.show_news()
            try:
                self.world.stop()
            except Exception as exc:
                self.say("stopping the sandbox: %s" % exc)
            left = sorted(set(pid for pid in self.pids if alive(pid)) | set(_children()))
            self.say("sandbox stopped")
            self.check("processes left", not left,
                       "%d of %d started (named, haproxy, web nodes, prometheus, alertmanager) "
                       "still running%s" % (
                           len(left), len(self.pids), " %s" % left if left else ""))

    def summary(self, interrupted: bool = False) -> int:
        total = time.monotonic() - self.started
        passed = all(ok for _, ok, _ in self.checks) and bool(self.checks) and not interrupted
        self.checks.append(("total time", total < 120, "%.1f s" % total))
        passed = passed and total < 120
        width = max(len(name) for name, _, _ in self.checks)
        self.print("")
        self.print("%-*s | result | detail" % (width, "check"))
        self.print("%s-+--------+-%s" % ("-" * width, "-" * 40))
        for name, ok, detail in self.checks:
            self.print("%-*s | %-6s | %s" % (width, name, "ok" if ok else "FAIL", detail))
        if interrupted:
            self.print("interrupted: everything started was stopped")
        self.print("demo %s" % ("interrupted" if interrupted else "passed" if passed
                                else "FAILED"))
        return 0 if passed else 1


def _children() -> List[int]:
    """Live child processes of this process (whoever started them)."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % entry, encoding="ascii") as handle:
                fields = handle.read().rsplit(") ", 1)[1].split()
        except (OSError, IndexError):
            continue
        if int(fields[1]) == os.getpid() and fields[0] != "Z":
            found.append(int(entry))
    return found


def _terminate(signum: int, frame: Any) -> None:
    raise Interrupted()


def main(out: Any = None) -> int:
    demo = Demo(out)
    previous: Dict[int, Any] = {}
    if threading.current_thread() is threading.main_thread():
        # Ctrl-C raises KeyboardInterrupt even when started with SIGINT ignored (a background
        # job of a non-interactive shell); SIGTERM takes the same way out.
        previous[signal.SIGINT] = signal.signal(signal.SIGINT, signal.default_int_handler)
        previous[signal.SIGTERM] = signal.signal(signal.SIGTERM, _terminate)
    interrupted = False
    try:
        try:
            demo.run()
        except (KeyboardInterrupt, Interrupted):
            interrupted = True
            demo.say("interrupted: stopping everything")
        except Exception as exc:
            demo.check("the demo ran to its end", False, "%s: %s" % (type(exc).__name__, exc))
            import traceback

            traceback.print_exc()
        finally:
            demo.stop()
        code = demo.summary(interrupted)
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    return 130 if interrupted else code


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
