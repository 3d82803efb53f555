"""ChatOps alias matching and messages, held to StackStorm 3.9's own behaviour.

The aliases here are written inline: they pin down st2's rules, not the pack's aliases (whose
own tests load ``aliases/*.yaml`` with ``load_aliases``). The cases in ``ST2_PARSER_CASES`` and
``test_st2_*`` are st2's unit tests (st2common/tests/unit/test_action_alias_utils.py) replayed
against the mirror.
"""

import re

import jsonschema
import pytest

from st2harness.aliases import (
    ActionAlias,
    ActionAliasAmbiguityException,
    ParseException,
    cast_params,
    extract_parameters,
    hubot_match,
    load_aliases,
    make_execution,
    match_command,
    normalise_command,
    render_ack,
    render_result,
)
from support.paths import write

# -- st2's own parser tests --------------------------------------------------------------------

ST2_PARSER_CASES = [
    # (format, command, parameters) from TestActionAliasParser
    ("", "", {}),
    ("", "a=foobar1", {"a": "foobar1"}),
    ("foo", 'foo a="foobar2 poonies bar"', {"a": "foobar2 poonies bar"}),
    ("foo", "foo a='foobar2 poonies bar'", {"a": "foobar2 poonies bar"}),
    ("foo", 'foo a={"foobar2": "poonies"}', {"a": '{"foobar2": "poonies"}'}),
    ("", 'a=foobar1 b="boobar2 3 4" c=\'coobar3 4\' d={"a": "b"}',
     {"a": "foobar1", "b": "boobar2 3 4", "c": "coobar3 4", "d": '{"a": "b"}'}),
    ("{{ captain }} is my captain", 'Malcolm Reynolds is my captain weirdo="River Tam"',
     {"captain": "Malcolm Reynolds", "weirdo": "River Tam"}),
    ("skip {{a}} more skip {{b}} and skip more.", "skip a1 more skip b1 and skip more.",
     {"a": "a1", "b": "b1"}),
    ("skip {{a}} more skip {{b}}", "skip a1 more skip b1", {"a": "a1", "b": "b1"}),
    ("skip {{a}} more skip {{b}} and skip more.", 'skip "a1 a2" more skip b1 and skip more.',
     {"a": "a1 a2", "b": "b1"}),
    ("acl {{a}} {{b}} {{c}} {{d=1}}", 'acl "a1 a2" "b1" "c1"',
     {"a": "a1 a2", "b": "b1", "c": "c1", "d": "1"}),
    ("acl {{a=test}}", "acl", {"a": "test"}),
    ("skip {{a}} more skip.", 'skip {"a": "b", "c": "d"} more skip.',
     {"a": '{"a": "b", "c": "d"}'}),
    ("skip {{a}} more skip {{b}}.", 'skip {"a": "b", "c": "d"} more skip x.',
     {"a": '{"a": "b", "c": "d"}', "b": "x"}),
    ("s {{a}} more {{ b }} more {{ c=99 }} more {{ d = 99 }}", "s one more two more three more",
     {"a": "one", "b": "two", "c": "three", "d": "99"}),
    ("skip {{ a = value }} more", "skip one more", {"a": "one"}),
    ("skip {{ a = value }} more", "skip more", {"a": "value"}),
    ("two by two hands of {{ color = {{ colors.default_color }} }}", "two by two hands of",
     {"color": "{{ colors.default_color }}"}),
    ("testing {{ a }}", "testing value b=value2", {"a": "value", "b": "value2"}),
    ("testing {{ a=new }}", 'testing b="another value"', {"a": "new", "b": "another value"}),
    ("testing {{ b=abc }} {{ c=xyz }}", 'testing newvalue d={"1": "2"} e="long value"',
     {"b": "newvalue", "c": "xyz", "d": '{"1": "2"}', "e": "long value"}),
    ("skip {{d=test1}} more skip {{e=test1}}.", "skip more skip", {"d": "test1", "e": "test1"}),
    ("skip {{d=test}} more skip {{e=test}}", "skip ponies more skip", {"d": "ponies", "e": "test"}),
    ("{{ p0='http' }} g {{ p1=p }} a {{ url }} {{ p2={'a':'b'} }} {{ p3={{ e.i }} }}",
     "g a http://google.com {{ execution.id }} p4='testing' p5={'a':'c'}",
     {"p0": "http", "p1": "p", "url": "http://google.com", "p2": "{{ execution.id }}",
      "p3": "{{ e.i }}", "p4": "testing", "p5": "{'a':'c'}"}),
    ("foo bar", "foo bar pony1=foo pony2=bar", {"pony1": "foo", "pony2": "bar"}),
    (r"^\s*foo (?P<issue_key>[A-Z][A-Z0-9]+-[0-9]+)", "foo ASDF-1234", {"issue_key": "ASDF-1234"}),
    (r"foo (?P<issue_key>[A-Z][A-Z0-9]+-[0-9]+)\s*$", "foo ASDF-1234", {"issue_key": "ASDF-1234"}),
    (r"^\s*foo (?P<issue_key>[A-Z][A-Z0-9]+-[0-9]+) bar\s*$", "foo ASDF-1234 bar",
     {"issue_key": "ASDF-1234"}),
]


@pytest.mark.parametrize("format_str, command, expected", ST2_PARSER_CASES)
def test_st2_parser_cases(format_str, command, expected):
    assert extract_parameters(format_str, command) == expected


@pytest.mark.parametrize("format_str, command", [
    ("skip {{d}} more skip {{e}}.", None),
    ("foo bar ponies", "foo lulz ponies"),
    (r"^\s*foo (?P<issue_key>[A-Z][A-Z0-9]+-[0-9]+)", "bar foo ASDF-1234"),
    (r"foo (?P<issue_key>[A-Z][A-Z0-9]+-[0-9]+)\s*$", "foo ASDF-1234 bar"),
    (r"^\s*foo (?P<issue_key>[A-Z][A-Z0-9]+-[0-9]+)\s*$", "bar ASDF-1234"),
])
def test_st2_parser_mismatches(format_str, command):
    with pytest.raises(ParseException) as caught:
        extract_parameters(format_str, command)
    assert str(caught.value) == 'Command "%s" doesn\'t match format string "%s"' % (
        command or "", format_str)


def test_st2_immutable_parameters_are_injected():
    alias = ActionAlias("a", "p.a", ["a"], immutable_parameters={"env": "dev"})
    _, _, params = match_command([alias], "a param1=value1 param2=value2")
    assert params == {"param1": "value1", "param2": "value2", "env": "dev"}


def test_st2_immutable_parameters_with_jinja():
    alias = ActionAlias("a", "p.a", ["a"], immutable_parameters={"env": '{{ "dev" + "1" }}'})
    assert match_command([alias], "a param1=value1")[2] == {"param1": "value1", "env": "dev1"}


def test_st2_immutable_parameter_override_raises():
    alias = ActionAlias("a", "p.a", ["a"], immutable_parameters={"env": "dev"})
    with pytest.raises(ValueError, match="^Immutable arguments cannot be overriden: env$"):
        match_command([alias], "a param1=value1 env=prod")


# -- the README's commands ---------------------------------------------------------------------

def asg_aliases():
    """Formats written the way st2 needs them: the words, with the pairs left to trail."""
    def alias(name, formats, **extra):
        return ActionAlias(name, "autoscale.%s" % name, formats, **extra)

    return [
        alias("asg_create", ["asg create"]),
        alias("asg_add_node", ["asg node add"]),
        alias("asg_expand", ["asg expand", "asg expand {{asg}} by {{count}}"]),
        alias("asg_remove_node", ["asg node delete"]),
        alias("asg_deflate", ["asg deflate"]),
        alias("asg_delete", ["asg delete"]),
        alias("asg_status", ["asg status"]),
        alias("asg_list", ["asg list"]),
        alias("asg_pause", ["asg pause"], immutable_parameters={"paused": True}),
        alias("asg_resume", ["asg resume"], immutable_parameters={"paused": False}),
    ]


README_COMMANDS = [
    ("!asg create name=XXX domain=YYY", "asg_create", {"name": "XXX", "domain": "YYY"}),
    ("!asg node add asg=XXX", "asg_add_node", {"asg": "XXX"}),
    ("!asg expand asg=XXX", "asg_expand", {"asg": "XXX"}),
    ("!asg node delete name=ZZZ asg=XXX", "asg_remove_node", {"name": "ZZZ", "asg": "XXX"}),
    ("!asg deflate asg=XXX", "asg_deflate", {"asg": "XXX"}),
    ("!asg delete name=XXX", "asg_delete", {"name": "XXX"}),
    ("!asg status asg=XXX", "asg_status", {"asg": "XXX"}),
    ("!asg list", "asg_list", {}),
    ("!asg pause asg=XXX", "asg_pause", {"asg": "XXX", "paused": True}),
    ("!asg resume asg=XXX", "asg_resume", {"asg": "XXX", "paused": False}),
    ("!asg create name=web domain=example.com min=2 max=10", "asg_create",
     {"name": "web", "domain": "example.com", "min": "2", "max": "10"}),
    ("!asg delete name=web force=true", "asg_delete", {"name": "web", "force": "true"}),
    ("!asg expand web by 3", "asg_expand", {"asg": "web", "count": "3"}),
    ('!asg create name=checkout domain=example.com match_labels={"service": "checkout", '
     '"env": "prod"}', "asg_create",
     {"name": "checkout", "domain": "example.com",
      "match_labels": '{"service": "checkout", "env": "prod"}'}),
]


@pytest.mark.parametrize("command, alias_name, params", README_COMMANDS)
def test_readme_commands(command, alias_name, params):
    aliases = asg_aliases()
    alias, representation, found = match_command(aliases, command)
    assert (alias.name, found) == (alias_name, params)
    # hubot forwards the same command with the same format
    assert hubot_match(aliases, normalise_command(command)) == (alias, representation)


def test_a_format_spelling_the_pairs_does_not_match_them():
    """st2 cuts the trailing pairs off first: nothing is left for name={{name}} to match."""
    spelled = ActionAlias("create", "autoscale.asg_create",
                          ["asg create name={{name}} domain={{domain}}"])
    command = "asg create name=web domain=example.com"
    with pytest.raises(ActionAliasAmbiguityException) as caught:
        match_command([spelled], command)
    assert str(caught.value) == "Command '%s' matched no patterns" % command
    with pytest.raises(ParseException, match="doesn't match format string"):
        extract_parameters(spelled.formats[0], command)
    # ... nor does a placeholder for a value given as a pair
    with pytest.raises(ParseException):
        extract_parameters("asg create {{name}}", "asg create name=web")
    # hubot's own regex does accept it, so the user gets st2's error rather than silence
    assert hubot_match([spelled], command) == (spelled, spelled.formats[0])
    plain = ActionAlias("create", "autoscale.asg_create", ["asg create"])
    assert match_command([plain], command)[2] == {"name": "web", "domain": "example.com"}


# -- the rules, one by one ---------------------------------------------------------------------

def test_defaults_are_strings_and_give_way():
    alias = ActionAlias("expand", "autoscale.asg_expand", ["asg expand {{asg}} {{ count = 1 }}"])
    assert match_command([alias], "asg expand web")[2] == {"asg": "web", "count": "1"}
    assert match_command([alias], "asg expand web 4")[2] == {"asg": "web", "count": "4"}
    assert match_command([alias], "asg expand web count=7")[2] == {"asg": "web", "count": "7"}
    assert match_command([alias], "asg expand web 4 count=7")[2] == {"asg": "web", "count": "7"}


def test_quoted_values():
    alias = ActionAlias("create", "autoscale.asg_create", ["asg create"])
    found = match_command([alias], """asg create name=web note="two words" by='a b c' x="" y=''""")
    assert found[2] == {"name": "web", "note": "two words", "by": "a b c", "x": "", "y": ""}
    # Slack's curly quotes arrive as plain quotes (hubot's Slack adapter)
    assert match_command([alias], "!asg create note=\u201ctwo words\u201d")[2] == {
        "note": "two words"}
    # a blank after '=' ends the pair: what follows is no longer a pair, so nothing trails
    with pytest.raises(ActionAliasAmbiguityException, match="matched no patterns"):
        match_command([alias], "asg create note= two")


def test_placeholders_mid_format():
    alias = ActionAlias("scale", "autoscale.asg_expand", ["scale {{asg}} to {{count}} nodes"])
    assert match_command([alias], "scale web to 5 nodes")[2] == {"asg": "web", "count": "5"}
    assert match_command([alias], 'scale "web front" to 5 nodes why="load"')[2] == {
        "asg": "web front", "count": "5", "why": "load"}
    with pytest.raises(ActionAliasAmbiguityException):
        match_command([alias], "scale web to 5")


def test_only_trailing_pairs_are_pairs_and_their_text_goes_everywhere():
    alias = ActionAlias("say", "p.say", ["say {{text}}"])
    # a pair before other words is part of the text
    assert match_command([alias], "say a=1 now")[2] == {"text": "a=1 now"}
    # st2 removes the trailing pairs' text wherever else it occurs too
    assert match_command([alias], "say x=1 and x=1")[2] == {"text": "and", "x": "1"}


def test_bot_prefix_and_spacing():
    aliases = asg_aliases()
    for command in ("!asg list", "! asg list", "  !asg list", "asg list", "asg\u00a0list",
                    "asg list   "):
        assert match_command(aliases, command)[0].name == "asg_list"
    # the format's blanks are literal: two blanks between words do not match one
    with pytest.raises(ActionAliasAmbiguityException, match="matched no patterns"):
        match_command(aliases, "asg  list")
    assert normalise_command("!st2 asg list", bot_prefix="!st2") == "asg list"


def test_matching_is_case_sensitive_in_st2_not_in_hubot():
    aliases = asg_aliases()
    with pytest.raises(ActionAliasAmbiguityException, match="matched no patterns"):
        match_command(aliases, "ASG list")
    alias, representation = hubot_match(aliases, "ASG list")
    with pytest.raises(ParseException):  # what POST /aliasexecution then answers
        extract_parameters(representation, "ASG list")


def test_no_match():
    with pytest.raises(ActionAliasAmbiguityException) as caught:
        match_command(asg_aliases(), "!asg frobnicate asg=web")
    assert str(caught.value) == "Command 'asg frobnicate asg=web' matched no patterns"
    assert caught.value.matches == []
    assert hubot_match(asg_aliases(), "asg frobnicate asg=web") is None


def test_two_matching_formats_are_ambiguous_for_st2_but_hubot_takes_the_first():
    generic = ActionAlias("asg_do", "autoscale.asg_do", ["asg {{verb}}"])
    aliases = [generic] + asg_aliases()
    with pytest.raises(ActionAliasAmbiguityException) as caught:
        match_command(aliases, "asg list")
    assert str(caught.value) == "Command 'asg list' matched more than 1 pattern"
    assert [(m["alias"].name, m["representation"]) for m in caught.value.matches] == [
        ("asg_do", "asg {{verb}}"), ("asg_list", "asg list")]
    assert hubot_match(aliases, "asg list") == (generic, "asg {{verb}}")
    # two formats of one alias count twice too
    twice = ActionAlias("l", "p.l", ["asg list", "asg {{what=list}}"])
    with pytest.raises(ActionAliasAmbiguityException, match="more than 1 pattern"):
        match_command([twice], "asg list")


def test_disabled_aliases_and_match_multiple():
    off = ActionAlias("asg_list", "autoscale.asg_list", ["asg list"], enabled=False)
    with pytest.raises(ActionAliasAmbiguityException, match="matched no patterns"):
        match_command([off], "asg list")
    multi = ActionAlias("pings", "p.ping", [
        {"display": "ping <host>...", "representation": ["ping {{host}}"], "match_multiple": True}])
    single = ActionAlias("ping", "p.ping", ["ping {{host}}"])
    # the match_multiple alias is only tried when nothing else matched
    assert match_command([multi, single], "ping a")[0] is single
    assert match_command([multi], "ping a") == (multi, "ping {{host}}", [{"host": "a"}])


def test_display_only_format_matches_pairs_then_fails():
    alias = ActionAlias("help", "p.help", [{"display": "asg help"}])
    with pytest.raises(ValueError, match='Format string "" is not available on the alias "help"'):
        match_command([alias], "topic=x")


def test_a_placeholder_used_twice_breaks_every_command():
    broken = ActionAlias("broken", "p.b", ["{{a}} and {{a}}"])
    with pytest.raises(re.error):
        match_command([broken] + asg_aliases(), "asg list")


def test_immutable_parameters_see_the_context_and_the_datastore():
    alias = ActionAlias("asg_pause", "autoscale.asg_pause", ["asg pause"], immutable_parameters={
        "by": "{{ api_user }} in {{ source_channel }}",
        "limit": "{{ st2kv.system.autoscale.max }}",
        "missing": "[{{ st2kv.system.nope }}]",
        "count": 3,
    })
    params = match_command([alias], "asg pause asg=web", chat_user="alice", source_channel="#ops",
                           kv={"system": {"autoscale.max": "40"}})[2]
    assert params == {"asg": "web", "by": "alice in #ops", "limit": "40", "missing": "[]",
                      "count": 3}


def test_values_stay_strings_until_the_action_types_cast_them():
    command = 'asg create name=web min=2 max=10 force=True zones="a, b" ratio=.5'
    _, _, params = match_command(asg_aliases(), command)
    assert params["min"] == "2" and params["zones"] == "a, b"
    parameters = {"name": {"type": "string"}, "min": {"type": "integer"},
                  "max": {"type": "integer"}, "force": {"type": "boolean"},
                  "zones": {"type": "array"}, "ratio": {"type": "number"}}
    assert cast_params(params, parameters) == {
        "name": "web", "min": 2, "max": 10, "force": True, "zones": ["a", "b"], "ratio": 0.5}
    with pytest.raises(ValueError, match='Failed to cast value "2.0" .* "min" of type "integer"'):
        cast_params({"min": "2.0"}, parameters)
    with pytest.raises(ValueError, match="force"):
        cast_params({"force": "yes"}, parameters)
    # unquoted, "zones=a, b" is no pair: the blank after the comma ends it, so nothing matches
    with pytest.raises(ActionAliasAmbiguityException, match="matched no patterns"):
        match_command(asg_aliases(), "asg create name=web zones=a, b")
    assert cast_params({"other": "5"}, parameters) == {"other": "5"}


# -- ack and result messages -------------------------------------------------------------------

def test_ack_format_sees_execution_and_actionalias():
    alias = ActionAlias("asg_create", "autoscale.asg_create", ["asg create"], ack={
        "format": "Creating {{ execution.parameters.name }} (min {{ execution.parameters.min }})"
                  " with {{ actionalias.action_ref }}",
        "extra": {"color": "{{ 'good' if execution.status == 'requested' else 'bad' }}"}})
    _, _, params = match_command([alias], "asg create name=web min=2")
    params = cast_params(params, {"min": {"type": "integer"}})
    ack = render_ack(alias, params)
    assert ack.message == "Creating web (min 2) with autoscale.asg_create"
    assert ack.extra == {"color": "good"}
    assert ack.text == ack.message + (
        " (details available at https://st2.example.com/#/history/5f0000000000000000000001/general)")
    # err-stackstorm appends the URL only when asked
    assert render_ack(alias, params, client="errbot").text == ack.message


def test_ack_switches_and_failures():
    def ack_for(ack):
        return render_ack(ActionAlias("a", "autoscale.a", ["a"], ack=ack), {"asg": "web"})

    assert ack_for({"format": "ok {{ execution.parameters.asg }}", "append_url": False}).text == \
        "ok web"
    silent = ack_for({"enabled": False, "format": "x"})
    assert (silent.enabled, silent.text) == (False, None)
    # an undefined name does not stop the execution: the error becomes the message
    broken = ack_for({"format": "{{ execution.parameters.count }}", "append_url": False})
    assert broken.message.startswith('Cannot render "format" in field "ack" for alias. ')
    assert "count" in broken.message
    # the ack context has no "alias" (that name belongs to the result context)
    assert ack_for({"format": "{{ alias.name }}"}).message.startswith('Cannot render "format"')
    # no format: hubot's canned line, errbot nothing
    canned = ack_for({})
    assert canned.message is None and "5f0000000000000000000001" in canned.text
    assert render_ack(ActionAlias("a", "autoscale.a", ["a"]), {}, client="errbot").enabled is False


def workflow_execution(alias, status="succeeded", output=None, errors=None):
    result = {"output": output}
    if errors is not None:
        result["errors"] = errors
    return make_execution(alias, {"asg": "web", "count": 2}, status=status, result=result,
                          elapsed_seconds=185.2)


def test_result_format_sees_execution_result_and_alias():
    alias = ActionAlias("asg_expand", "autoscale.asg_expand", ["asg expand"], result={
        "format": "{{ alias.name }}: {{ execution.parameters.asg }} {{ execution.status }}{~}"
                  "added {{ execution.result.output.added | join(', ') }} "
                  "in {{ execution.elapsed_seconds | to_human_time_from_seconds }}"
                  "{{ actionalias }}{{ execution.result.output.nothing }}",
        "extra": {"color": "{% if execution.status == 'succeeded' %}good"
                           "{% else %}danger{% endif %}"},
    })
    shown = render_result(alias, workflow_execution(alias, output={"added": ["web-3", "web-4"]}))
    # undefined names (actionalias, a missing output key) render as nothing in result.format
    assert shown.message == "asg_expand: web succeeded{~}added web-3, web-4 in 3m5s"
    assert (shown.pretext, shown.text) == (
        "asg_expand: web succeeded", "added web-3, web-4 in 3m5s")
    assert (shown.extra, shown.color, shown.default_template) == ({"color": "good"}, "good", False)
    failed = render_result(alias, workflow_execution(
        alias, status="failed", output={"added": []}, errors=[{"message": "nova quota"}]))
    assert failed.color == "danger"
    # ... but an attribute of an undefined name fails the formatting action: nothing is posted
    wrong = ActionAlias("x", "autoscale.x", ["x"], result={"format": "{{ actionalias.name }}"})
    with pytest.raises(Exception, match="'actionalias' is undefined"):
        render_result(wrong, make_execution(wrong, {}))


def test_result_switches_and_the_default_template():
    python_action = ActionAlias("asg_status", "autoscale.asg_status", ["asg status"], result={
        "format": "{% for n in execution.result.result.nodes %}{{ n.name }} {{ n.state }}\n"
                  "{% endfor %}"})
    nodes = [{"name": "web-1", "state": "in_service"}, {"name": "web-2", "state": "draining"}]
    execution = make_execution(
        python_action, {"asg": "web"}, status="succeeded", runner="python-script",
        result={"result": {"nodes": nodes}, "stdout": "", "stderr": "", "exit_code": 0})
    assert render_result(python_action, execution).message == "web-1 in_service\nweb-2 draining\n"
    # result.enabled false: nothing is posted
    quiet = ActionAlias("q", "autoscale.q", ["q"], result={"enabled": False, "format": "x"})
    assert render_result(quiet, make_execution(quiet, {})).enabled is False
    # no result.format: st2's key : value dump, which our aliases must never fall back to
    plain = ActionAlias("p", "autoscale.p", ["p"])
    assert render_result(plain, make_execution(plain, {})).default_template is True
    # an execution not started from chat ignores the alias's format
    execution = make_execution(python_action, {"asg": "web"})
    execution["context"].pop("action_alias_ref")
    assert render_result(python_action, execution).default_template is True
    # result.extra is strict about undefined names
    strict = ActionAlias("s", "autoscale.s", ["s"],
                         result={"format": "", "extra": {"x": "{{ y }}"}})
    with pytest.raises(Exception, match="'y' is undefined"):
        render_result(strict, make_execution(strict, {}))


# -- loading -----------------------------------------------------------------------------------

def test_load_aliases(tmp_path):
    write(tmp_path / "pack.yaml", "ref: autoscale\nname: autoscale\n")
    write(tmp_path / "aliases" / "b_list.yaml", """
        name: asg_list
        action_ref: autoscale.asg_list
        formats: ["asg list"]
        result:
          format: "{{ execution.result.result | length }} groups"
    """)
    write(tmp_path / "aliases" / "a_create.yml", """
        name: asg_create
        pack: autoscale
        action_ref: autoscale.asg_create
        description: Create a group
        formats:
          - display: "asg create name=<name> domain=<domain>"
            representation: ["asg create"]
        ack:
          format: "creating {{ execution.parameters.name }}"
          append_url: false
    """)
    write(tmp_path / "aliases" / "notes.txt", "not an alias")
    aliases = load_aliases(str(tmp_path))
    assert [a.ref for a in aliases] == ["autoscale.asg_create", "autoscale.asg_list"]
    assert aliases[0].metadata_file == "aliases/a_create.yml"
    assert aliases[0].get_format_strings() == ["asg create"]
    alias, representation, params = match_command(aliases, "!asg create name=web domain=x")
    assert (alias.name, representation, params) == (
        "asg_create", "asg create", {"name": "web", "domain": "x"})
    assert render_ack(alias, params).text == "creating web"


@pytest.mark.parametrize("body, error", [
    ("name: x\naction_ref: autoscale.x\nformats: [x]\nack: {fromat: x}\n", None),
    ("name: x\naction_ref: autoscale.x\nformats: [x]\nresult_format: x\n",
     jsonschema.ValidationError),
    ("name: x\naction_ref: autoscale.x\nformats: [{display: x, representation: x}]\n",
     jsonschema.ValidationError),
    ("action_ref: autoscale.x\nformats: [x]\n", jsonschema.ValidationError),
    ("name: x\npack: other\naction_ref: other.x\nformats: [x]\n", ValueError),
])
def test_load_aliases_refuses_what_st2_refuses(tmp_path, body, error):
    write(tmp_path / "pack.yaml", "ref: autoscale\n")
    write(tmp_path / "aliases" / "x.yaml", body)
    if error is None:  # st2's schema leaves ack's own keys open: a typo passes registration
        assert load_aliases(str(tmp_path))[0].ack == {"fromat": "x"}
    else:
        with pytest.raises(error):
            load_aliases(str(tmp_path))
