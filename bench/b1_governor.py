"""B1: the governor's tick. Datastore calls per steady tick for 1, 100 and 1,000 groups
(target: one listing whatever the number of groups), and CPU time per tick at 1,000 groups of
20 nodes as a ratio to only JSON-decoding the same records (target <= 3x)."""

from __future__ import annotations

import json
from typing import Any, Dict

from bench.common import ROOT, best_cpu

NOW = 1_700_000_000.0


def _governor():
    from autoscale_core.services.governor import Governor
    from autoscale_core.store import Store
    from st2harness import Datastore, PackLoader
    from st2harness.services import SensorService

    datastore = Datastore(clock=lambda: NOW)
    service = SensorService(datastore.service("autoscale", "GovernorSensor"),
                            PackLoader(ROOT).trigger_types())
    config = {"governor": {"orphan_scan_interval": 0, "global_max_nodes": 1000000}}
    governor = Governor(service, config, clock=lambda: NOW,
                        announce=lambda *args, **kwargs: {"delivered": True})
    return datastore, service, Store(service), governor


def _seed(store, count: int, nodes: int) -> None:
    from autoscale_core.domain.model import Group, Node, NodeState

    for index in range(count):
        name = "g%04d" % index
        store.save_group(Group.create(name=name, domain="example.com", min_size=nodes,
                                      max_size=2 * nodes))
        for number in range(nodes):
            at = NOW - 3600
            store.save_node(Node("%s-n%05d" % (name, number), name, NodeState.IN_SERVICE,
                                 at, at))


def _steady_calls(groups: int) -> Dict[str, Any]:
    datastore, _service, store, governor = _governor()
    _seed(store, groups, 2)
    governor.tick()  # the first tick records every group's decision
    datastore.calls.clear()
    report = governor.tick(NOW + 30)
    calls = dict(datastore.calls)
    return {"groups": groups, "list_calls": calls.get("list_values", 0),
            "total_calls": sum(calls.values()), "decisions": len(report.decisions)}


def run(quick: bool) -> Dict[str, Any]:
    sizes = [1, 100, 1000]
    calls = [_steady_calls(size) for size in sizes]

    groups, nodes = (200, 20) if quick else (1000, 20)
    repeat = 2 if quick else 5
    datastore, service, store, governor = _governor()
    _seed(store, groups, nodes)
    governor.tick()
    values = [pair.value for pair in service.list_values(local=False, prefix="autoscale.",
                                                         limit=10 ** 9)]

    def decode() -> None:
        for value in values:
            json.loads(value)

    clock = [NOW]

    def tick() -> None:
        clock[0] += 30
        governor.tick(clock[0])

    def cold_tick() -> None:
        # A governor that just started: nothing parsed yet, every record decoded.
        fresh = type(governor)(service, governor.config, clock=governor.clock,
                         announce=governor.announce)
        clock[0] += 30
        fresh.tick(clock[0])

    baseline = best_cpu(decode, repeat)
    ticking = best_cpu(tick, repeat)
    cold = best_cpu(cold_tick, repeat)
    return {
        "calls": calls,
        "cpu": {"groups": groups, "nodes_per_group": nodes, "records": len(values),
                "repeat": repeat, "tick_s": ticking, "json_decode_s": baseline,
                "ratio": ticking / baseline if baseline > 0 else float("inf"),
                "cold_tick_s": cold,
                "cold_ratio": cold / baseline if baseline > 0 else float("inf")},
    }
