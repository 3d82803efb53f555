"""B5: drain. Steady HTTP load through the real HAProxy (World(serve_http=True): one web
server per fake VM) while half of the group's nodes are removed with ``asg_deflate``, each
drained first: failed requests (target 0)."""

from __future__ import annotations

import time
from typing import Any, Dict

from bench.pipeline import Pipeline
from sandbox.traffic import Load


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
        with Load(env.world, pause=0.005, name="bench-load") as load:
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
