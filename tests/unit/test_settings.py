"""Pack config → settings: defaults from config.schema.yaml, clear errors for bad keys."""

import os

import pytest
import yaml

from autoscale_core.config import governor_interval, group_defaults, policy_settings
from autoscale_core.domain.model import Group
from autoscale_core.domain.settings import PolicySettings
from autoscale_core.errors import ValidationError
from st2harness import PackLoader
from support.paths import ROOT


def st2_config(values):
    """The config as st2 hands it over: schema defaults filled in, schema enforced."""
    return PackLoader(ROOT).pack_config(values)


def example():
    with open(os.path.join(ROOT, "autoscale.yaml.example")) as handle:
        return yaml.safe_load(handle)


def test_example_config_gives_working_settings():
    config = st2_config(example())
    settings = policy_settings(config)
    assert settings.global_max_nodes == 100 and settings.alert_max_age == 21600
    assert governor_interval(config) == 30
    group = Group.create(group_defaults(config), name="web", domain="example.com")
    assert group.chef_run_list == ["role[web]"] and group.flavor == "m1.small"


def test_schema_defaults_match_the_library_defaults():
    """A config that sets nothing optional must behave like the library's own defaults."""
    config = st2_config({**example(), "governor": {}, "group_defaults": {}})
    assert policy_settings(config) == PolicySettings()
    from_schema = Group.create(group_defaults(config), name="web", domain="example.com")
    plain = Group.create(name="web", domain="example.com")
    for key in ("min_size", "max_size", "expand_by", "deflate_by", "scale_out_cooldown",
                "scale_in_cooldown", "chef_environment"):
        assert getattr(from_schema, key) == getattr(plain, key), key


def test_every_group_default_is_a_group_setting():
    with open(os.path.join(ROOT, "config.schema.yaml")) as handle:
        schema = yaml.safe_load(handle)
    assert set(schema["group_defaults"]["properties"]) <= set(Group.FIELDS)


@pytest.mark.parametrize("governor,why", [
    ({"global_max_nodes": -1}, "governor.global_max_nodes must be a whole number of at least 0"),
    ({"warning_step": 0}, "governor.warning_step must be a whole number of at least 1"),
    ({"alert_max_age": "6h"}, "governor.alert_max_age must be a whole number"),
    ({"backoff_initial": 600, "backoff_max": 300}, "backoff_max .* must not be smaller"),
    ({"failure_threshold": True}, "governor.failure_threshold must be a whole number"),
])
def test_bad_governor_settings_name_the_key(governor, why):
    with pytest.raises(ValidationError, match=why):
        policy_settings({"governor": governor})


def test_a_missing_required_key_is_refused_by_the_schema():
    config = example()
    del config["dns"]["tsig_secret"]
    with pytest.raises(Exception, match="'tsig_secret' is a required property"):
        st2_config(config)
    with pytest.raises(ValidationError, match="config key governor must be a mapping"):
        policy_settings({"governor": "fast"})
