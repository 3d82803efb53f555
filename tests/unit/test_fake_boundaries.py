"""No test, sandbox or bench code reaches into a fake's private state: the fakes (the HTTP
fakes of Nova, Chef and Slack, and the BIND9 and HAProxy wrappers) are driven through their
public methods only, so that a fake can change inside without breaking its users, and a test
says what it injects (``fake.set_boot_delay(30)``, ``fake.inject(...)``) rather than which
field it pokes. Checked on the source (AST): every attribute whose name is private to a fake
module, read or written on anything but ``self`` or ``cls``, and every import of such a name.
"""

import ast
import os

import pytest

from support.paths import ROOT

FAKES = ("sandbox/http_fake.py", "sandbox/fake_openstack.py", "sandbox/fake_chef.py",
         "sandbox/fake_slack.py", "sandbox/haproxy.py", "sandbox/bind.py")
SCANNED = ("tests", "sandbox", "bench")
# The built-ins that reach an attribute by its name as a string.
ACCESSORS = {"getattr", "setattr", "hasattr", "delattr"}


def _private(name):
    return name.startswith("_") and name != "_" and not (name.startswith("__")
                                                         and name.endswith("__"))


def private_names(source):
    """The private names a module defines: module-level, class-level and ``self._x``."""
    names = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
            names.add(node.id)
        elif isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Store):
            names.add(node.attr)
    return {name for name in names if _private(name)}


def reaches(source, private, module_names=()):
    """In ``source`` (text or a parsed module): (line, name, what) for each use of a name in
    ``private`` on something else than self/cls (or a name imported from the library, which
    is no fake), directly or by ``getattr`` and its kin, and each import of one from a module
    in ``module_names``."""
    tree = ast.parse(source) if isinstance(source, str) else source
    library = {alias.asname or alias.name.split(".")[0] for node in ast.walk(tree)
               if isinstance(node, (ast.Import, ast.ImportFrom))
               and (getattr(node, "module", None) or "").startswith("autoscale_core")
               for alias in node.names}
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and node.attr in private:
            owner = node.value
            if not (isinstance(owner, ast.Name) and owner.id in {"self", "cls"} | library):
                found.append((node.lineno, node.attr, ast.unparse(node)))
        elif (isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
              and node.func.id in ACCESSORS and len(node.args) >= 2
              and isinstance(node.args[1], ast.Constant) and node.args[1].value in private):
            found.append((node.lineno, node.args[1].value, ast.unparse(node)))
        elif isinstance(node, ast.ImportFrom) and (node.module or "") in module_names:
            found.extend((node.lineno, alias.name, "from %s import %s" % (node.module, alias.name))
                         for alias in node.names if alias.name in private)
    return found


def _read(path):
    with open(os.path.join(ROOT, path), encoding="utf-8") as handle:
        return handle.read()


def _python_files():
    for top in SCANNED:
        for folder, dirs, files in os.walk(os.path.join(ROOT, top)):
            dirs[:] = [d for d in dirs if d not in ("__pycache__", "fixtures")]
            for name in sorted(files):
                if name.endswith(".py"):
                    yield os.path.relpath(os.path.join(folder, name), ROOT)


def test_nothing_outside_a_fake_touches_its_private_names():
    owners = {}  # private name -> the fakes that define it
    for fake in FAKES:
        for name in private_names(_read(fake)):
            owners.setdefault(name, set()).add(fake)
    modules = {prefix + os.path.basename(fake)[:-3] for fake in FAKES
               for prefix in ("sandbox.", "")}
    found = []
    for path in _python_files():
        for line, name, what in reaches(_read(path), set(owners), modules):
            found.extend("%s:%d: %s (private to %s)" % (path, line, what, fake)
                         for fake in sorted(owners[name]) if fake != path)
    assert not found, "\n".join(["reaches into a fake's private state:"] + found)


@pytest.mark.parametrize("source", [
    "world.openstack._state",
    "with self.chef._state:\n    pass",
    "left = self.slack._failures",
    "fake._servers[server_id]['delete_delay'] = 30",
    "BindServer._new_secret()",
    "from sandbox.fake_chef import _Rule",
    "getattr(world.openstack, '_servers')",
    "setattr(fake, '_state', None)",
])
def test_the_check_sees_a_reach_into_private_state(source):
    private = {"_state", "_failures", "_servers", "_new_secret", "_Rule"}
    assert reaches(source, private, {"sandbox.fake_chef"})


def test_the_check_lets_a_fake_use_its_own_state_and_leaves_the_library_alone():
    assert reaches("self._state\ncls._state", {"_state"}) == []
    assert reaches("from autoscale_core.backends.nova_api import NovaCompute\n"
                   "NovaCompute._server(raw)", {"_server"}) == []


def test_the_fakes_do_have_private_state_to_protect():
    assert {"_servers", "_faults"} <= private_names(_read("sandbox/fake_openstack.py")) | \
        private_names(_read("sandbox/http_fake.py"))
