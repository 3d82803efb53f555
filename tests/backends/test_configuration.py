"""Chef backend: the signing protocol 1.3 client against a fake Chef server that verifies every
request's signature as erchef does; converge detection, node and client deletion, retries,
the cloud-init bootstrap section, and secrets kept out of logs and results."""

import base64
import calendar
import dataclasses
import json
import logging
import os
import re
import time

import pytest
import requests
import yaml
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from autoscale_core.backends.chef import ChefSettings, cloud_config
from autoscale_core.backends.chef_api import (
    ChefServer,
    ConvergeTimeout,
    configuration,
    validate_since,
)
from autoscale_core.backends.chef_signing import canonical_path, load_private_key, sign_request
from autoscale_core.errors import BackendError, ValidationError
from autoscale_core.ports.provisioner import Provisioner as Configuration
from sandbox.fake_chef import FakeChefServer, server_canonical_path
from sandbox.net import free_port
from st2harness import Datastore, PackLoader
from support.paths import ROOT
from support.waiting import returns

CLIENT = "stackstorm"
VALIDATOR = "web-validator"
EMPTY_BODY_SHA256 = "47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU="


def new_key():
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def pem(key, traditional=True):
    fmt = (serialization.PrivateFormat.TraditionalOpenSSL if traditional
           else serialization.PrivateFormat.PKCS8)
    return key.private_bytes(serialization.Encoding.PEM, fmt,
                             serialization.NoEncryption()).decode("ascii")


@pytest.fixture(scope="module")
def keys():
    """The pack's client key, the organisation's validator key, and a stranger's key."""
    return {"client": new_key(), "validator": new_key(), "other": new_key()}


@pytest.fixture(scope="module")
def chef_server():
    # One server for the module (stopping one takes half a second); each test resets it.
    with FakeChefServer(org="web") as server:
        yield server


@pytest.fixture
def chef(chef_server, keys):
    chef_server.reset()
    chef_server.add_client(CLIENT, keys["client"].public_key())
    chef_server.add_client(VALIDATOR, keys["validator"].public_key(), validator=True,
                           permissions=("create",))
    return chef_server


def chef_section(server_url, keys, **overrides):
    section = {
        "server_url": server_url,
        "client_name": CLIENT,
        "client_key": pem(keys["client"]),
        "validation_client_name": VALIDATOR,
        "validation_key": pem(keys["validator"]),
        "converge_timeout": 1,
        "verify_tls": True,
    }
    section.update(overrides)
    return section


def fast(settings, **overrides):
    # Short timeouts keep failure tests quick; production: 10 s x 3, polls every 10 s.
    values = dict(timeout=0.5, attempts=3, retry_delay=0.01, poll_interval=0.05)
    values.update(overrides)
    return dataclasses.replace(settings, **values)


def settings_for(server, keys, **overrides):
    return fast(ChefSettings.from_config({"chef": chef_section(server.org_url, keys)}),
                **overrides)


@pytest.fixture
def client(chef, keys):
    with ChefServer(settings_for(chef, keys)) as server:
        yield server


def pack_config(server_url, keys, **chef_overrides):
    with open(os.path.join(ROOT, "autoscale.yaml.example"), encoding="utf-8") as handle:
        config = yaml.safe_load(handle)
    config["chef"] = chef_section(server_url, keys, **chef_overrides)
    return config


def run_action(action, config, **params):
    return PackLoader(ROOT, Datastore(), config=config).action(action).run(**params)


def statuses(server, method=None):
    return [status for _, m, _, status in server.log if method in (None, m)]


# -- the signing protocol ----------------------------------------------------------------------


def test_signed_headers_follow_protocol_1_3(keys):
    key = keys["client"]
    epoch = calendar.timegm((2024, 1, 31, 12, 0, 5, 0, 0, 0))
    headers = sign_request(key, CLIENT, "delete", "/organizations/web//nodes/web-1/", b"",
                           epoch, 1)
    assert headers["X-Ops-Sign"] == "algorithm=sha256;version=1.3;"
    assert headers["X-Ops-Userid"] == CLIENT
    assert headers["X-Ops-Timestamp"] == "2024-01-31T12:00:05Z"
    assert headers["X-Ops-Content-Hash"] == EMPTY_BODY_SHA256
    assert headers["X-Ops-Server-API-Version"] == "1"
    lines = [headers["X-Ops-Authorization-%d" % i] for i in range(1, 7)]
    assert "X-Ops-Authorization-7" not in headers  # 256 bytes: 344 base64 characters
    assert [len(line) for line in lines] == [60, 60, 60, 60, 60, 44]
    # Written out by hand, as Chef's docs and chef_authn.hrl spell the 1.3 canonical request.
    expected = ("Method:DELETE\nPath:/organizations/web/nodes/web-1\n"
                "X-Ops-Content-Hash:" + EMPTY_BODY_SHA256 + "\n"
                "X-Ops-Sign:version=1.3\nX-Ops-Timestamp:2024-01-31T12:00:05Z\n"
                "X-Ops-UserId:stackstorm\nX-Ops-Server-API-Version:1")
    key.public_key().verify(base64.b64decode("".join(lines)), expected.encode(),
                            padding.PKCS1v15(), hashes.SHA256())
    # PKCS#1 v1.5 is deterministic: the same request signs the same.
    assert sign_request(key, CLIENT, "DELETE", "/organizations/web/nodes/web-1", b"",
                        epoch, 1) == headers


@pytest.mark.parametrize("path, canonical", [
    ("/", "/"),
    ("//", "/"),
    ("/organizations/web/nodes/web-1", "/organizations/web/nodes/web-1"),
    ("/organizations//web///nodes/web-1/", "/organizations/web/nodes/web-1"),
    ("/organizations/web/nodes?q=x", "/organizations/web/nodes"),
])
def test_client_and_fake_canonicalise_paths_alike(path, canonical):
    # Two implementations, one after mixlib-authentication and one after chef_authn.
    assert canonical_path(path) == canonical
    assert server_canonical_path(path) == canonical


def test_requests_are_signed_and_accepted(chef, client):
    chef.register_node("web-a1b2c3", ohai_time=1700000000.5, run_list=["role[web]"],
                       environment="production")
    before = int(time.time())
    status = client.node_status("web-a1b2c3")
    after = int(time.time()) + 1
    assert status.registered and status.ohai_time == 1700000000.5
    assert (status.environment, status.run_list) == ("production", ["role[web]"])
    assert chef.log == [(CLIENT, "GET", "/organizations/web/nodes/web-a1b2c3", 200)]
    sent = chef.requests[-1].headers
    assert sent["accept"] == "application/json"
    assert sent["x-chef-version"]
    assert sent["x-ops-sign"] == "algorithm=sha256;version=1.3;"
    assert sent["x-ops-server-api-version"] == "1"
    assert sent["x-ops-content-hash"] == EMPTY_BODY_SHA256
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", sent["x-ops-timestamp"])
    # Signed with the time of the request (whole seconds).
    signed_at = calendar.timegm(time.strptime(sent["x-ops-timestamp"], "%Y-%m-%dT%H:%M:%SZ"))
    assert before <= signed_at <= after
    assert client.node_exists("web-a1b2c3") and not client.node_exists("web-zzzzzz")


def test_a_pkcs8_key_and_a_key_stored_on_one_line_work_too(chef, keys):
    for text in (pem(keys["client"], traditional=False),
                 pem(keys["client"]).strip().replace("\n", "\\n")):
        settings = dataclasses.replace(settings_for(chef, keys), client_key=text)
        with ChefServer(settings) as server:
            assert server.node_status("web-none01").registered is False
    assert statuses(chef) == [404, 404]


def test_a_wrong_key_is_refused_with_a_clear_error_and_not_retried(chef, keys):
    settings = dataclasses.replace(settings_for(chef, keys), client_key=pem(keys["other"]))
    with ChefServer(settings) as server, pytest.raises(BackendError) as caught:
        server.node_status("web-a1b2c3")
    message = str(caught.value)
    assert message == (
        "Chef: read node web-a1b2c3: the server refused the request signature (401 Invalid "
        "signature for user or client 'stackstorm'): check chef.client_name, chef.client_key "
        "and this host's clock")
    assert not caught.value.retryable
    assert "PRIVATE KEY" not in message and pem(keys["other"]) not in message
    assert statuses(chef) == [401]


def test_an_unknown_client_is_refused(chef, keys):
    settings = dataclasses.replace(settings_for(chef, keys), client_name="nobody")
    with ChefServer(settings) as server, pytest.raises(BackendError, match=(
            r"401 Failed to authenticate as 'nobody'\. Ensure that your node_name and client "
            r"key are correct")):
        server.delete_node("web-a1b2c3")


def test_a_stale_timestamp_is_refused_and_a_skew_under_15_minutes_is_not(chef, keys):
    settings = settings_for(chef, keys)
    with ChefServer(settings, clock=lambda: time.time() - 15 * 60 - 5) as server:
        with pytest.raises(BackendError, match=(
                r"401 Failed to authenticate as stackstorm\. Synchronize the clock on your "
                r"host\.\): check chef\.client_name, chef\.client_key and this host's clock")):
            server.node_status("web-a1b2c3")
    with ChefServer(settings, clock=lambda: time.time() + 14 * 60) as server:
        assert server.node_status("web-a1b2c3").registered is False
    assert statuses(chef) == [401, 404]


# -- the fake checks what the real server checks -------------------------------------------------


def send(chef, method, path, headers, body=b""):
    return requests.request(method, chef.url + path, headers=headers, data=body, timeout=5)


def test_the_fake_refuses_whatever_the_signature_does_not_cover(chef, keys):
    key, path = keys["client"], "/organizations/web/nodes/web-a1b2c3"
    chef.register_node("web-a1b2c3", ohai_time=1.0)
    chef.register_node("web-b1b2c3", ohai_time=1.0)

    def signed(method="GET", signed_path=path, body=b"", epoch=None, version=1):
        return sign_request(key, CLIENT, method, signed_path, body, epoch or time.time(),
                            version)

    assert send(chef, "GET", path, signed()).status_code == 200
    # Another node than the one signed for.
    answer = send(chef, "GET", "/organizations/web/nodes/web-b1b2c3", signed())
    assert answer.status_code == 401
    assert answer.json() == {"error": ["Invalid signature for user or client 'stackstorm'"]}
    # Another method than the one signed for.
    assert send(chef, "DELETE", path, signed("GET")).status_code == 401
    # Another body than the one hashed: the server hashes what it received.
    headers = signed("DELETE", body=b"{}")
    assert send(chef, "DELETE", path, headers, body=b"{\"x\":1}").status_code == 401
    # Another API version header than the one signed.
    headers = dict(signed(), **{"X-Ops-Server-API-Version": "2"})
    assert send(chef, "GET", path, headers).status_code == 401
    # A signature line missing.
    headers = signed()
    del headers["X-Ops-Authorization-6"]
    assert send(chef, "GET", path, headers).status_code == 401
    # Unsupported protocol, API version, missing and malformed headers.
    headers = dict(signed(), **{"X-Ops-Sign": "algorithm=sha1;version=1.1"})
    assert send(chef, "GET", path, headers).json() == {
        "error": ["Unsupported authentication protocol version"]}
    assert send(chef, "GET", path, dict(signed(), **{"X-Ops-Server-API-Version": "9"})
                ).status_code == 406
    headers = signed()
    del headers["X-Ops-Userid"], headers["X-Ops-Content-Hash"]
    answer = send(chef, "GET", path, headers)
    assert (answer.status_code, answer.json()) == (400, {"error": [
        "missing required authentication header(s) 'X-Ops-UserId', 'X-Ops-Content-Hash'"]})
    headers = dict(signed(), **{"X-Ops-Timestamp": "yesterday"})
    assert send(chef, "GET", path, headers).status_code == 401
    # The node's own client: the fake never saw its private key.
    headers = sign_request(keys["other"], "web-a1b2c3", "GET", path, b"", time.time(), 1)
    assert send(chef, "GET", path, headers).status_code == 401
    assert chef.node("web-b1b2c3") is not None  # nothing was deleted on the way


# -- waiting for the first converge --------------------------------------------------------------


def test_a_converged_node_is_found_at_once(chef, client):
    since = time.time() - 120
    chef.register_node("web-c0ffee", ohai_time=since + 60)
    status = client.wait_converged("web-c0ffee", since, timeout=5)
    assert status.converged_since(since) and status.ohai_time == since + 60
    assert statuses(chef) == [200]


def test_a_node_that_registers_and_converges_later_is_waited_for(chef, client):
    since = time.time() - 1
    chef.boot_node("web-b00t01", register_after=0.2, converge_after=0.5,
                   run_list=["role[web]"])
    status = client.wait_converged("web-b00t01", since, timeout=30)
    assert status.registered and status.ohai_time >= since and status.run_list == ["role[web]"]
    seen = statuses(chef)
    # Not there, then there without a finished run, then converged.
    assert seen[0] == 404 and seen[-1] == 200 and 200 in seen[:-1]
    assert len(seen) >= 4


def test_a_node_that_never_registers_times_out_saying_so(chef, client):
    with pytest.raises(ConvergeTimeout) as caught:
        returns(lambda: client.wait_converged("web-n0n0n0", time.time(), timeout=0.4))
    assert str(caught.value).startswith(
        "Chef: wait for converge web-n0n0n0: no converge within 0.4 s: the node never "
        "registered with the Chef server")
    assert caught.value.as_dict()["registered"] is False
    assert set(statuses(chef)) == {404} and len(chef.log) >= 3


def test_a_node_that_registers_but_never_converges_times_out_saying_so(chef, client):
    chef.boot_node("web-stuck1", register_after=0, converge_after=None)
    with pytest.raises(ConvergeTimeout) as caught:
        client.wait_converged("web-stuck1", time.time() - 5, timeout=0.3)
    assert str(caught.value) == (
        "Chef: wait for converge web-stuck1: no converge within 0.3 s: the node registered "
        "but no Chef run of it has finished yet")
    assert caught.value.as_dict()["registered"] is True


def test_a_stale_node_of_the_same_name_is_not_converged(chef, client):
    since = calendar.timegm((2024, 1, 31, 12, 0, 0, 0, 0, 0))
    chef.register_node("web-0ld0ld", ohai_time=since - 3600)
    assert not client.node_status("web-0ld0ld").converged_since(since)
    with pytest.raises(ConvergeTimeout) as caught:
        client.wait_converged("web-0ld0ld", since, timeout=0.2)
    assert str(caught.value).endswith(
        "the node registered but its last finished Chef run began at 2024-01-31T11:00:00Z, "
        "before the VM was created (2024-01-31T12:00:00Z)")
    assert caught.value.as_dict()["ohai_time"] == since - 3600
    # The ISO time Nova reports works as well as epoch seconds.
    assert validate_since("2024-01-31T12:00:00Z") == since
    assert validate_since("2024-01-31T12:00:00.000000Z") == since


def test_waiting_rides_out_server_errors(chef, keys):
    chef.register_node("web-f1aky1", ohai_time=time.time())
    chef.fail_next(3, status=503, method="GET")
    with ChefServer(settings_for(chef, keys, attempts=1)) as server:
        status = server.wait_converged("web-f1aky1", time.time() - 60, timeout=30)
    assert status.registered
    assert statuses(chef) == [503, 503, 503, 200]


def test_waiting_ends_at_once_on_an_authentication_error(chef, keys):
    settings = dataclasses.replace(settings_for(chef, keys), client_key=pem(keys["other"]))
    with ChefServer(settings) as server, pytest.raises(BackendError, match="401"):
        server.wait_converged("web-a1b2c3", time.time(), timeout=5)
    assert statuses(chef) == [401]


# -- deleting nodes and clients ----------------------------------------------------------------


def test_delete_removes_node_and_client_and_404s_are_success(chef, client):
    chef.register_node("web-d31e7e", ohai_time=time.time())
    assert chef.has_client("web-d31e7e")
    removal = client.delete_node("web-d31e7e")
    assert removal.as_dict() == {"node": "web-d31e7e", "node_deleted": True,
                                 "client_deleted": True}
    assert chef.node("web-d31e7e") is None and not chef.has_client("web-d31e7e")
    assert client.delete_node("web-d31e7e").as_dict() == {
        "node": "web-d31e7e", "node_deleted": False, "client_deleted": False}
    assert [(m, p.rsplit("/", 2)[-2], s) for _, m, p, s in chef.log] == [
        ("DELETE", "nodes", 200), ("DELETE", "clients", 200),
        ("DELETE", "nodes", 404), ("DELETE", "clients", 404)]
    assert chef.has_client(CLIENT)  # the pack's own client is untouched


def test_a_client_left_by_a_failed_first_run_is_deleted(chef, client):
    chef.add_client("web-half01")  # registered its client, never saved its node
    assert client.delete_node("web-half01").as_dict() == {
        "node": "web-half01", "node_deleted": False, "client_deleted": True}
    assert not chef.has_client("web-half01")


def test_transient_server_errors_are_retried_for_get_and_delete(chef, client):
    chef.register_node("web-r3try1", ohai_time=1.0)
    chef.fail_next(2, status=500, method="GET")
    assert client.node_status("web-r3try1").registered
    chef.fail_next(1, status=502, method="DELETE", path="/nodes/")
    chef.fail_next(2, status=503, method="DELETE", path="/clients/")
    assert client.delete_node("web-r3try1").as_dict() == {
        "node": "web-r3try1", "node_deleted": True, "client_deleted": True}
    assert statuses(chef, "GET") == [500, 500, 200]
    assert statuses(chef, "DELETE") == [502, 200, 503, 503, 200]


def test_a_lasting_server_error_is_reported_as_retryable(chef, client):
    chef.fail_next(10, status=500)
    with pytest.raises(BackendError) as caught:
        client.delete_node("web-d0wn01")
    assert str(caught.value) == "Chef: delete node web-d0wn01: HTTP 500 internal service error"
    assert caught.value.retryable
    assert statuses(chef) == [500] * 6  # 3 tries for the node, then 3 for the client


def test_a_slow_answer_is_a_timeout_and_retried(chef, keys):
    chef.register_node("web-s1ow01", ohai_time=1.0)
    chef.delay_next(1, 1.0)
    path = "/organizations/web/nodes/web-s1ow01"
    asked = len([r for r in chef.requests if r.path == path])
    with ChefServer(settings_for(chef, keys, timeout=0.25)) as server:
        assert server.node_status("web-s1ow01").registered
    # Answered by a second request: it gave up on the held one rather than wait for it.
    assert len([r for r in chef.requests if r.path == path]) == asked + 2
    chef.delay_next(5, 1.0)
    with ChefServer(settings_for(chef, keys, timeout=0.2, attempts=2)) as server:
        with pytest.raises(BackendError, match=r"no answer from http://127\.0\.0\.1:\d+ "
                                               r"within 0\.2 s") as caught:
            server.node_status("web-s1ow01")
    assert caught.value.retryable


def test_an_unreachable_server_is_a_retryable_error(keys):
    url = "http://127.0.0.1:%d/organizations/web" % free_port()
    settings = fast(ChefSettings.from_config({"chef": chef_section(url, keys)}))
    with ChefServer(settings) as server, pytest.raises(BackendError) as caught:
        server.node_status("web-a1b2c3")
    assert re.fullmatch(r"Chef: read node web-a1b2c3: cannot connect to http://127\.0\.0\.1:"
                        r"\d+: \[Errno 111\] Connection refused", str(caught.value))
    assert caught.value.retryable


def test_a_client_without_delete_permission_is_told_so(chef, keys):
    chef.add_client(CLIENT, keys["client"].public_key(), permissions=("read",))
    chef.register_node("web-a1b2c3", ohai_time=1.0)
    with ChefServer(settings_for(chef, keys)) as server, pytest.raises(BackendError) as caught:
        server.delete_node("web-a1b2c3")
    assert str(caught.value) == (
        "Chef: delete node web-a1b2c3: client stackstorm may not do this (403 missing delete "
        "permission): give it read and delete permission on nodes and clients")
    assert chef.node("web-a1b2c3") is not None


# -- refused before any request ----------------------------------------------------------------


@pytest.mark.parametrize("name", ["Web-1", "web_1", "web-1;x", "web-1\nX-Evil: 1", "", "a" * 64,
                                  "../clients/stackstorm", None])
def test_bad_node_names_are_refused_before_any_request(chef, client, name):
    for call in (client.node_status, client.delete_node,
                 lambda n: client.wait_converged(n, time.time(), timeout=1)):
        with pytest.raises(ValidationError):
            call(name)
    assert chef.requests == []


@pytest.mark.parametrize("change, message", [
    ({"client_key": "not a key"}, "config key chef.client_key is not a PEM-encoded private key"),
    ({"client_key": "-----BEGIN RSA PRIVATE KEY-----\nAAAA\n-----END RSA PRIVATE KEY-----\n"},
     "config key chef.client_key is not a readable, unencrypted PEM private key"),
    ({"server_url": "ftp://chef.example.com/organizations/web"}, "must be an http(s) URL"),
    ({"client_name": "st2 admin"}, "is not a Chef client name"),
])
def test_bad_settings_are_refused_without_quoting_keys(chef, keys, change, message):
    settings = dataclasses.replace(settings_for(chef, keys), **change)
    with pytest.raises(ValidationError) as caught:
        ChefServer(settings)
    assert message in str(caught.value)
    assert "AAAA" not in str(caught.value) and "not a key" not in str(caught.value)
    assert chef.requests == []


def test_settings_never_show_keys_and_come_from_the_config(keys):
    config = pack_config("https://chef.example.com/organizations/web/", keys)
    settings = ChefSettings.from_config(config)
    assert settings.server_url == "https://chef.example.com/organizations/web"
    assert (settings.converge_timeout, settings.verify_tls) == (1, True)
    assert "PRIVATE KEY" not in repr(settings)
    assert settings.secrets() == [pem(keys["client"]), pem(keys["validator"])]
    for key in ("server_url", "client_name", "client_key"):
        broken = dict(config, chef=dict(config["chef"], **{key: ""}))
        with pytest.raises(ValidationError, match="config key chef.%s is missing" % key):
            ChefSettings.from_config(broken)
    with pytest.raises(ValidationError, match="config key chef is missing"):
        ChefSettings.from_config({})
    assert isinstance(configuration(settings), Configuration)
    with pytest.raises(ValidationError, match="config key chef.client_key"):
        load_private_key(pem(keys["client"])[:200])


# -- the cloud-init bootstrap --------------------------------------------------------------------


def test_cloud_config_bootstraps_with_the_validator_and_never_the_client_key(keys):
    settings = ChefSettings.from_config(
        pack_config("https://chef.example.com/organizations/web", keys))
    section = cloud_config(settings, "web-3f9a1c", ["role[web]", "recipe[nginx::default@1.2]"],
                           "production")
    assert section == {
        "install_type": "omnibus",
        "force_install": False,
        "server_url": "https://chef.example.com/organizations/web",
        "node_name": "web-3f9a1c",
        "environment": "production",
        "run_list": ["role[web]", "recipe[nginx::default@1.2]"],
        "validation_name": VALIDATOR,
        "validation_cert": pem(keys["validator"]),
        "ssl_verify_mode": ":verify_peer",
        "exec": True,
        "chef_license": "accept",
    }
    assert pem(keys["client"]) not in json.dumps(section)
    assert cloud_config(settings, "web-3f9a1c", [], "")["environment"] == "_default"
    insecure = dataclasses.replace(settings, verify_tls=False, validation_client_name="")
    relaxed = cloud_config(insecure, "web-3f9a1c", [], "_default")
    assert relaxed["ssl_verify_mode"] == ":verify_none"
    assert relaxed["validation_name"] == "chef-validator"
    with ChefServer(settings) as server:
        assert server.cloud_config("web-3f9a1c", ["role[web]"], "production")["run_list"] == [
            "role[web]"]


def test_cloud_config_refuses_without_a_validation_key_or_with_bad_input(keys):
    config = pack_config("https://chef.example.com/organizations/web", keys, validation_key="")
    settings = ChefSettings.from_config(config)
    with pytest.raises(ValidationError, match="config key chef.validation_key is missing"):
        cloud_config(settings, "web-3f9a1c", ["role[web]"], "production")
    settings = dataclasses.replace(settings, validation_key=pem(keys["validator"]))
    for node, run_list, environment in [
        ("Web 1", [], "_default"),
        ("web-1", ["role[web]\nbad"], "_default"),
        ("web-1", "role[web]", "_default"),
        ("web-1", ["role[]"], "_default"),
        ("web-1", [], "prod env"),
    ]:
        with pytest.raises(ValidationError):
            cloud_config(settings, node, run_list, environment)


# -- the actions through the st2 harness ---------------------------------------------------------


def test_wait_converged_action_returns_the_converge(chef, keys):
    since = time.time() - 300
    chef.register_node("web-ac7101", ohai_time=since + 100, run_list=["role[web]"])
    result = run_action("chef_wait_converged", pack_config(chef.org_url, keys),
                        node="web-ac7101", since=since)
    assert result.ok, result
    assert result.result["converged"] is True
    assert result.result["node"] == "web-ac7101" and result.result["since"] == since
    assert result.result["ohai_time"] == since + 100
    assert result.result["ohai_time_iso"] == time.strftime("%Y-%m-%dT%H:%M:%SZ",
                                                           time.gmtime(since + 100))
    assert result.result["run_list"] == ["role[web]"]


def test_wait_converged_action_fails_after_the_converge_timeout(chef, keys):
    result = returns(lambda: run_action("chef_wait_converged", pack_config(chef.org_url, keys),
                                        node="web-ac7102", since=time.time(),
                                        converge_timeout=1))
    assert not result.ok
    assert result.result["error"].startswith(
        "Chef: wait for converge web-ac7102: no converge within 1 s: the node never "
        "registered with the Chef server")
    assert result.result["registered"] is False and result.result["node"] == "web-ac7102"
    assert result.result["system"] == "Chef" and result.result["retryable"] is False
    bad = run_action("chef_wait_converged", pack_config(chef.org_url, keys),
                     node="Web_1", since=1.0)
    assert not bad.ok and "node name" in bad.result["error"]
    missing = run_action("chef_wait_converged", pack_config(chef.org_url, keys), node="web-1")
    assert not missing.ok and "since" in missing.error


def test_delete_node_action_deletes_and_succeeds_when_already_gone(chef, keys):
    chef.register_node("web-ac7103", ohai_time=1.0)
    config = pack_config(chef.org_url, keys)
    first = run_action("chef_delete_node", config, node="web-ac7103")
    assert first.ok and first.result == {"node": "web-ac7103", "node_deleted": True,
                                         "client_deleted": True}
    again = run_action("chef_delete_node", config, node="web-ac7103")
    assert again.ok and again.result == {"node": "web-ac7103", "node_deleted": False,
                                         "client_deleted": False}
    wrong = pack_config(chef.org_url, keys, client_key=pem(keys["other"]))
    refused = run_action("chef_delete_node", wrong, node="web-ac7104")
    assert not refused.ok and refused.result["retryable"] is False
    assert refused.result["error"].startswith(
        "Chef: delete node web-ac7104: the server refused the request signature (401")


# -- secrets -------------------------------------------------------------------------------------


def test_no_key_appears_in_logs_results_or_errors(chef, keys, caplog):
    caplog.set_level(logging.DEBUG)
    since = time.time() - 60
    chef.register_node("web-5ec001", ohai_time=since + 1)
    good = pack_config(chef.org_url, keys)
    wrong = pack_config(chef.org_url, keys, client_key=pem(keys["other"]))
    down = pack_config("http://127.0.0.1:%d/organizations/web" % free_port(), keys)
    results = [
        run_action("chef_wait_converged", good, node="web-5ec001", since=since),
        run_action("chef_wait_converged", good, node="web-5ec002", since=since,
                   converge_timeout=1),
        run_action("chef_wait_converged", wrong, node="web-5ec001", since=since),
        run_action("chef_delete_node", wrong, node="web-5ec001"),
        run_action("chef_wait_converged", down, node="web-5ec001", since=since,
                   converge_timeout=1),
        run_action("chef_delete_node", good, node="web-5ec001"),
        run_action("chef_delete_node", pack_config(chef.org_url, keys, client_key="garbage"),
                   node="web-5ec001"),
    ]
    assert [r.ok for r in results] == [True, False, False, False, False, True, False]
    settings = ChefSettings.from_config(good)
    logging.getLogger("test").debug("settings: %r", settings)
    texts = [json.dumps(r.result) + r.error for r in results]
    texts += [record.getMessage() for record in caplog.records]
    texts += [record.exc_text or "" for record in caplog.records]
    assert any("Chef" in text for text in texts[len(results):])  # the library did log
    secrets = [pem(keys[name]) for name in ("client", "validator", "other")] + ["garbage"]
    # Any one line of a key's base64 body counts as a leak.
    pieces = [line for secret in secrets for line in secret.splitlines()
              if len(line) >= 40] + secrets
    for text in texts:
        assert "PRIVATE KEY" not in text
        for piece in pieces:
            assert piece not in text
