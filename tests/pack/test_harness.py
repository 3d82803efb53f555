"""The st2 mirror behaves like st2 where the pack depends on it: datastore semantics, trigger
payload validation, action parameter handling and, above all, import paths."""

import os
import sys

import pytest

from st2harness import Datastore, PackLoader
from st2harness import schema as st2schema
from st2harness.base import base_classes, install_st2_modules
from st2harness.loader import exec_entry_point
from st2harness.services import SensorService
from support.paths import ROOT, write

# -- datastore -------------------------------------------------------------------------------


class Clock:
    def __init__(self, now=1000.0):
        self.now = now

    def __call__(self):
        return self.now


def test_local_keys_are_prefixed_per_pack_and_class():
    store = Datastore()
    action = store.service("autoscale", "AsgStatus")
    sensor = store.service("autoscale", "Governor")
    action.set_value("cursor", 5)
    assert store.keys() == ["autoscale.AsgStatus:cursor"]
    assert action.get_value("cursor") == "5"  # st2 stores str(value)
    assert sensor.get_value("cursor") is None  # another class does not see it
    assert sensor.get_value("autoscale.AsgStatus:cursor", local=False) == "5"
    names = [kvp.name for kvp in action.list_values()]
    assert names == ["autoscale.AsgStatus:cursor"]


def test_values_are_strings_and_missing_keys_behave_like_st2():
    service = Datastore().service("autoscale", "X")
    service.set_value("d", {"a": 1}, local=False)
    assert service.get_value("d", local=False) == "{'a': 1}"  # not JSON: encode yourself
    assert service.get_value("nope", local=False) is None
    assert service.delete_value("nope", local=False) is False
    assert service.delete_value("d", local=False) is True
    with pytest.raises(ValueError, match="Scope user is unsupported"):
        service.get_value("d", scope="user")


def test_listing_pages_like_the_st2_api():
    store = Datastore()
    service = store.service("autoscale", "X")
    for i in range(150):
        service.set_value("autoscale.asg.g%03d" % i, "{}", local=False)
    assert len(service.list_values(local=False, prefix="autoscale.asg.")) == 100
    assert len(service.list_values(local=False, prefix="autoscale.asg.", limit=1000)) == 150
    page = service.list_values(local=False, prefix="autoscale.asg.", limit=100, offset=100)
    assert [kvp.name for kvp in page][0] == "autoscale.asg.g100"
    store.requester_is_admin = False  # RBAC on, service user not an admin
    with pytest.raises(Exception, match="maximum value is"):
        service.list_values(local=False, prefix="autoscale.asg.", limit=1000)


def test_ttl_expiry_and_secrets():
    clock = Clock()
    store = Datastore(clock=clock)
    service = store.service("autoscale", "X")
    service.set_value("event", "e", ttl=60, local=False)
    service.set_value("token", "s3cret", local=False, encrypt=True)
    clock.now += 59
    assert service.get_value("event", local=False) == "e"
    clock.now += 1
    assert service.get_value("event", local=False) is None
    assert service.get_value("token", local=False) != "s3cret"
    assert service.get_value("token", local=False, decrypt=True) == "s3cret"
    assert store.keys() == ["token"]


# -- import paths ----------------------------------------------------------------------------

ACTION = """
    from st2common.runners.base_action import Action
    from autoscale_core.domain.names import validate_group_name


    class CheckName(Action):
        def run(self, name):
            return validate_group_name(name)
"""

ACTION_META = """
    name: check_name
    runner_type: python-script
    entry_point: check_name.py
    parameters:
      name:
        type: string
        required: true
"""

SENSOR = """
    from st2reactor.sensor.base import PollingSensor
    from autoscale_core.domain.names import validate_group_name


    class Probe(PollingSensor):
        def setup(self):
            pass

        def poll(self):
            self.sensor_service.dispatch("autoscale.probe", {"group": validate_group_name("web")})

        def cleanup(self):
            pass

        def add_trigger(self, trigger):
            pass

        def update_trigger(self, trigger):
            pass

        def remove_trigger(self, trigger):
            pass
"""

SENSOR_META = """
    class_name: Probe
    entry_point: probe.py
    poll_interval: 30
    trigger_types:
      - name: probe
        payload_schema:
          type: object
          properties:
            group:
              type: string
              required: true
"""


def test_action_sees_the_library_through_actions_lib(mini_pack):
    pack = mini_pack()
    write(pack / "actions" / "check_name.py", ACTION)
    write(pack / "actions" / "check_name.yaml", ACTION_META)
    action = PackLoader(str(pack)).action("check_name")
    assert action.run(name="web") == (True, "web", "")
    failed = action.run(name="Web;rm")
    assert not failed.ok and "is not a DNS label" in failed.error


def test_sensor_sees_the_library_through_its_own_folder(mini_pack):
    pack = mini_pack()
    write(pack / "sensors" / "probe.py", SENSOR)
    write(pack / "sensors" / "probe.yaml", SENSOR_META)
    sensor = PackLoader(str(pack)).sensor("Probe", poll_interval=30)
    assert sensor.get_poll_interval() == 30
    sensor.poll()
    assert [(d.trigger, d.payload) for d in sensor.sensor_service.dispatched] == [
        ("autoscale.probe", {"group": "web"})]


def test_sensor_cannot_import_from_actions_lib(mini_pack):
    """The mistake the harness exists to catch: the library only under actions/lib works for
    actions, and fails for sensors exactly as it would on a stock st2.conf."""
    import autoscale_core.domain.names  # noqa: F401  (already loaded by the test must not help)

    pack = mini_pack(with_sensor_link=False)
    write(pack / "sensors" / "probe.py", SENSOR)
    write(pack / "sensors" / "probe.yaml", SENSOR_META)
    with pytest.raises(ModuleNotFoundError, match="autoscale_core"):
        PackLoader(str(pack)).sensor("Probe")
    # With [packs] enable_common_libs = True, st2 adds the pack's lib/ for sensors too.
    sensor = PackLoader(str(pack), enable_common_libs=True).sensor("Probe")
    sensor.poll()
    assert sensor.sensor_service.dispatched


def test_sensor_cannot_reach_into_the_pack_folder(mini_pack):
    pack = mini_pack()
    write(pack / "sensors" / "probe.py", SENSOR.replace(
        "from autoscale_core.domain.names", "from lib.autoscale_core.domain.names"))
    write(pack / "sensors" / "probe.yaml", SENSOR_META)
    # Even when the test runs from inside the pack folder, as a developer might.
    cwd = os.getcwd()
    os.chdir(pack)
    sys.path.insert(0, str(pack))
    try:
        with pytest.raises(ModuleNotFoundError, match="lib"):
            PackLoader(str(pack)).sensor("Probe")
    finally:
        sys.path.remove(str(pack))
        os.chdir(cwd)


def test_action_cannot_import_sensor_code(mini_pack):
    pack = mini_pack()
    write(pack / "sensors" / "shared_thing.py", "VALUE = 1\n")
    write(pack / "actions" / "check_name.py", ACTION.replace(
        "from autoscale_core.domain.names",
        "from shared_thing import VALUE\n    from autoscale_core.domain.names"))
    write(pack / "actions" / "check_name.yaml", ACTION_META)
    with pytest.raises(ModuleNotFoundError, match="shared_thing"):
        PackLoader(str(pack)).action("check_name")


def test_loading_leaves_the_test_process_module_table_alone(mini_pack):
    import autoscale_core.domain.names as ours

    pack = mini_pack()
    write(pack / "actions" / "check_name.py", ACTION)
    write(pack / "actions" / "check_name.yaml", ACTION_META)
    action = PackLoader(str(pack)).action("check_name")
    assert sys.modules["autoscale_core.domain.names"] is ours
    loaded = sys.modules[action.cls.__module__] if action.cls.__module__ in sys.modules else None
    assert loaded is None or not str(getattr(loaded, "__file__", "")).startswith(str(pack))


@pytest.mark.parametrize("front,back,works", [
    (["actions/lib"], [], True),     # what an action gets
    ([], ["sensors"], True),         # what a sensor gets
    ([], ["actions"], False),        # the actions folder alone is not enough
    ([], [], False),                 # nothing of the pack
])
def test_the_real_pack_ships_the_library_on_both_paths(tmp_path, front, back, works):
    probe = write(tmp_path / "probe.py", "import autoscale_core.domain.policy\n")
    run = lambda: exec_entry_point(  # noqa: E731
        str(probe), [os.path.join(ROOT, p) for p in front],
        [os.path.join(ROOT, p) for p in back])
    if works:
        assert run().autoscale_core.domain.policy.decide
    else:
        with pytest.raises(ModuleNotFoundError):
            run()


# -- sensor service: payload validation like st2 -----------------------------------------------

TRIGGERS = {
    "autoscale.alert": {"payload_schema": {
        "type": "object",
        "properties": {
            "group": {"type": "string", "required": True},
            "severity": {"type": "string", "enum": ["critical", "warning", "info", None]},
        },
    }},
    "autoscale.loose": {"payload_schema": {
        # A Draft 4 "required" list: st2's validator ignores it.
        "type": "object", "required": ["group"], "properties": {"group": {"type": "string"}},
    }},
}


def sensor_service():
    return SensorService(Datastore().service("autoscale", "S"), TRIGGERS)


def test_valid_payload_is_dispatched_and_invalid_one_dropped():
    service = sensor_service()
    assert service.dispatch("autoscale.alert", {"group": "web", "severity": "critical"})
    assert service.dispatch("autoscale.alert", {"severity": "critical"}) is None
    assert service.dispatch("autoscale.alert", {"group": "web", "severity": "bad"}) is None
    assert service.dispatch("autoscale.nope", {"group": "web"}) is None
    assert len(service.dispatched) == 1
    reasons = [d.reason for d in service.dropped]
    assert "'group' is a required property" in reasons[0]
    assert "is not one of" in reasons[1]
    assert "doesn't exist" in reasons[2]


def test_draft4_required_list_drops_every_dispatch_as_in_st2():
    """st2's meta-schema wants ``required`` to be a boolean: a Draft 4 list makes every
    validation, so every dispatch, fail."""
    service = sensor_service()
    assert service.dispatch("autoscale.loose", {"group": "web"}) is None
    assert "is not of type 'boolean'" in service.dropped[0].reason


def test_optional_and_null_values_like_st2():
    service = sensor_service()
    assert service.dispatch("autoscale.alert", {"group": "web", "severity": None})
    schema = {"type": "object", "properties": {
        "retries": {"type": "integer", "default": 2},
        "dns": {"type": "object", "properties": {"key": {"type": "string"}}},
        "hosts": {"type": "array", "items": {"type": "object", "properties": {
            "name": {"type": "string"}}}},
        "level": {"oneOf": [{"type": "string"}, {"type": "null", "description": "unset"}]},
        "size": {"type": "integer", "minimum": 1, "exclusiveMinimum": True},
    }}
    cleaned = st2schema.validate(
        {"retries": None, "dns": {"key": None}, "hosts": [{"name": None}], "level": None,
         "size": 1}, schema)
    assert cleaned["retries"] == 2  # an explicit null takes the default
    with pytest.raises(st2schema.ValidationError):
        st2schema.validate({"retries": "x"}, schema)


# -- actions: parameters and results ------------------------------------------------------------

RESULTS = """
    from st2common.runners.base_action import Action


    class Results(Action):
        def run(self, mode, count=1, note="python default"):
            if mode == "note":
                return note
            if mode == "tuple-fail":
                return (False, {"why": "no"})
            if mode == "raise":
                raise RuntimeError("boom")
            if mode == "not-json":
                return object()
            return {"count": count, "config": self.config.get("governor", {}).get("interval")}
"""


def test_action_parameters_and_results(mini_pack):
    pack = mini_pack()
    write(pack / "actions" / "results.py", RESULTS)
    write(pack / "actions" / "results.yaml", """
        name: results
        runner_type: python-script
        entry_point: results.py
        parameters:
          mode: {type: string, required: true}
          count: {type: integer, default: 3}
          note: {type: string}
    """)
    write(pack / "config.schema.yaml", """
        governor:
          type: object
          properties:
            interval: {type: integer, default: 30}
    """)
    action = PackLoader(str(pack), config={"governor": {}}).action("results")
    assert action.run(mode="ok") == (True, {"count": 3, "config": 30}, "")
    assert action.run(mode="note") == (True, None, "")  # declared, unset: None, as in st2
    assert action.run(mode="tuple-fail") == (False, {"why": "no"}, "")
    assert "RuntimeError: boom" in action.run(mode="raise").error
    assert "Additional properties" in action.run(mode="ok", bogus=1).error
    assert "required property" in action.run().error
    assert "is not of type 'integer'" in action.run(mode="ok", count="x").error
    with pytest.raises(TypeError):
        action.run(mode="not-json")


def test_pack_config_is_checked_against_its_schema(mini_pack):
    pack = mini_pack()
    write(pack / "config.schema.yaml", """
        governor:
          type: object
          properties:
            interval: {type: integer, default: 30}
    """)
    with pytest.raises(Exception, match="is not of type 'integer'"):
        PackLoader(str(pack), config={"governor": {"interval": "often"}})


# -- real StackStorm classes when StackStorm is installed -------------------------------------


def test_real_st2_base_classes_win_when_installed(tmp_path, monkeypatch):
    fake = tmp_path / "st2"
    write(fake / "st2common" / "__init__.py", "")
    write(fake / "st2common" / "runners" / "__init__.py", "")
    write(fake / "st2common" / "runners" / "base_action.py", "class Action:\n    REAL = True\n")
    write(fake / "st2reactor" / "__init__.py", "")
    write(fake / "st2reactor" / "sensor" / "__init__.py", "")
    write(fake / "st2reactor" / "sensor" / "base.py",
          "class Sensor:\n    REAL = True\nclass PollingSensor(Sensor):\n    pass\n")
    saved = {k: v for k, v in sys.modules.items() if k.split(".")[0] in ("st2common", "st2reactor")}
    for name in saved:
        del sys.modules[name]
    monkeypatch.syspath_prepend(str(fake))
    try:
        install_st2_modules()
        action, sensor, polling = base_classes()
        assert getattr(action, "REAL", False) and getattr(sensor, "REAL", False)
    finally:
        for name in [k for k in sys.modules if k.split(".")[0] in ("st2common", "st2reactor")]:
            del sys.modules[name]
        sys.modules.update(saved)
