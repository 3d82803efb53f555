"""The sandbox pipeline the end-to-end benchmarks drive, as tests/e2e/test_event_pipeline.py and
sandbox/demo.py do: a World, the pack's webhook sensor serving real HTTP, its governor sensor,
rules wired to workflows through st2harness's Reactor."""

from __future__ import annotations

import json
import threading
import time
import urllib.request
from typing import Any, Dict, List

from bench.common import ROOT

ZONE = "example.test"


class Pipeline:
    def __init__(self, max_workers: int = 8, **world: Any) -> None:
        from sandbox.world import World

        # st2harness's WorkflowRunner runs a workflow's tasks (and with-items items) in a
        # thread pool of ``max_workers``; st2 itself has no such per-workflow cap.
        self.max_workers = max_workers
        world.setdefault("zone", ZONE)
        self.world = World(**world)
        self.webhook: Any = None
        self.serving: Any = None

    def __enter__(self) -> Pipeline:
        from autoscale_core.store import Store
        from sandbox.net import LOOPBACK, free_port
        from st2harness import Datastore, PackLoader
        from st2harness.reactor import Reactor
        from st2harness.workflows import WorkflowRunner

        self.world.start()
        try:
            self.datastore = Datastore()
            service = self.datastore.service("autoscale", "Bench")
            service.set_value("ssh_pub_key", self.world.ssh_pub_key, local=False)
            self.store = Store(service)
            port = free_port()
            config = self.world.config(webhook={"port": port, "bind_address": LOOPBACK},
                                       governor={"orphan_scan_interval": 0,
                                                 "global_max_nodes": 100})
            self.loader = PackLoader(ROOT, self.datastore, config=config)
            runner = WorkflowRunner(self.loader, max_workers=self.max_workers)
            self.reactor = Reactor(self.loader, runner)
            self.runner = self.reactor.runner
            self.webhook = self.reactor.sensor("NewRelicWebhookSensor")
            self.webhook.setup()
            self.serving = threading.Thread(target=self.webhook.run, daemon=True,
                                            name="bench-webhook")
            self.serving.start()
            self.token = config["webhook"]["token"]
            self.base = "http://%s:%d%s" % (LOOPBACK, port, config["webhook"]["path"])
            self._wait_serving()
        except BaseException:
            self.__exit__(None, None, None)
            raise
        return self

    def __exit__(self, *exc: Any) -> None:
        try:
            if self.webhook is not None:
                self.webhook.cleanup()
            if self.serving is not None:
                self.serving.join(timeout=10)
        finally:
            self.world.stop()

    def _wait_serving(self, timeout: float = 10.0) -> None:
        deadline = time.monotonic() + timeout
        while True:
            try:
                with urllib.request.urlopen(self.base + "/health", timeout=1):
                    return
            except OSError:
                if time.monotonic() > deadline:
                    raise

    def post(self, document: Dict[str, Any], asg: str) -> Any:
        request = urllib.request.Request(
            self.base + "?asg=" + asg, data=json.dumps(document).encode("utf-8"),
            method="POST", headers={"Content-Type": "application/json",
                                    "Authorization": "Bearer " + self.token})
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.loads(response.read().decode("utf-8") or "null")

    def creates(self) -> List[Any]:
        return [r for r in self.world.openstack.service_requests()
                if r.method == "POST" and r.path.endswith("/servers")]

    def run(self, action: str, **parameters: Any) -> Any:
        result = self.runner.run(action, **parameters)
        if result.status != "succeeded":
            raise RuntimeError("%s: %s %s" % (action, result.status, result.errors))
        return result

    def create(self, name: str, **parameters: Any) -> Any:
        return self.run("autoscale.asg_create", name=name, domain=ZONE, **parameters)

    def in_service(self, name: str) -> List[str]:
        from autoscale_core.domain.model import NodeState

        state = self.store.load_group(name)
        nodes = {} if state is None else state.nodes
        return sorted(n for n, node in nodes.items() if node.state == NodeState.IN_SERVICE)


def failures(executed: List[Any]) -> List[Any]:
    return [(match.rule, result.status, result.errors) for match, result in executed
            if result.status != "succeeded"]
