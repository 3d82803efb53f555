"""Group and node bookkeeping: the pure helpers (domain.names, domain.victims, the planning
and status services' pure parts), and every action over the services run through the harness
with st2's import paths, sharing one datastore as the steps of a workflow do."""

import os
import re
import threading
import time

import pytest

from autoscale_core.domain.model import (
    AlertState,
    Event,
    Group,
    GroupState,
    Node,
    NodeState,
    ScalingState,
)
from autoscale_core.domain.names import new_node_name
from autoscale_core.domain.settings import PolicySettings
from autoscale_core.domain.victims import choose_victim
from autoscale_core.errors import Refusal, ValidationError
from autoscale_core.services.action import perform, store_for
from autoscale_core.services.common import group_dict, node_dict
from autoscale_core.services.groups import describe
from autoscale_core.services.nodes import node_forget, node_start
from autoscale_core.services.planning import plan
from st2harness import Datastore, PackLoader
from support.pack import Pack, config
from support.paths import ROOT

ACTIONS = ["asg_register", "node_start", "node_update", "node_forget", "node_pick",
           "asg_activity", "asg_plan", "asg_status", "asg_list", "asg_pause", "asg_resume",
           "asg_forget"]
NOW = 1_700_000_000.0


@pytest.fixture
def pack():
    return Pack()


def state_of(name="web", nodes=(), **settings):
    """A GroupState for the pure helpers: nodes as (name, state, created_at[, protected])."""
    settings.setdefault("domain", "example.com")
    settings.setdefault("max_size", 10)
    group = Group.create(name=name, **settings)
    built = {}
    for entry in nodes:
        node_name, state, created = entry[:3]
        protected = entry[3] if len(entry) > 3 else False
        built[node_name] = Node(node_name, name, state, created, created, protected=protected)
    return GroupState(group=group, nodes=built)


# -- the pack's files --------------------------------------------------------------------------


def test_every_action_loads_with_st2_paths_and_is_thin():
    loader = PackLoader(ROOT, Datastore(), config=config())
    for name in ACTIONS:
        action = loader.action(name)
        assert action.meta["runner_type"] == "python-script"
        with open(os.path.join(ROOT, "actions", name + ".py"), encoding="utf-8") as handle:
            code = handle.read()
        assert "perform(" in code and len(code.splitlines()) <= 12, name


# -- asg_register ------------------------------------------------------------------------------


def test_register_fills_in_config_defaults_and_maps_min_max(pack):
    result = pack.group("web", min=2, max=6, chef_run_list=["role[web]", "recipe[x]"],
                        dns_zone="Example.COM.")
    spec = result["group"]
    assert result["existed"] is False and result["fqdn"] == "web.example.com"
    assert (spec["min_size"], spec["max_size"], spec["desired"]) == (2, 6, 2)
    assert spec["flavor"] == "m1.small" and spec["image"] == "ubuntu-24.04"  # group_defaults
    assert spec["chef_environment"] == "production"
    assert spec["chef_run_list"] == ["role[web]", "recipe[x]"]
    assert spec["dns_zone"] == "example.com" and spec["lb_backend"] == "web"
    assert spec["expand_by"] == 2 and spec["paused"] is False
    stored = pack.store.load_group("web").group
    assert group_dict(stored) == spec


def test_register_takes_the_schema_defaults_when_the_config_sets_none():
    """st2 fills an empty group_defaults section from config.schema.yaml when it hands the
    config over (ContentPackConfigLoader), so the schema's defaults apply."""
    pack = Pack()
    pack.loader.config["group_defaults"] = {}
    spec = pack.group("api", max=None)["group"]
    assert (spec["min_size"], spec["max_size"], spec["flavor"]) == (1, 4, "m1.small")


def test_register_again_with_the_same_settings_is_harmless(pack):
    pack.group("web", min=2, max=6, flavor="m1.large")
    before = pack.datastore.keys()
    again = pack.ok("asg_register", name="web", domain="EXAMPLE.com", min=2, max=6,
                    flavor="m1.large")
    assert again["existed"] is True and again["group"]["flavor"] == "m1.large"
    # Settings left unset are not compared: the short command is harmless too.
    assert pack.ok("asg_register", name="web", domain="example.com")["existed"] is True
    assert pack.datastore.keys() == before


def test_register_refuses_a_conflicting_group_naming_each_difference(pack):
    pack.group("web", min=1, max=4)
    before = pack.datastore.keys()
    error = pack.refused("asg_register", name="web", domain="example.com", max=10)
    assert error == ("group web exists with max_size 4, not 10; delete it first or use the "
                     "same settings")
    error = pack.refused("asg_register", name="web", domain="example.org", min=2,
                         chef_run_list=["role[db]"])
    assert "domain example.com, not example.org" in error
    assert "min_size 1, not 2" in error and "chef_run_list [role[web]], not [role[db]]" in error
    assert pack.store.load_group("web").group.max_size == 4
    assert pack.datastore.keys() == before


@pytest.mark.parametrize("params,message", [
    ({"name": "Web;rm -rf", "domain": "example.com"}, "is not a DNS label"),
    ({"name": "w" * 57, "domain": "example.com"}, "the limit is 56"),
    ({"name": "web", "domain": "exa mple.com"}, "is not a valid DNS name"),
    ({"name": "web", "domain": "example.com", "min": 5, "max": 2}, "min_size (5) must not"),
    ({"name": "web", "domain": "example.com", "desired": 9, "max": 4}, "desired (9) must be"),
    ({"name": "web", "domain": "example.com", "lb_backend": "a b"}, "HAProxy backend name"),
    ({"name": "web", "domain": "example.com", "flavor": "m1\nsmall"}, "single line"),
])
def test_register_refuses_bad_input_before_any_write(pack, params, message):
    error = pack.refused("asg_register", **params)
    assert message in error
    assert pack.datastore.keys() == []


# Values that would make every later node add (Chef) or announcement (Slack) fail.
BAD_FOR_BACKENDS = [
    ("chef_run_list", ["role[web]", "nginx server"],
     "chef_run_list entry 'nginx server' is not a Chef run list item"),
    ("chef_run_list", ["Recipe[nginx]"], "chef_run_list entry 'Recipe[nginx]' is not a Chef"),
    ("chef_environment", "prod env", "chef_environment 'prod env' is not a Chef environment"),
    ("chat_channel", "<!channel>", "chat_channel '<!channel>' is not a Slack channel"),
]


@pytest.mark.parametrize("field,value,message", BAD_FOR_BACKENDS)
def test_asg_create_refuses_what_chef_or_slack_would_refuse_naming_the_field(field, value,
                                                                            message):
    from st2harness.workflows import WorkflowRunner

    pack = Pack()
    error = pack.refused("asg_register", name="web", domain="example.com", **{field: value})
    assert message in error
    result = WorkflowRunner(pack.loader).run("autoscale.asg_create", name="web",
                                             domain="example.com", min=1, max=2,
                                             **{field: value})
    assert result.status == "failed"
    # Its first task (validate_settings: asg_register, check only) refuses: no DNS,
    # HAProxy, VM or Chef step.
    assert [record.task_id for record in result.tasks] == ["validate_settings"]
    assert message in result.output["error"]
    assert pack.datastore.keys() == []


# -- node_start --------------------------------------------------------------------------------


def test_node_start_records_a_provisioning_node(pack):
    pack.group("web", domain="example.com", flavor="m1.large", image="img", network="net",
               chat_channel="#web-ops", lb_backend="be_web")
    before = time.time()
    result = pack.ok("node_start", asg="web")
    node = result["node"]
    assert re.fullmatch(r"web-[0-9a-f]{6}", node)
    assert result["fqdn"] == node + ".example.com" and result["state"] == "provisioning"
    assert before <= result["created_at"] <= time.time()
    group = result["group"]
    for key, value in [("flavor", "m1.large"), ("image", "img"), ("network", "net"),
                       ("domain", "example.com"), ("dns_zone", "example.com"),
                       ("lb_backend", "be_web"), ("chef_run_list", ["role[web]"]),
                       ("chef_environment", "production"), ("chat_channel", "#web-ops")]:
        assert group[key] == value, key
    stored = pack.store.load_group("web").nodes[node]
    assert stored.state == NodeState.PROVISIONING and stored.created_at == result["created_at"]


def test_node_start_unknown_group_and_bad_name(pack):
    assert pack.refused("node_start", asg="nope") == \
        "no autoscaling group named 'nope' (see: !asg list)"
    assert "is not a DNS label" in pack.refused("node_start", asg="../etc")
    assert pack.datastore.keys() == []


def test_node_start_refuses_past_max_size(pack):
    pack.group("web", max=2)
    pack.ok("node_start", asg="web")
    pack.ok("node_start", asg="web")
    before = pack.datastore.keys()
    assert "its maximum (max_size 2)" in pack.refused("node_start", asg="web")
    assert pack.datastore.keys() == before


def test_fifty_parallel_node_starts_lose_nothing(pack):
    pack.group("web", max=60)
    action = pack.action("node_start")
    results, barrier = [], threading.Barrier(50)

    def start():
        barrier.wait()
        results.append(action.run(asg="web"))

    threads = [threading.Thread(target=start) for _ in range(50)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert all(r.ok for r in results), [r for r in results if not r.ok]
    names = {r.result["node"] for r in results}
    assert len(names) == 50
    assert set(pack.store.load_group("web").nodes) == names


def test_new_node_name_avoids_taken_names_and_retries():
    tokens = iter(["aaaaaa", "aaaaaa", "bbbbbb"])
    assert new_node_name("web", {"web-aaaaaa"}, lambda: next(tokens)) == "web-bbbbbb"
    assert re.fullmatch(r"web-[0-9a-f]{6}", new_node_name("web", []))
    with pytest.raises(Refusal, match="could not find a free node name"):
        new_node_name("web", {"web-aaaaaa"}, lambda: "aaaaaa")
    with pytest.raises(ValidationError):
        new_node_name("Web", [])


def racing_store(pack, method, after):
    """node_start's Store, where another start writes web-aaaaaa right after ``method``."""
    store = store_for(pack.datastore.service("autoscale", "NodeStart"), config())
    real = getattr(store.datastore, method)

    def racing(*args, **kwargs):
        result = real(*args, **kwargs)
        if after(*args):
            pack.node("web", "web-aaaaaa", NodeState.PROVISIONING, 1.0)
        return result

    setattr(store.datastore, method, racing)
    return store


@pytest.mark.parametrize("method,after", [
    # Written between this start's listing and its write: the key check sees it.
    ("list_values", lambda *args: True),
    # Written over this start's own record: the read-back sees it.
    ("set_value", lambda name, *args: name.endswith(".node.web-aaaaaa")),
])
def test_node_start_gives_way_to_a_parallel_start_of_the_same_name(pack, method, after):
    pack.group("web")
    store = racing_store(pack, method, after)
    tokens = iter(["aaaaaa", "cccccc"])
    result = node_start(store, "web", now=NOW, token=lambda: next(tokens))
    assert result["node"] == "web-cccccc"
    nodes = pack.store.load_group("web").nodes
    assert sorted(nodes) == ["web-aaaaaa", "web-cccccc"]
    assert nodes["web-aaaaaa"].created_at == 1.0 and nodes["web-cccccc"].created_at == NOW


# -- node_update and node_forget ----------------------------------------------------------------


def test_node_update_walks_the_lifecycle_changing_only_what_is_given(pack):
    pack.group("web")
    node = pack.ok("node_start", asg="web")["node"]
    up = pack.ok("node_update", asg="web", node=node, state="configuring",
                 server_id="0b9f-11", address="10.0.0.5")
    assert (up["state"], up["server_id"], up["address"]) == ("configuring", "0b9f-11", "10.0.0.5")
    up = pack.ok("node_update", asg="web", node=node, state="registering")
    assert (up["server_id"], up["address"], up["cause"]) == ("0b9f-11", "10.0.0.5", "")
    up = pack.ok("node_update", asg="web", node=node, state="in_service", address="")
    assert up["address"] == "10.0.0.5" and up["updated_at"] >= up["created_at"]
    up = pack.ok("node_update", asg="web", node=node, state="draining", cause="deflated\nby hand")
    assert up["cause"] == "deflated by hand"
    stored = pack.store.load_group("web").nodes[node]
    assert node_dict(stored) == up


def test_node_update_refusals_change_nothing(pack):
    pack.group("web")
    node = pack.ok("node_start", asg="web")["node"]
    before = {key: pack.datastore.get(key) for key in pack.datastore.keys()}
    assert pack.refused("node_update", asg="web", node=node, state="in_service") == (
        "node %s cannot go from provisioning to in_service (see: !asg status asg=web)" % node)
    assert pack.refused("node_update", asg="web", node="web-000000", state="failed") == (
        "group web has no node named web-000000 (see: !asg status asg=web)")
    assert pack.refused("node_update", asg="nope", node=node, state="failed") == (
        "no autoscaling group named 'nope' (see: !asg list)")
    assert "not an IPv4 or IPv6 address" in pack.refused(
        "node_update", asg="web", node=node, state="configuring", address="10.0.0.5; rm")
    assert "is not a DNS label" in pack.refused("node_update", asg="web", node="a.b",
                                                state="failed")
    assert "is not one of" in pack.run("node_update", asg="web", node=node,
                                       state="gone").error  # the metadata's enum
    assert {key: pack.datastore.get(key) for key in pack.datastore.keys()} == before


def test_any_state_may_fail_and_a_failed_node_only_terminates(pack):
    pack.group("web")
    node = pack.ok("node_start", asg="web")["node"]
    failed = pack.ok("node_update", asg="web", node=node, state="failed", cause="boom")
    assert (failed["state"], failed["cause"]) == ("failed", "boom")
    assert "cannot go from failed to in_service" in pack.refused(
        "node_update", asg="web", node=node, state="in_service")
    assert pack.ok("node_update", asg="web", node=node, state="terminating")["state"] == \
        "terminating"


def test_node_forget(pack):
    pack.group("web")
    node = pack.ok("node_start", asg="web")["node"]
    assert pack.ok("node_forget", asg="web", node=node) == {
        "node": node, "group": "web", "forgotten": True}
    assert pack.store.load_group("web").nodes == {}
    assert pack.ok("node_forget", asg="web", node=node)["forgotten"] is False
    assert "no autoscaling group named 'nope'" in pack.refused("node_forget", asg="nope",
                                                               node=node)
    assert "is not a DNS label" in pack.refused("node_forget", asg="web", node="x y")


# -- node_pick ---------------------------------------------------------------------------------


def test_choose_victim_order():
    nodes = [
        ("web-old", NodeState.IN_SERVICE, 10.0),
        ("web-new", NodeState.IN_SERVICE, 30.0),
        ("web-pro", NodeState.IN_SERVICE, 40.0, True),
        ("web-drn", NodeState.DRAINING, 50.0),
        ("web-boot", NodeState.CONFIGURING, 20.0),
        ("web-bad", NodeState.FAILED, 5.0),
        ("web-bad2", NodeState.FAILED, 6.0, True),
    ]
    order = []
    state = state_of(nodes=nodes)
    while True:
        victim = choose_victim(state)
        if victim is None:
            break
        order.append(victim.name)
        del state.nodes[victim.name]
    # Failed first, then being added, then the newest in service; never protected or leaving.
    assert order == ["web-bad", "web-boot", "web-new", "web-old"]
    assert choose_victim(state_of()) is None


def test_node_pick_chooses_and_returns_what_removal_needs(pack):
    pack.group("web", dns_zone="example.com", lb_backend="be_web", domain="eu.example.com")
    pack.node("web", "web-000001", NodeState.IN_SERVICE, 100.0, server_id="s1",
              address="10.0.0.1")
    pack.node("web", "web-000002", NodeState.IN_SERVICE, 200.0, server_id="s2",
              address="10.0.0.2")
    pack.node("web", "web-000003", NodeState.IN_SERVICE, 300.0, protected=True)
    picked = pack.ok("node_pick", asg="web")
    assert picked["name"] == "web-000002" and picked["state"] == "in_service"
    assert (picked["server_id"], picked["address"]) == ("s2", "10.0.0.2")
    assert (picked["domain"], picked["dns_zone"], picked["lb_backend"]) == (
        "eu.example.com", "example.com", "be_web")
    assert picked["fqdn"] == "web-000002.eu.example.com" and picked["chosen"] is True
    pack.node("web", "web-000004", NodeState.FAILED, 50.0, cause="Chef timed out")
    picked = pack.ok("node_pick", asg="web")
    assert picked["name"] == "web-000004" and "failed" in picked["why"]
    named = pack.ok("node_pick", asg="web", node="web-000001")
    assert named["name"] == "web-000001" and named["chosen"] is False


def test_node_pick_refusals(pack):
    pack.group("web")
    assert pack.refused("node_pick", asg="web") == "group web has no nodes to remove"
    pack.node("web", "web-000003", NodeState.IN_SERVICE, 300.0, protected=True)
    pack.node("web", "web-000004", NodeState.DRAINING, 300.0)
    error = pack.refused("node_pick", asg="web")
    assert "no node that can be removed (1 node protected, 1 node already leaving)" in error
    assert "force=true" in error
    error = pack.refused("node_pick", asg="web", node="web-000003")
    assert error.startswith("node web-000003 is protected") and "force=true" in error
    assert pack.ok("node_pick", asg="web", node="web-000003", force=True)["protected"] is True
    assert pack.ok("node_pick", asg="web", node="web-000004")["state"] == "draining"
    assert "has no node named web-999999" in pack.refused("node_pick", asg="web",
                                                          node="web-999999")
    assert "no autoscaling group named 'db'" in pack.refused("node_pick", asg="db")


# -- asg_activity ------------------------------------------------------------------------------


def scaling(pack, name="web"):
    return pack.store.load_group(name).scaling


def test_activity_records_events_and_updates_scaling_state(pack):
    pack.group("web")
    before = time.time()
    event = pack.ok("asg_activity", asg="web", kind="scale_out", count=2,
                    cause="critical alert: adding 2")
    assert (event["kind"], event["count"], event["cause"], event["ok"]) == (
        "scale_out", 2, "critical alert: adding 2", True)
    assert event["key"].startswith("autoscale.history.web.")
    assert before <= scaling(pack).last_scale_out_at <= time.time()
    assert scaling(pack).last_scale_in_at == 0.0
    pack.ok("asg_activity", asg="web", kind="scale_in", count=1, cause="calm")
    assert scaling(pack).last_scale_in_at >= scaling(pack).last_scale_out_at

    pack.ok("asg_activity", asg="web", kind="node_failed", node="web-000001",
            cause="could not boot the VM: Nova: No valid host", ok=False)
    pack.ok("asg_activity", asg="web", kind="node_failed", node="web-000002",
            cause="could not wait for Chef\nto converge")
    state = scaling(pack)
    assert state.consecutive_failures == 2 and state.last_failure_at >= before
    assert state.last_failure_cause == "could not wait for Chef to converge"
    pack.ok("asg_activity", asg="web", kind="node_added", node="web-000003", cause="ok")
    assert scaling(pack).consecutive_failures == 0
    assert scaling(pack).last_failure_cause == state.last_failure_cause

    unchanged = scaling(pack)
    for kind in ("node_removed", "group_created", "paused", "info", "error"):
        pack.ok("asg_activity", asg="web", kind=kind, cause=kind)
    assert scaling(pack) == unchanged
    history = pack.store.history("web", limit=0)
    assert [e.kind for e in history] == ["scale_out", "scale_in", "node_failed", "node_failed",
                                         "node_added", "node_removed", "group_created",
                                         "paused", "info", "error"]
    assert history[2].ok is False and history[2].node == "web-000001"


@pytest.mark.parametrize("params,message", [
    ({"asg": "nope", "kind": "info"}, "no autoscaling group named 'nope' (see: !asg list)"),
    ({"asg": "web", "kind": "Scale Out"}, "must be a lowercase word"),
    ({"asg": "web", "kind": "info", "node": "web_1"}, "is not a DNS label"),
    ({"asg": "web", "kind": "node_failed", "count": -1}, "count must be at least 0"),
    ({"asg": "WEB", "kind": "info"}, "is not a DNS label"),
])
def test_activity_refuses_bad_input_before_any_write(pack, params, message):
    pack.group("web")
    before = pack.datastore.keys()
    assert message in pack.refused("asg_activity", **params)
    assert pack.datastore.keys() == before


# -- asg_plan ----------------------------------------------------------------------------------


IN_SERVICE = NodeState.IN_SERVICE


def nodes_in(prefix, count, state=IN_SERVICE, start=0):
    return [("%s-%06d" % (prefix, start + i), state, 100.0 + i) for i in range(count)]


def test_plan_out_is_clamped_to_max_size_counting_nodes_being_added():
    state = state_of(nodes=nodes_in("web", 3) + nodes_in("web", 1, NodeState.PROVISIONING, 10),
                     max_size=6, expand_by=3)
    result = plan(state, [], "out", 5)
    assert (result.count, result.current, result.target) == (2, 4, 6)
    assert result.cause == "requested 5, max 6 allows 2 (4 in service or being added)"
    default = plan(state, [], "out", None)
    assert (default.requested, default.count) == (3, 2)
    roomy = plan(state_of(nodes=nodes_in("web", 1), max_size=6), [], "out", None)
    assert roomy.count == 2 and roomy.cause == "adding 2 nodes (1 → 3, max 6)"


def test_plan_out_respects_the_global_cap_over_every_node_of_every_group():
    web = state_of(nodes=nodes_in("web", 2), max_size=10)
    # Failed and leaving nodes still hold a VM: they count toward the global cap.
    api = state_of("api", nodes=nodes_in("api", 3) + nodes_in("api", 2, NodeState.FAILED, 10),
                   max_size=10)
    settings = PolicySettings(global_max_nodes=9)
    result = plan(web, [api, web], "out", 4, settings)
    assert (result.count, result.target) == (2, 4)
    assert result.cause == ("requested 4, the global cap of 9 nodes (7 in all groups) allows 2 "
                            "(2 in service or being added)")
    full = plan(web, [api], "out", 4, PolicySettings(global_max_nodes=7))
    assert full.count == 0 and full.cause.endswith("allows 0 (2 in service or being added); "
                                                   "nothing to add")


def test_plan_out_counts_unreadable_node_records_toward_the_global_cap_as_the_policy_does():
    """Capacity is domain/capacity.py's for manual and governed plans alike: a node record
    that cannot be read may well have a VM, so it takes room under the global cap."""
    web = state_of(nodes=nodes_in("web", 2), max_size=10)
    api = state_of("api", nodes=nodes_in("api", 3), max_size=10)
    api.unreadable = {"autoscale.asg.api.node.api-00000%d" % i: "not JSON" for i in (7, 8)}
    result = plan(web, [api], "out", 4, PolicySettings(global_max_nodes=9))
    assert (result.count, result.target) == (2, 4)
    assert "the global cap of 9 nodes (7 in all groups) allows 2" in result.cause


def test_plan_out_at_max_is_zero_with_a_cause():
    result = plan(state_of(nodes=nodes_in("web", 4), max_size=4), [], "out", None)
    assert (result.count, result.target) == (0, 4)
    assert result.cause == ("requested 2, max 4 allows 0 (4 in service or being added); "
                            "nothing to add")


def test_plan_in_never_goes_below_the_normal_size():
    state = state_of(nodes=nodes_in("web", 5), min_size=2, desired=3, deflate_by=1)
    assert plan(state, [], "in", None).count == 1
    result = plan(state, [], "in", 4)
    assert (result.count, result.current, result.target) == (2, 5, 3)
    assert result.cause == "requested 4, normal size 3 allows 2 (5 in service or being added)"
    at_normal = plan(state_of(nodes=nodes_in("web", 3), min_size=2, desired=3),
                               [], "in", 1)
    assert at_normal.count == 0 and "at its normal size of 3" in at_normal.cause


def test_plan_in_removes_failed_nodes_first_and_never_counts_protected_ones():
    nodes = (nodes_in("web", 3) + nodes_in("web", 1, NodeState.FAILED, 10)
             + [("web-pro001", IN_SERVICE, 1.0, True)])
    state = state_of(nodes=nodes, min_size=1, desired=2)
    # capacity 4 (3 + the protected one), normal 2: 2 may go, plus the failed one.
    result = plan(state, [], "in", 5)
    assert (result.count, result.current, result.target) == (3, 4, 2)
    assert "the failed node first" in result.cause
    all_protected = state_of(nodes=[("web-p1", IN_SERVICE, 1.0, True),
                                    ("web-p2", IN_SERVICE, 2.0, True)], min_size=1)
    result = plan(all_protected, [], "in", 1)
    assert result.count == 0 and "2 nodes protected" in result.cause


def test_plan_refuses_bad_direction_and_count():
    with pytest.raises(ValidationError, match="direction"):
        plan(state_of(), [], "up", 1)
    with pytest.raises(ValidationError, match="count must be at least 1"):
        plan(state_of(), [], "out", 0)


def test_asg_plan_action_reads_every_group_in_one_listing():
    pack = Pack(governor={"global_max_nodes": 5})
    pack.group("web", max=10)
    pack.group("api", max=10)
    for node in nodes_in("api", 4):
        pack.node("api", node[0], node[1], node[2])
    pack.datastore.calls.clear()
    result = pack.ok("asg_plan", asg="web", direction="out", count=3)
    assert pack.datastore.calls["list_values"] == 1
    assert (result["count"], result["current"], result["target"]) == (1, 0, 1)
    assert result["group"] == "web" and result["direction"] == "out"
    assert "the global cap of 5 nodes (4 in all groups) allows 1" in result["cause"]
    # The plan claimed its room: one provisioning record reserved, the scale-out recorded.
    assert len(result["nodes"]) == 1 and result["recorded"] is True
    reserved = pack.ok("asg_status", asg="web")["nodes"]
    assert [(n["name"], n["state"]) for n in reserved] == [(result["nodes"][0], "provisioning")]
    again = pack.ok("asg_plan", asg="web", direction="out", count=3)
    assert again["count"] == 0 and again["nodes"] == [] and "allows 0" in again["cause"]
    zero = pack.ok("asg_plan", asg="web", direction="in")
    assert zero["count"] == 0 and "1 node being added" in zero["cause"]
    pack.ok("node_forget", asg="web", node=result["nodes"][0])
    zero = pack.ok("asg_plan", asg="web", direction="in")
    assert zero["count"] == 0 and "normal size of 1" in zero["cause"]
    assert pack.refused("asg_plan", asg="db", direction="out") == \
        "no autoscaling group named 'db' (see: !asg list)"
    assert "count must be at least 1" in pack.refused("asg_plan", asg="web", direction="out",
                                                      count=-2)


# -- asg_status and asg_list ---------------------------------------------------------------------


def test_status_text_names_nodes_states_ages_and_causes(pack):
    pack.group("web", min=2, max=6)
    now = time.time()
    pack.node("web", "web-aaaaaa", IN_SERVICE, now - 7500, address="10.0.0.5")
    pack.node("web", "web-bbbbbb", NodeState.FAILED, now - 300,
              cause="could not boot the VM: Nova: No valid host was found")
    pack.store.save_alert("web", AlertState("critical", "7d1e8f0a-3c52-4b8e-9a61-2f4d5c6b7e80",
                                            "High error rate", False, now - 120, now - 60))
    pack.store.save_scaling("web", ScalingState(last_scale_out_at=now - 60,
                                                consecutive_failures=1, last_failure_at=now - 300,
                                                last_failure_cause="Nova: No valid host was found"))
    for i in range(7):
        pack.store.record_event(Event("web", now - 700 + i * 100, "info", "event %d" % i))
    status = pack.ok("asg_status", asg="web")
    text = status["text"]
    assert "{" not in text and "*web* (web.example.com)" in text
    assert "web-aaaaaa: in service, age 2 h 5 min, 10.0.0.5" in text
    assert "web-bbbbbb: failed, age 5 min — could not boot the VM: Nova: No valid host" in text
    assert "alert: critical 'High error rate' (issue 7d1e8f0a), open for 2 min" in text
    assert "scale-out in 4 min" in text
    assert "1 node addition failed in a row (last: Nova: No valid host was found)" in text
    # The governor's view: 1 in service, below the normal size of 2.
    # What it would do with its numbers, then why, once; the issue id shortened.
    assert "governor: repair 1 node (1 → 2) — 1 node in service or starting, below the " \
        "normal size of 2\n" in text
    assert "3c52" not in text
    assert "event 6" in text and "event 2" in text and "event 1" not in text
    assert [e["cause"] for e in status["history"]] == ["event %d" % i for i in range(2, 7)]
    assert status["in_service"] == 1 and status["failed"] == 1
    assert [n["name"] for n in status["nodes"]] == ["web-aaaaaa", "web-bbbbbb"]
    assert status["nodes"][0]["age"] >= 7500
    assert status["alert"]["effective_level"] == "critical"
    assert 200 < status["cooldowns"]["scale_out_remaining"] <= 240
    assert status["decision"]["action"] == "repair" and status["decision"]["count"] == 1
    assert status["group"]["max_size"] == 6


def test_status_pure_helper_shows_backoff_expiry_and_flags():
    state = state_of(nodes=nodes_in("web", 1), max_size=4)
    state.group = Group.create(name="web", domain="example.com", paused=True, dry_run=True)
    state.alert = AlertState("warning", "", "", False, NOW - 7 * 3600, NOW - 7 * 3600)
    state.scaling = ScalingState(consecutive_failures=3, last_failure_at=NOW - 60,
                                 last_failure_cause="boom")
    result = describe(state, [], [], NOW, PolicySettings())
    text = result["text"]
    assert "· paused · dry run" in text
    assert "expired (no update for too long)" in text
    assert "backing off for another 4 min" in text
    assert result["failures"]["backoff_remaining"] == 240
    assert "governor: nothing to do — warning alert expired" in text
    assert result["alert"]["effective_level"] == "none" and result["alert"]["expired"] is True


def test_status_of_unknown_group(pack):
    assert pack.refused("asg_status", asg="web") == \
        "no autoscaling group named 'web' (see: !asg list)"


def test_list_counts_nodes_by_state(pack):
    assert pack.ok("asg_list")["text"].startswith("no autoscaling groups yet")
    pack.group("web", max=6)
    pack.group("api", max=3)
    pack.node("web", "web-000001", IN_SERVICE, 1.0)
    pack.node("web", "web-000002", IN_SERVICE, 2.0)
    pack.node("web", "web-000003", NodeState.PROVISIONING, 3.0)
    pack.store.save_alert("web", AlertState("critical", "", "", False, time.time(), time.time()))
    pack.ok("asg_pause", asg="api")
    result = pack.ok("asg_list")
    assert [g["name"] for g in result["groups"]] == ["api", "web"]
    api, web = result["groups"]
    assert web["counts"] == {"in_service": 2, "provisioning": 1} and web["capacity"] == 3
    assert web["alert"] == "critical" and api["paused"] is True and api["counts"] == {}
    assert result["text"].splitlines() == [
        "2 autoscaling groups:",
        "• *api* (api.example.com): no nodes; normal 1, max 3; alert none · paused",
        "• *web* (web.example.com): 1 provisioning, 2 in service; normal 1, max 6; "
        "alert critical",
    ]


# -- asg_pause / asg_resume / asg_forget -----------------------------------------------------------


def test_pause_and_resume(pack):
    pack.group("web", max=6)
    result = pack.ok("asg_pause", asg="web")
    assert (result["paused"], result["changed"]) == (True, True)
    assert pack.store.load_group("web").group.paused is True
    assert pack.store.load_group("web").group.max_size == 6
    assert pack.ok("asg_pause", asg="web")["changed"] is False
    # A re-run of asg_create does not count the pause as a conflict.
    assert pack.ok("asg_register", name="web", domain="example.com", max=6)["existed"]
    result = pack.ok("asg_resume", asg="web")
    assert (result["paused"], result["changed"]) == (False, True)
    assert pack.store.load_group("web").group.paused is False
    assert [e.kind for e in pack.store.history("web")] == ["paused", "resumed"]
    assert "asg resume asg=web" in pack.store.history("web")[0].cause
    assert pack.refused("asg_pause", asg="nope") == \
        "no autoscaling group named 'nope' (see: !asg list)"


def test_forget_refuses_while_nodes_are_recorded_unless_forced(pack):
    pack.group("web")
    pack.group("web2")
    pack.ok("node_start", asg="web")
    pack.ok("asg_activity", asg="web", kind="scale_out", cause="x")
    before = pack.datastore.keys()
    error = pack.refused("asg_forget", name="web")
    assert "still has 1 node recorded" in error and "force=true" in error
    assert pack.datastore.keys() == before
    result = pack.ok("asg_forget", name="web", force=True)
    assert result["existed"] is True and result["deleted"][-1] == "autoscale.asg.web"
    assert pack.datastore.keys() == ["autoscale.asg.web2"]
    assert pack.refused("asg_forget", name="web") == \
        "no autoscaling group named 'web' (see: !asg list)"
    assert "is not a DNS label" in pack.refused("asg_forget", name="web2.x")
    assert pack.datastore.keys() == ["autoscale.asg.web2"]


def test_forget_removes_a_group_whose_spec_is_unreadable(pack):
    pack.group("web")
    pack.store.datastore.set_value("autoscale.asg.web", "{garbage", local=False)
    assert "not valid JSON" in pack.refused("asg_status", asg="web")
    assert pack.ok("asg_forget", name="web")["count"] == 1
    assert pack.datastore.keys() == []


# -- a workflow's steps over one datastore --------------------------------------------------------


def test_add_then_remove_a_node_as_the_workflows_do(pack):
    spec = pack.group("web", min=1, max=4)["group"]
    started = pack.ok("node_start", asg="web")
    node = started["node"]
    pack.ok("node_update", asg="web", node=node, state="configuring", server_id="srv-1",
            address="10.0.0.9")
    pack.ok("node_update", asg="web", node=node, state="registering")
    pack.ok("node_update", asg="web", node=node, state="in_service")
    pack.ok("asg_activity", asg="web", kind="node_added", node=node, cause="added by hand")
    status = pack.ok("asg_status", asg="web")
    assert status["in_service"] == 1 and status["nodes"][0]["name"] == node
    assert "%s: in service" % node in status["text"]

    plan = pack.ok("asg_plan", asg="web", direction="out")
    assert plan["count"] == spec["expand_by"] and plan["target"] == 3
    assert len(plan["nodes"]) == spec["expand_by"]
    for reserved in plan["nodes"]:
        assert pack.ok("node_start", asg="web", node=reserved)["node"] == reserved
        pack.ok("node_forget", asg="web", node=reserved)

    picked = pack.ok("node_pick", asg="web")
    assert (picked["name"], picked["server_id"], picked["address"]) == (node, "srv-1",
                                                                         "10.0.0.9")
    pack.ok("node_update", asg="web", node=node, state="draining", cause="removed by hand")
    pack.ok("node_update", asg="web", node=node, state="terminating", cause="removed by hand")
    assert pack.ok("node_forget", asg="web", node=node)["forgotten"] is True
    pack.ok("asg_activity", asg="web", kind="node_removed", node=node, cause="removed by hand")
    status = pack.ok("asg_status", asg="web")
    assert status["nodes"] == [] and "node removed %s: removed by hand" % node in status["text"]
    assert pack.ok("asg_forget", name="web")["count"] >= 3
    assert pack.datastore.keys() == []


def test_store_settings_come_from_the_governor_config():
    store = store_for(Datastore().service("autoscale", "X"),
                      config(governor={"datastore_page_size": 50, "history_ttl": 60}))
    assert (store.page_size, store.history_ttl) == (50, 60)
    with pytest.raises(ValidationError, match="governor.datastore_page_size"):
        store_for(None, {"governor": {"datastore_page_size": "x"}})
    # Parsed like every governor key (config.py), as the governor sensor reads them: a 0 is
    # refused by name, not silently taken for the default.
    for key in ("datastore_page_size", "history_ttl"):
        with pytest.raises(ValidationError, match="config key governor.%s must be a whole "
                                                  "number of at least 1, not 0" % key):
            store_for(None, {"governor": {key: 0}})


def test_an_unexpected_failure_is_still_a_sentence_for_the_workflow():
    class Broken:
        def get_value(self, *args, **kwargs):
            raise ConnectionError("st2api unreachable")

    ok, result = perform(Broken(), config(), node_forget, "web", "web-000001")
    assert ok is False
    assert result == {"error": "node_forget failed unexpectedly: ConnectionError: st2api "
                               "unreachable"}


def test_no_deflate_while_nodes_are_being_added():
    group = Group.create(name="web", domain="example.com", min_size=1, max_size=6)
    nodes = {"web-a%05d" % i: Node("web-a%05d" % i, "web", NodeState.IN_SERVICE, 1.0, 1.0)
             for i in range(3)}
    nodes["web-p00001"] = Node("web-p00001", "web", NodeState.PROVISIONING, 2.0, 2.0)
    result = plan(GroupState(group, nodes=nodes), [], "in", 2, PolicySettings())
    assert result.count == 0 and "1 node being added" in result.cause
    del nodes["web-p00001"]
    assert plan(GroupState(group, nodes=nodes), [], "in", 2, PolicySettings()).count == 2
