"""The alert every source yields, whatever its vendor's payload looked like.

An alert source (``sources/``: one module per monitoring system) reads a webhook body into
a list of ``Alert``; everything after it (routing, dedup, the ``autoscale.alert`` trigger,
the group's alert state) sees only this shape and this vocabulary:

* ``state``: ``open``, ``acknowledged`` or ``closed`` (an acknowledged issue still counts
  until it closes);
* ``severity``: ``critical`` (scales out at once), ``warning`` (the governor's next look),
  ``info`` (recorded, never scales);
* ``issue_id``: the source's id of the issue, one per problem, the same in every update of
  it (the key of dedup and of the group's open issues).

The rest is for people and for routing: a title, the entities (hosts, applications,
services…) concerned, the names of the policy and condition that fired, a link, and the
payload ``family`` (which of its source's shapes it came in). ``matcher_values`` says what
each matcher kind of a group (``Group.alert_matchers``: entities, applications, servers,
policies, conditions) is compared with: the source fills it, as its own vocabulary dictates
(a kind it leaves out never matches). ``group``, when the payload itself names a group, is
that name, unchecked (the st2-webhook path routes by it; the sensor routes by ``?asg=``).
``occurrence`` tells apart the times one issue comes back under the same id (a source that
keys issues by what is wrong rather than by incident: Alertmanager's fingerprint, with the
time it started firing as the occurrence); it is part of the dedup key only, so that a problem
that ends and starts again is seen again while retries of one notification are not.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Dict, List

OPEN, ACKNOWLEDGED, CLOSED = "open", "acknowledged", "closed"
CRITICAL, WARNING, INFO = "critical", "warning", "info"
STATES = (OPEN, ACKNOWLEDGED, CLOSED)
SEVERITIES = (CRITICAL, WARNING, INFO)


@dataclass(frozen=True)
class Alert:
    state: str
    severity: str
    issue_id: str
    title: str = ""
    entities: List[str] = field(default_factory=list)
    policy: str = ""
    condition: str = ""
    url: str = ""
    family: str = ""
    group: str = ""
    occurrence: str = ""
    matcher_values: Dict[str, List[str]] = field(default_factory=dict)

    def as_dict(self) -> Dict[str, Any]:
        return asdict(self)
