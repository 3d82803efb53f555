"""The governor over the harness datastore: a sensor service that checks every dispatch
against the pack's trigger types, a store, and groups seeded in given states, all at ``NOW``."""

from autoscale_core.domain.model import AlertState, Group, Node, NodeState
from autoscale_core.services.governor import Governor
from autoscale_core.store import Store
from st2harness import Datastore, PackLoader
from st2harness.services import SensorService
from support.paths import ROOT

NOW = 1_700_000_000.0

_TRIGGER_TYPES = {}


def trigger_types():
    """The pack's trigger types as st2 registers them (sensors/*.yaml), read once."""
    if not _TRIGGER_TYPES:
        _TRIGGER_TYPES.update(PackLoader(ROOT).trigger_types())
    return _TRIGGER_TYPES


class Recorder:
    """Stands in for services.announce.announce (same signature), remembering every call."""

    def __init__(self):
        self.calls = []

    def __call__(self, config, datastore, group, kind=None, cause=None, node=None, count=None,
                 dry_run=None, channel=None, detail=None, url=None):
        self.calls.append(dict(group=group, kind=kind, cause=cause, node=node, count=count,
                               dry_run=dry_run, detail=detail))
        return {"delivered": True}

    def kinds(self):
        return [(c["group"], c["kind"]) for c in self.calls]


def world(config=None, compute_factory=None, announce=None, datastore=None, service_class=None):
    """(datastore, sensor service validating against the pack's trigger types, store, governor)
    with orphan scans off unless the config turns them on."""
    datastore = datastore or Datastore(clock=lambda: NOW)
    config = dict(config or {})
    config.setdefault("governor", {})
    config["governor"] = dict({"orphan_scan_interval": 0, "global_max_nodes": 100000},
                              **config["governor"])
    service = (service_class or SensorService)(
        datastore.service("autoscale", "GovernorSensor"), trigger_types())
    store = Store(service)
    kwargs = {}
    if compute_factory is not None:
        kwargs["compute_factory"] = compute_factory
    governor = Governor(service, config, clock=lambda: NOW, announce=announce or Recorder(),
                        **kwargs)
    return datastore, service, store, governor


def seed(store, name, in_service=2, pending=0, alert=None, scaling=None, **spec):
    """A group with ``in_service`` nodes in service and ``pending`` being added."""
    spec.setdefault("min_size", 2)
    spec.setdefault("max_size", 6)
    store.save_group(Group.create(name=name, domain="example.com", **spec))
    if alert is not None:
        store.save_alert(name, alert)
    if scaling is not None:
        store.save_scaling(name, scaling)
    for index in range(in_service + pending):
        state = NodeState.IN_SERVICE if index < in_service else NodeState.PROVISIONING
        # Nodes being added started a minute ago: well inside governor.stuck_after.
        at = NOW - 3600 if index < in_service else NOW - 60
        store.save_node(Node("%s-n%05d" % (name, index), name, state, at, at))


def critical(opened=NOW - 120, updated=None, issue="42", title="High error rate"):
    return AlertState(level="critical", issue_id=issue, title=title, opened_at=opened,
                      updated_at=opened if updated is None else updated)
