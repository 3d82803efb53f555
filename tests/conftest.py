"""Shared fixtures and the test kinds.

The tests live in one folder per kind, and each test carries its folder's marker:

* ``unit/``: pure and fast — domain, store over the harness datastore, config parsing,
  present, sources' parsing, policy properties (``make test-fast`` runs these);
* ``backends/``: one backend against a real BIND9 or HAProxy, or a protocol-level fake of
  Nova, Chef or Slack over HTTP;
* ``pack/``: the pack's files as StackStorm 3.9 reads them (packcheck) and the harness that
  mirrors st2 (rules, aliases, workflow runner, process model, config loader);
* ``e2e/``: the sandbox World, workflows, sensors, reliability, the demo and the benchmarks.

Helpers shared between test modules live in ``tests/support`` (``from support.paths import
ROOT``); test modules never import one another. The repo root, ``lib/`` and ``tests/`` are on
sys.path through pyproject's ``pythonpath``.
"""

import os

import pytest

from support.paths import ROOT

KINDS = ("unit", "backends", "pack", "e2e")
TESTS = os.path.join(ROOT, "tests")


def pytest_collection_modifyitems(config, items):
    for item in items:
        kind = os.path.relpath(str(item.path), TESTS).split(os.sep)[0]
        if kind not in KINDS:
            raise pytest.UsageError("%s: a test belongs in one of tests/%s"
                                    % (item.nodeid, ", tests/".join(KINDS)))
        item.add_marker(kind)
