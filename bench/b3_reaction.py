"""B3: reaction time, from the webhook POST to the first Nova create request, in the sandbox
(World + Reactor + the webhook sensor). Median over a few critical alerts, each a new issue on
its own group (so no cooldown is in the way); reported against the 30 s governor period the
2015 pack relied on (target: under 1 s)."""

from __future__ import annotations

import json
import os
import time
from typing import Any, Dict

from bench.common import ROOT, median
from bench.pipeline import Pipeline, failures

FIXTURE = os.path.join(ROOT, "tests", "fixtures", "newrelic", "workflows_activated.json")
LEGACY_PERIOD = 30.0


def run(quick: bool) -> Dict[str, Any]:
    alerts = 2 if quick else 5
    with open(FIXTURE, encoding="utf-8") as handle:
        template = json.load(handle)
    reactions = []
    problems = []
    names = tuple("web%d" % index for index in range(alerts))
    with Pipeline(converge_after=0, drain_timeout=1, backends=names) as env:
        for index in range(alerts):
            name = names[index]
            env.create(name, min=1, max=4, expand_by=1, deflate_by=1,
                       scale_out_cooldown=60, scale_in_cooldown=60)
            before = len(env.creates())
            document = dict(template, id="bench-%d" % index, state="ACTIVATED",
                            priority="CRITICAL", title="Checkout error rate above 5%")
            posted_at = time.time()
            status, answer = env.post(document, name)
            problems.extend(failures(env.reactor.drain(timeout=10)))
            creates = env.creates()[before:]
            if status not in (200, 202) or not creates:
                problems.append("alert %d: HTTP %s %s, %d create(s)"
                                % (index, status, answer, len(creates)))
                continue
            reactions.append(creates[0].at - posted_at)
            # Close it: the next alert is a new issue on the next group.
            env.post(dict(document, state="CLOSED"), name)
            problems.extend(failures(env.reactor.drain(timeout=10)))
    middle = median(reactions)
    return {"alerts": alerts, "reactions_s": reactions, "median_s": middle,
            "legacy_period_s": LEGACY_PERIOD, "vs_legacy": middle / LEGACY_PERIOD,
            "problems": [str(p) for p in problems]}
