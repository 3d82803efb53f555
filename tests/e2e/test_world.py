"""sandbox.world: every backend started and wired together, a pack config for them, failure
injection and an inventory of what really exists. The pack's own actions run through the st2
harness against it, so a knob that does not make the pack fail fails here."""

import os
import time
import urllib.request

import dns.query
import dns.update
import pytest
import yaml

from sandbox import world as world_module
from sandbox.net import LOOPBACK
from sandbox.process import alive, kill_leftovers
from sandbox.world import FAILURES, World, WorldError
from st2harness import Datastore, PackLoader
from st2harness.loader import LoadedAction
from support.paths import ROOT
from support.waiting import wait_until

GROUP = "web"
STARTED_PIDS = []


@pytest.fixture(scope="module", autouse=True)
def no_leftover_processes():
    yield
    assert kill_leftovers(STARTED_PIDS) == [], "processes outlived their World"


@pytest.fixture(scope="module")
def shared_world():
    # One World for the module (it starts in about a second); each test resets it.
    # converge_after=0: chef_wait_converged looks at once, then only after 10 s or at its
    # deadline, so a node converging later than the action's first look costs its timeout.
    with World(serve_http=True, backends=("web", "api"), converge_after=0) as world:
        yield world
        STARTED_PIDS.extend(world.pids())


@pytest.fixture
def world(shared_world):
    shared_world.reset()
    yield shared_world
    STARTED_PIDS.extend(shared_world.pids())
    shared_world.heal()


# -- running the pack's actions ------------------------------------------------------------------

_LOADED = {}


def datastore(world):
    store = Datastore()
    store.service("autoscale", "T").set_value("ssh_pub_key", world.ssh_pub_key, local=False)
    return store


def run(world, action, config=None, **params):
    """The action as st2 runs it (each file loaded once per module: loading costs 0.2 s)."""
    loader = PackLoader(ROOT, datastore(world), config=config or world.config())
    if action not in _LOADED:
        _LOADED[action] = loader.action(action)
    return LoadedAction(loader, _LOADED[action].meta, _LOADED[action].cls).run(**params)


def create(world, node, config=None):
    return run(world, "vm_create", config=config, group=GROUP, node=node, flavor="m1.small",
               image="ubuntu-24.04", network="private", chef_run_list=["role[web]"],
               chef_environment="_default")


def converge(world, node, since, **params):
    return run(world, "chef_wait_converged", node=node, since=since, **params)


def get(url, timeout=5):
    with urllib.request.urlopen(url, timeout=timeout) as response:
        return response.status, response.read().decode("utf-8").strip()


# -- start and stop ---------------------------------------------------------------------------


def test_start_and_stop_leave_no_process_and_no_directory():
    with World(backends=("web", "api")) as world:
        pids = world.pids()
        STARTED_PIDS.extend(pids)
        directories = [world.bind.directory, world.haproxy.directory]
        assert len(pids) == 2 and all(alive(pid) for pid in pids)  # named and haproxy
        assert world.lb_servers("api") == {}
    assert not any(alive(pid) for pid in pids)
    assert not any(os.path.exists(path) for path in directories)
    world.stop()  # twice is harmless


def test_a_start_that_fails_half_way_stops_what_it_started(monkeypatch):
    started = {}

    class BrokenSlack(world_module.FakeSlack):
        def start(self):
            started["bind"] = world.bind.pid, world.bind.directory
            started["haproxy"] = world.haproxy.pid, world.haproxy.directory
            started["chef"] = world.chef.url
            raise OSError("no port for Slack")

    monkeypatch.setattr(world_module, "FakeSlack", BrokenSlack)
    world = World()
    with pytest.raises(OSError, match="no port for Slack"):
        world.start()
    for pid, directory in (started["bind"], started["haproxy"]):
        STARTED_PIDS.append(pid)
        assert not alive(pid) and not os.path.exists(directory)
    with pytest.raises(OSError):  # the Chef fake stopped listening too
        get(started["chef"], timeout=1)
    assert world.pids() == [] and not world.started


# -- the config -------------------------------------------------------------------------------


def test_config_is_complete_and_valid_for_the_schema(world):
    config = world.config()
    loaded = PackLoader(ROOT, Datastore(), config=config).config  # validates, as st2 does
    with open(os.path.join(ROOT, "config.schema.yaml"), encoding="utf-8") as handle:
        schema = yaml.safe_load(handle)
    assert set(config) == set(schema)
    for section, spec in schema.items():  # every key set on purpose, none left to defaults
        assert set(config[section]) == set(spec["properties"]), section
    assert loaded["group_defaults"]["chef_run_list"] == ["role[web]"]
    assert config["haproxy"]["health_checks"] is True  # serve_http
    assert config["dns"]["service_address"] == "127.0.0.1"
    assert world.config(chef={"converge_timeout": 7})["chef"]["converge_timeout"] == 7
    assert world.config()["chef"]["converge_timeout"] == 2  # overrides do not stick


# -- the wiring -------------------------------------------------------------------------------


def test_a_vm_created_through_novaclient_converges_serves_and_is_in_the_inventory(world):
    since = time.time()
    booted = create(world, "web-a1b2c3")
    assert booted.ok, booted
    address, port = booted.result["address"], booted.result["port"]
    assert address == "127.0.0.1" and port and port != world.server_port
    converged = converge(world, "web-a1b2c3", since)
    assert converged.ok and converged.result["run_list"] == ["role[web]"], converged

    # The VM is a real web server on 127.0.0.1 at the port its metadata names.
    assert get("http://%s:%d/" % (address, port)) == (200, "web-a1b2c3")
    assert run(world, "dns_add_record", name="web-a1b2c3", domain=world.zone,
               address=address).ok
    assert run(world, "lb_add_node", node="web-a1b2c3", address=address, port=port).ok
    assert run(world, "lb_add_node", node="web-a1b2c3", address=address, port=port,
               backend="api").ok
    assert world.http_get() == (200, "web-a1b2c3")
    assert world.http_get(backend="api") == (200, "web-a1b2c3")

    seen = world.inventory()
    assert [(s["name"], s["group"], s["node"], s["status"], s["address"])
            for s in seen.servers] == [("web-a1b2c3", GROUP, "web-a1b2c3", "ACTIVE", address)]
    assert seen.dns == {"web-a1b2c3.example.test": [address]}
    assert seen.dns_owners == {
        "web-a1b2c3.example.test": ['"heritage=autoscale,autoscale/owner=autoscale"']}
    assert seen.haproxy["web"]["web-a1b2c3"]["address"] == address
    assert seen.haproxy["web"]["web-a1b2c3"]["port"] == port
    assert set(seen.haproxy["api"]) == {"web-a1b2c3"}
    assert seen.chef_nodes == seen.chef_clients == ["web-a1b2c3"]
    assert seen.web_nodes == ["web-a1b2c3"]
    assert seen.node_names() == {"web-a1b2c3"}

    # Deleting the server stops its web node.
    pid = world.web_node("web-a1b2c3").pid
    assert run(world, "vm_destroy", group=GROUP, node="web-a1b2c3").ok
    assert not alive(pid)
    seen = world.inventory()
    assert seen.servers == [] and seen.web_nodes == []
    assert seen.chef_nodes == ["web-a1b2c3"]  # Chef keeps it: deleting it is the pack's job


def test_a_vm_whose_cloud_init_has_the_wrong_validator_key_never_registers(world):
    stranger = world_module.rsa.generate_private_key(public_exponent=65537, key_size=1024)
    config = world.config(chef={"validation_key": world_module._pem(stranger)})
    booted = create(world, "web-0badc0", config=config)
    assert booted.ok, booted  # the VM boots all the same
    assert "not the key of validator web-validator" in world.vms[
        booted.result["server_id"]].problem
    # A VM booted after it with the right key registers and converges: by then the first
    # one would have registered too, had it been able to.
    assert create(world, "web-0c0c0c").ok
    wait_until(lambda: (world.chef.node("web-0c0c0c") or {}).get("automatic"),
               what="the second VM's first Chef run")
    seen = world.inventory()
    assert seen.chef_nodes == seen.chef_clients == ["web-0c0c0c"]
    assert seen.web_nodes == ["web-0badc0", "web-0c0c0c"]


def test_reset_forgets_everything_the_pack_made(world):
    booted = create(world, "web-5e5e5e")
    address = booted.result["address"]
    run(world, "dns_add_record", name="web-5e5e5e", domain=world.zone, address=address)
    run(world, "lb_add_node", node="web-5e5e5e", address=address)
    run(world, "notify", group=GROUP, kind="info", cause="hello")
    pid = world.web_node("web-5e5e5e").pid
    world.fail("nova.create")
    world.reset()
    assert not alive(pid)
    seen = world.inventory()
    assert (seen.servers, seen.dns, seen.chef_nodes, seen.chef_clients, seen.slack_messages,
            seen.web_nodes) == ([], {}, [], [], 0, [])
    assert seen.haproxy == {"web": {}, "api": {}}
    assert world.failing == {}
    assert create(world, "web-5e5e5e").ok


# -- failure injection ------------------------------------------------------------------------


def test_every_failure_is_documented_and_unknown_ones_are_refused(world):
    assert set(FAILURES) == {"nova.create", "nova.active", "nova.delete", "chef.converge",
                             "chef.delete", "dns", "dns.hang", "haproxy", "slack"}
    with pytest.raises(ValueError, match="unknown failure"):
        world.fail("nova.reboot")
    with pytest.raises(ValueError, match="cannot fail"):
        world.fail("dns", times=1)


def test_nova_create(world):
    with world.failure("nova.create"):
        failed = create(world, "web-c0c0c0")
        assert not failed.ok and "Quota exceeded" in failed.result["error"], failed
        assert failed.result["server_id"] == ""
    assert create(world, "web-c0c0c0").ok


def test_nova_create_times_counts_creates(world):
    world.fail("nova.create", times=1)
    world.fail("slack", times=2)
    assert world.failing == {"nova.create": 1, "slack": 2}
    assert not create(world, "web-c1c1c1").ok
    assert world.failing == {"slack": 2}
    assert create(world, "web-c1c1c1").ok


def test_nova_active(world):
    with world.failure("nova.active"):
        failed = create(world, "web-e0e0e0")
    assert not failed.ok and "ERROR" in failed.result["error"], failed
    assert [s["status"] for s in world.inventory().servers] == ["ERROR"]
    assert world.inventory().chef_nodes == [] and world.inventory().web_nodes == []
    assert run(world, "vm_destroy", group=GROUP, node="web-e0e0e0",
               server_id=failed.result["server_id"]).ok
    assert create(world, "web-e0e0e0").ok


def test_nova_delete(world):
    assert create(world, "web-d0d0d0").ok
    with world.failure("nova.delete"):
        failed = run(world, "vm_destroy", group=GROUP, node="web-d0d0d0")
        assert not failed.ok and "Policy" in failed.result["error"], failed
    assert [s["name"] for s in world.inventory().servers] == ["web-d0d0d0"]
    assert run(world, "vm_destroy", group=GROUP, node="web-d0d0d0").ok
    assert world.inventory().servers == []


def test_chef_converge(world):
    since = time.time()
    with world.failure("chef.converge", times=1):
        assert create(world, "web-f0f0f0").ok
        assert world.failing == {}  # the one VM used it up
    failed = converge(world, "web-f0f0f0", since, converge_timeout=1)
    assert not failed.ok and "registered but" in failed.result["error"], failed
    assert world.inventory().chef_nodes == ["web-f0f0f0"]  # registered: an undo must delete it
    assert create(world, "web-f1f1f1").ok
    assert converge(world, "web-f1f1f1", since).ok


def test_a_node_registers_at_boot_and_converges_converge_after_later(world):
    world.converge_after = 0.4
    try:
        assert create(world, "web-f2f2f2").ok
        assert world.chef.node("web-f2f2f2")["automatic"] == {}  # registered, no run yet
        assert world.chef.has_client("web-f2f2f2")
        wait_until(lambda: world.chef.node("web-f2f2f2")["automatic"] != {},
                   what="web-f2f2f2's first Chef run")
        assert world.chef.node("web-f2f2f2")["run_list"] == ["role[web]"]
    finally:
        world.converge_after = 0


def test_chef_delete(world):
    assert create(world, "web-b0b0b0").ok
    with world.failure("chef.delete"):
        failed = run(world, "chef_delete_node", node="web-b0b0b0")
        assert not failed.ok and "403" in failed.result["error"], failed
    assert world.inventory().chef_nodes == ["web-b0b0b0"]
    assert run(world, "chef_delete_node", node="web-b0b0b0").ok
    seen = world.inventory()
    assert seen.chef_nodes == seen.chef_clients == []


def test_dns_stopped_then_back_with_its_records(world):
    assert run(world, "dns_add_record", name="web-aaaaaa", domain=world.zone,
               address="127.77.9.9").ok
    with world.failure("dns"):
        failed = run(world, "dns_add_record", name="web-bbbbbb", domain=world.zone,
                     address="127.77.9.10")
        assert not failed.ok, failed
        with pytest.raises(WorldError, match="heal it"):
            world.inventory()
    assert world.inventory().dns == {"web-aaaaaa.example.test": ["127.77.9.9"]}
    assert run(world, "dns_add_record", name="web-bbbbbb", domain=world.zone,
               address="127.77.9.10").ok


def test_an_ownership_record_left_alone_counts_as_the_packs(world):
    """A name reduced to its ownership record is still the pack's: a leak, not nothing."""
    assert run(world, "dns_add_record", name="web-0e0e0e", domain=world.zone,
               address="127.77.9.11").ok
    update = dns.update.UpdateMessage(world.zone, keyring=world.bind.keyring(),
                                      keyname=world.bind.key_name)
    update.delete("web-0e0e0e", "A")
    assert dns.query.tcp(update, LOOPBACK, port=world.bind.port, timeout=5).rcode() == 0
    seen = world.inventory()
    assert seen.dns == {"web-0e0e0e.example.test": []}
    assert seen.node_names() == {"web-0e0e0e"}
    # Someone else's records are not the pack's, and reset removes them too.
    world.seed_dns([("www", "A", "192.0.2.10"), ("www", "TXT", '"theirs"')])
    assert set(world.inventory().dns) == {"web-0e0e0e.example.test"}
    assert ("www.example.test", "TXT") in world.zone_records()
    world.reset()
    assert world.inventory().dns == {}
    assert not [key for key in world.zone_records() if key[0].startswith("www.")]


def test_dns_hang_times_out(world):
    config = world.config(dns={"timeout": 0.2})
    with world.failure("dns.hang"):
        failed = run(world, "dns_delete_record", config=config, name="web-aaaaaa",
                     domain=world.zone)
        assert not failed.ok and "0.2" in failed.result["error"], failed
    assert run(world, "dns_delete_record", config=config, name="web-aaaaaa",
               domain=world.zone).ok


def test_haproxy_socket_gone(world):
    with world.failure("haproxy"):
        failed = run(world, "lb_add_node", node="web-abcdef", address="127.77.9.9")
        assert not failed.ok, failed
        assert world.inventory().haproxy == {"web": {}, "api": {}}  # still readable
    assert run(world, "lb_add_node", node="web-abcdef", address="127.77.9.9").ok
    assert set(world.inventory().haproxy["web"]) == {"web-abcdef"}


def test_slack(world):
    with world.failure("slack"):
        said = run(world, "notify", group=GROUP, kind="info", cause="down")
        assert said.ok and said.result["delivered"] is False, said  # notify never fails
    said = run(world, "notify", group=GROUP, kind="info", cause="back")
    assert said.result["delivered"] is True, said
    assert world.inventory().slack_messages == 1
    assert "back" in world.slack.transcript()
