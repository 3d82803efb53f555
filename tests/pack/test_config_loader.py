"""The pack config as st2's ContentPackConfigLoader hands it over (issue 11): ``{{ st2kv... }}``
rendered from the datastore, ``secret: true`` values decrypted, defaults filled for absent
sections; a secret stored without ``--encrypt`` fails every action, as in st2."""

import binascii
import os

import pytest
import yaml

from sandbox.fake_slack import FakeSlack
from st2harness import Datastore, PackLoader
from st2harness.workflows import WorkflowRunner
from support.paths import ROOT

TOKEN = "xoxb-1234-5678-config-loader-token"


def example():
    with open(os.path.join(ROOT, "autoscale.yaml.example"), encoding="utf-8") as handle:
        return yaml.safe_load(handle)


@pytest.fixture(scope="module")
def slack():
    fake = FakeSlack(token=TOKEN, channels={"bot-testing": "C0BOTTESTING"}).start()
    try:
        yield fake
    finally:
        fake.stop()


def loader_with(datastore, **sections):
    config = example()
    config.update(sections)
    return PackLoader(ROOT, datastore, config=config)


def test_the_example_config_references_secrets_that_st2_decrypts(slack):
    """The example's slack.token is "{{ st2kv.system.slack_bot_token }}": set with --encrypt,
    the action gets the token itself, and the fake Slack (which checks it) takes the post."""
    datastore = Datastore()
    datastore.service("autoscale", "Cli").set_value("slack_bot_token", TOKEN, local=False,
                                                    encrypt=True)
    loader = loader_with(datastore)
    loader.config["slack"]["base_url"] = slack.api_url
    assert loader.config["slack"]["token"] == "{{ st2kv.system.slack_bot_token }}"
    assert loader.runtime_config()["slack"]["token"] == TOKEN
    result = loader.action("notify").run(group="web", kind="info", cause="hello")
    assert result.ok and result.result["delivered"], result


@pytest.mark.parametrize("stored,error", [("xoxb-odd1", "Odd-length string"),
                                          ("xoxb-even!", "Non-hexadecimal digit found")])
def test_a_secret_stored_without_encrypt_fails_every_action_as_in_st2(slack, stored, error):
    datastore = Datastore()
    datastore.service("autoscale", "Cli").set_value("slack_bot_token", stored, local=False)
    loader = loader_with(datastore)
    with pytest.raises(binascii.Error, match=error):
        loader.runtime_config()
    with pytest.raises(binascii.Error, match=error):
        loader.action("notify").run(group="web")
    # In a workflow: the task's execution fails before the action runs, with st2's error,
    # and the failure branch still says why.
    result = WorkflowRunner(loader).run("autoscale.asg_delete", name="web")
    assert result.status == "failed"
    assert error in result.output["error"], result.output


def test_values_that_are_not_secret_render_as_stored_and_missing_keys_are_none():
    datastore = Datastore()
    service = datastore.service("autoscale", "Cli")
    service.set_value("dns_server", "192.0.2.53", local=False)
    service.set_value("sealed", "not for you", local=False, encrypt=True)
    config = loader_with(datastore, dns=dict(example()["dns"],
                                             server="{{ st2kv.system.dns_server }}",
                                             zone="{{ st2kv.system.sealed }}",
                                             tsig_key_name="{{ st2kv.system.missing }}"))
    rendered = config.runtime_config()
    assert rendered["dns"]["server"] == "192.0.2.53"
    # Not secret in the schema: st2 hands over the ciphertext, as stored.
    assert rendered["dns"]["zone"] not in ("not for you", "{{ st2kv.system.sealed }}")
    assert rendered["dns"]["tsig_key_name"] is None


def test_defaults_fill_absent_sections_after_rendering():
    values = {key: value for key, value in example().items() if key != "governor"}
    values["group_defaults"] = {}
    loader = PackLoader(ROOT, Datastore(), config=values)
    loader.config.pop("governor", None)
    rendered = loader.runtime_config()
    assert rendered["governor"]["interval"] == 30
    assert rendered["group_defaults"]["max_size"] >= 1


def test_a_value_that_does_not_render_names_its_key():
    loader = loader_with(Datastore(), dns=dict(example()["dns"], server="{{ st2kv.system. }}"))
    with pytest.raises(RuntimeError, match='key "dns.server"'):
        loader.runtime_config()
