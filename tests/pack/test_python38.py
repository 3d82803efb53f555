"""StackStorm 3.9 may run the pack on Python 3.8: every runtime file must parse as 3.8."""

import ast
import os

import pytest

from support.paths import ROOT

RUNTIME_DIRS = ("lib", "actions", "sensors")


def runtime_files():
    for top in RUNTIME_DIRS:
        for folder, _, files in os.walk(os.path.join(ROOT, top)):
            for name in files:
                if name.endswith(".py"):
                    yield os.path.relpath(os.path.join(folder, name), ROOT)


def parses_as_38(source):
    ast.parse(source, feature_version=(3, 8))


@pytest.mark.parametrize("path", sorted(set(runtime_files())))
def test_runtime_file_parses_as_python_38(path):
    with open(os.path.join(ROOT, path), encoding="utf-8") as handle:
        parses_as_38(handle.read())


def test_there_are_runtime_files():
    assert any(path.startswith("lib/autoscale_core/") for path in runtime_files())


@pytest.mark.parametrize("source", [
    "match x:\n    case 1:\n        pass\n",
    "with (open('a') as a, open('b') as b):\n    pass\n",
    "def f[T](x: T) -> T:\n    return x\n",
])
def test_the_check_catches_newer_syntax(source):
    with pytest.raises(SyntaxError):
        parses_as_38(source)
