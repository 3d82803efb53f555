"""The backend registry (autoscale_core.backends): each role's config section names its type
(``type``, today's by default), an unknown one is refused naming the key and the known types,
a module added to backends/ is found by its name alone, and choosing or checking backends
imports no library that is not StackStorm's own until the pack talks to the system."""

import json
import os
import shutil
import subprocess
import sys
import textwrap

import pytest

from autoscale_core import backends
from autoscale_core.backends.chef import ChefSettings
from autoscale_core.backends.haproxy import HAProxyRuntime
from autoscale_core.backends.nova_api import NovaCompute
from autoscale_core.backends.rfc2136_api import Rfc2136Registry
from autoscale_core.backends.slack_api import SlackNotifier
from autoscale_core.domain.model import Group
from autoscale_core.errors import ValidationError
from autoscale_core.ports.provisioner import Provisioner
from support.paths import ROOT

CONFIG = {
    "openstack": {"auth_url": "http://127.0.0.1:9/identity/v3",
                  "application_credential_id": "5c0ffee5c0ffee5c0ffee5c0ffee5c0f",
                  "application_credential_secret": "app-cred-secret"},
    "chef": {"server_url": "https://chef.example.com/organizations/web",
             "client_name": "stackstorm", "client_key": "not read until the API is used",
             "validation_client_name": "web-validator", "validation_key": "key"},
    "dns": {"server": "127.0.0.1", "zone": "example.com", "tsig_key_name": "autoscale",
            "tsig_secret": "c2VjcmV0LXRzaWcta2V5LWZvci10ZXN0cw=="},
    "haproxy": {"runtime_api": "/run/haproxy/admin.sock"},
    "slack": {"token": "xoxb-registry"},
}


def with_types(**types):
    config = json.loads(json.dumps(CONFIG))
    for section, name in types.items():
        config[section]["type"] = name
    return config


def test_a_config_without_types_gets_todays_backends():
    assert isinstance(backends.compute(CONFIG), NovaCompute)
    assert isinstance(backends.dns(CONFIG), Rfc2136Registry)
    assert isinstance(backends.load_balancer(CONFIG), HAProxyRuntime)
    assert isinstance(backends.chat(CONFIG), SlackNotifier)
    provisioner = backends.provisioner(CONFIG)
    assert isinstance(provisioner, Provisioner)
    assert provisioner.settings == ChefSettings.from_config(CONFIG)
    named = with_types(openstack="nova", chef="chef", dns="rfc2136", haproxy="haproxy",
                       slack="slack")
    assert {role: backends.type_of(named, role) for role in backends.ROLES} == {
        role: backends.type_of(CONFIG, role) for role in backends.ROLES} == {
        "compute": "nova", "dns": "rfc2136", "load_balancer": "haproxy",
        "provisioner": "chef", "chat": "slack"}


@pytest.mark.parametrize("section,role,value,message", [
    ("haproxy", "load_balancer", "octavia",
     "config key haproxy.type: no load balancer type 'octavia' (known: haproxy)"),
    ("openstack", "compute", "aws", "config key openstack.type: no compute type 'aws' "
                                    "(known: nova)"),
    ("slack", "chat", "Mattermost", "config key slack.type 'Mattermost' is not a backend type"),
    ("dns", "dns", 53, "config key dns.type 53 is not a backend type"),
    # Modules of backends/ that are no implementation of the role.
    ("haproxy", "load_balancer", "cloud_init", "no load balancer type 'cloud_init'"),
    ("chef", "provisioner", "haproxy", "config key chef.type: no provisioner type 'haproxy' "
                                       "(known: chef)"),
])
def test_an_unknown_type_is_refused_naming_the_key_and_the_known_types(section, role, value,
                                                                      message):
    with pytest.raises(ValidationError) as refused:
        backends.factory(with_types(**{section: value}), role)
    assert message in str(refused.value)


def test_a_registered_type_is_chosen_listed_and_checks_the_group():
    made = []

    def refuse_pool(group):
        raise ValidationError("lb_backend %r: no such pool" % group.lb_backend)

    backends.register("load_balancer", "double", lambda config: made.append(config) or "lb",
                      check_group=refuse_pool, title="Double")
    try:
        config = with_types(haproxy="double")
        assert backends.load_balancer(config) == "lb" and made == [config]
        assert backends.known("load_balancer") == ["double", "haproxy"]
        assert backends.title(config, "load_balancer") == "Double"
        group = Group.create(name="web", domain="example.com")
        with pytest.raises(ValidationError, match="lb_backend 'web': no such pool"):
            backends.check_group(config, group)
        backends.check_group(CONFIG, group)  # HAProxy's rule takes "web"
    finally:
        backends.unregister("load_balancer", "double")
    assert backends.known("load_balancer") == ["haproxy"]
    with pytest.raises(ValueError):
        backends.register("load_balancer", "Bad Name", lambda config: None)
    with pytest.raises(ValueError):
        backends.register("storage", "s3", lambda config: None)


# Run in a fresh interpreter: which libraries a step imports, and a library copy of its own.
SCRIPT = textwrap.dedent(r"""
    import json
    import sys

    sys.path.insert(0, sys.argv[1])
    config = json.loads(sys.argv[2])
    from autoscale_core import backends
    from autoscale_core.domain.model import Group

    group = Group.create(name="web", domain="example.com", lb_backend="pool-web")
    backends.check_group(config, group)
    checked = sorted(name for name in ("keystoneauth1", "novaclient", "slack_sdk")
                     if name in sys.modules)
    made = type(backends.load_balancer(config)).__name__ if len(sys.argv) > 3 else ""
    print(json.dumps({"checked_imports": checked, "load_balancer": made}))
""")


def run_script(tmp_path, lib, config, make=False):
    script = tmp_path / "probe.py"
    script.write_text(SCRIPT)
    done = subprocess.run([sys.executable, str(script), lib, json.dumps(config)]
                          + (["make"] if make else []),
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_checking_a_group_imports_no_library_of_the_pack_own(tmp_path):
    # keystoneauth1, novaclient and slack_sdk are the pack's requirements: one that does not
    # import beside StackStorm's must not cost a group's creation.
    result = run_script(tmp_path, os.path.join(ROOT, "lib"), CONFIG)
    assert result["checked_imports"] == []


DROP_IN = '''
"""A load balancer type that ships as one module of backends/."""

from autoscale_core.ports.load_balancer import LoadBalancer


class Pools(LoadBalancer):
    def list_servers(self, backend):
        return []

    def add_server(self, backend, name, address, port, health_check=False):
        raise NotImplementedError

    def set_state(self, backend, name, state):
        raise NotImplementedError

    def sessions(self, backend, name):
        return 0

    def delete_server(self, backend, name):
        return False


def check_group(group):
    pass


def new_load_balancer(config):
    return Pools()
'''


def test_a_module_added_to_backends_is_found_by_its_type_name_alone(tmp_path):
    lib = tmp_path / "lib"
    shutil.copytree(os.path.join(ROOT, "lib", "autoscale_core"), lib / "autoscale_core",
                    ignore=shutil.ignore_patterns("__pycache__"))
    (lib / "autoscale_core" / "backends" / "pools.py").write_text(DROP_IN)
    result = run_script(tmp_path, str(lib), with_types(haproxy="pools"), make=True)
    assert result == {"checked_imports": [], "load_balancer": "Pools"}
