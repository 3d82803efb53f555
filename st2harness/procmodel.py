"""The pack's processes built the way StackStorm 3.9 builds them, on each Python it runs.

st2 runs every sensor and python action in a process of its own, with the pack virtualenv's
python, and with StackStorm's own site-packages on the path too (st2 3.9.0 source:
st2common/util/virtualenvs.py, st2common/util/sandboxing.py,
st2reactor/container/process_container.py and sensor_wrapper.py,
python_runner/python_runner.py and python_action_wrapper.py). Which copy of a library a
process imports depends on the order, and the order differs:

* the StackStorm site: a virtualenv holding, at st2 3.9.0's locked versions, every library the
  pack shares with StackStorm (``st2-3.9.0-site.txt``), plus this harness's mirrors of the
  ``st2common``/``st2reactor`` base classes (``st2harness.base``) and of
  ``st2common.util.monkey_patch``, placed in its site-packages as StackStorm's own packages
  are;
* the pack virtualenv: made by the StackStorm site's ``virtualenv``, then the
  ``zzzzzzzzzz__st2__.pth`` that st2 writes (it adds the StackStorm site as a site dir, after
  the pack's own .pth files), then ``pip install six>=1.9.0,<2.0`` and
  ``pip install -U -r requirements.txt``, as ``st2 pack install`` does: pip sees st2's copies
  and keeps the ones that satisfy the requirements;
* a sensor: pack venv python, ``PYTHONPATH=":<st2 site>"`` (so StackStorm's libraries come
  BEFORE the pack venv's), eventlet monkey-patched before anything is imported, the sensor's
  folder appended to sys.path; an action: pack venv python,
  ``PYTHONPATH=<venv lib>:<venv site-packages>:<pack>/actions/lib::<st2 site>``, and the venv's
  site-packages inserted at sys.path[0] by the wrapper.

``check(version)`` builds both (cached under ``.procmodel/``, keyed by the Python, the site
list and requirements.txt), loads every sensor and every python action file in a fresh process
each, and sweeps every module of ``autoscale_core``, every module any pack file imports (also
lazily, inside functions) and every StackStorm-site library, in both path orders and both
import orders. ``python -m st2harness.procmodel`` prints the figures.

One difference from st2, on purpose: st2 passes ``--system-site-packages`` to virtualenv (the
OS python's packages, after the pack's and st2's). The pyenv interpreters used here carry
unrelated packages (3.11's has cryptography 48, urllib3 2.7 ...) that would satisfy or shadow
a dependency here and not on a StackStorm host, so the pack venv is made without them.
"""

from __future__ import annotations

import argparse
import ast
import concurrent.futures
import contextlib
import dataclasses
import fcntl
import glob
import hashlib
import inspect
import json
import os
import re
import shutil
import subprocess
import sys
import time
from typing import Dict, Iterator, List, Optional, Sequence, Tuple

from . import base

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
HERE = os.path.dirname(os.path.abspath(__file__))
SITE_LIST = os.path.join(HERE, "st2-3.9.0-site.txt")
PROBE = os.path.join(HERE, "procmodel_probe.py")
CACHE = os.path.join(ROOT, ".procmodel")
PYTHONS = ("3.8", "3.9", "3.10", "3.11")  # what StackStorm 3.9 runs on
# Bump when the build steps change: it is part of every cache key.
BUILDER_VERSION = "1"
# st2common/constants/pack.py BASE_PACK_REQUIREMENTS, installed before requirements.txt.
BASE_PACK_REQUIREMENTS = ["six>=1.9.0,<2.0"]
ST2_PTH = "zzzzzzzzzz__st2__.pth"
# Tools of StackStorm's virtualenv, not libraries its processes import: left out of the sweep.
TOOLS = {"pip", "setuptools", "wheel", "virtualenv", "distlib", "filelock", "platformdirs"}
# A cached build nobody used for this long is deleted (a changed requirements.txt leaves one).
STALE_SECONDS = 3 * 24 * 3600
PIP_TIMEOUT = 900
PROBE_TIMEOUT = 180


class ProcModelError(Exception):
    """The model could not be built (a missing Python, a failed pip run...)."""


# --- facts ------------------------------------------------------------------------------------

def read_site_list(path: str = SITE_LIST) -> Tuple[Dict[str, str], Dict[str, str]]:
    """({name: version} the site holds, {name: version} locked by st2 but not in the site),
    names normalised as pip does."""
    site, locked = {}, {}
    with open(path, encoding="utf-8") as handle:
        for line in handle:
            line = line.strip()
            if line.startswith("#locked:"):
                for pin in line[len("#locked:"):].split():
                    name, _, version = pin.partition("==")
                    locked[normalise(name)] = version
                continue
            line = line.split("#", 1)[0].strip()
            if line:
                name, _, version = line.partition("==")
                site[normalise(name)] = version
    return site, locked


def normalise(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def shared_requirement_problems(requirements: str) -> List[str]:
    """Requirements that StackStorm's own version of the library does not satisfy. A sensor
    imports StackStorm's copy first whatever pip installs into the pack virtualenv, so a
    requirement on a library StackStorm ships must accept StackStorm's version."""
    from packaging.requirements import Requirement

    site, _ = read_site_list()
    problems = []
    with open(requirements, encoding="utf-8") as handle:
        for line in handle:
            line = line.split("#", 1)[0].strip()
            if not line or line.startswith("-"):
                continue
            requirement = Requirement(line)
            ours = site.get(normalise(requirement.name))
            if ours and not requirement.specifier.contains(ours, prereleases=True):
                problems.append("%s: StackStorm 3.9 ships %s %s, which sensors import first" % (
                    line, requirement.name, ours))
    return problems


def find_python(version: str) -> str:
    """The newest pyenv interpreter X.Y.*, else pythonX.Y on PATH; a clear error otherwise."""
    pyenv = os.environ.get("PYENV_ROOT") or os.path.expanduser("~/.pyenv")
    found = []
    for folder in glob.glob(os.path.join(pyenv, "versions", version + ".*")):
        tail = os.path.basename(folder)[len(version) + 1:]
        if tail.isdigit() and os.access(os.path.join(folder, "bin", "python"), os.X_OK):
            found.append((int(tail), os.path.join(folder, "bin", "python")))
    if found:
        return max(found)[1]
    on_path = shutil.which("python" + version)
    if on_path:
        return on_path
    raise ProcModelError(
        "Python %s not found (looked in %s/versions/%s.* and for python%s on PATH). StackStorm "
        "3.9 runs on %s, and the process model checks each: install it, e.g. "
        "`pyenv install %s`." % (version, pyenv, version, version, ", ".join(PYTHONS), version))


def _full_version(python: str) -> str:
    out = subprocess.run([python, "-c", "import platform; print(platform.python_version())"],
                         capture_output=True, text=True, timeout=60, env=_clean_env())
    if out.returncode:
        raise ProcModelError("%s does not run: %s" % (python, out.stderr.strip()))
    return out.stdout.strip()


def _clean_env() -> Dict[str, str]:
    """This process's environment less what would leak into a child interpreter (st2 drops
    PYTHONPATH for pip too: get_env_for_subprocess_command)."""
    env = {key: value for key, value in os.environ.items()
           if not key.startswith("PYTHON") and key not in ("VIRTUAL_ENV", "__PYVENV_LAUNCHER__")}
    env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
    return env


def _run(cmd: Sequence[str], log: str, env: Optional[Dict[str, str]] = None,
         timeout: int = PIP_TIMEOUT) -> subprocess.CompletedProcess:
    with open(log, "a", encoding="utf-8") as handle:
        handle.write("$ %s\n" % " ".join(cmd))
    out = subprocess.run(list(cmd), capture_output=True, text=True, timeout=timeout,
                         env=env or _clean_env(), stdin=subprocess.DEVNULL)
    with open(log, "a", encoding="utf-8") as handle:
        handle.write(out.stdout + out.stderr + "[exit %d]\n" % out.returncode)
    if out.returncode:
        raise ProcModelError("%s failed (exit %d); log: %s\n%s" % (
            " ".join(cmd), out.returncode, log, (out.stdout + out.stderr)[-3000:]))
    return out


@contextlib.contextmanager
def _locked(path: str) -> Iterator[None]:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _prune(cache: str) -> None:
    """Delete cached builds unused for STALE_SECONDS (their "complete" marker is touched on
    every use), unless another process holds them."""
    for marker in glob.glob(os.path.join(cache, "*", "complete")):
        folder = os.path.dirname(marker)
        try:
            if time.time() - os.path.getmtime(marker) < STALE_SECONDS:
                continue
            with open(folder + ".lock", "w") as handle:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                shutil.rmtree(folder, ignore_errors=True)
            os.remove(folder + ".lock")
        except OSError:  # in use, or already gone
            continue


def _key(*parts: str) -> str:
    digest = hashlib.sha256()
    for part in (BUILDER_VERSION,) + parts:
        digest.update(part.encode("utf-8") + b"\0")
    return digest.hexdigest()[:12]


def _site_packages(venv: str) -> str:
    # st2's get_virtualenv_lib_path: the first lib/python* folder.
    libs = sorted(glob.glob(os.path.join(venv, "lib", "python*")))
    if not libs:
        raise ProcModelError("no lib/python* in %s" % venv)
    return os.path.join(libs[0], "site-packages")


# --- the StackStorm site ------------------------------------------------------------------------

MONKEY_PATCH = '''"""st2harness stand-in for st2common.util.monkey_patch (StackStorm 3.9)."""

import sys


def monkey_patch(patch_thread=None):
    import eventlet

    if patch_thread is None:
        patch_thread = "--use-debugger" not in sys.argv
    eventlet.monkey_patch(os=True, select=True, socket=True, thread=patch_thread, time=True)


def use_select_poll_workaround(nose_only=True):
    """Puts the blocking select.poll back into eventlet's patched select, as st2 does in
    sensor processes (nose_only=False)."""
    if nose_only:
        return
    import selectors
    import subprocess

    import eventlet

    select = sys.modules["select"]
    select.poll = eventlet.patcher.original("select").poll
    subprocess.select = select
    sys.modules["selectors"] = selectors
    selectors.select = select
'''


def standin_files() -> Dict[str, str]:
    """StackStorm's own packages as the pack's files import them, from st2harness.base."""
    head = '"""st2harness stand-in for %s (StackStorm 3.9), from st2harness/base.py."""\n\n'

    def source(*classes: type) -> str:
        return "\n\n".join(inspect.getsource(cls) for cls in classes)

    return {
        "st2common/__init__.py": "",
        "st2common/runners/__init__.py": "",
        "st2common/runners/base_action.py": (
            head % "st2common.runners.base_action" + "import abc\nimport logging\n\n\n"
            + source(base.Action)),
        "st2common/util/__init__.py": "",
        "st2common/util/monkey_patch.py": MONKEY_PATCH,
        "st2reactor/__init__.py": "",
        "st2reactor/sensor/__init__.py": "",
        "st2reactor/sensor/base.py": (
            head % "st2reactor.sensor.base" + "import abc\nimport time\n\n\n"
            + source(base.BaseSensor, base.Sensor, base.PollingSensor)),
    }


def _write_standins(site: str) -> None:
    for relative, text in standin_files().items():
        path = os.path.join(site, relative)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        if not os.path.exists(path) or open(path, encoding="utf-8").read() != text:
            with open(path, "w", encoding="utf-8") as handle:
                handle.write(text)


def _build_site(python: str, folder: str) -> None:
    """StackStorm's own virtualenv (/opt/stackstorm/st2) with the shared libraries."""
    log = os.path.join(folder, "build.log")
    venv = os.path.join(folder, "st2")
    _run([python, "-m", "venv", venv], log)
    # --no-deps: the list is a complete closure at the lock's versions; pip check proves it.
    _run([os.path.join(venv, "bin", "python"), "-m", "pip", "install", "--no-deps",
          "-r", SITE_LIST], log)
    _run([os.path.join(venv, "bin", "python"), "-m", "pip", "check"], log)


# --- the pack virtualenv ------------------------------------------------------------------------

def _pth_text(st2_site: str) -> str:
    # st2common.util.virtualenvs.inject_st2_pth_into_virtualenv, word for word.
    return ("# This file is auto-generated by StackStorm.\n"
            "import sys; addsitedir('%s', known_paths)\n" % st2_site)


def _build_pack_venv(st2: str, st2_site: str, requirements: str, folder: str) -> dict:
    """st2common.util.virtualenvs.setup_pack_virtualenv; returns what pip did."""
    log = os.path.join(folder, "build.log")
    venv = os.path.join(folder, "virtualenvs", "autoscale")
    env = _clean_env()
    # st2: <virtualenv> -p <python_binary> [--system-site-packages] --verbose --no-download
    _run([os.path.join(st2, "bin", "virtualenv"), "-p", os.path.join(st2, "bin", "python"),
          "--no-download", venv], log, env)
    site = _site_packages(venv)
    with open(os.path.join(site, ST2_PTH), "w", encoding="utf-8") as handle:
        handle.write(_pth_text(st2_site))
    pip = os.path.join(venv, "bin", "pip")
    for requirement in BASE_PACK_REQUIREMENTS:
        _run([pip, "install", requirement], log, env)
    install = _run([pip, "install", "-U", "-r", requirements], log, env)
    conflicts = [line.strip() for line in (install.stdout + install.stderr).splitlines()
                 if "which is incompatible" in line or "is not installed" in line]
    check = subprocess.run([os.path.join(venv, "bin", "python"), "-m", "pip", "check"],
                           capture_output=True, text=True, env=env, timeout=PIP_TIMEOUT)
    listed = _run([os.path.join(venv, "bin", "python"), "-m", "pip", "list", "--format",
                   "json", "--path", site], log, env)
    return {
        "installed": {item["name"]: item["version"] for item in json.loads(listed.stdout)},
        "pip_conflicts": conflicts,
        "pip_check_ok": check.returncode == 0,
        "pip_check": (check.stdout + check.stderr).strip(),
    }


@dataclasses.dataclass
class Build:
    python: str          # the interpreter the pack venv was made from
    version: str         # its full version, e.g. 3.10.13
    st2_site: str
    venv: str
    venv_python: str
    venv_site: str
    venv_lib: str
    installed: Dict[str, str]       # what pip put into the pack venv (name: version)
    pip_conflicts: List[str]        # pip's "... which is incompatible" lines
    pip_check_ok: bool
    pip_check: str
    seconds: float                  # build time; 0 when it came from the cache
    cached: bool


def build(version: str, requirements: str = os.path.join(ROOT, "requirements.txt"),
          cache: str = CACHE) -> Build:
    """The StackStorm site and the pack virtualenv for Python ``version`` (e.g. "3.10"),
    reused from ``cache`` when the Python, the site list, requirements.txt and the builder
    are unchanged."""
    started = time.monotonic()
    python = find_python(version)
    full = _full_version(python)
    with open(SITE_LIST, encoding="utf-8") as handle:
        site_list = handle.read()
    with open(requirements, encoding="utf-8") as handle:
        wanted = handle.read()
    cached = True

    site_key = _key(python, full, site_list)
    site_folder = os.path.join(cache, "st2-%s-%s" % (full, site_key))
    st2 = os.path.join(site_folder, "st2")
    with _locked(site_folder + ".lock"):
        if not os.path.exists(os.path.join(site_folder, "complete")):
            cached = False
            shutil.rmtree(site_folder, ignore_errors=True)
            os.makedirs(site_folder)
            _build_site(python, site_folder)
            open(os.path.join(site_folder, "complete"), "w").close()
        os.utime(os.path.join(site_folder, "complete"))
        st2_site = _site_packages(st2)
        _write_standins(st2_site)

    venv_key = _key(site_key, wanted)
    venv_folder = os.path.join(cache, "pack-%s-%s" % (full, venv_key))
    venv = os.path.join(venv_folder, "virtualenvs", "autoscale")
    record = os.path.join(venv_folder, "complete")
    with _locked(venv_folder + ".lock"):
        if not os.path.exists(record):
            cached = False
            shutil.rmtree(venv_folder, ignore_errors=True)
            os.makedirs(venv_folder)
            result = _build_pack_venv(st2, st2_site, requirements, venv_folder)
            with open(record, "w", encoding="utf-8") as handle:
                json.dump(result, handle, indent=1, sort_keys=True)
        os.utime(record)
        with open(record, encoding="utf-8") as handle:
            result = json.load(handle)
        probe_dir = os.path.join(venv_folder, "probe")  # sys.path[0] of every probe
        os.makedirs(probe_dir, exist_ok=True)
        shutil.copyfile(PROBE, os.path.join(probe_dir, os.path.basename(PROBE)))
        os.makedirs(os.path.join(venv_folder, "cwd"), exist_ok=True)

    _prune(cache)
    venv_site = _site_packages(venv)
    return Build(python=python, version=full, st2_site=st2_site, venv=venv,
                 venv_python=os.path.join(venv, "bin", "python"), venv_site=venv_site,
                 venv_lib=os.path.dirname(venv_site), seconds=time.monotonic() - started,
                 cached=cached, **result)


# --- the processes ------------------------------------------------------------------------------

@dataclasses.dataclass
class Job:
    kind: str            # "sensor" or "action": which process st2 would start
    name: str            # e.g. "sensors/governor.py" or "sweep, sensor order, st2 first"
    request: dict


@dataclasses.dataclass
class Outcome:
    job: Job
    ok: bool
    error: str
    failures: Dict[str, str]
    sys_path: List[str]
    modules: Dict[str, Optional[str]]
    stderr: str
    monkey_patched: bool = False


def _yaml(path: str) -> dict:
    import yaml

    with open(path, encoding="utf-8") as handle:
        return yaml.safe_load(handle) or {}


def pack_imports(pack: str = ROOT) -> List[str]:
    """Every absolute import in the pack's runtime files, at any depth (lazy imports too), as
    "module" or "module:name"; the pack's own library is swept whole instead."""
    names = set()
    for top in ("lib", "actions", "sensors"):
        for folder, dirs, files in os.walk(os.path.join(pack, top)):
            dirs[:] = [d for d in dirs if not os.path.islink(os.path.join(folder, d))]
            for file_name in files:
                if not file_name.endswith(".py"):
                    continue
                with open(os.path.join(folder, file_name), encoding="utf-8") as handle:
                    tree = ast.parse(handle.read())
                for node in ast.walk(tree):
                    if isinstance(node, ast.Import):
                        names.update(alias.name for alias in node.names)
                    elif isinstance(node, ast.ImportFrom) and not node.level and node.module:
                        names.update("%s:%s" % (node.module, alias.name)
                                     for alias in node.names if alias.name != "*")
    own = ("autoscale_core", "__future__")
    return sorted(n for n in names if n.split(".")[0].split(":")[0] not in own)


def _dist_infos(site: str) -> Iterator[Tuple[str, str, str]]:
    """(name, version, dist-info folder) of every distribution installed in ``site``."""
    for folder in sorted(glob.glob(os.path.join(site, "*.dist-info"))):
        meta = {}
        with open(os.path.join(folder, "METADATA"), encoding="utf-8", errors="replace") as handle:
            for line in handle:
                if not line.strip():
                    break
                key, _, value = line.partition(":")
                meta.setdefault(key.strip(), value.strip())
        yield meta.get("Name", ""), meta.get("Version", ""), folder


def _top_level(folder: str) -> List[str]:
    path = os.path.join(folder, "top_level.txt")
    if os.path.exists(path):
        with open(path, encoding="utf-8") as handle:
            return [line.strip() for line in handle if line.strip()]
    tops = set()
    with open(os.path.join(folder, "RECORD"), encoding="utf-8") as handle:
        for line in handle:
            first = line.split(",", 1)[0].split("/", 1)
            if len(first) == 2 and not first[0].endswith((".dist-info", ".data")):
                tops.add(first[0])
            elif len(first) == 1 and first[0].endswith((".py", ".so")):
                tops.add(first[0].split(".", 1)[0])
    return sorted(tops)


def st2_modules(build_: Build) -> List[str]:
    """The importable top-level modules of the StackStorm site's libraries (not its tools)."""
    site, _ = read_site_list()
    names = set()
    for name, _, folder in _dist_infos(build_.st2_site):
        if normalise(name) in site and normalise(name) not in TOOLS:
            names.update(n for n in _top_level(folder)
                         if n.isidentifier() and n not in ("tests", "test", "_distutils_hack"))
    return sorted(names)


def jobs(build_: Build, pack: str = ROOT) -> List[Job]:
    """One job per sensor, one per python action, and four sweeps."""
    found = []
    for path in sorted(glob.glob(os.path.join(pack, "sensors", "*.yaml"))):
        meta = _yaml(path)
        if meta.get("entry_point") and meta.get("class_name"):
            file_path = os.path.join(pack, "sensors", meta["entry_point"])
            found.append(Job("sensor", os.path.relpath(file_path, pack),
                             {"file": file_path, "class_name": meta["class_name"]}))
    for path in sorted(glob.glob(os.path.join(pack, "actions", "*.yaml"))):
        meta = _yaml(path)
        if meta.get("runner_type") in ("python-script", "run-python"):
            file_path = os.path.join(pack, "actions", meta["entry_point"])
            found.append(Job("action", os.path.relpath(file_path, pack), {"file": file_path}))
    imports, libraries = pack_imports(pack), st2_modules(build_)
    for kind, folder in (("sensor", "sensors"), ("action", "actions")):
        for order in (["library", "pack", "st2"], ["st2", "library", "pack"]):
            found.append(Job(kind, "sweep: %s process, %s first" % (kind, order[0]), {"sweep": {
                "paths": [os.path.join(pack, folder)], "library": ["autoscale_core"],
                "pack": imports, "st2": libraries, "order": order}}))
    return found


def _env_and_cwd(build_: Build, kind: str, pack: str) -> Tuple[List[str], Dict[str, str]]:
    env = _clean_env()
    # get_sandbox_python_path: ":" + the parent's PYTHONPATH (none) + st2's site-packages.
    sandbox_python_path = ":" + build_.st2_site
    if kind == "sensor":
        env["PYTHONPATH"] = sandbox_python_path
        return [build_.venv_python], env
    env["PATH"] = os.path.join(build_.venv, "bin") + ":" + env.get("PATH", "")
    env["PYTHONPATH"] = ":".join([build_.venv_lib, build_.venv_site,
                                  os.path.join(pack, "actions", "lib"), sandbox_python_path])
    return [build_.venv_python, "-u"], env


def run_job(build_: Build, job: Job, pack: str = ROOT) -> Outcome:
    command, env = _env_and_cwd(build_, job.kind, pack)
    folder = os.path.dirname(os.path.dirname(build_.venv))
    probe = os.path.join(folder, "probe", os.path.basename(PROBE))
    out = subprocess.run(command + [probe, job.kind, json.dumps(job.request)],
                         capture_output=True, text=True, env=env, timeout=PROBE_TIMEOUT,
                         cwd=os.path.join(folder, "cwd"), stdin=subprocess.DEVNULL)
    for line in reversed(out.stdout.splitlines()):
        if line.startswith("@@procmodel@@"):
            report = json.loads(line[len("@@procmodel@@"):])
            return Outcome(job, report["ok"], report["error"], report["failures"],
                           report["sys_path"], report["modules"], out.stderr,
                           report["monkey_patched"])
    tail = (out.stderr.strip().splitlines() or ["(no output)"])[-1]
    return Outcome(job, False, "the process died (exit %d): %s" % (out.returncode, tail),
                   {}, [], {}, out.stderr)


@dataclasses.dataclass
class Report:
    build: Build
    outcomes: List[Outcome]
    problems: List[str]      # about the virtualenv itself (pip check, the site list)
    seconds: float

    @property
    def ok(self) -> bool:
        return not self.problems and all(o.ok for o in self.outcomes)

    def describe(self) -> str:
        lines = ["Python %s (%s): %s" % (self.build.version, self.build.python,
                                         "ok" if self.ok else "FAILED")]
        lines += ["  problem: %s" % p for p in self.problems]
        for outcome in self.outcomes:
            if outcome.ok:
                continue
            lines.append("  %s: %s" % (outcome.job.name, outcome.error or "imports failed"))
            lines += ["    import %s: %s" % item for item in sorted(outcome.failures.items())]
        return "\n".join(lines)

    def origin(self, path: Optional[str]) -> str:
        """Where a module came from: pack, pack-venv, st2-site, python."""
        if not path:
            return "python"
        real = os.path.realpath(path)
        for label, folder in (("pack-venv", self.build.venv_site),
                              ("st2-site", self.build.st2_site)):
            if real.startswith(os.path.realpath(folder) + os.sep):
                return label
        if real.startswith(ROOT + os.sep) and os.sep + ".procmodel" + os.sep not in real:
            return "pack"
        return "python"

    def counts(self, outcome: Outcome) -> Dict[str, int]:
        counted = {"pack": 0, "pack-venv": 0, "st2-site": 0, "python": 0}
        for path in outcome.modules.values():
            counted[self.origin(path)] += 1
        return counted


def check(version: str, requirements: str = os.path.join(ROOT, "requirements.txt"),
          pack: str = ROOT, only: Optional[Sequence[str]] = None, workers: int = 2) -> Report:
    """Build (or reuse) the model for ``version`` and run every job (or those named in
    ``only``) in a fresh process each."""
    started = time.monotonic()
    build_ = build(version, requirements)
    problems = []
    if not build_.pip_check_ok:
        problems.append("pip check in the pack virtualenv: %s" % build_.pip_check)
    problems += ["pip install -U: %s" % line for line in build_.pip_conflicts]
    site, locked = read_site_list()
    for name, installed in sorted(build_.installed.items()):
        if normalise(name) in locked:
            problems.append(
                "the pack virtualenv installed %s %s, which StackStorm 3.9 locks at %s but "
                "st2harness/st2-3.9.0-site.txt leaves out: add it there" % (
                    name, installed, locked[normalise(name)]))
    todo = [j for j in jobs(build_, pack) if only is None or j.name in only]
    with concurrent.futures.ThreadPoolExecutor(max_workers=workers) as pool:
        outcomes = list(pool.map(lambda job: run_job(build_, job, pack), todo))
    return Report(build_, outcomes, problems, time.monotonic() - started)


def figures(report: Report) -> List[str]:
    """The README's lines for one Python."""
    loads = {"sensor": [0, 0], "action": [0, 0]}
    sweeps = []
    for outcome in report.outcomes:
        if outcome.job.name.startswith("sweep"):
            counted = report.counts(outcome)
            sweeps.append("  %-38s %4d modules: %3d pack, %3d pack venv, %3d StackStorm "
                          "site, %3d Python; %s" % (
                              outcome.job.name, len(outcome.modules), counted["pack"],
                              counted["pack-venv"], counted["st2-site"], counted["python"],
                              "ok" if outcome.ok else "%d failed" % len(outcome.failures)))
        else:
            loads[outcome.job.kind][0] += outcome.ok
            loads[outcome.job.kind][1] += 1
    build_ = report.build
    installed = ", ".join("%s %s" % item for item in sorted(build_.installed.items(),
                                                            key=lambda i: i[0].lower())
                          if normalise(item[0]) not in TOOLS)
    return ["Python %s: %s; sensors loaded %d/%d, actions loaded %d/%d; pip check %s" % (
        build_.version, "ok" if report.ok else "FAILED", loads["sensor"][0],
        loads["sensor"][1], loads["action"][0], loads["action"][1],
        "ok" if build_.pip_check_ok else "FAILED"),
        "  pip install -U -r requirements.txt put into the pack venv: %s" % installed,
    ] + sweeps


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--python", action="append", choices=PYTHONS,
                        help="a Python version (repeatable; default: all of %s)" % (PYTHONS,))
    parser.add_argument("--requirements", default=os.path.join(ROOT, "requirements.txt"))
    args = parser.parse_args(argv)
    failed = False
    total = time.monotonic()
    for version in args.python or PYTHONS:
        try:
            report = check(version, args.requirements)
        except ProcModelError as exc:
            print("Python %s: %s" % (version, exc))
            failed = True
            continue
        print("\n".join(figures(report)))
        if not report.ok:
            print(report.describe())
            failed = True
        print("  %.1f s (%s)" % (report.seconds, "cached build" if report.build.cached
                                 else "built in %.1f s" % report.build.seconds))
    print("total %.1f s" % (time.monotonic() - total))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
