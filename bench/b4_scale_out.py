"""B4: parallel scale-out. ``asg_expand count=10`` on a group with max >= 11 while every fake
VM takes T seconds to boot (World's ``boot_delay``, the fake Nova's BUILD -> ACTIVE delay):
wall time as a ratio to T (target <= 1.5). Run with ``concurrency=10`` (all at once) and, for
reference, with the action's default concurrency (5: two waves, so at least 2 T) and with
boots taking no time (the workflow's own overhead for ten nodes). T is 20 s (1 s with
--quick): vm_create polls Nova for ACTIVE after 0.25, 0.75, 1.75, 3.75 s and then every 5 s,
so at a T of a few seconds the polling alone adds up to 0.25 T.

st2harness's WorkflowRunner runs with-items items in a pool of ``max_workers`` threads (8 by
default), a cap st2 does not have: the benchmark gives it 16 so that ten items boot at once."""

from __future__ import annotations

import time
from typing import Any, Dict

from bench.pipeline import Pipeline

COUNT = 10


def _expand(env: Pipeline, name: str, boot: float, **extra: Any) -> Dict[str, Any]:
    env.create(name, min=1, max=COUNT + 2, expand_by=1, deflate_by=1,
               scale_out_cooldown=0, scale_in_cooldown=60)
    before = len(env.in_service(name))
    started = time.monotonic()
    env.run("autoscale.asg_expand", asg=name, count=COUNT, **extra)
    wall = time.monotonic() - started
    added = len(env.in_service(name)) - before
    return {"wall_s": wall, "ratio": wall / boot, "added": added}


def run(quick: bool) -> Dict[str, Any]:
    # 20 s: still shorter than a real VM's boot (30-60 s), long enough that the pack's polling
    # for ACTIVE (0.25 s doubling to every 5 s) does not dominate, as it does at 3 s.
    boot = 1.0 if quick else 20.0
    with Pipeline(max_workers=16, converge_after=0, drain_timeout=1, boot_delay=boot,
                  boot_timeout=int(boot * 4) + 5, backends=("wide", "default", "instant")) as env:
        wide = _expand(env, "wide", boot, concurrency=COUNT)
        result: Dict[str, Any] = {"boot_delay_s": boot, "count": COUNT,
                                  "concurrency_10": wide, "ratio": wide["ratio"],
                                  "added": wide["added"]}
        if not quick:
            result["concurrency_default"] = _expand(env, "default", boot)
            env.world.openstack.set_boot_delay(0.0)
            instant = _expand(env, "instant", boot, concurrency=COUNT)
            result["instant_boot_wall_s"] = instant["wall_s"]
            # What the boots themselves add: about 1 T when all ten boot at once.
            result["boot_share"] = (wide["wall_s"] - instant["wall_s"]) / boot
    return result
