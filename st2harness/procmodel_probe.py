"""Runs inside one pack process that st2harness.procmodel starts the way StackStorm 3.9 does.

Not imported by anything: st2harness.procmodel copies it into its build folder and runs it
with the pack virtualenv's python and st2's environment (PYTHONPATH, working directory).

    python procmodel_probe.py sensor '{"file": ..., "class_name": ...}'
    python procmodel_probe.py action '{"file": ...}'
    python procmodel_probe.py sensor|action '{"sweep": {...}}'

``sensor`` does what st2reactor/container/sensor_wrapper.py does before the sensor runs:
eventlet's monkey patch before any other import, then the sensor file loaded with
st2common.util.loader.register_plugin_class (its folder appended to sys.path, the class
checked for st2's abstract methods and instantiated). ``action`` does what
python_runner/python_action_wrapper.py does: the pack virtualenv's site-packages inserted at
sys.path[0], then the action file loaded like st2common.util.loader.register_plugin.

A sweep imports, in one such process, every module of the pack's library, every module any
pack file imports (also inside functions), and every module of StackStorm's shared libraries,
in the order given, and goes on after a failure so that all of them are reported.

Prints one line: MARKER + JSON {ok, error, traceback, failures, sys_path, monkey_patched,
modules}.
Python 3.8-compatible: it runs on every Python StackStorm 3.9 runs.
"""

import sys

MODE = sys.argv[1] if len(sys.argv) > 1 else ""
if MODE == "sensor":
    # sensor_wrapper.py: "perform monkey patch as early as possible before any other modules
    # are imported" (the stand-in below lives in the StackStorm site, as st2common does).
    from st2common.util.monkey_patch import monkey_patch, use_select_poll_workaround

    monkey_patch()
    use_select_poll_workaround(nose_only=False)

import importlib  # noqa: E402
import importlib.util  # noqa: E402
import inspect  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import pkgutil  # noqa: E402
import sysconfig  # noqa: E402
import traceback  # noqa: E402

if MODE == "action":
    # python_action_wrapper.py: "puts priority on loading virtualenv library in the pack's
    # action".
    sys.path.insert(0, sysconfig.get_path("platlib"))

MARKER = "@@procmodel@@"


class LoadError(Exception):
    """st2 re-raises the import error with this message (the same type; one type here)."""


def _register_plugin_path(plugin_dir):
    for entry in sys.path:
        if plugin_dir in (entry, entry + os.sep):
            return
    sys.path.append(plugin_dir)


def _exec_file(path):
    _register_plugin_path(os.path.dirname(os.path.realpath(path)))
    name = os.path.splitext(os.path.basename(path))[0]
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class _Service:
    """What st2 passes as sensor_service / action_service, for the constructor only: a logger
    (st2's SensorService.get_logger); nothing here runs setup(), poll() or run()."""

    def get_logger(self, name):
        import logging

        return logging.getLogger(name)

    def __getattr__(self, name):
        raise AttributeError("the probe only instantiates the class; no %s here" % name)


def _validate_methods(base, klass):
    implemented = {name for name, member in inspect.getmembers(klass, inspect.isfunction)
                   if not getattr(member, "__isabstractmethod__", False)}
    for method in base.__abstractmethods__:
        if method not in implemented:
            raise TypeError('Class "%s" doesn\'t implement required "%s" method from the '
                            "base class" % (klass.__name__, method))


def load_sensor(path, class_name):
    from st2reactor.sensor.base import PollingSensor, Sensor

    try:
        module = _exec_file(path)
    except Exception as exc:
        raise LoadError('Failed to load sensor class from file "%s" (sensor file most likely '
                        "doesn't exist or contains invalid syntax): %s: %s"
                        % (path, type(exc).__name__, exc)) from exc
    klass = getattr(module, class_name, None)
    if not klass:
        raise LookupError('Plugin file "%s" doesn\'t expose class named "%s"'
                          % (path, class_name))
    _validate_methods(Sensor, klass)
    if issubclass(klass, PollingSensor):
        klass(sensor_service=_Service(), config={}, poll_interval=30)
    else:
        klass(sensor_service=_Service(), config={})


def load_action(path):
    from st2common.runners.base_action import Action

    try:
        module = _exec_file(path)
    except Exception as exc:
        raise LoadError('Failed to load action class from file "%s" (action file most likely '
                        "doesn't exist or contains invalid syntax): %s: %s"
                        % (path, type(exc).__name__, exc)) from exc
    classes = [klass for _, klass in inspect.getmembers(module, inspect.isclass)
               if klass.__module__ == module.__name__ and issubclass(klass, Action)
               and klass is not Action]
    if not classes:
        raise LookupError('File "%s" has no action class or the file doesn\'t exist.' % path)
    _validate_methods(Action, classes[0])
    classes[0](config={}, action_service=_Service())


def _import(name):
    """``name`` is "pkg.mod" or "pkg.mod:attr" (from pkg.mod import attr)."""
    module, _, attr = name.partition(":")
    loaded = importlib.import_module(module)
    if attr and not hasattr(loaded, attr):
        importlib.import_module(module + "." + attr)


def sweep(plan):
    """Import every name of each group in ``plan["order"]``; returns {name: error}."""
    failures = {}
    for folder in plan.get("paths", []):  # as loading a file from that folder does
        _register_plugin_path(os.path.realpath(folder))
    for group in plan["order"]:
        names = list(plan.get(group, []))
        if group == "library":  # every module of the pack's package(s)
            names = []
            for package in plan["library"]:
                spec = importlib.util.find_spec(package)
                if spec is None:
                    failures[package] = "ModuleNotFoundError: No module named %r" % package
                    continue
                names.append(package)
                names.extend(info.name for info in pkgutil.walk_packages(
                    spec.submodule_search_locations, package + "."))
        for name in names:
            try:
                _import(name)
            except BaseException as exc:  # noqa: B036 (SystemExit from a library counts too)
                failures[name] = "%s: %s" % (type(exc).__name__, exc)
    return failures


def main():
    request = json.loads(sys.argv[2])
    report = {"ok": True, "error": "", "traceback": "", "failures": {}}
    try:
        if "sweep" in request:
            report["failures"] = sweep(request["sweep"])
            report["ok"] = not report["failures"]
        elif MODE == "sensor":
            load_sensor(request["file"], request["class_name"])
        elif MODE == "action":
            load_action(request["file"])
        else:
            raise ValueError("mode must be sensor or action, not %r" % MODE)
    except BaseException as exc:  # noqa: B036 (report whatever stopped the load)
        report.update(ok=False, error="%s: %s" % (type(exc).__name__, exc),
                      traceback=traceback.format_exc())
    report["sys_path"] = list(sys.path)
    patcher = sys.modules.get("eventlet.patcher")
    report["monkey_patched"] = bool(patcher and patcher.is_monkey_patched("socket"))
    report["modules"] = {name: getattr(module, "__file__", None)
                         for name, module in list(sys.modules.items())}
    sys.stdout.write("\n" + MARKER + json.dumps(report) + "\n")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
