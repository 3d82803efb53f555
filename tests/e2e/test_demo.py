"""`make demo` (python -m sandbox.demo), run as the README runs it: every check passes, the
summary table says so, and the chat transcript shows. (Its duration is the demo's own
"total time" row; the subprocess timeout only stops a hang.)"""

import os
import subprocess
import sys

from support.paths import ROOT

CHECKS = ("group created via chat alias", "alert -> first VM create", "immediate scale-out",
          "nodes after scale-out", "traffic spread", "scale-in drained", "governor actions",
          "group deleted", "leftovers", "processes left", "total time",
          # The second story: real Prometheus and Alertmanager see the app made sick (issue 14).
          "watched group created", "sickness -> alert POST", "alert POST -> first VM create",
          "scale-out (Alertmanager)", "alert resolved", "scale-in drained (Alertmanager)",
          "governor actions (Alertmanager)", "watched group deleted")


def test_the_demo_passes_every_check_and_leaves_nothing():
    done = subprocess.run([sys.executable, "-m", "sandbox.demo"], cwd=ROOT,
                          capture_output=True, text=True,
                          timeout=180, env=dict(os.environ, PYTHONUNBUFFERED="1"))
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-4000:]
    out = done.stdout
    table = out[out.index("check "):]
    for check in CHECKS:
        (row,) = [line for line in table.splitlines() if line.split("|")[0].strip() == check]
        assert row.split("|")[1].strip() == "ok", row
    assert "FAIL" not in out and out.rstrip().endswith("demo passed")
    assert "accelerated: cooldowns of" in out
    # The chat transcript: the operator's commands, the bot's answers, the pack's messages.
    assert "#autoscale  operator: !asg create name=web" in out
    assert "#autoscale  stackstorm: Group *web* is ready" in out
    assert "#autoscale  autoscale: :rotating_light: *web*: critical alert 'Checkout error rate " \
        "above 5%' (issue 7d1e8f0a) opened" in out
    # One line per event, the cause once, the issue id short (issue 13).
    (scale_out,) = [line for line in out.splitlines() if "adding 2 nodes" in line
                    and "Checkout" in line]
    assert scale_out.endswith("autoscale: :arrow_up: *web*: adding 2 nodes (2 → 4, max 5) — "
                              "critical alert 'Checkout error rate above 5%' (issue 7d1e8f0a) "
                              "open for 0 s")
    assert "#autoscale  stackstorm: Group *web* is deleted" in out
    assert "0 VMs / 0 web processes / 0 DNS records / 0 HAProxy servers" in out
    # Alertmanager's alert, routed by its labels, in the group's channel; then its resolution.
    assert ":rotating_light: *web*: critical alert 'web: " in out
    assert "failed (the alert's cause)" in out and "0 failed" in [
        line for line in table.splitlines() if line.startswith("scale-in drained (Alertmanager)")
    ][0]


def test_a_failure_half_way_stops_everything_and_exits_1(monkeypatch):
    import io

    from sandbox import demo

    def broken(self, count, timeout=15.0):
        raise RuntimeError("HAProxy exploded")

    monkeypatch.setattr(demo.Demo, "wait_lb_up", broken)
    out = io.StringIO()
    assert demo.main(out) == 1
    text = out.getvalue()
    rows = {line.split("|")[0].strip(): [cell.strip() for cell in line.split("|")[1:]]
            for line in text[text.index("check "):].splitlines() if line.count("|") == 2}
    assert rows["the demo ran to its end"] == ["FAIL", "RuntimeError: HAProxy exploded"]
    assert rows["processes left"][0] == "ok" and rows["processes left"][1].startswith("0 of ")
    assert text.rstrip().endswith("demo FAILED")
