"""The pack changes only DNS names it owns, end to end: the lifecycle workflows run by orquesta
against the real BIND9 and HAProxy of sandbox.world. A zone transfer before and after each path
shows every record of someone else's unchanged."""


import dns.query
import dns.update
import pytest

from sandbox.net import LOOPBACK
from support.world import ZONE, pack_env, run

OWNER = '"heritage=autoscale,autoscale/owner=autoscale"'
# Someone else's names in the zone, set up before each test.
FOREIGN = [
    ("www", "A", "192.0.2.10"),
    ("shop", "A", "192.0.2.20"),
    ("shop", "TXT", '"google-site-verification=abc"'),
    ("mail", "MX", "10 www"),
    ("docs", "CNAME", "www"),
]


# The sandbox World of this module (tests/e2e/conftest.py).
WORLD = {"backends": ("web", "www", "shop")}


@pytest.fixture
def env(world):
    env = pack_env(world)
    world.seed_dns(FOREIGN)
    return env


def create(env, name="web", **params):
    result = run(env, "asg_create", name=name, domain=ZONE, **params)
    assert result.status == "succeeded", result.errors
    return result


def nothing_of_the_pack(env):
    inventory = env.world.inventory()
    assert inventory.servers == [] and inventory.dns == {} and inventory.chef_nodes == []
    assert all(servers == {} for servers in inventory.haproxy.values())


@pytest.mark.parametrize("name, held", [("www", "A 192.0.2.10"), ("shop", "A 192.0.2.20"),
                                        ("mail", "MX 10 www.example.test."),
                                        ("docs", "CNAME www.example.test.")])
def test_create_on_a_name_in_use_is_refused_before_anything_changes(env, name, held):
    before = env.world.zone_records()
    result = run(env, "asg_create", name=name, domain=ZONE, min=1)
    assert result.status == "failed"
    error = result.output["error"]
    assert "%s.%s is not managed by this installation" % (name, ZONE) in error, error
    assert "it holds %s" % held in error, error
    assert result.task_ids() == ["validate_settings", "check_service_name"]
    assert env.world.zone_records() == before
    assert env.datastore.keys() == ["ssh_pub_key"]
    nothing_of_the_pack(env)


def test_create_failing_later_undoes_only_its_own_name(env):
    """No HAProxy backend "api": the group's own service name is created, then deleted by the
    undo; every other record stays as it was."""
    before = env.world.zone_records()
    result = run(env, "asg_create", name="api", domain=ZONE, min=1)
    assert result.status == "failed"
    assert result.records("register_service_name")[-1].status == "succeeded"
    assert result.records("check_backend")[-1].status == "failed"
    assert result.records("unregister_service_name")[-1].status == "succeeded"
    assert env.world.zone_records() == before
    assert env.datastore.keys() == ["ssh_pub_key"]
    nothing_of_the_pack(env)


def test_create_whose_name_is_taken_after_the_check_fails_and_leaves_it(env):
    """Someone creates the name between the check and the registration (the engine's hook
    after store_group stands for them): the conditional update refuses, the new group is
    forgotten, and their record is kept."""
    theirs = [("api", "A", "192.0.2.50")]

    def meanwhile(record):
        if record.task_id == "store_group":
            env.world.seed_dns(theirs)
        return False

    before = env.world.zone_records()
    result = env.runner.run("autoscale.asg_create", stop_when=meanwhile, name="api",
                            domain=ZONE, min=1)
    assert result.status == "failed"
    after = env.world.zone_records()
    assert after.pop(("api." + ZONE, "A"), None) == (300, ["192.0.2.50"])
    assert after == before
    assert result.records("check_service_name")[-1].status == "succeeded"
    assert result.records("register_service_name")[-1].status == "failed"
    assert "api.%s is not managed by this installation" % ZONE in result.output["error"]
    # The undo tries the name too (the update might have reached BIND before a failure) and
    # leaves it alone: it is not ours.
    for undo in result.records("unregister_service_name"):
        assert undo.status == "succeeded" and undo.result["result"]["deleted"] is False
    assert env.datastore.keys() == ["ssh_pub_key"]
    nothing_of_the_pack(env)


def test_a_node_name_that_collides_fails_cleanly_and_leaves_the_record(env):
    create(env, min=0, max=4)
    planned = env.loader.action("asg_plan").run(asg="web", direction="out", count=1)
    assert planned.ok, planned
    (node,) = planned.result["nodes"]
    env.world.seed_dns([(node, "A", "192.0.2.99")])  # someone took the name meanwhile
    before = env.world.zone_records()
    result = run(env, "asg_add_node", asg="web", name=node)
    assert result.status == "failed"
    assert [r.status for r in result.records("register_dns")] == ["failed"]
    undo = result.records("undo_dns")[-1]
    assert undo.status == "succeeded" and undo.result["result"]["deleted"] is False
    assert env.world.zone_records() == before
    # The node is undone and forgotten like any failed add, with the cause told.
    inventory = env.world.inventory()
    assert [s["name"] for s in inventory.servers if not s["deleting"]] == []
    assert inventory.chef_nodes == [] and inventory.haproxy["web"] == {}
    assert set(inventory.dns) == {"web." + ZONE}
    assert not [key for key in env.datastore.keys() if ".node." in key]
    text = "%s.%s is not managed by this installation" % (node, ZONE)
    assert text in env.world.slack.transcript()
    (failed,) = [event for event in env.store.history("web") if event.kind == "node_failed"]
    assert failed.node == node and "could not register the node in DNS" in failed.cause
    assert text in failed.cause


def test_group_delete_removes_only_the_packs_records(env):
    before_create = env.world.zone_records()
    create(env, min=2, max=4)
    owners = env.world.inventory().dns_owners
    assert len(owners) == 3 and all(texts == [OWNER] for texts in owners.values())
    # Someone adds a record of their own at the group's service name and beside a node's.
    (node, _) = sorted(name.split(".")[0] for name in owners if name != "web." + ZONE)
    extra = [("web", "TXT", '"site-verification=xyz"'), (node, "MX", "10 www")]
    env.world.seed_dns(extra)
    result = run(env, "asg_delete", name="web", force=True)
    assert result.status == "succeeded", result.errors
    after = env.world.zone_records()
    assert after.pop(("web." + ZONE, "TXT")) == (300, ['"site-verification=xyz"'])
    assert after.pop(("%s.%s" % (node, ZONE), "MX")) == (300, ["10 www.example.test."])
    assert after == before_create
    assert env.datastore.keys() == ["ssh_pub_key"]


def drop_ownership_records(world):
    """What a group made before ownership records looks like: its names without TXT."""
    update = dns.update.UpdateMessage(ZONE, keyring=world.bind.keyring(),
                                      keyname=world.bind.key_name)
    for fqdn in world.inventory().dns_owners:
        update.delete("_autoscale.%s." % fqdn, "TXT")
    assert dns.query.tcp(update, LOOPBACK, port=world.bind.port, timeout=5).rcode() == 0
    assert world.inventory().dns_owners == {}


def test_a_group_from_before_ownership_records_is_adopted(env):
    before_create = env.world.zone_records()
    create(env, min=2, max=4)
    drop_ownership_records(env.world)
    # Re-running create adopts the service name (it points at dns.service_address).
    again = create(env, min=2, max=4)
    assert again.output["existed"] is True
    assert again.records("register_service_name")[-1].result["result"]["change"] == "adopted"
    assert env.world.inventory().dns_owners == {"web." + ZONE: [OWNER]}
    # Removing the nodes and the group adopts theirs by their recorded address.
    result = run(env, "asg_delete", name="web", force=True)
    assert result.status == "succeeded", result.errors
    assert env.world.zone_records() == before_create
    nothing_of_the_pack(env)


def test_an_old_name_whose_address_changed_is_left_alone(env):
    create(env, min=1, max=4)
    drop_ownership_records(env.world)
    (node,) = [fqdn for fqdn in env.world.inventory().dns if fqdn != "web." + ZONE]
    update = dns.update.UpdateMessage(ZONE, keyring=env.world.bind.keyring(),
                                      keyname=env.world.bind.key_name)
    update.replace(node + ".", 300, "A", "192.0.2.77")  # someone reused the name
    assert dns.query.tcp(update, LOOPBACK, port=env.world.bind.port, timeout=5).rcode() == 0
    result = run(env, "asg_remove_node", asg="web", name=node.split(".")[0])
    assert result.status == "succeeded", result.errors
    step = result.records("delete_dns_record")[-1].result["result"]
    assert step["deleted"] is False and "not managed by this installation" in step["left_alone"]
    assert env.world.zone_records()[(node, "A")] == (300, ["192.0.2.77"])
