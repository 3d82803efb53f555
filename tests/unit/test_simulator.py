"""The policy simulator (sandbox/simulator.py) on the example timelines and on bad ones."""

import json
import os

import pytest

from sandbox import simulator
from sandbox.simulator import TimelineError
from support.paths import ROOT

EXAMPLES = os.path.join(ROOT, "examples", "timelines")


def example(name):
    return simulator.simulate(simulator.load(os.path.join(EXAMPLES, name)))


def hm(text):
    hours, minutes = text.split(":")
    return int(hours) * 3600 + int(minutes) * 60


def acting(result):
    return [(d.at, d.action, d.count) for d in result.acting]


# Critical alert 00:10–00:25 on min 2 / max 6 / normal 2, +2/−1, cooldowns 300/900, boot 120:
# 00:10 the alert workflow scales out at once (2 → 4); 00:15 the scale-out cooldown is over
# (4 → 6, the maximum); the alert ends 00:25, so the first scale-in is 15 min later, 00:40,
# then one every 15 min down to the normal size of 2.
SHORT_SPIKE = [
    (hm("00:10"), "scale_out", 2),
    (hm("00:15"), "scale_out", 2),
    (hm("00:40"), "scale_in", 1),
    (hm("00:55"), "scale_in", 1),
    (hm("01:10"), "scale_in", 1),
    (hm("01:25"), "scale_in", 1),
]


@pytest.mark.parametrize("name", ["short_spike.json", "short_spike.csv"])
def test_short_spike_decisions_match_the_hand_computed_ones(name):
    result = example(name)
    assert acting(result) == SHORT_SPIKE
    assert [d.target for d in result.acting] == [4, 6, 5, 4, 3, 2]
    first = result.acting[0]
    assert first.reason == "critical_alert"
    assert "High error rate" in first.cause and "2 → 4, max 6" in first.cause
    assert result.samples[-1].in_service == 2
    summary = result.summary()
    assert summary["peak_capacity"] == 6
    assert (summary["scale_outs"], summary["scale_ins"], summary["repairs"]) == (2, 4, 0)
    # At max from 00:15 (capacity counts booting nodes) until the scale-in at 00:40.
    assert summary["time_at_max"] == 25 * 60


def test_short_spike_prints_each_decision_with_its_time_and_cause(capsys):
    assert simulator.main([os.path.join(EXAMPLES, "short_spike.json")]) == 0
    out = capsys.readouterr().out
    assert "00:10:00  scale_out  +2  critical alert 'High error rate' (issue 7d1e8f0a) open " \
        "for 0 s: adding 2 nodes (2 → 4, max 6)" in out
    assert "00:40:00  scale_in   -1  no alert for 15 min: removing 1 node (6 → 5" in out
    assert "scale-in in 15 min" in out          # a change of reason is printed too
    assert "summary:" in out and "2 scale-out(s), 4 scale-in(s)" in out


def test_long_incident_warning_steps_then_critical_then_repair_with_backoff():
    result = example("long_incident.json")
    acts = acting(result)
    outs = [a for a in acts if a[1] == "scale_out"]
    # Warning: warning_step 1 every 5 min; critical from 00:20: expand_by 2, capped at max 10.
    assert outs == [(hm("00:10"), "scale_out", 1), (hm("00:15"), "scale_out", 1),
                    (hm("00:20"), "scale_out", 2), (hm("00:25"), "scale_out", 2),
                    (hm("00:30"), "scale_out", 1)]
    ins = [a for a in acts if a[1] == "scale_in"]
    # The last issue closes 03:30: 10 → 3, one node every 15 min from 03:45.
    assert ins == [(hm("03:45") + k * 900, "scale_in", 1) for k in range(7)]
    # 05:30 a node fails while additions fail until 05:45: repairs at 05:30, 05:32, 05:34
    # (each boot fails 2 min later), 3 failures → 5 min backoff → 05:41, fails (4 in a row)
    # → 10 min backoff → 05:53, which works.
    repairs = [a for a in acts if a[1] == "repair"]
    assert repairs == [(hm("05:30") + s, "repair", 1) for s in (0, 120, 240, 660, 1380)]
    assert any(d.reason == "backoff" for d in result.decisions)
    assert max(s.in_service + s.adding for s in result.samples) == 10
    assert result.samples[-1].in_service == 3


def test_flapping_alert_scales_out_to_max_and_never_in_while_flapping():
    result = example("flapping_alert.json")
    timeline = result.timeline
    last_close = max(e.at for e in timeline.events if e.type == "alert_close")
    acts = acting(result)
    assert acts[:2] == [(hm("00:10"), "scale_out", 2), (hm("00:17"), "scale_out", 2)]
    assert all(at >= last_close + 900 for at, action, _ in acts if action == "scale_in")
    assert [a for a in acts if a[1] == "scale_in"][0][0] == last_close + 900
    assert all(s.in_service + s.adding <= timeline.group.max_size for s in result.samples)
    assert result.samples[-1].in_service == timeline.group.desired


@pytest.mark.parametrize("name", ["short_spike.json", "long_incident.json",
                                  "flapping_alert.json", "short_spike.csv"])
def test_plot_writes_a_png(name, tmp_path):
    pytest.importorskip("matplotlib")
    out = tmp_path / "plot.png"
    result = example(name)
    simulator.plot(result, str(out))
    data = out.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    assert len(data) > 10000


def test_command_writes_the_plot(tmp_path, capsys):
    pytest.importorskip("matplotlib")
    out = tmp_path / "spike.png"
    assert simulator.main([os.path.join(EXAMPLES, "flapping_alert.json"),
                           "--out", str(out), "--step", "60"]) == 0
    assert out.read_bytes()[:4] == b"\x89PNG"
    assert "plot written to" in capsys.readouterr().out


def test_a_day_of_simulated_time_runs():
    timeline = simulator.load(os.path.join(EXAMPLES, "long_incident.json"))
    result = simulator.simulate(timeline, step=30, until=24 * 3600)
    assert len(result.samples) == 24 * 120 + 1
    assert result.samples[-1].at == 24 * 3600
    assert result.samples[-1].in_service == 3


# -- bad timelines ----------------------------------------------------------------------------

GOOD = {
    "group": {"min_size": 2, "max_size": 6},
    "events": [{"at": "00:10", "type": "alert_open", "issue": "x1", "severity": "critical"}],
}


def write_json(tmp_path, data, name="t.json"):
    path = tmp_path / name
    path.write_text(data if isinstance(data, str) else json.dumps(data))
    return str(path)


def bad(tmp_path, **changes):
    data = json.loads(json.dumps(GOOD))
    data.update(changes)
    return write_json(tmp_path, data)


def event(**fields):
    item = dict(GOOD["events"][0])
    item.update(fields)
    return {"events": [GOOD["events"][0], {k: v for k, v in item.items() if v is not None}]}


@pytest.mark.parametrize("changes, words", [
    (event(severity="info"), ["event 1", "severity", "'info'"]),
    (event(severity=None), ["event 1", "severity", "missing"]),
    (event(at=-5), ["event 1", "'at'", "negative"]),
    (event(at="25 past"), ["event 1", "'at'", "not a time"]),
    (event(type="alert_reopen"), ["event 1", "'type'", "alert_reopen"]),
    (event(issue=None), ["event 1", "issue", "missing"]),
    (event(type="boot_failures"), ["event 1", "until", "missing"]),
    (event(type="node_failure", count=0), ["event 1", "count"]),
    (event(colour="red"), ["event 1", "unknown field", "colour"]),
    ({"group": {"min_size": 5, "max_size": 2}}, ["group", "min_size"]),
    ({"group": {"max_szie": 3}}, ["group", "max_szie"]),
    ({"settings": {"warning_step": 0}}, ["settings", "governor.warning_step"]),
    ({"events": "none"}, ["events", "missing"]),
    ({"boot_time": "soon"}, ["boot_time", "not a time"]),
    ({"extra": 1}, ["unknown key", "extra"]),
])
def test_bad_json_timelines_name_the_event_and_field(tmp_path, changes, words):
    path = bad(tmp_path, **changes)
    with pytest.raises(TimelineError) as caught:
        simulator.load(path)
    message = str(caught.value)
    assert path in message
    for word in words:
        assert word in message


def test_missing_group_is_named(tmp_path):
    path = write_json(tmp_path, {"events": []})
    with pytest.raises(TimelineError, match="field 'group' is missing"):
        simulator.load(path)


def test_invalid_json_names_the_line(tmp_path):
    path = write_json(tmp_path, '{\n  "group": {"min_size": 2},\n  "events": [,]\n}\n')
    with pytest.raises(TimelineError, match=r"line 3: not valid JSON"):
        simulator.load(path)


def test_close_without_open_is_not_an_error(tmp_path):
    path = bad(tmp_path, events=[{"at": 60, "type": "alert_close", "issue": "never-opened"}])
    result = simulator.simulate(simulator.load(path), until=600)
    assert acting(result) == []
    assert any("not open here" in line for line in result.lines)


CSV_GOOD = "at,type,issue,severity,title\n,set,group.max_size,6\n00:10,alert_open,x1,critical,\n"


@pytest.mark.parametrize("text, words", [
    (CSV_GOOD + "00:20,alert_open,x2,severe,\n", ["line 4", "severity", "'severe'"]),
    (CSV_GOOD + "-00:20,alert_close,x1\n", ["line 4", "'at'"]),
    (CSV_GOOD + "00:20,alert_close,x1,,,,,extra\n", ["line 4", "fields"]),
    ("# comment\n" + CSV_GOOD + "\n00:20,alert_open,,critical\n", ["line 6", "issue"]),
    (CSV_GOOD.replace("group.max_size", "group.colour"), ["group", "colour"]),
    (CSV_GOOD.replace("group.max_size", "speed"), ["line 2", "unknown setting"]),
    ("when,what\n00:10,alert_open\n", ["line 1", "header"]),
    ("# only a comment\n", ["no header"]),
])
def test_bad_csv_timelines_name_the_line(tmp_path, text, words):
    path = write_json(tmp_path, text, "t.csv")
    with pytest.raises(TimelineError) as caught:
        simulator.load(path)
    for word in words:
        assert word in str(caught.value)


def test_command_reports_a_bad_timeline_and_exits_2(tmp_path, capsys):
    path = bad(tmp_path, **event(severity="info"))
    assert simulator.main([path]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "event 1" in err and "severity" in err


def test_a_dry_run_group_is_only_printed(tmp_path):
    data = json.loads(json.dumps(GOOD))
    data["group"]["dry_run"] = True
    result = simulator.simulate(simulator.load(write_json(tmp_path, data)), until=3600)
    assert acting(result) == []
    assert any("dry run, nothing done" in line for line in result.lines)
    assert all(s.in_service == 2 and s.adding == 0 for s in result.samples)
