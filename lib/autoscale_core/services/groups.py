"""Groups: register one, find where its service name goes, pause or resume it, forget it, and
read one or all of them for people and workflows.

    register      asg_register   validate and store a group's spec (a re-run is harmless)
    service_name  asg_check_service_name   where asg_create registers the service name
    status        asg_status     one group for people (``text``) and for workflows
    list_groups   asg_list       every group in one line each
    set_paused    asg_pause / asg_resume
    forget        asg_forget     delete every key of a group
"""

from __future__ import annotations

from dataclasses import asdict, replace
from typing import Any, Dict, Iterable, List, Mapping, Optional

from .. import backends
from ..config import group_defaults, policy_settings
from ..domain import capacity, policy
from ..domain.fields import bool_field
from ..domain.model import Event, Group, GroupState, NodeState, label_matchers
from ..domain.names import validate_group_name
from ..domain.settings import PolicySettings
from ..domain.words import nodes
from ..errors import Refusal, ValidationError, hinted
from ..present.chat import pause_event, pause_reply
from ..present.status import list_text, status_text
from ..store import Store
from .common import group_dict, load_group, load_spec, node_dict, now_or, unknown_group

# How many history events asg_status shows.
STATUS_EVENTS = 5

# asg_register's alert matcher parameters and the matcher kind each sets (see routing.py).
MATCH_FIELDS = {"match_%s" % kind: kind for kind in
                ("entities", "applications", "servers", "policies", "conditions")}
# asg_register's label matchers ({label: value or [values]}), one label kind each.
MATCH_LABELS = "match_labels"
# asg_register's parameters (the ChatOps words) and the Group fields they set: every field
# but the name, the domain and the pause (asg_pause), under its own name except these.
_RENAMED = {"min_size": "min", "max_size": "max"}
REGISTER_FIELDS = dict(
    [(_RENAMED.get(name, name), name) for name in Group.FIELDS
     if name not in ("name", "domain", "paused", "alert_matchers")]
    + [(parameter, "alert_matchers") for parameter in list(MATCH_FIELDS) + [MATCH_LABELS]])


def _show(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return "[%s]" % ", ".join(value)
    if value == "":
        return "(empty)"
    return str(value)


def register(store: Store, name: Any, domain: Any, config: Optional[Mapping[str, Any]] = None,
             check_only: bool = False, **settings: Any) -> Dict[str, Any]:
    """Validate and store a group, or accept an identical existing one (``check_only``:
    validate and compare, store nothing).

    ``settings`` are asg_register's parameters (``min``, ``max``, ``desired`` ...); None means
    the pack config's ``group_defaults``, then the model's defaults. An existing
    group is identical when every setting given explicitly (and the domain) equals its
    stored value; settings left unset are not compared, so re-running the same command is
    harmless.
    """
    unknown = sorted(set(settings) - set(REGISTER_FIELDS))
    if unknown:
        raise ValidationError("unknown group setting(s): %s; known settings: %s"
                              % (", ".join(unknown), ", ".join(REGISTER_FIELDS)))
    explicit = {REGISTER_FIELDS[key]: value for key, value in settings.items()
                if value is not None and key not in MATCH_FIELDS and key != MATCH_LABELS}
    matchers = {MATCH_FIELDS[key]: value for key, value in settings.items()
                if key in MATCH_FIELDS and value not in (None, "", [])}
    if settings.get(MATCH_LABELS) not in (None, "", {}):
        matchers.update(label_matchers(settings[MATCH_LABELS], MATCH_LABELS))
    if matchers:
        explicit["alert_matchers"] = matchers
    explicit["domain"] = domain
    group = Group.create(group_defaults(config), name=name, **explicit)
    # What the configured backends take of it (the load balancer's backend name, the
    # provisioner's run list, the chat channel), refused now rather than at every node add.
    backends.check_group(config, group)
    existing = store.load_group(group.name)
    if existing is not None:
        old = existing.group
        differ = [field for field in sorted(explicit, key=Group.FIELDS.index)
                  if getattr(group, field) != getattr(old, field)]
        if differ:
            raise Refusal(
                "group %s exists with %s; delete it first or use the same settings"
                % (group.name, ", ".join("%s %s, not %s" % (field, _show(getattr(old, field)),
                                                             _show(getattr(group, field)))
                                          for field in differ)))
        return {"group": group_dict(old), "fqdn": old.fqdn, "existed": True}
    if check_only:
        return {"group": group_dict(group), "fqdn": group.fqdn, "existed": False}
    store.save_group(group)
    return {"group": group_dict(group), "fqdn": group.fqdn, "existed": False}


def service_name(store: Store, name: Any, domain: Any, dns_zone: Any = None,
                 config: Optional[Mapping[str, Any]] = None) -> Dict[str, Any]:
    """Where asg_create registers a group's service name, found before anything is stored:
    the stored group's name, domain and zone, or those ``register`` would give a new one."""
    validate_group_name(name)
    existing = store.load_group(name)
    if existing is not None:
        group = existing.group
    else:
        group = Group.create(group_defaults(config), name=name, domain=domain,
                             dns_zone=dns_zone)
    return {"name": group.name, "domain": group.domain, "dns_zone": group.dns_zone,
            "fqdn": group.fqdn, "existed": existing is not None}


def _remaining(since: float, period: float, now: float) -> float:
    return max(0.0, since + period - now) if since else 0.0


def describe(state: GroupState, others: Iterable[GroupState], history: List[Event],
             now: float, settings: Optional[PolicySettings] = None) -> Dict[str, Any]:
    """A group's status as asg_status returns it (``text`` included). Pure."""
    settings = settings or PolicySettings()
    group = state.group
    entries = []
    for node in sorted(state.nodes.values(), key=lambda n: (n.created_at, n.name)):
        entry = node_dict(node)
        entry["age"] = max(0.0, now - node.created_at) if node.created_at else 0.0
        entries.append(entry)
    counts = {name: state.count(name) for name in NodeState.ALL if state.count(name)}
    in_service, adding = state.capacity()
    level, expired, ended = policy.alert_status(state, now, settings)
    scaling = state.scaling
    quiet_since = max(scaling.last_scale_in_at, scaling.last_scale_out_at, ended)
    resume = policy.backoff_until(state, settings)
    decision = policy.decide_one(state, others, now, settings)
    result = {
        "name": group.name,
        "fqdn": group.fqdn,
        "group": group_dict(group),
        "nodes": entries,
        "counts": counts,
        "in_service": in_service,
        "adding": adding,
        "leaving": state.count(*NodeState.LEAVING),
        "failed": state.count(NodeState.FAILED),
        "capacity": in_service + adding,
        "normal_size": capacity.normal_size(group),
        "alert": dict(asdict(state.alert), effective_level=level, expired=expired),
        "cooldowns": {
            "scale_out_remaining": _remaining(scaling.last_scale_out_at,
                                              group.scale_out_cooldown, now),
            "scale_in_remaining": _remaining(quiet_since, group.scale_in_cooldown, now),
        },
        "failures": {
            "consecutive": scaling.consecutive_failures,
            "last_at": scaling.last_failure_at,
            "last_cause": scaling.last_failure_cause,
            "backoff_remaining": max(0.0, resume - now) if resume else 0.0,
        },
        "history": [asdict(event) for event in history[-STATUS_EVENTS:]],
        "decision": decision.as_dict(),
    }
    result["text"] = status_text(result, now)
    return result


def status(store: Store, asg: Any, config: Optional[Mapping[str, Any]] = None,
           now: Optional[float] = None) -> Dict[str, Any]:
    """asg_status: one listing of every group (the governor's view needs the global cap) and
    one of the group's history."""
    now = now_or(now)
    settings = policy_settings(config)
    validate_group_name(asg)
    groups, _ = store.load_all()
    state = groups[asg] if asg in groups else load_group(store, asg)
    others = [other for name, other in groups.items() if name != asg]
    return describe(state, others, store.history(asg, STATUS_EVENTS), now, settings)


def describe_all(groups: Mapping[str, GroupState], problems: List[str], now: float,
                 settings: Optional[PolicySettings] = None) -> Dict[str, Any]:
    """asg_list's result from loaded groups. Pure."""
    settings = settings or PolicySettings()
    entries = []
    for name in sorted(groups):
        state = groups[name]
        group = state.group
        level, _, _ = policy.alert_status(state, now, settings)
        in_service, adding = state.capacity()
        entries.append({
            "name": name,
            "fqdn": group.fqdn,
            "domain": group.domain,
            "counts": {s: state.count(s) for s in NodeState.ALL if state.count(s)},
            "nodes": len(state.nodes),
            "in_service": in_service,
            "adding": adding,
            "capacity": in_service + adding,
            "normal_size": capacity.normal_size(group),
            "min_size": group.min_size,
            "max_size": group.max_size,
            "alert": level,
            "paused": group.paused,
            "dry_run": group.dry_run,
        })
    return {"groups": entries, "count": len(entries), "problems": list(problems),
            "text": list_text(entries, problems)}


def list_groups(store: Store, config: Optional[Mapping[str, Any]] = None,
                now: Optional[float] = None) -> Dict[str, Any]:
    settings = policy_settings(config)
    groups, problems = store.load_all()
    return describe_all(groups, problems, now_or(now), settings)


def set_paused(store: Store, asg: Any, paused: bool,
               now: Optional[float] = None) -> Dict[str, Any]:
    """Pause or resume the governor for a group; records an event when it changes."""
    now = now_or(now)
    validate_group_name(asg)
    group = load_spec(store, asg)
    changed = group.paused != paused
    if changed:
        store.save_group(replace(group, paused=paused))
        store.record_event(Event(group=asg, at=now, kind="paused" if paused else "resumed",
                                 cause=pause_event(asg, paused)))
    word = "paused" if paused else "resumed"
    return {"group": asg, "paused": paused, "changed": changed, "action": word,
            "text": pause_reply(asg, paused, changed)}


def forget(store: Store, name: Any, force: bool = False) -> Dict[str, Any]:
    """Delete every key of a group (its spec last, history included). Refused while node
    records exist unless ``force``: their VMs, DNS records and LB servers may still exist.
    A group whose spec is unreadable can still be forgotten."""
    validate_group_name(name)
    force = bool_field(force if force is not None else False, "force")
    names = store.node_names(name)
    if names and not force:
        raise hinted(Refusal(
            "group %s still has %s recorded (%s); remove them first"
            % (name, nodes(len(names)), ", ".join(names[:10]) + (" …" if len(names) > 10
                                                                 else ""))),
            "drain_first", name=name)
    existed = store.group_exists(name)
    deleted = store.delete_group(name)
    if not existed and not deleted:
        raise unknown_group(name)
    return {"name": name, "existed": existed, "deleted": deleted, "count": len(deleted)}
