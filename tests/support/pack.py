"""The pack's python actions over one harness datastore, loaded with st2's import paths, as
the steps of a workflow share the datastore."""

import copy
import os

import yaml

from autoscale_core.domain.model import Node
from autoscale_core.store import Store
from st2harness import Datastore, PackLoader
from support.paths import ROOT

with open(os.path.join(ROOT, "autoscale.yaml.example"), encoding="utf-8") as _handle:
    EXAMPLE = yaml.safe_load(_handle)


def config(governor=None, group_defaults=None):
    """A pack config shaped like autoscale.yaml.example."""
    values = copy.deepcopy(EXAMPLE)
    values["governor"].update(governor or {})
    values["group_defaults"].update(group_defaults or {})
    return values


class Pack:
    """The pack's actions over one datastore, loaded once each (as st2 keeps them on disk)."""

    def __init__(self, datastore=None, **config_changes):
        self.datastore = datastore or Datastore()
        self.loader = PackLoader(ROOT, self.datastore, config=config(**config_changes))
        self.store = Store(self.datastore.service("autoscale", "Test"))
        self._loaded = {}

    def action(self, name):
        if name not in self._loaded:
            self._loaded[name] = self.loader.action(name)
        return self._loaded[name]

    def run(self, action, /, **params):
        return self.action(action).run(**params)

    def ok(self, action, /, **params):
        done = self.run(action, **params)
        assert done.ok, done
        return done.result

    def refused(self, action, /, **params):
        done = self.run(action, **params)
        assert not done.ok and done.error == "", done  # a clear result, not a traceback
        return done.result["error"]

    def group(self, name="web", **settings):
        settings.setdefault("domain", "example.com")
        settings.setdefault("max", 10)
        return self.ok("asg_register", name=name, **settings)

    def node(self, group, name, state, created_at, protected=False, **fields):
        node = Node(name=name, group=group, state=state, created_at=created_at,
                    updated_at=created_at, protected=protected, **fields)
        self.store.save_node(node)
        return node
