"""Fixtures of the pack tests."""

import os
import shutil

import pytest

from support.paths import ROOT


@pytest.fixture
def mini_pack(tmp_path):
    """A scratch pack laid out like the real one, holding a copy of the library, for testing
    import paths with files the real pack must not contain."""

    def build(with_sensor_link=True, with_action_link=True):
        pack = tmp_path / "pack"
        (pack / "actions" / "lib").mkdir(parents=True)
        (pack / "sensors").mkdir()
        (pack / "pack.yaml").write_text("ref: autoscale\nname: autoscale\n")
        shutil.copytree(os.path.join(ROOT, "lib", "autoscale_core"),
                        pack / "lib" / "autoscale_core",
                        ignore=shutil.ignore_patterns("__pycache__"))
        if with_action_link:
            os.symlink("../../lib/autoscale_core", pack / "actions" / "lib" / "autoscale_core")
        if with_sensor_link:
            os.symlink("../lib/autoscale_core", pack / "sensors" / "autoscale_core")
        return pack

    return build
