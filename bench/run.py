"""Run every benchmark: ``python -m bench.run [--quick] [--only B2] [--json PATH]``. Prints a table
``benchmark | figure | target | met`` and writes every figure to a JSON file (default
bench/results.json). Figures are counts or ratios against a baseline measured in the same run:
the machines are shared and noisy. Nothing here fails on a missed target."""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
import traceback
from typing import Any, Callable, Dict, List, Optional, Tuple

from bench import b1_governor, b2_webhook, b3_reaction, b4_scale_out, b5_drain
from bench.common import ROOT

DEFAULT_JSON = os.path.join(ROOT, "bench", "results.json")
Row = Tuple[str, str, str, Optional[bool]]

BENCHMARKS: List[Tuple[str, Callable[[bool], Dict[str, Any]]]] = [
    ("B1 governor tick", b1_governor.run),
    ("B2 webhook", b2_webhook.run),
    ("B3 reaction", b3_reaction.run),
    ("B4 parallel scale-out", b4_scale_out.run),
    ("B5 drain", b5_drain.run),
]


def _mib(count: float) -> str:
    return "%.1f MiB" % (count / 1048576.0)


def rows_b1(result: Dict[str, Any]) -> List[Row]:
    rows: List[Row] = []
    for size in result["calls"]:
        rows.append(("B1 governor tick",
                     "datastore calls per tick, %d group(s): %d (%d listing)"
                     % (size["groups"], size["total_calls"], size["list_calls"]),
                     "1", size["total_calls"] == 1 and size["list_calls"] == 1))
    cpu = result["cpu"]
    rows.append(("B1 governor tick",
                 "CPU per steady tick, %d groups x %d nodes: %.2fx JSON-decoding its %d records "
                 "(%.3f s vs %.3f s)" % (cpu["groups"], cpu["nodes_per_group"], cpu["ratio"],
                                         cpu["records"], cpu["tick_s"], cpu["json_decode_s"]),
                 "<= 3x", cpu["ratio"] <= 3))
    rows.append(("B1 governor tick",
                 "first tick after a restart (every record decoded): %.2fx (%.3f s)"
                 % (cpu["cold_ratio"], cpu["cold_tick_s"]), "-", None))
    return rows


def rows_b2(result: Dict[str, Any]) -> List[Row]:
    through = result["throughput"]
    sensor, bare = through["sensor"], through["bare"]
    ok = (sensor["statuses"] == {"200": sensor["requests"]}
          and through["dispatched"] == through["expected_dispatches"])
    memory = result["memory"]
    first, last = memory["checkpoints"][0], memory["checkpoints"][-1]
    slow = result["slow_clients"]
    under, calm = slow["with_slow_clients"], slow["without"]
    slow_ok = (under["answered_2xx"] == under["deliveries"] and under["p99_ms"] < 1000
               and slow["dispatched"] == slow["expected_dispatches"])
    return [
        ("B2 webhook", "deliveries/s: %.2fx bare server (%.0f vs %.0f/s, %d threads)%s"
         % (through["ratio"], sensor["per_second"], bare["per_second"], through["threads"],
            "" if ok else ", NOT ALL DISPATCHED"), ">= 0.7x", ok and through["ratio"] >= 0.7),
        ("B2 webhook", "latency p50 %.1f ms / p99 %.1f ms (bare %.1f / %.1f ms)"
         % (sensor["p50_ms"], sensor["p99_ms"], bare["p50_ms"], bare["p99_ms"]), "-", None),
        ("B2 webhook", "memory after %dk / %dk deliveries: %s / %s (%.2fx); dedup %d entries"
         % (first["deliveries"] // 1000, last["deliveries"] // 1000,
            _mib(first["current_bytes"]), _mib(last["current_bytes"]), memory["growth"],
            last["dedup_entries"]),
         "dedup <= cap %d" % memory["dedup_cap"],
         last["dedup_entries"] <= memory["dedup_cap"]),
        ("B2 webhook", "%d slow-header clients (eventlet): %d/%d deliveries answered 2xx "
         "(%.0f%%), p99 %.1f ms (%.1f ms without them, %.2fx)"
         % (slow["hostile"], under["answered_2xx"], under["deliveries"],
            100.0 * under["answered_2xx"] / under["deliveries"], under["p99_ms"],
            calm["p99_ms"], slow["p99_ratio"]),
         "100%, p99 < 1 s", slow_ok),
    ]


def rows_b3(result: Dict[str, Any]) -> List[Row]:
    ok = not result["problems"] and len(result["reactions_s"]) == result["alerts"]
    return [("B3 reaction", "POST -> first Nova create: median %.2f s of %d alerts "
             "(%.1f%% of the 30 s governor period)%s"
             % (result["median_s"], result["alerts"], 100 * result["vs_legacy"],
                "" if ok else ", PROBLEMS"), "< 1 s", ok and result["median_s"] < 1)]


def rows_b4(result: Dict[str, Any]) -> List[Row]:
    wide = result["concurrency_10"]
    rows: List[Row] = [(
        "B4 parallel scale-out", "+%d nodes, boot T=%g s, concurrency 10: %.2f T (%.1f s)"
        % (wide["added"], result["boot_delay_s"], wide["ratio"], wide["wall_s"]),
        "<= 1.5 T", wide["added"] == result["count"] and wide["ratio"] <= 1.5)]
    default = result.get("concurrency_default")
    if default:
        rows.append(("B4 parallel scale-out",
                     "same, boot 0 s: %.1f s; so the boots add %.2f T, the rest is overhead"
                     % (result["instant_boot_wall_s"], result["boot_share"]), "-", None))
        rows.append(("B4 parallel scale-out", "+%d nodes, default concurrency 5: %.2f T (%.1f s)"
                     % (default["added"], default["ratio"], default["wall_s"]), "-", None))
    return rows


def rows_b5(result: Dict[str, Any]) -> List[Row]:
    return [("B5 drain", "%d -> %d nodes under load: %d failed of %d requests"
             % (result["nodes_before"], result["nodes_after"], result["failed"],
                result["requests"]), "0 failed",
             result["failed"] == 0 and result["removed"] == result["nodes_before"] // 2
             and result["ok"] > 0)]


ROWS = {"B1 governor tick": rows_b1, "B2 webhook": rows_b2, "B3 reaction": rows_b3,
        "B4 parallel scale-out": rows_b4, "B5 drain": rows_b5}


def table(rows: List[Row]) -> str:
    header = ("benchmark", "figure", "target", "met")
    cells = [header] + [(b, f, t, "-" if m is None else ("yes" if m else "NO"))
                        for b, f, t, m in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(4)]
    lines = [" | ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip() for row in cells]
    lines.insert(1, "-+-".join("-" * w for w in widths))
    return "\n".join(lines)


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="small sizes (smoke run)")
    parser.add_argument("--json", default=DEFAULT_JSON, help="where to write the figures")
    parser.add_argument("--only", action="append", metavar="B2",
                        help="run only this benchmark (its number, e.g. B2; may be repeated)")
    args = parser.parse_args(argv)
    benchmarks = BENCHMARKS
    if args.only:
        wanted = {name.upper() for name in args.only}
        benchmarks = [b for b in BENCHMARKS if b[0].split()[0].upper() in wanted]
        if not benchmarks:
            parser.error("no benchmark named %s (B1 to B%d)"
                         % (", ".join(args.only), len(BENCHMARKS)))

    started = time.monotonic()
    results: Dict[str, Any] = {}
    rows: List[Row] = []
    for name, bench in benchmarks:
        print("running %s ..." % name, file=sys.stderr, flush=True)
        began = time.monotonic()
        try:
            result = bench(args.quick)
        except Exception as exc:  # one broken benchmark must not hide the others
            traceback.print_exc()
            results[name] = {"error": "%s: %s" % (type(exc).__name__, exc)}
            rows.append((name, "ERROR: %s" % type(exc).__name__, "-", False))
            continue
        result["wall_s"] = time.monotonic() - began
        results[name] = result
        rows.extend(ROWS[name](result))
    print(table(rows))
    total = time.monotonic() - started
    print("total %.1f s%s" % (total, " (--quick)" if args.quick else ""))
    document = {"quick": args.quick, "python": platform.python_version(),
                "cpus": os.cpu_count(), "total_s": total,
                "rows": [{"benchmark": b, "figure": f, "target": t, "met": m}
                         for b, f, t, m in rows],
                "results": results}
    directory = os.path.dirname(os.path.abspath(args.json))
    os.makedirs(directory, exist_ok=True)
    with open(args.json, "w", encoding="utf-8") as handle:
        json.dump(document, handle, indent=2, sort_keys=True)
        handle.write("\n")
    print("figures written to %s" % os.path.relpath(args.json))
    return 0


if __name__ == "__main__":
    sys.exit(main())
