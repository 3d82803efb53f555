"""The datastore layout: one key per record, one listing per load, bad records skipped."""

import json

import pytest

from autoscale_core.domain.model import AlertState, Event, Group, Node, NodeState, ScalingState
from autoscale_core.errors import RecordError, ValidationError
from autoscale_core.store import Store, node_key
from st2harness import Datastore


def service(**kw):
    datastore = Datastore(**kw)
    return datastore, datastore.service("autoscale", "Governor")


def fill(store, groups=3, nodes=4):
    for g in range(groups):
        name = "g%d" % g
        store.save_group(Group.create(name=name, domain="example.com", max_size=10))
        store.save_alert(name, AlertState("critical", "i-%d" % g, "", False, 1.0, 2.0))
        store.save_scaling(name, ScalingState(last_scale_out_at=5.0))
        for n in range(nodes):
            store.save_node(Node("%s-n%05d" % (name, n), name, NodeState.IN_SERVICE, 1.0, 1.0))
        store.record_event(Event(name, 3.0, "scale_out", "because"))


def test_layout_keys():
    datastore, svc = service()
    store = Store(svc)
    fill(store, groups=1, nodes=1)
    keys = datastore.keys()
    assert keys[:4] == ["autoscale.asg.g0", "autoscale.asg.g0.alert",
                        "autoscale.asg.g0.node.g0-n00000", "autoscale.asg.g0.scaling"]
    assert keys[4].startswith("autoscale.history.g0.0000000003000-")
    assert len(keys) == 5


@pytest.mark.parametrize("groups", [1, 100, 1000])
def test_load_all_is_one_listing_whatever_the_number_of_groups(groups):
    datastore, svc = service()
    store = Store(svc)
    fill(store, groups=groups, nodes=3)
    datastore.calls.clear()
    loaded, problems = store.load_all()
    assert dict(datastore.calls) == {"list_values": 1}
    assert problems == [] and len(loaded) == groups
    state = loaded["g0"]
    assert state.alert.level == "critical" and state.scaling.last_scale_out_at == 5.0
    assert sorted(state.nodes) == ["g0-n00000", "g0-n00001", "g0-n00002"]


def test_small_pages_are_followed():
    datastore, svc = service(max_page_size=10, requester_is_admin=False)
    store = Store(svc, page_size=10)
    fill(store, groups=5, nodes=3)  # 5 * (1 + 2 + 3) = 30 keys under autoscale.asg.
    datastore.calls.clear()
    loaded, problems = store.load_all()
    assert len(loaded) == 5 and problems == []
    assert datastore.calls["list_values"] == 4  # 10 + 10 + 10 + an empty page


def test_corrupt_records_are_reported_and_skipped():
    datastore, svc = service()
    store = Store(svc)
    fill(store, groups=3, nodes=2)
    svc.set_value("autoscale.asg.g0.node.g0-n00000", "{not json", local=False)
    svc.set_value("autoscale.asg.g1", json.dumps({"v": 99}), local=False)
    svc.set_value("autoscale.asg.g2.alert", json.dumps({"v": 1, "level": "panic"}), local=False)
    svc.set_value("autoscale.asg.g2.whatever", "{}", local=False)
    loaded, problems = store.load_all()
    assert sorted(loaded) == ["g0", "g2"]
    assert list(loaded["g0"].nodes) == ["g0-n00001"]
    assert loaded["g2"].alert == AlertState()
    text = "\n".join(problems)
    assert "autoscale.asg.g0.node.g0-n00000: node record is not valid JSON" in text
    assert "autoscale.asg.g1: group record has schema version 99" in text
    assert "autoscale.asg.g1: 4 record(s) without a readable group spec" in text
    assert "autoscale.asg.g2.alert: alert record is invalid" in text
    assert "autoscale.asg.g2.whatever: not a key of the autoscale layout" in text


def test_records_must_match_their_keys():
    _, svc = service()
    store = Store(svc)
    fill(store, groups=1, nodes=0)
    other = Node("other-n1", "other", NodeState.IN_SERVICE)
    svc.set_value("autoscale.asg.g0.node.g0-n1", other.to_json(), local=False)
    loaded, problems = store.load_all()
    assert loaded["g0"].nodes == {}
    assert "do not match its key" in problems[0]


def test_load_group_and_delete_group():
    datastore, svc = service()
    store = Store(svc)
    fill(store, groups=2, nodes=2)
    store.save_group(Group.create(name="g00", domain="example.com"))  # shares a prefix with g0
    state = store.load_group("g0")
    assert sorted(state.nodes) == ["g0-n00000", "g0-n00001"]
    assert store.load_group("nope") is None
    svc.set_value("autoscale.asg.g1", "garbage", local=False)
    with pytest.raises(RecordError, match="autoscale.asg.g1"):
        store.load_group("g1")
    deleted = store.delete_group("g0")
    assert deleted[-1] == "autoscale.asg.g0"  # the spec goes last
    assert not [k for k in datastore.keys() if k.startswith(("autoscale.asg.g0.",
                                                             "autoscale.history.g0."))]
    assert "autoscale.asg.g00" in datastore.keys() and "autoscale.asg.g0" not in datastore.keys()


def test_history_is_ordered_bounded_and_expires():
    now = [1000.0]
    datastore, svc = service(clock=lambda: now[0])
    store = Store(svc, history_ttl=3600)
    for i in range(30):
        store.record_event(Event("web", 100.0 + i, "decision", "cause %d" % i))
    events = store.history("web", limit=5)
    assert [e.cause for e in events] == ["cause %d" % i for i in range(25, 30)]
    now[0] += 3600
    assert store.history("web") == []


def test_node_keys_refuse_injection():
    for group, node in [("web", "a.b"), ("web.x", "n1"), ("web", "n1\n"), ("../x", "n")]:
        with pytest.raises(ValidationError):
            node_key(group, node)


def test_a_long_lived_reader_decodes_only_what_changed(monkeypatch):
    datastore, svc = service()
    store = Store(svc, keep_parsed=True)
    fill(store, groups=2, nodes=2)
    first, _ = store.load_all()
    decoded = []
    original = Node.from_json
    monkeypatch.setattr(Node, "from_json", classmethod(
        lambda cls, text: decoded.append(text) or original(text)))
    from autoscale_core import store as store_module
    monkeypatch.setitem(store_module._PARSERS, "node", Node.from_json)

    again, _ = store.load_all()
    assert decoded == [] and again["g0"].nodes == first["g0"].nodes
    assert again["g0"].nodes is not first["g0"].nodes  # each load hands out its own maps
    changed = Node("g0-n00001", "g0", NodeState.DRAINING, 1.0, 9.0)
    store.save_node(changed)
    store.delete_node("g1", "g1-n00000")
    third, _ = store.load_all()
    assert len(decoded) == 1 and third["g0"].nodes["g0-n00001"] == changed
    assert sorted(third["g1"].nodes) == ["g1-n00001"]
    assert node_key("g1", "g1-n00000") not in store._parsed
    # A corrupt record is reported every time, never served from the cache.
    svc.set_value(node_key("g0", "g0-n00000"), "{broken", local=False)
    for _ in range(2):
        loaded, problems = store.load_all()
        assert any("g0-n00000" in p for p in problems)
        assert "g0-n00000" not in loaded["g0"].nodes
