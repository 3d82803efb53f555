"""The benchmarks (bench/), each run once with quick=True: the shape of what they report and
the counts that are behaviour (one datastore listing per tick, no failed request while
draining). Timings are printed by ``make bench``, never asserted."""

import json
import numbers

import pytest

from bench import run


def number(value):
    return isinstance(value, numbers.Real) and not isinstance(value, bool) and value == value


@pytest.fixture(scope="module")
def results():
    """``results(name)``: that benchmark's quick result, run the first time it is asked for
    in this module (by its own test, or by the table's when that runs alone)."""
    benchmarks = dict(run.BENCHMARKS)
    done = {}

    def result(name):
        if name not in done:
            done[name] = benchmarks[name](True)
        return done[name]

    return result


def test_b1_one_listing_per_tick_whatever_the_number_of_groups(results):
    result = results("B1 governor tick")
    assert [size["groups"] for size in result["calls"]] == [1, 100, 1000]
    for size in result["calls"]:
        assert size["list_calls"] == 1 and size["total_calls"] == 1
        assert size["decisions"] == size["groups"]
    cpu = result["cpu"]
    assert cpu["records"] > cpu["groups"] * cpu["nodes_per_group"]
    assert all(number(cpu[key]) and cpu[key] > 0 for key in ("tick_s", "json_decode_s",
                                                               "ratio"))


def test_b2_every_delivery_dispatched_and_the_dedup_bounded(results):
    result = results("B2 webhook")
    through = result["throughput"]
    for side in ("sensor", "bare"):
        run_ = through[side]
        assert run_["statuses"] == {"200": run_["requests"]}
        assert all(number(run_[key]) and run_[key] > 0
                   for key in ("per_second", "p50_ms", "p99_ms", "seconds"))
    assert through["dispatched"] == through["expected_dispatches"]
    assert number(through["ratio"]) and through["ratio"] > 0
    memory = result["memory"]
    first, last = memory["checkpoints"]
    assert first["deliveries"] < memory["dedup_cap"] < last["deliveries"]
    assert first["dedup_entries"] == first["deliveries"]
    assert last["dedup_entries"] == memory["dedup_cap"]
    assert memory["statuses"] == {"200": last["deliveries"]}
    assert memory["dispatched"] == last["deliveries"]
    assert all(number(c["current_bytes"]) and c["current_bytes"] > 0
               for c in memory["checkpoints"])
    # Slow clients (issue 12): every valid delivery answered while they were connected.
    slow = result["slow_clients"]
    assert slow["hostile"] == 64 and slow["slow_clients_connected_at_end"] == 64
    for side in ("with_slow_clients", "without"):
        assert slow[side]["statuses"] == {"200": slow[side]["deliveries"]}
        assert slow[side]["answered_2xx"] == slow[side]["deliveries"] == 20
        assert number(slow[side]["p99_ms"]) and slow[side]["p99_ms"] > 0
    assert slow["dispatched"] == slow["expected_dispatches"]


def test_b3_every_alert_reaches_nova(results):
    result = results("B3 reaction")
    assert result["problems"] == []
    assert len(result["reactions_s"]) == result["alerts"] >= 2
    assert all(number(r) and r > 0 for r in result["reactions_s"])
    assert number(result["median_s"]) and result["legacy_period_s"] == 30


def test_b4_adds_the_ten_nodes(results):
    result = results("B4 parallel scale-out")
    assert result["count"] == 10 and result["added"] == 10
    assert number(result["ratio"]) and result["ratio"] > 0


def test_b5_no_request_fails_while_half_the_nodes_drain(results):
    result = results("B5 drain")
    assert result["removed"] == result["nodes_before"] // 2 >= 1
    assert result["haproxy_servers_after"] == result["nodes_after"]
    assert result["ok"] > 0 and result["failed"] == 0, result["errors"]


def test_the_table_and_the_json(results, tmp_path, monkeypatch, capsys):
    # Every benchmark's result: those the tests above made, the others made here (a missing
    # or failing one fails this test, it is never skipped).
    results = {name: results(name) for name, _ in run.BENCHMARKS}
    monkeypatch.setattr(run, "BENCHMARKS",
                        [(name, lambda quick, name=name: dict(results[name]))
                         for name, _ in run.BENCHMARKS])
    path = tmp_path / "results.json"
    assert run.main(["--quick", "--json", str(path)]) == 0
    printed = capsys.readouterr().out
    header = [cell.strip() for cell in printed.splitlines()[0].split("|")]
    assert header == ["benchmark", "figure", "target", "met"]
    document = json.loads(path.read_text())
    assert document["quick"] is True and set(document["results"]) == set(results)
    assert {row["benchmark"] for row in document["rows"]} == set(results)
    assert all(row["met"] in (True, False, None) for row in document["rows"])
    assert "ERROR" not in printed
    # --only runs the benchmarks named, nothing else.
    assert run.main(["--quick", "--only", "b2", "--json", str(path)]) == 0
    document = json.loads(path.read_text())
    assert set(document["results"]) == {"B2 webhook"}
    assert {row["benchmark"] for row in document["rows"]} == {"B2 webhook"}
