"""Compute (Nova): the real keystoneauth1 and python-novaclient against a protocol-level fake
Keystone + Nova (+ Glance and Neutron name lookups) on loopback; the actions run through the
st2 harness exactly as st2 runs them."""

import base64
import dataclasses
import json
import logging
import time
import types

import pytest
import requests
import yaml

from autoscale_core.backends.cloud_init import build_user_data
from autoscale_core.backends.nova import ComputeSettings
from autoscale_core.backends.nova_api import NovaCompute
from autoscale_core.errors import BackendError, ValidationError
from autoscale_core.ports.compute import ServerError, ServerSpec
from autoscale_core.store import ssh_public_keys
from sandbox.fake_openstack import FakeOpenStack
from st2harness import Datastore, PackLoader
from st2harness.loader import LoadedAction
from support.paths import ROOT

SSH_KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHpUQ2V0Z3JhbmRmYXRoZXJzY2xvY2s operator@example"
VALIDATION_KEY = ("-----BEGIN RSA PRIVATE KEY-----\n"
                  "MIIEpAIBAAKCAQEAvalidatorSecretLineThatMustNeverBeLogged0123456789\n"
                  "b3Blbi1zZXNhbWUtdmFsaWRhdG9yLWtleS1ib2R5LW5vdC1yZWFsLWp1c3QtdGVzdA==\n"
                  "-----END RSA PRIVATE KEY-----\n")
CLIENT_KEY = ("-----BEGIN RSA PRIVATE KEY-----\nMIIEclientKeyNeverOnAVm42\n"
              "-----END RSA PRIVATE KEY-----\n")
PASSWORD = "os-Passw0rd-never-logged"
APP_SECRET = "app-cred-Secret-never-logged"
APP_ID = "5c0ffee5c0ffee5c0ffee5c0ffee5c0f"
FAULT = "No valid host was found. There are not enough hosts available."
GROUP = "web"


@pytest.fixture(scope="module")
def openstack():
    with FakeOpenStack(password=PASSWORD, application_credential_id=APP_ID,
                       application_credential_secret=APP_SECRET,
                       regions=("RegionOne", "RegionTwo"), boot_delay=0.05,
                       delete_delay=0.05) as server:
        yield server


@pytest.fixture
def created():
    """What the fake's create hook saw: (name, address handed out) and admin passwords."""
    return types.SimpleNamespace(addresses=[], admin_passwords=[])


@pytest.fixture
def fake(openstack, created):
    """The module's fake OpenStack, reset: one server for all tests keeps the file fast."""
    openstack.reset()

    def on_create(info):  # the sandbox demo's hook: say where the VM's stand-in listens
        address = "127.0.0.%d" % (10 + len(created.addresses))
        created.addresses.append((info["name"], address))
        created.admin_passwords.append(info["admin_pass"])
        return address

    openstack.set_hooks(on_create=on_create)
    yield openstack
    openstack.set_hooks()


def config_for(fake, **openstack):
    section = {"auth_url": fake.auth_url, "auth_type": "v3applicationcredential",
               "application_credential_id": APP_ID, "application_credential_secret": APP_SECRET,
               "region_name": "RegionOne", "interface": "public",
               "compute_api_version": "2.79", "verify_tls": True, "boot_timeout": 10}
    section.update(openstack)
    return {
        "openstack": section,
        "chef": {"server_url": "https://chef.example.com/organizations/web",
                 "client_name": "stackstorm", "client_key": CLIENT_KEY,
                 "validation_client_name": "web-validator", "validation_key": VALIDATION_KEY},
        "dns": {"server": "127.0.0.1", "zone": "example.com", "tsig_key_name": "autoscale",
                "tsig_secret": "c2VjcmV0LXRzaWcta2V5LWZvci10ZXN0cw=="},
        "haproxy": {"runtime_api": "/run/haproxy/admin.sock"},
        "slack": {"token": "xoxb-not-a-real-token"},
    }


def datastore(ssh_key=SSH_KEY):
    store = Datastore()
    if ssh_key is not None:
        store.service("autoscale", "Operator").set_value("ssh_pub_key", ssh_key, local=False)
    return store


_LOADED = {}


class Pack(PackLoader):
    """The pack as st2 runs it, with each action's file loaded (with st2's import path) once
    per test module rather than once per run: the loading alone costs 0.2 s."""

    def action(self, name):
        if name not in _LOADED:
            _LOADED[name] = PackLoader.action(self, name)
        return LoadedAction(self, _LOADED[name].meta, _LOADED[name].cls)


def pack(fake, store=None, **openstack):
    return Pack(ROOT, store or datastore(), config=config_for(fake, **openstack))


def create(loader, node="web-a1b2c3", **params):
    values = dict(group=GROUP, node=node, flavor="m1.small", image="ubuntu-24.04",
                  network="private", chef_run_list=["role[web]"], chef_environment="production")
    values.update(params)
    return loader.action("vm_create").run(**values)


def settings_for(fake, **changes):
    settings = ComputeSettings.from_config(config_for(fake))
    return dataclasses.replace(settings, **changes)


def spec(node="web-a1b2c3", **changes):
    values = dict(group=GROUP, node=node, flavor="m1.small", image="ubuntu-24.04",
                  network="private", user_data=build_user_data([SSH_KEY], {"run_list": []}))
    values.update(changes)
    return ServerSpec(**values)


def posts(fake):
    return [r for r in fake.service_requests("compute")
            if r.method == "POST" and r.path.endswith("/servers")]


def token_requests(fake):
    return [r for r in fake.requests if r.path.endswith("/auth/tokens")]


# -- create ----------------------------------------------------------------------------------------


def test_create_boots_a_tagged_server_and_returns_its_address(fake, created):
    result = create(pack(fake))
    assert result.ok, result
    server_id = result.result["server_id"]
    assert result.result["status"] == "ACTIVE" and result.result["origin"] == "created"
    assert result.result["name"] == "web-a1b2c3" and result.result["node"] == "web-a1b2c3"
    # The address is the one the on_create hook handed out, read on the configured network.
    assert created.addresses == [("web-a1b2c3", "127.0.0.10")]
    assert result.result["address"] == "127.0.0.10"
    assert result.result["addresses"] == {"private": ["127.0.0.10"]}
    (server,) = fake.live_servers()
    assert server["id"] == server_id
    assert server["metadata"] == {"autoscale_group": "web", "autoscale_node": "web-a1b2c3"}
    body = posts(fake)[0].json()["server"]
    assert body["flavorRef"] == "2"
    assert body["imageRef"] in fake.images and fake.images[body["imageRef"]]["name"] == (
        "ubuntu-24.04")
    assert [fake.networks[n["uuid"]]["name"] for n in body["networks"]] == ["private"]
    assert "adminPass" not in json.dumps(result.result)


def test_user_data_is_cloud_config_with_the_ssh_key_and_the_chef_bootstrap(fake):
    result = create(pack(fake))
    assert result.ok, result
    text = fake.user_data(result.result["server_id"])
    assert text.startswith("#cloud-config\n")
    document = yaml.safe_load(text)  # what cloud-init does with it
    assert document["ssh_authorized_keys"] == [SSH_KEY]
    chef = document["chef"]
    assert chef["node_name"] == "web-a1b2c3" and chef["run_list"] == ["role[web]"]
    assert chef["environment"] == "production"
    assert chef["server_url"] == "https://chef.example.com/organizations/web"
    assert chef["validation_name"] == "web-validator"
    assert chef["validation_cert"] == VALIDATION_KEY
    assert CLIENT_KEY not in text  # the pack's own key never goes onto a VM


def test_password_auth_with_region_and_interface_uses_that_endpoint(fake):
    loader = pack(fake, auth_type="password", username=fake.username, password=PASSWORD,
                  project_name=fake.project_name, application_credential_id="",
                  application_credential_secret="", region_name="RegionTwo",
                  interface="internal")
    result = create(loader)
    assert result.ok, result
    auth = token_requests(fake)[0].json()["auth"]
    assert auth["identity"]["methods"] == ["password"]
    assert auth["scope"]["project"]["name"] == fake.project_name
    assert fake.endpoint_hits and set(fake.endpoint_hits) <= {
        ("RegionTwo", "internal", "compute"), ("RegionTwo", "internal", "image"),
        ("RegionTwo", "internal", "network")}


def test_application_credential_auth_sends_no_scope(fake):
    assert create(pack(fake)).ok
    auth = token_requests(fake)[0].json()["auth"]
    assert auth["identity"] == {"methods": ["application_credential"], "application_credential": {
        "id": APP_ID, "secret": APP_SECRET}}
    assert "scope" not in auth


def test_every_nova_call_carries_the_token_and_the_microversion(fake):
    loader = pack(fake)
    assert create(loader).ok
    assert loader.action("vm_list").run(group=GROUP).ok
    assert loader.action("vm_destroy").run(group=GROUP, node="web-a1b2c3").ok
    calls = fake.service_requests("compute")
    assert len(calls) > 5
    for call in calls:
        assert call.headers.get("x-auth-token") in fake.tokens
        assert call.headers["openstack-api-version"] == "compute 2.79"
        assert call.headers["x-openstack-nova-api-version"] == "2.79"
    # keystoneauth took the catalog's endpoint as it is: no version discovery round trip.
    assert not [c for c in calls if c.path.endswith(("/compute", "/compute/", "/v2.1",
                                                     "/v2.1/"))]


def test_the_fake_checks_token_and_microversion_on_raw_requests(fake):
    """The fake is what proves the headers above: raw HTTP without them is refused."""
    auth = {"auth": {"identity": {"methods": ["application_credential"],
                                  "application_credential": {"id": APP_ID,
                                                             "secret": APP_SECRET}}}}
    issued = requests.post(fake.auth_url + "/auth/tokens", json=auth, timeout=5)
    assert issued.status_code == 201
    token = issued.headers["X-Subject-Token"]
    url = fake.endpoint() + "/servers/detail"
    no_version = requests.get(url, headers={"X-Auth-Token": token}, timeout=5)
    assert no_version.status_code == 400 and "microversion" in no_version.text
    no_token = requests.get(url, headers={"OpenStack-API-Version": "compute 2.79"}, timeout=5)
    assert no_token.status_code == 401
    bad_token = requests.get(url, headers={"X-Auth-Token": "nope",
                                           "X-OpenStack-Nova-API-Version": "2.79"}, timeout=5)
    assert bad_token.status_code == 401
    too_new = requests.get(url, headers={"X-Auth-Token": token,
                                         "OpenStack-API-Version": "compute 2.200"}, timeout=5)
    assert too_new.status_code == 406 and "maximum is 2.96" in too_new.text
    good = requests.get(url, headers={"X-Auth-Token": token,
                                      "OpenStack-API-Version": "compute 2.79"}, timeout=5)
    assert good.status_code == 200 and good.json() == {"servers": []}
    assert good.headers["OpenStack-API-Version"] == "compute 2.79"
    # At 2.37+ a create must name its networks, and the image proxy API is gone (2.36).
    headers = {"X-Auth-Token": token, "OpenStack-API-Version": "compute 2.79"}
    no_networks = requests.post(fake.endpoint() + "/servers", headers=headers, timeout=5, json={
        "server": {"name": "x", "flavorRef": "2", "imageRef": next(iter(fake.images))}})
    assert no_networks.status_code == 400 and "networks" in no_networks.text
    assert requests.get(fake.endpoint() + "/images", headers=headers,
                        timeout=5).status_code == 404


def test_image_and_network_by_id(fake):
    image_id = fake.add_image("debian-12")
    network_id = fake.add_network("backend")
    result = create(pack(fake), image=image_id, network=network_id, flavor="3")
    assert result.ok, result
    body = posts(fake)[0].json()["server"]
    assert (body["imageRef"], body["flavorRef"]) == (image_id, "3")
    assert body["networks"] == [{"uuid": network_id}]
    assert fake.service_requests("network") == []  # an id needs no Neutron lookup
    assert result.result["addresses"] == {"backend": [result.result["address"]]}


@pytest.mark.parametrize("field,value,message", [
    ("flavor", "m9.huge", "Nova: find flavor m9.huge: no flavor has this name or id"),
    ("image", "centos-5", "Glance: find image centos-5: No Image matching centos-5"),
    ("network", "nowhere", "Neutron: find network nowhere: No Network matching nowhere"),
])
def test_unknown_flavor_image_or_network_is_named(fake, field, value, message):
    result = create(pack(fake), **{field: value})
    assert not result.ok and message in result.result["error"], result
    assert posts(fake) == [] and fake.live_servers() == []


def test_a_second_create_of_the_same_node_reuses_its_server(fake):
    loader = pack(fake)
    first = create(loader)
    second = create(loader)
    assert first.ok and second.ok
    assert second.result["server_id"] == first.result["server_id"]
    assert second.result["origin"] == "existing" and second.result["address"] == "127.0.0.10"
    assert len(posts(fake)) == 1 and len(fake.live_servers()) == 1


# -- create failures -------------------------------------------------------------------------------


def test_error_state_reports_novas_fault_and_names_the_server(fake):
    fake.set_boot_fault(FAULT)
    loader = pack(fake)
    result = create(loader)
    assert not result.ok
    (server,) = fake.live_servers()
    assert result.result["error"] == (
        "Nova: boot server web-a1b2c3 (%s): the server went to ERROR: %s" % (server["id"], FAULT))
    assert result.result["server_id"] == server["id"] and not result.result["retryable"]
    # The undo the workflow runs: the failed server goes.
    cleanup = loader.action("vm_destroy").run(group=GROUP, node="web-a1b2c3")
    assert cleanup.ok and cleanup.result["deleted"] == [server["id"]]
    assert fake.live_servers() == []


def test_boot_timeout(fake):
    fake.set_boot_delay(30)
    result = create(pack(fake), boot_timeout=1)
    assert not result.ok
    assert "still BUILD after 1 s (boot timeout)" in result.result["error"]
    assert result.result["server_id"] == fake.live_servers()[0]["id"]


@pytest.mark.parametrize("status", [403, 413])
def test_quota_exceeded_is_clear_and_not_retried(fake, status):
    fake.set_quota(0, status=status)
    result = create(pack(fake))
    assert not result.ok
    assert result.result["error"].startswith("Nova: create server web-a1b2c3: Quota exceeded "
                                             "for instances: Requested 1, but already used 0 "
                                             "of 0 instances (HTTP %d)" % status)
    assert result.result["retryable"] is False and result.result["server_id"] == ""
    assert len(posts(fake)) == 1 and fake.live_servers() == []


@pytest.mark.parametrize("auth", [
    dict(auth_type="password", username="autoscale", password="wrong-Passw0rd-typed",
         project_name="autoscale"),
    dict(application_credential_secret="wrong-App-secret-typed"),
])
def test_refused_credentials_are_reported_without_the_secret(fake, auth):
    result = create(pack(fake, **auth))
    assert not result.ok
    error = result.result["error"]
    assert error.startswith("Keystone: authenticate ") and "credentials refused" in error
    assert "HTTP 401" in error and "openstack.auth_type" in error
    for secret in ("wrong-Passw0rd-typed", "wrong-App-secret-typed", PASSWORD, APP_SECRET):
        assert secret not in json.dumps(result.result)
    assert len(token_requests(fake)) == 1  # a refused credential is not retried
    assert fake.service_requests("compute") == []


def test_a_catalog_without_the_region_is_named(fake):
    result = create(pack(fake, region_name="RegionNine"))
    assert not result.ok
    assert result.result["error"].startswith(
        "Keystone: find compute endpoint (interface public, region RegionNine): the service "
        "catalog has none")


def test_missing_ssh_key_is_a_clear_error_and_nothing_is_created(fake):
    result = create(pack(fake, store=datastore(ssh_key=None)))
    assert not result.ok
    assert "datastore key ssh_pub_key is not set" in result.result["error"]
    assert 'st2 key set ssh_pub_key' in result.result["error"]
    assert fake.requests == []  # not even a token


def test_a_private_key_in_ssh_pub_key_is_refused():
    with pytest.raises(ValidationError, match="does not hold an OpenSSH public key"):
        ssh_public_keys(VALIDATION_KEY)
    assert ssh_public_keys(SSH_KEY + "\n\n" + SSH_KEY.replace("operator", "other")) == [
        SSH_KEY, SSH_KEY.replace("operator", "other")]


@pytest.mark.parametrize("params,message", [
    (dict(node="web-1;reboot"), "is not a DNS label"),
    (dict(node="api-a1b2c3"), "must start with its group's name"),
    (dict(group="Web"), "is not a DNS label"),
    (dict(flavor="m1.small\nX-Evil: 1"), "one line"),
    (dict(image=""), "image must be a name or id"),
    (dict(chef_run_list=["role[web]\nrecipe[evil]"]), "Chef run list entry"),
])
def test_bad_input_is_refused_before_any_request(fake, params, message):
    result = create(pack(fake), **params)
    assert not result.ok and message in result.result["error"], result
    assert fake.requests == []


def test_lost_create_answer_finds_the_server_instead_of_creating_another(fake):
    fake.set_create_answer(delay=1.5)  # the server exists, the answer comes too late
    compute = NovaCompute(settings_for(fake, request_timeout=0.5))
    boot = compute.boot(spec(), 10)
    assert boot.origin == "recovered" and boot.server.status == "ACTIVE"
    assert len(posts(fake)) == 1 and len(fake.live_servers()) == 1


def test_a_gateway_error_after_the_create_is_recovered_through_the_action(fake):
    fake.set_create_answer(status=504)
    result = create(pack(fake))
    assert result.ok and result.result["origin"] == "recovered", result
    assert len(posts(fake)) == 1 and len(fake.live_servers()) == 1


def test_lost_create_that_made_nothing_is_reported_not_retried(fake):
    fake.inject("POST", "/servers", 503, times=5)
    compute = NovaCompute(settings_for(fake, recover_wait=0.5))
    with pytest.raises(BackendError) as failure:
        compute.boot(spec(), 10)
    assert "run vm_destroy group=web node=web-a1b2c3" in str(failure.value)
    assert "injected failure (HTTP 503)" in str(failure.value)
    assert len(posts(fake)) == 1 and fake.live_servers() == []


def test_transient_read_errors_are_retried(fake):
    fake.inject("GET", r"/servers/[0-9a-f-]+", 503, times=2)
    boot = NovaCompute(settings_for(fake), sleep=lambda s: time.sleep(s / 10)).boot(spec(), 10)
    assert boot.server.status == "ACTIVE"


def test_an_expired_token_is_renewed(fake):
    compute = NovaCompute(settings_for(fake))
    compute.boot(spec(), 10)
    fake.expire_tokens()
    assert [s.node for s in compute.servers(GROUP)] == ["web-a1b2c3"]
    assert len(token_requests(fake)) == 2


# -- destroy -----------------------------------------------------------------------------------


def test_destroy_waits_until_gone_and_a_gone_server_is_success(fake):
    loader = pack(fake)
    server_id = create(loader).result["server_id"]
    fake.set_delete_delay(0.6)  # still listed, "deleting", for a while
    destroy = loader.action("vm_destroy")
    result = destroy.run(group=GROUP, server_id=server_id)
    assert result.ok and result.result["deleted"] == [server_id], result
    assert fake.live_servers() == []
    again = destroy.run(group=GROUP, server_id=server_id)  # Nova now answers 404
    assert again.ok and again.result == {"group": GROUP, "node": "", "server_id": server_id,
                                         "deleted": [], "already_gone": True}
    by_node = destroy.run(group=GROUP, node="web-a1b2c3")
    assert by_node.ok and by_node.result["already_gone"]
    assert [r.method for r in fake.service_requests("compute")].count("DELETE") == 1


def test_destroy_never_touches_another_groups_server(fake):
    loader = pack(fake)
    server_id = create(loader, group="api", node="api-a1b2c3").result["server_id"]
    result = loader.action("vm_destroy").run(group=GROUP, server_id=server_id)
    assert not result.ok
    assert "not in group web" in result.result["error"]
    assert len(fake.live_servers()) == 1


def test_destroy_timeout(fake):
    server_id = NovaCompute(settings_for(fake)).boot(spec(), 10).server.id
    fake.set_delete_delay(30, server_id)
    with pytest.raises(ServerError, match="still there 1 s after the delete") as failure:
        NovaCompute(settings_for(fake)).destroy(server_id, GROUP, 1)
    assert failure.value.retryable and failure.value.server_id == server_id


@pytest.mark.parametrize("params,message", [
    (dict(), "give the node, the server id, or both"),
    (dict(server_id="../../os-hosts"), "is not a Nova server id"),
    (dict(node="web-1\nx"), "is not a DNS label"),
])
def test_destroy_input_is_checked_before_any_request(fake, params, message):
    result = pack(fake).action("vm_destroy").run(group=GROUP, **params)
    assert not result.ok and message in result.result["error"]
    assert fake.requests == []


# -- list ------------------------------------------------------------------------------------------


def test_list_shows_only_the_groups_servers_across_pages(fake):
    fake.set_page_limit(2)  # Nova pages listings; every page must be read
    loader = pack(fake)
    for node in ("web-aaaaaa", "web-bbbbbb", "web-cccccc"):
        assert create(loader, node=node).ok
    # A group whose name starts like ours, and a server someone made by hand.
    assert create(loader, group="web-api", node="web-api-dddddd").ok
    fake.add_server("web-handmade")
    result = loader.action("vm_list").run(group=GROUP)
    assert result.ok
    listed = result.result["servers"]
    assert result.result["count"] == 3
    assert [s["node"] for s in listed] == ["web-aaaaaa", "web-bbbbbb", "web-cccccc"]
    assert {s["group"] for s in listed} == {GROUP}
    first = listed[0]
    assert set(first) == {"id", "name", "status", "group", "node", "task_state", "addresses",
                          "fault", "created", "port"}
    assert first["port"] is None  # no autoscale_port metadata: the config's server_port
    assert first["status"] == "ACTIVE" and first["addresses"]["private"]
    other = loader.action("vm_list").run(group="web-api")
    assert [s["node"] for s in other.result["servers"]] == ["web-api-dddddd"]
    name_filters = {r.query.get("name", [""])[0] for r in fake.service_requests("compute")
                    if r.path.endswith("/servers/detail")}
    assert "^web-" in name_filters


# -- settings ------------------------------------------------------------------------------------


@pytest.mark.parametrize("change,message", [
    (dict(auth_url=""), "openstack.auth_url is missing"),
    (dict(auth_url="keystone:5000"), "openstack.auth_url must be an http(s) URL"),
    (dict(auth_type="token"), "openstack.auth_type must be one of"),
    (dict(application_credential_secret=""), "openstack.application_credential_secret is "
                                             "missing"),
    (dict(auth_type="password", username="u", password="p"), "openstack.project_name is "
                                                             "missing"),
    (dict(compute_api_version="2.x"), "openstack.compute_api_version must be"),
    (dict(compute_api_version="3.1"), "openstack.compute_api_version must be"),
    (dict(interface="private"), "openstack.interface must be one of"),
    (dict(boot_timeout=0), "openstack.boot_timeout"),
])
def test_settings_are_checked(fake, change, message):
    config = config_for(fake)
    config["openstack"].update(change)
    with pytest.raises(ValidationError, match=message.replace("(", r"\(").replace(")", r"\)")):
        ComputeSettings.from_config(config)


def test_a_microversion_novaclient_does_not_know_is_a_config_error(fake):
    result = pack(fake, compute_api_version="2.999").action("vm_list").run(group=GROUP)
    assert not result.ok and "openstack.compute_api_version" in result.result["error"]


def test_settings_repr_hides_secrets(fake):
    text = repr(ComputeSettings.from_config(config_for(fake, password=PASSWORD)))
    assert APP_SECRET not in text and PASSWORD not in text
    assert VALIDATION_KEY not in repr(spec(user_data=build_user_data(
        [SSH_KEY], {"validation_cert": VALIDATION_KEY})))


# -- secrets and side effects --------------------------------------------------------------------


def test_no_secret_in_any_log_record_or_result(fake, created, caplog):
    caplog.set_level(logging.DEBUG)
    loader = pack(fake)
    outputs = []
    ok = create(loader)
    outputs.append(ok)
    fake.set_boot_fault(FAULT)
    outputs.append(create(loader, node="web-bbbbbb"))
    fake.set_boot_fault(None)
    outputs.append(loader.action("vm_list").run(group=GROUP))
    outputs.append(loader.action("vm_destroy").run(group=GROUP, node="web-a1b2c3"))
    outputs.append(create(pack(fake, application_credential_secret="wrong-App-secret-typed")))
    outputs.append(create(pack(fake, auth_type="password", username="autoscale",
                               password=PASSWORD + "x", project_name="autoscale")))
    assert ok.ok and not outputs[1].ok and outputs[2].ok and outputs[3].ok
    assert not outputs[4].ok and not outputs[5].ok

    # The secrets did travel (so this test can fail): in user data and in the create answer.
    sent = [r.json()["server"]["user_data"] for r in posts(fake)]
    assert all(base64.b64decode(data).decode().count("validatorSecretLine") == 1
               for data in sent)
    assert len(created.admin_passwords) == 2
    logged = "\n".join(record.getMessage() for record in caplog.records)
    assert "REQ: curl" in logged and "RESP BODY" in logged  # keystoneauth's DEBUG logs ran
    results = json.dumps([list(output) for output in outputs])
    secrets = [VALIDATION_KEY, "validatorSecretLine", CLIENT_KEY, PASSWORD, APP_SECRET,
               "wrong-App-secret-typed", PASSWORD + "x"] + sent + [
        data[i:i + 40] for data in sent for i in range(0, len(data) - 40, 40)] + (
        created.admin_passwords)
    for secret in secrets:
        assert secret not in logged, secret[:20]
        assert secret not in results, secret[:20]


def test_novaclient_writes_no_cache_files(fake, tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    loader = pack(fake)
    assert create(loader).ok and loader.action("vm_list").run(group=GROUP).ok
    assert list(tmp_path.iterdir()) == []



def test_a_server_being_deleted_is_not_reused(fake):
    loader = pack(fake)
    old = create(loader).result["server_id"]
    fake.set_delete_delay(30, old)  # Nova still lists it, "deleting"
    fake.delete_server(old)
    again = create(loader)
    assert again.ok and again.result["origin"] == "created"
    assert again.result["server_id"] != old


@pytest.mark.parametrize("value, port", [("8081", 8081), ("0", None), ("70000", None),
                                         ("http", None), (None, None)])
def test_a_node_may_name_its_port_in_metadata(value, port):
    from autoscale_core.backends.nova_api import NovaCompute
    from autoscale_core.ports.compute import PORT_KEY

    raw = type("Raw", (), {"_info": {"id": "i", "name": "web-aaaaaa",
                                     "metadata": {} if value is None else {PORT_KEY: value}}})
    assert NovaCompute._server(raw).port == port
