"""Actions turn what they did not expect into a failed result: one line, no secret (issue 11).

A workflow copes with an action that raised anyway (test_reliability_faults), but a returned
``{"error": ...}`` gives history and chat a sentence instead of a traceback.
"""

import ast
import logging
import os

import yaml

from autoscale_core.config import SECRET_KEYS, secret_values
from autoscale_core.services.action import reports_failure
from st2harness import Datastore, PackLoader
from support.paths import ROOT

PEM = ("-----BEGIN RSA PRIVATE KEY-----\nMIIEowIBAAKCAQEAv1pM0Q2ZrN8wTvsecretline\n"
       "-----END RSA PRIVATE KEY-----\n")
CONFIG = {
    "openstack": {"password": "hunter2-openstack"},
    "chef": {"client_key": PEM},
    "dns": {"tsig_secret": "c2VjcmV0LXRzaWc="},
    "slack": {"token": "xoxb-123-secret"},
}


class Flaky:
    """An action's shape as st2 builds it: config and logger."""

    def __init__(self, exc):
        self.config = CONFIG
        self.logger = logging.getLogger("actions.python.Flaky")
        self.exc = exc

    @reports_failure
    def run(self, node):
        raise self.exc

    @reports_failure
    def fine(self, node):
        return True, {"node": node}


def test_an_unexpected_exception_becomes_a_one_line_failure_without_secrets(caplog):
    exc = KeyError("token xoxb-123-secret for\nhost with password hunter2-openstack")
    with caplog.at_level(logging.ERROR):
        ok, result = Flaky(exc).run(node="web-1")
    assert ok is False and result["retryable"] is False
    error = result["error"]
    assert error.startswith("Flaky failed unexpectedly: KeyError: ")
    assert "\n" not in error
    assert "xoxb-123-secret" not in error and "hunter2-openstack" not in error
    assert "[redacted]" in error
    # The log has the traceback, masked too.
    assert "Traceback" in caplog.text
    assert "xoxb-123-secret" not in caplog.text and "hunter2-openstack" not in caplog.text


def test_a_line_of_a_pem_key_is_masked_and_a_long_error_is_cut():
    ok, result = Flaky(RuntimeError("bad key line MIIEowIBAAKCAQEAv1pM0Q2ZrN8wTvsecretline "
                                    + "x" * 2000)).run(node="web-1")
    assert not ok
    assert "MIIEowIBAAKCAQEAv1pM0Q2ZrN8wTvsecretline" not in result["error"]
    assert len(result["error"]) <= 400


def test_results_and_returned_failures_pass_through_unchanged():
    assert Flaky(None).fine(node="web-1") == (True, {"node": "web-1"})


def test_exits_are_not_swallowed():
    try:
        Flaky(SystemExit(3)).run(node="web-1")
    except SystemExit as exc:
        assert exc.code == 3
    else:
        raise AssertionError("SystemExit was caught")


def test_secret_values_takes_only_strings_of_secret_keys():
    values = secret_values({**CONFIG, "slack": {"token": None}, "dns": "not a mapping",
                            "group_defaults": {"flavor": "m1.small"}})
    assert "hunter2-openstack" in values and PEM in values
    assert "m1.small" not in values and None not in values
    assert secret_values(None) == []


def _schema_secrets(schema, path=()):
    found = set()
    for name, definition in (schema or {}).items():
        if not isinstance(definition, dict):
            continue
        if definition.get("secret") is True:
            found.add(path + (name,))
        found |= _schema_secrets(definition.get("properties"), path + (name,))
    return found


def test_the_secret_keys_are_exactly_the_schemas():
    with open(os.path.join(ROOT, "config.schema.yaml")) as handle:
        schema = yaml.safe_load(handle)
    assert set(SECRET_KEYS) == _schema_secrets(schema)


def test_every_python_action_reports_its_failures():
    """Every action's run() is decorated, so no action can hand st2 a traceback."""
    metadata = PackLoader(ROOT, Datastore()).action_metadata()
    files = sorted(meta["entry_point"] for meta in metadata.values()
                   if meta.get("runner_type") == "python-script")
    assert files
    for entry in files:
        with open(os.path.join(ROOT, "actions", entry)) as handle:
            tree = ast.parse(handle.read())
        runs = [node for node in ast.walk(tree)
                if isinstance(node, ast.FunctionDef) and node.name == "run"]
        assert len(runs) == 1, entry
        names = [getattr(d, "id", getattr(d, "attr", None)) for d in runs[0].decorator_list]
        assert "reports_failure" in names, "%s: run() lacks @reports_failure" % entry
