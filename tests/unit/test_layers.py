"""The library's layers hold (docs/architecture.md): each imports only what its row allows, no
module takes another's private name, only store.py calls the datastore, and domain/ and
services/ name no vendor in code. Read from the source (AST), so a change that breaks a rule
fails here before a reviewer has to see it."""

import ast
import re
from pathlib import Path

import pytest

ROOT = next(p for p in Path(__file__).resolve().parents if (p / "pack.yaml").exists())
LIB = ROOT / "lib" / "autoscale_core"
PACK_CODE = [LIB, ROOT / "actions", ROOT / "sensors"]

# A layer is a top-level module or package of the library; the value is what it may import.
ALLOWED = {
    "errors": set(),
    "domain": {"errors"},
    "store": {"domain", "errors"},
    "present": {"domain", "errors"},
    "config": {"domain", "errors", "store"},
    "ports": {"domain", "errors", "present"},
    "sources": {"domain", "errors", "store"},
    "backends": {"ports", "config", "domain", "errors"},
    "services": {"backends", "ports", "config", "present", "store", "domain", "errors",
                 "sources"},
}
DATASTORE_CALLS = {"get_value", "set_value", "list_values", "delete_value"}
VENDOR = re.compile(
    r"haproxy|nova|chef|slack|new_?relic|newrelic|new relic|alertmanager|prometheus", re.I)
# A group's provisioner settings keep the names operators type and stored groups carry.
VENDOR_NAMED_FIELDS = {"chef_run_list", "chef_environment"}


def _python_files(*roots):
    for root in roots:
        for path in sorted(root.rglob("*.py")):
            if "__pycache__" not in path.parts and not path.is_symlink():
                yield path


def _layer(path: Path) -> str:
    return path.relative_to(LIB).parts[0].replace(".py", "")


def _imported_layers(path: Path, tree: ast.AST):
    """(line, layer) for every import of another part of the library, relative or absolute."""
    package = path.relative_to(LIB).parent.parts
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = list(package[:len(package) - (node.level - 1)])
                target = base + (node.module.split(".") if node.module else [])
                names = target if target else [alias.name for alias in node.names]
                yield node.lineno, names[0]
            elif node.module and node.module.split(".")[0] == "autoscale_core":
                parts = node.module.split(".")
                yield node.lineno, parts[1] if len(parts) > 1 else node.names[0].name
        elif isinstance(node, ast.Import):
            for alias in node.names:
                parts = alias.name.split(".")
                if parts[0] == "autoscale_core" and len(parts) > 1:
                    yield node.lineno, parts[1]


def layer_violations(paths):
    found = []
    for path in paths:
        own = _layer(path)
        if own not in ALLOWED:
            continue
        tree = ast.parse(path.read_text(), str(path))
        for line, layer in _imported_layers(path, tree):
            if layer != own and layer in ALLOWED and layer not in ALLOWED[own]:
                found.append("%s:%d imports %s" % (path.relative_to(ROOT), line, layer))
    return found


def private_imports(paths):
    found = []
    for path in paths:
        tree = ast.parse(path.read_text(), str(path))
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module != "__future__":
                for alias in node.names:
                    if alias.name.startswith("_") and not alias.name.startswith("__"):
                        found.append("%s:%d imports %s" % (path.relative_to(ROOT),
                                                           node.lineno, alias.name))
    return found


def datastore_calls(paths):
    found = []
    for path in paths:
        if path == LIB / "store.py":
            continue
        tree = ast.parse(path.read_text(), str(path))
        for node in ast.walk(tree):
            if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                    and node.func.attr in DATASTORE_CALLS):
                found.append("%s:%d calls %s" % (path.relative_to(ROOT), node.lineno,
                                                 node.func.attr))
    return found


def _docstrings(tree):
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
            body = node.body
            if body and isinstance(body[0], ast.Expr) and isinstance(
                    getattr(body[0], "value", None), ast.Constant):
                yield body[0].value


def vendor_names(paths):
    """Names and strings in code (not comments, not docstrings) that name a vendor."""
    found = []
    for path in paths:
        tree = ast.parse(path.read_text(), str(path))
        docstrings = {id(node) for node in _docstrings(tree)}
        for node in ast.walk(tree):
            words = []
            if isinstance(node, ast.Name):
                words.append(node.id)
            elif isinstance(node, ast.Attribute):
                words.append(node.attr)
            elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                words.append(node.name)
            elif isinstance(node, ast.arg):
                words.append(node.arg)
            elif isinstance(node, ast.keyword) and node.arg:
                words.append(node.arg)
            elif isinstance(node, ast.alias):
                words.append(node.asname or node.name)
            elif (isinstance(node, ast.Constant) and isinstance(node.value, str)
                    and id(node) not in docstrings):
                words.append(node.value)
            for word in words:
                if word not in VENDOR_NAMED_FIELDS and VENDOR.search(word):
                    found.append("%s:%d %r" % (path.relative_to(ROOT),
                                               getattr(node, "lineno", 0), word[:60]))
    return found


def test_each_layer_imports_only_what_its_row_allows():
    assert layer_violations(_python_files(LIB)) == []


def test_every_part_of_the_library_has_a_row():
    parts = {p.name.replace(".py", "") for p in LIB.iterdir()
             if p.name != "__pycache__" and p.name != "__init__.py"
             and (p.is_dir() or p.suffix == ".py")}
    assert parts == set(ALLOWED)


def test_no_module_takes_another_modules_private_name():
    assert private_imports(_python_files(*PACK_CODE)) == []


def test_only_the_store_calls_the_datastore():
    assert datastore_calls(_python_files(*PACK_CODE)) == []


def test_domain_and_services_name_no_vendor_in_code():
    assert vendor_names(_python_files(LIB / "domain", LIB / "services")) == []


# Each check finds what it is for (a check that cannot fail proves nothing).

@pytest.fixture()
def planted(monkeypatch):
    def plant(relative, text):
        path = LIB / relative
        monkeypatch.setattr(Path, "read_text",
                            _reading({path: text}, Path.read_text))
        return path
    return plant


def _reading(overrides, original):
    def read_text(self, *args, **kwargs):
        if self in overrides:
            return overrides[self]
        return original(self, *args, **kwargs)
    return read_text


@pytest.mark.parametrize("relative, text", [
    ("domain/model.py", "from ..store import Store\n"),
    ("domain/model.py", "from autoscale_core.services import governor\n"),
    ("backends/haproxy.py", "from ..services.nodes import add_node\n"),
    ("present/chat.py", "from .. import store\n"),
    ("store.py", "import autoscale_core.backends.nova\n"),
])
def test_an_upward_import_is_found(planted, relative, text):
    path = planted(relative, text)
    assert len(layer_violations([path])) == 1


def test_a_private_import_is_found(planted):
    path = planted("services/nodes.py", "from ..domain.fields import _number\n")
    assert private_imports([path]) == ["lib/autoscale_core/services/nodes.py:1 imports _number"]


def test_a_datastore_call_outside_the_store_is_found(planted):
    path = planted("services/groups.py", "def f(service):\n    service.set_value('k', 'v')\n")
    assert datastore_calls([path]) == ["lib/autoscale_core/services/groups.py:2 calls set_value"]


@pytest.mark.parametrize("code", [
    "from ..backends.haproxy import HAProxySettings\n",
    "def f():\n    return NovaCompute()\n",
    "MESSAGE = 'Slack is down'\n",
    "def f(chef_key):\n    pass\n",
    "def f():\n    g(new_relic=1)\n",
])
def test_a_vendor_name_in_code_is_found(planted, code):
    path = planted("services/governor.py", code)
    assert vendor_names([path]), code


def test_a_vendor_name_in_a_comment_or_docstring_is_not_code(planted):
    path = planted("services/governor.py",
                   '"""Talks to HAProxy."""\n# Nova boots it\ndef f(group):\n'
                   '    """Chef converges it."""\n    return group.chef_run_list\n')
    assert vendor_names([path]) == []
