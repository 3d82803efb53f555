"""B5: drain. Steady HTTP load through the real HAProxy (World(serve_http=True): one web
server per fake VM) while half of the group's nodes are removed with ``asg_deflate``, each
drained first: failed requests (target 0)."""

from __future__ import annotations

import threading
import time
from typing import Any, Dict, List

from bench.pipeline import Pipeline


class Load:
    """Steady requests through HAProxy from a few threads, counted."""

    def __init__(self, world: Any, threads: int = 3) -> None:
        self.world = world
        self.ok = 0
        self.failed = 0
        self.errors: List[str] = []
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._threads = [threading.Thread(target=self._run, daemon=True, name="bench-load")
                         for _ in range(threads)]

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                status, _body = self.world.http_get(timeout=5)
                good, why = status == 200, "HTTP %d" % status
            except OSError as exc:
                good, why = False, repr(exc)
            with self._lock:
                if good:
                    self.ok += 1
                else:
                    self.failed += 1
                    self.errors.append(why)
            time.sleep(0.005)

    def __enter__(self) -> Load:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=10)


def _wait_lb_up(world: Any, count: int, timeout: float = 20.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        servers = world.lb_servers()
        if len(servers) == count and all(s["op_state"] == "up" and s["admin_state"] == "ready"
                                         for s in servers.values()):
            return True
        time.sleep(0.1)
    return False


def run(quick: bool) -> Dict[str, Any]:
    size = 4 if quick else 6
    with Pipeline(converge_after=0, drain_timeout=1, serve_http=True) as env:
        env.create("web", min=size // 2, max=size, expand_by=1, deflate_by=1,
                   scale_out_cooldown=0, scale_in_cooldown=0)
        env.run("autoscale.asg_expand", asg="web", count=size - size // 2,
                concurrency=size)
        before = len(env.in_service("web"))
        up = _wait_lb_up(env.world, before)
        time.sleep(0.3)
        started = time.monotonic()
        with Load(env.world) as load:
            time.sleep(0.5)
            env.run("autoscale.asg_deflate", asg="web", count=before // 2)
            time.sleep(0.5)
        wall = time.monotonic() - started
        after = len(env.in_service("web"))
        servers = len(env.world.lb_servers())
    return {"nodes_before": before, "nodes_after": after, "removed": before - after,
            "haproxy_servers_after": servers, "lb_up_before": up, "requests": load.ok
            + load.failed, "ok": load.ok, "failed": load.failed,
            "errors": sorted(set(load.errors))[:5], "seconds": wall}
