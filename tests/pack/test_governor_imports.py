"""The governor imports a backend library only when it uses it (issue 11 §1): a cloud library
that does not import (keystoneauth1 5.14+ beside st2 3.9's stevedore 5.3.0 raises
``TypeError: type 'Extension' is not subscriptable`` at import) costs the orphan scan, reported
as a problem, never the governor; a Slack library that does not import costs the chat lines.

Each case runs in a fresh interpreter built as st2's sensor process (nothing leaks into this
process's modules), where an import hook makes the named libraries fail to import as
keystoneauth1 does; the sensor is loaded with st2's import path, set up, and polled.
"""

import json
import subprocess
import sys
import textwrap

from support.paths import ROOT

# A sensor process as st2's sensor container makes it (st2reactor's sensor wrapper): the
# interpreter's own paths, the sensor's folder appended, the sensor file imported, and the
# process (with its sys.path) alive while the sensor polls. st2harness provides the datastore,
# the sensor service and st2's base classes; it is imported before the path is cut down.
SCRIPT = textwrap.dedent(r"""
    import importlib.abc
    import importlib.util
    import json
    import logging
    import os
    import sys

    ROOT, BROKEN, CONFIG = sys.argv[1], json.loads(sys.argv[2]), json.loads(sys.argv[3])
    sys.path.insert(0, ROOT)
    from st2harness import Datastore, PackLoader  # noqa: E402
    from st2harness.base import base_classes  # noqa: E402
    from st2harness.services import SensorService  # noqa: E402

    sys.path.remove(ROOT)
    sys.path.append(os.path.join(ROOT, "sensors"))


    class Broken(importlib.abc.MetaPathFinder):
        # keystoneauth1 5.14+ beside stevedore 5.3.0 fails like this when imported.
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in BROKEN:
                raise TypeError("type 'Extension' is not subscriptable")
            return None


    sys.meta_path.insert(0, Broken())
    logged = []


    class Keep(logging.Handler):
        def emit(self, record):
            logged.append(record.getMessage())


    logging.getLogger().addHandler(Keep())
    logging.getLogger().setLevel(logging.INFO)
    NOW = 1700000000.0
    loader = PackLoader(ROOT, config=CONFIG)  # the config, checked against its schema
    datastore = Datastore(clock=lambda: NOW)
    service = SensorService(datastore.service("autoscale", "GovernorSensor"),
                            loader.trigger_types())
    try:
        base_classes()
        spec = importlib.util.spec_from_file_location(
            "governor", os.path.join(ROOT, "sensors", "governor.py"))
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        sensor = module.GovernorSensor(sensor_service=service, config=loader.config,
                                       poll_interval=30)
        sensor.setup()
    except Exception as exc:
        print(json.dumps({"loaded": False, "error": "%s: %s" % (type(exc).__name__, exc)}))
        sys.exit(0)

    # Four groups, each wanting something different, written with the sensor's own library.
    from autoscale_core.domain.model import AlertState, Group, Node, NodeState  # noqa: E402
    from autoscale_core.store import Store  # noqa: E402

    store = Store(service)
    for name, nodes, alert, dry_run in (("fix", 0, None, False), ("out", 2, "critical", False),
                                         ("shrink", 4, None, False), ("try", 0, None, True)):
        store.save_group(Group.create(name=name, domain="example.com", min_size=2, max_size=6,
                                      dry_run=dry_run))
        if alert:
            store.save_alert(name, AlertState(level=alert, issue_id="42", opened_at=NOW - 120,
                                              updated_at=NOW - 120))
        for index in range(nodes):
            store.save_node(Node("%s-n%05d" % (name, index), name, NodeState.IN_SERVICE,
                                 NOW - 3600, NOW - 3600))

    sensor.governor.clock = lambda: NOW
    report = sensor.poll()
    print(json.dumps({
        "loaded": True,
        "decisions": {d.group: [d.action, d.reason] for d in report.decisions},
        "dispatched": sorted([d.trigger, d.payload["asg"]] for d in report.dispatched),
        "problems": report.problems,
        "orphan_scan": report.orphan_scan,
        "broken_imported": sorted(name for name in sys.modules
                                  if name.split(".")[0] in BROKEN),
        "logged": logged,
    }))
""")


def config(orphan_scan_interval):
    return {
        "openstack": {"auth_url": "http://127.0.0.1:9/identity/v3",
                      "application_credential_id": "5c0ffee5c0ffee5c0ffee5c0ffee5c0f",
                      "application_credential_secret": "app-cred-secret"},
        "chef": {"server_url": "https://chef.example.com/organizations/web",
                 "client_name": "stackstorm", "client_key": "key",
                 "validation_client_name": "web-validator", "validation_key": "key"},
        "dns": {"server": "127.0.0.1", "zone": "example.com", "tsig_key_name": "autoscale",
                "tsig_secret": "c2VjcmV0LXRzaWcta2V5LWZvci10ZXN0cw=="},
        "haproxy": {"runtime_api": "/run/haproxy/admin.sock"},
        "slack": {"token": "xoxb-imports", "base_url": "http://127.0.0.1:9/api/"},
        "governor": {"orphan_scan_interval": orphan_scan_interval},
    }


def run_sensor(tmp_path, broken, orphan_scan_interval):
    script = tmp_path / "poll.py"
    script.write_text(SCRIPT)
    done = subprocess.run(
        [sys.executable, str(script), ROOT, json.dumps(broken),
         json.dumps(config(orphan_scan_interval))],
        cwd=str(tmp_path), capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


EXPECTED = {
    "fix": ["repair", "below_normal_size"],
    "out": ["scale_out", "critical_alert"],
    "shrink": ["scale_in", "recovered"],
    "try": ["repair", "below_normal_size"],
}
DISPATCHED = [["autoscale.repair", "fix"], ["autoscale.scale_in", "shrink"],
              ["autoscale.scale_out", "out"]]


def test_a_cloud_library_that_does_not_import_costs_the_orphan_scan_only(tmp_path):
    result = run_sensor(tmp_path, ["keystoneauth1", "novaclient"], orphan_scan_interval=60)
    # On main: the sensor does not load ("TypeError: type 'Extension' is not subscriptable").
    assert result["loaded"], result
    assert result["decisions"] == EXPECTED
    assert result["dispatched"] == DISPATCHED
    scan = result["orphan_scan"]
    assert scan.startswith("orphan scan skipped: TypeError: type 'Extension' is not "
                           "subscriptable"), scan
    assert scan in result["problems"]
    assert result["broken_imported"] == []
    assert [line for line in result["logged"] if "orphan scan skipped: TypeError" in line]


def test_a_chat_library_that_does_not_import_costs_the_chat_lines_only(tmp_path):
    # The dry-run group "try" is announced, not dispatched: the announcement fails, quietly.
    result = run_sensor(tmp_path, ["slack_sdk"], orphan_scan_interval=0)
    assert result["loaded"], result
    assert result["decisions"] == EXPECTED
    assert result["dispatched"] == DISPATCHED
    assert result["problems"] == []
    assert [line for line in result["logged"]
            if line.startswith("autoscale governor: try: repair not announced: TypeError")]

