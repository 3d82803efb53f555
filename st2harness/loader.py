"""Load a pack's actions and sensors with exactly StackStorm's import paths.

st2 runs every Python action and sensor in its own process. Its module search path is:

* action: the pack virtualenv, then ``<pack>/actions/lib``, then the action file's own folder
  (st2common.util.sandboxing.get_sandbox_python_path_for_python_action and
  st2common.util.loader.register_plugin);
* sensor: the pack virtualenv, then the sensor file's own folder, plus ``<pack>/lib`` only
  when st2.conf sets ``[packs] enable_common_libs = True`` (st2reactor's process container).

The pack folder itself is never on the path. Here each load runs in this process with
``sys.path`` cut down to those folders plus this interpreter's own library folders, and with
every loaded module that does not come with the interpreter hidden while the file runs, so
an import that would fail in production fails here too, whatever the test imported before.
The loaded class keeps the modules it imported; afterwards the process's module table is put
back as it was.

One exception: a package the cut-down path finds in the very files this process already
loaded it from (the pack's library, reached through the actions/lib or sensors symlink, when
the test imported it from lib/) is not hidden but shared, as one process has one copy of a
library. What the action imports while it runs (a backend the config chooses, imported when
first used) then comes from the library it was loaded with, as in its own st2 process, and
its exceptions are the classes the action catches. The same holds the other way: a library
a load imports first, from the files this process's own path would find, stays loaded.
"""

from __future__ import annotations

import copy
import functools
import importlib.machinery
import importlib.util
import inspect
import json
import os
import sys
import tempfile
import threading
import traceback
from typing import Any, Dict, List, NamedTuple, Optional, Set, Tuple

import jsonschema
import yaml

from . import schema as st2schema
from .base import base_classes
from .config_loader import ContentPackConfigLoader
from .datastore import Datastore
from .services import ActionService, SensorService

# Parameters a runner consumes itself; st2 does not pass them to run().
RUNNER_PARAMETERS = {
    "python-script": {"env": "object", "timeout": "integer", "log_level": "string",
                      "debug": "boolean", "content_version": "string"},
}


class ActionResult(NamedTuple):
    ok: bool
    result: Any
    error: str = ""


@functools.lru_cache(maxsize=None)
def _realpath(path: str) -> str:
    # Every load looks at every loaded module's file: resolving each once keeps loads fast.
    return os.path.realpath(path)


def _inside(path: str, folder: str) -> bool:
    path, folder = _realpath(path), _realpath(folder)
    return path == folder or path.startswith(folder + os.sep)


def _module_file(module: Any) -> Optional[str]:
    path = getattr(module, "__file__", None)
    if path:
        return path
    locations = getattr(getattr(module, "__spec__", None), "submodule_search_locations", None)
    return next(iter(locations), None) if locations else None


def _interpreter_paths() -> List[str]:
    """This interpreter's own library folders (stdlib, its virtualenv's site-packages): what
    st2's sandbox inherits. A virtualenv inside the pack folder still counts as the
    interpreter's, as /opt/stackstorm/virtualenvs/<pack> does in production."""
    prefixes = {sys.prefix, sys.base_prefix, sys.exec_prefix, sys.base_exec_prefix}
    return [p for p in sys.path if p and any(_inside(p, prefix) for prefix in prefixes)]


def _outside_modules() -> Dict[str, Any]:
    """Loaded modules that do not come with the interpreter: the pack's, the tests', this
    harness's. None of them exists in an st2 action or sensor process."""
    prefixes = {sys.prefix, sys.base_prefix, sys.exec_prefix, sys.base_exec_prefix}
    found = {}
    for name, module in list(sys.modules.items()):
        path = _module_file(module)
        if path and not any(_inside(path, p) for p in prefixes):
            found[name] = module
    return found


def _shared_packages(modules: Dict[str, Any], path: List[str]) -> Set[str]:
    """The top-level packages among ``modules`` that ``path`` finds in the files they were
    loaded from: the same library, not a copy."""
    shared = set()
    for name in {name.split(".", 1)[0] for name in modules}:
        loaded = modules.get(name)
        where = _module_file(loaded) if loaded is not None else None
        if not where:
            continue
        spec = importlib.machinery.PathFinder.find_spec(name, path)
        found = (spec.origin if spec is not None and spec.has_location else None) or next(
            iter(getattr(spec, "submodule_search_locations", None) or []), None)
        if found and _realpath(found) == _realpath(where):
            shared.add(name)
    return shared


def exec_entry_point(file_path: str, front: List[str], back: List[str]) -> Any:
    """Execute a pack file as st2 would and return its module.

    ``front`` goes before the interpreter's own paths (st2's PYTHONPATH), ``back`` after
    (st2's sys.path.append of the plugin folder). Nothing else of this process's path (the
    test's own folders, the current directory) is visible; a package that path finds in the
    files it was loaded from is shared (see the module's docstring).
    """
    saved_path = list(sys.path)
    path = list(front) + _interpreter_paths() + list(back)
    ours = _outside_modules()
    shared = _shared_packages(ours, path)

    def copied(name: str) -> bool:
        return name.split(".", 1)[0] not in shared

    for name in ours:
        if copied(name):
            del sys.modules[name]
    sys.path[:] = path
    module_name = os.path.splitext(os.path.basename(file_path))[0]
    try:
        spec = importlib.util.spec_from_file_location(module_name, file_path)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module
    finally:
        sys.path[:] = saved_path
        loaded = {name: m for name, m in _outside_modules().items() if name not in ours}
        # A library this load imported first, from the files this process's own path finds
        # (the pack's library through the symlink, before the test imported it): kept, so
        # the process has one copy of it, as when the test had imported it first.
        kept = _shared_packages(loaded, saved_path)
        for name in _outside_modules():
            if copied(name) and name.split(".", 1)[0] not in kept:
                del sys.modules[name]
        sys.modules.update({name: ours[name] for name in ours if copied(name)})


_BROKEN_PACKAGE = (
    "raise ModuleNotFoundError(\"No module named 'keystoneauth1' (a broken library, injected "
    "by st2harness)\", name='keystoneauth1')\n")


def load_failure(file_path: str, exc: BaseException) -> str:
    """stderr of st2's python action wrapper when the action file fails to import
    (python_action_wrapper._get_action_instance re-raises the same exception type with this
    message, and nothing catches it)."""
    inner = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
    message = ('Failed to load action class from file "%s" (action file most likely doesn\'t '
               "exist or contains invalid syntax): %s" % (file_path, exc))
    return ("Traceback (most recent call last):\n"
            '  File "python_action_wrapper.py", line 229, in _get_action_instance\n'
            "%s: %s\n\n%s" % (type(exc).__name__, message, inner))


def _classes(module: Any, base: type) -> List[type]:
    return [cls for _, cls in inspect.getmembers(module, inspect.isclass)
            if issubclass(cls, base) and cls is not base and cls.__module__ == module.__name__]


# Parsed YAML by path, with the file's (mtime, size) when it was read: st2 reads metadata once
# at registration, and re-parsing every action's metadata for each execution made the
# harness, not the pack, the slowest part of a workflow run. A changed file is read again.
_YAML_CACHE: Dict[str, Tuple[Tuple[int, int], Any]] = {}
_YAML_LOCK = threading.Lock()
_SAFE_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def read_yaml(path: str) -> Any:
    """yaml.safe_load of a file, cached until the file changes; a fresh copy each call."""
    stat = os.stat(path)
    stamp = (stat.st_mtime_ns, stat.st_size)
    with _YAML_LOCK:
        cached = _YAML_CACHE.get(path)
    if cached is None or cached[0] != stamp:
        with open(path, encoding="utf-8") as handle:
            data = yaml.load(handle, Loader=_SAFE_LOADER)
        cached = (stamp, data)
        with _YAML_LOCK:
            _YAML_CACHE[path] = cached
    return copy.deepcopy(cached[1])


_read_yaml = read_yaml


class LoadedAction:
    def __init__(self, loader: PackLoader, meta: dict, cls: Optional[type]):
        self.loader = loader
        self.meta = meta
        self.cls = cls
        self.ref = "%s.%s" % (loader.pack, meta["name"])

    def parameters_schema(self) -> dict:
        properties = dict(self.meta.get("parameters") or {})
        for name, kind in RUNNER_PARAMETERS.get(self.meta.get("runner_type"), {}).items():
            properties.setdefault(name, {"type": kind})
        return {"type": "object", "properties": properties, "additionalProperties": False}

    def validate(self, params: Dict[str, Any]) -> Dict[str, Any]:
        """Parameters as st2 would pass them: validated, defaults filled in."""
        return st2schema.validate(params, self.parameters_schema())

    def instance(self) -> Any:
        """A fresh instance, as st2 makes one per execution, with the config rendered now
        (a config that does not render or decrypt raises here, before the action runs)."""
        service = ActionService(self.loader.datastore.service(self.loader.pack, self.cls.__name__))
        return self.cls(config=self.loader.runtime_config(), action_service=service)

    def run(self, **params: Any) -> ActionResult:
        """Run the action like the python-script runner: a validation error or an exception
        fails the execution; ``(bool, result)`` sets the status; the result must be JSON."""
        if self.cls is None:
            raise TypeError("%s is not a python-script action" % self.ref)
        try:
            params = self.validate(params)
        except (jsonschema.ValidationError, jsonschema.SchemaError) as exc:
            return ActionResult(False, None, "parameter validation failed: %s" % exc.message)
        # st2 passes every declared parameter, None when unset and without a default, so a
        # Python default in run() never applies to a declared parameter
        # (st2common.util.param.render_final_params).
        # Runner parameters (declared to override their defaults, e.g. timeout) stay with
        # the runner.
        runner = RUNNER_PARAMETERS.get(self.meta.get("runner_type"), {})
        kwargs = {name: params.get(name) for name in self.meta.get("parameters") or {}
                  if name not in runner}
        action = self.instance()  # the runner's work: its failure is not the action's
        try:
            result = action.run(**kwargs)
        except Exception:  # st2 reports the traceback as the execution's error
            return ActionResult(False, None, traceback.format_exc())
        ok = True
        if isinstance(result, tuple) and len(result) == 2 and isinstance(result[0], bool):
            ok, result = result
        return ActionResult(ok, json.loads(json.dumps(result)))


class PackLoader:
    """One pack on disk, with the st2 datastore and config its actions and sensors get."""

    def __init__(self, pack_dir: str, datastore: Optional[Datastore] = None,
                 config: Optional[Dict[str, Any]] = None, enable_common_libs: bool = False):
        self.pack_dir = os.path.abspath(pack_dir)
        self.pack = _read_yaml(os.path.join(self.pack_dir, "pack.yaml"))["ref"]
        self.datastore = datastore or Datastore()
        self.enable_common_libs = enable_common_libs
        self.config = self.pack_config(config)
        self._classes: Dict[str, Tuple[Any, type]] = {}

    # -- config ------------------------------------------------------------------------------

    def pack_config(self, values: Optional[Dict[str, Any]]) -> Dict[str, Any]:
        """The config st2 hands to actions and sensors, schema defaults filled in
        (ContentPackConfigLoader). A config file is checked against config.schema.yaml as
        ``st2ctl reload --register-configs`` does (raises jsonschema.ValidationError); with no
        config file (None) st2 hands over the defaults alone, unchecked."""
        path = os.path.join(self.pack_dir, "config.schema.yaml")
        if not os.path.exists(path):
            return dict(values or {})
        properties = _read_yaml(path) or {}
        schema = {"type": "object", "properties": properties, "additionalProperties": True}
        if values is None:
            return st2schema.assign_defaults({}, schema)
        return st2schema.validate(values, schema)

    def runtime_config(self) -> Dict[str, Any]:
        """What an action or sensor gets at start (ContentPackConfigLoader.get_config): the
        registered config with ``{{ st2kv... }}`` values rendered from the datastore now,
        ``secret: true`` ones decrypted, then defaults filled in. See
        st2harness.config_loader."""
        path = os.path.join(self.pack_dir, "config.schema.yaml")
        schema = _read_yaml(path) if os.path.exists(path) else {}
        return ContentPackConfigLoader(self.pack, schema or {}, self.datastore).get_config(
            self.config)

    # -- actions -----------------------------------------------------------------------------

    def action_metadata(self) -> Dict[str, dict]:
        folder = os.path.join(self.pack_dir, "actions")
        found = {}
        for name in sorted(os.listdir(folder)) if os.path.isdir(folder) else []:
            if name.endswith((".yaml", ".yml")):
                meta = _read_yaml(os.path.join(folder, name))
                if isinstance(meta, dict) and "name" in meta:
                    found[meta["name"]] = meta
        return found

    def action(self, name: str) -> LoadedAction:
        """The action ``name``; a python-script action's class is loaded once per loader and
        file version (st2 starts a fresh process per execution; re-importing the library for
        every action of every workflow made the harness the slowest part of a run)."""
        meta = self.action_metadata().get(name)
        if meta is None:
            raise LookupError("pack %s has no action %r" % (self.pack, name))
        if meta.get("runner_type") != "python-script":
            return LoadedAction(self, meta, None)
        entry = meta["entry_point"]
        if os.path.normpath(entry) != entry:
            raise ValueError("entry_point %r is not normalised; st2 refuses to run it" % entry)
        file_path = os.path.join(self.pack_dir, "actions", entry)
        stat = os.stat(file_path)
        key = (name, file_path, stat.st_mtime_ns, stat.st_size)
        cached = self._classes.get(name)
        if cached is not None and cached[0] == key:
            return LoadedAction(self, meta, cached[1])
        action_base, _, _ = base_classes()
        module = exec_entry_point(
            file_path,
            front=[os.path.join(self.pack_dir, "actions", "lib")],
            back=[os.path.dirname(os.path.realpath(file_path))],
        )
        classes = _classes(module, action_base)
        if not classes:
            raise LookupError('File "%s" has no action class' % file_path)
        self._classes[name] = (key, classes[0])
        return LoadedAction(self, meta, classes[0])

    def import_failure(self, name: str) -> str:
        """The stderr of st2's python runner when action ``name`` cannot be imported because
        its library is broken: the action file really executed, with ``autoscale_core``
        (or whatever it imports first from actions/lib) shadowed by a package whose import
        raises, as a library missing from the pack virtualenv does in production."""
        meta = self.action_metadata()[name]
        file_path = os.path.join(self.pack_dir, "actions", meta["entry_point"])
        lib = os.path.join(self.pack_dir, "actions", "lib")
        with tempfile.TemporaryDirectory(prefix="st2harness-broken-") as shadow:
            for package in sorted(os.listdir(lib)) if os.path.isdir(lib) else []:
                if os.path.isdir(os.path.join(lib, package)):
                    os.mkdir(os.path.join(shadow, package))
                    with open(os.path.join(shadow, package, "__init__.py"), "w") as handle:
                        handle.write(_BROKEN_PACKAGE)
            try:
                exec_entry_point(file_path, front=[shadow, lib],
                                 back=[os.path.dirname(os.path.realpath(file_path))])
            except Exception as exc:
                return load_failure(file_path, exc)
        raise AssertionError("%s imported although its library is broken" % file_path)

    # -- sensors -----------------------------------------------------------------------------

    def sensor_metadata(self) -> List[dict]:
        folder = os.path.join(self.pack_dir, "sensors")
        found = []
        for name in sorted(os.listdir(folder)) if os.path.isdir(folder) else []:
            if name.endswith((".yaml", ".yml")):
                meta = _read_yaml(os.path.join(folder, name))
                if isinstance(meta, dict):
                    found.append(meta)
        return found

    def trigger_types(self) -> Dict[str, dict]:
        """Every trigger type the pack's sensors register, by reference."""
        types = {}
        for meta in self.sensor_metadata():
            for trigger_type in meta.get("trigger_types") or []:
                types["%s.%s" % (self.pack, trigger_type["name"])] = trigger_type
        return types

    def sensor_class(self, class_name: str) -> type:
        meta = next((m for m in self.sensor_metadata() if m.get("class_name") == class_name), None)
        if meta is None:
            raise LookupError("pack %s has no sensor %r" % (self.pack, class_name))
        file_path = os.path.join(self.pack_dir, "sensors", meta["entry_point"])
        _, sensor_base, _ = base_classes()
        front = [os.path.join(self.pack_dir, "lib")] if self.enable_common_libs else []
        module = exec_entry_point(file_path, front=front,
                                  back=[os.path.dirname(os.path.realpath(file_path))])
        cls = getattr(module, class_name, None)
        if cls is None:
            raise LookupError('Sensor module is missing a class with name "%s"' % class_name)
        # st2 (loader._validate_methods) needs the base class's methods, not inheritance.
        missing = [name for name in sorted(sensor_base.__abstractmethods__ | {"setup", "run"})
                   if not callable(getattr(cls, name, None))]
        if missing:
            raise LookupError("sensor class %s lacks %s" % (class_name, ", ".join(missing)))
        return cls

    def sensor(self, class_name: str, poll_interval: Optional[int] = None, on_dispatch=None):
        """A sensor instance wired to a recording ``SensorService``."""
        cls = self.sensor_class(class_name)
        _, _, polling_base = base_classes()
        service = SensorService(
            self.datastore.service(self.pack, class_name), self.trigger_types(),
            pack=self.pack, class_name=class_name, on_dispatch=on_dispatch)
        kwargs: Dict[str, Any] = {"sensor_service": service, "config": self.runtime_config()}
        if poll_interval and issubclass(cls, polling_base):
            kwargs["poll_interval"] = poll_interval
        return cls(**kwargs)
