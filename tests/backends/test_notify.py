"""Chat backend: slack_sdk's real WebClient against a fake Slack Web API on loopback that
checks the bearer token and the channel as Slack does; 429 with Retry-After, HTTP errors, a
Slack that is down or never answers; the message wording; mrkdwn escaping; no token in any
log line, result or error; the notify action run through the harness never fails."""

import dataclasses
import json
import logging
import os
import time
import urllib.parse
import urllib.request

import pytest
import yaml
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

from autoscale_core.backends.slack import ChatError, SlackSettings, choose_channel
from autoscale_core.backends.slack_api import SlackNotifier, retry_after
from autoscale_core.domain import policy
from autoscale_core.domain.model import AlertState, Group, GroupState, Node, NodeState
from autoscale_core.errors import ValidationError
from autoscale_core.ports.chat import Chat as Notifier
from autoscale_core.ports.chat import Delivery
from autoscale_core.present.chat import Kind, Message, escape, format_message
from autoscale_core.services.announce import announce, deliver
from autoscale_core.store import Store, group_key
from sandbox.fake_slack import FakeSlack
from st2harness import Datastore, PackLoader
from support.paths import ROOT
from support.waiting import returns

TOKEN = "xoxb-1234-5678-notify-test-token"
WRONG = "xoxb-9999-0000-wrong-secret-token"
CHANNELS = {"autoscale": "C0AUTOSCALE", "web-ops": "C0WEBOPS", "quiet": "C0QUIET",
            "old": "C0OLD"}


@pytest.fixture(scope="module")
def shared_slack():
    fake = FakeSlack(token=TOKEN, channels=CHANNELS, not_member_of=["quiet"],
                     archived=["old"]).start()
    try:
        yield fake
    finally:
        fake.stop()


@pytest.fixture
def slack(shared_slack):
    shared_slack.reset()
    return shared_slack


@pytest.fixture
def own_slack():
    """A fake of the test's own, for tests that stop it."""
    fake = FakeSlack(token=TOKEN, channels=CHANNELS, not_member_of=["quiet"]).start()
    try:
        yield fake
    finally:
        fake.stop()


def settings_for(fake, **changes):
    # Short waits keep failure tests quick; the production defaults are 10 s, 3 tries, 20 s.
    settings = SlackSettings.from_config({"slack": {"token": TOKEN, "base_url": fake.api_url}})
    values = dict(timeout=2.0, max_wait=5.0, retry_delay=0.05)
    values.update(changes)
    return dataclasses.replace(settings, **values)


def pack_config(fake_or_url, **slack):
    with open(os.path.join(ROOT, "autoscale.yaml.example"), encoding="utf-8") as handle:
        config = yaml.safe_load(handle)
    url = fake_or_url if isinstance(fake_or_url, str) else fake_or_url.api_url
    config["slack"] = dict({"token": TOKEN, "default_channel": "#autoscale", "base_url": url},
                           **slack)
    return config


def run_notify(fake, datastore=None, config=None, **params):
    loader = PackLoader(ROOT, datastore or Datastore(), config=config or pack_config(fake))
    return loader.action("notify").run(**params)


def post_calls(fake):
    return [call for call in fake.calls if call[0] == "chat.postMessage"]


# -- delivered ----------------------------------------------------------------------------------


def test_action_posts_a_readable_message_to_the_default_channel(slack):
    result = run_notify(slack, group="web", kind="scale_out", count=2,
                        cause="critical alert 'High error rate' open for 2 min")
    assert result.ok and result.error == ""
    text = ":arrow_up: *web*: adding 2 nodes — critical alert 'High error rate' open for 2 min"
    assert result.result == {"delivered": True, "channel": "C0AUTOSCALE",
                             "ts": slack.messages[0].ts, "text": text, "error": "",
                             "code": "", "retryable": False}
    assert slack.texts("#autoscale") == [text]
    request = slack.requests[-1]
    assert request.headers["authorization"] == "Bearer " + TOKEN
    assert request.headers["content-type"].startswith("application/json")
    sent = request.json()
    assert sent["channel"] == "#autoscale" and "token" not in sent
    # No automatic linking of "@channel" or names; no link previews.
    assert (sent["parse"], sent["link_names"], sent["unfurl_links"]) == ("none", False, False)


def test_channel_per_group_from_the_datastore_then_the_default(slack):
    datastore = Datastore()
    store = Store(datastore.service("autoscale", "Test"))
    store.save_group(Group.create(name="web", domain="example.com", chat_channel="#web-ops"))
    store.save_group(Group.create(name="api", domain="example.com"))
    for group, channel, expected in (("web", None, "C0WEBOPS"),  # the group's channel
                                     ("api", None, "C0AUTOSCALE"),  # none set: the default
                                     ("gone", None, "C0AUTOSCALE"),  # no such group
                                     ("web", "#autoscale", "C0AUTOSCALE"),  # asked for
                                     ("web", "C0WEBOPS", "C0WEBOPS")):  # by ID
        result = run_notify(slack, datastore=datastore, group=group, kind="info",
                            cause="hello %s" % group, channel=channel)
        assert result.ok and result.result["delivered"], result
        assert result.result["channel"] == expected
    assert [m.channel for m in slack.messages] == [
        "C0WEBOPS", "C0AUTOSCALE", "C0AUTOSCALE", "C0AUTOSCALE", "C0WEBOPS"]


def test_a_corrupt_group_record_still_gets_its_message_out(slack, caplog):
    datastore = Datastore()
    datastore.service("autoscale", "Test").set_value(group_key("web"), "{not json", local=False)
    result = run_notify(slack, datastore=datastore, group="web", kind="paused")
    assert result.result["delivered"] and result.result["channel"] == "C0AUTOSCALE"
    assert any("using the default chat channel" in r.getMessage() for r in caplog.records)


def test_choose_channel_order_and_validation():
    assert choose_channel("#a", "#b", "#c") == "#a"
    assert choose_channel(None, "#b", "#c") == "#b"
    assert choose_channel("", " ", "#c") == "#c"
    with pytest.raises(ValidationError, match="not a Slack channel"):
        choose_channel("two words", None, "#c")
    with pytest.raises(ValidationError, match="no chat channel"):
        choose_channel(None, None, "")


# -- rate limits and retries -------------------------------------------------------------------


def sleeps_recorded():
    """A sleep that records what it is asked for and really sleeps."""
    asked = []

    def sleep(seconds):
        asked.append(seconds)
        time.sleep(seconds)

    return asked, sleep


def test_429_waits_for_retry_after_then_delivers(slack):
    slack.rate_limit(calls=1, retry_after=1)
    asked, sleep = sleeps_recorded()
    delivery = SlackNotifier(settings_for(slack), sleep=sleep).post("#autoscale",
                                                                    "after the wait")
    assert delivery == Delivery("C0AUTOSCALE", slack.messages[0].ts, "after the wait")
    (first, _, status_1), (_, second_at, status_2) = post_calls(slack)
    assert (status_1, status_2) == (429, 200)
    # One wait, of what Retry-After says plus at most 10 % jitter, between the two tries.
    assert len(asked) == 1 and 1.0 <= asked[0] <= 1.1, asked
    first_at = post_calls(slack)[0][1]
    assert second_at - first_at >= 1.0  # the server saw the retry only after Retry-After
    assert len(slack.messages) == 1


def test_429_through_the_action_is_delivered(slack):
    slack.rate_limit(calls=1, retry_after=1)
    result = run_notify(slack, group="web", kind="node_added", node="web-3f9a1c")
    assert result.ok and result.result["delivered"]
    (_, first_at, status_1), (_, second_at, status_2) = post_calls(slack)
    assert (status_1, status_2) == (429, 200)
    assert second_at - first_at >= 1.0  # the server saw the retry only after Retry-After
    assert slack.texts() == [":white_check_mark: *web*: node `web-3f9a1c` is in service"]


def test_a_retry_after_beyond_the_budget_gives_up_at_once(slack):
    slack.rate_limit(calls=1, retry_after=60)
    asked, sleep = sleeps_recorded()
    result = deliver(SlackNotifier(settings_for(slack, max_wait=5.0), sleep=sleep),
                     "#autoscale", "x")
    assert asked == []  # no wait at all
    assert result["delivered"] is False and result["code"] == "ratelimited"
    assert result["retryable"] is True
    assert "asks to wait 60 s (Retry-After)" in result["error"]
    assert "was not posted" in result["error"]
    assert len(post_calls(slack)) == 1 and slack.messages == []


def test_still_rate_limited_after_every_try(slack):
    slack.rate_limit(calls=5, retry_after=0)
    result = deliver(SlackNotifier(settings_for(slack, attempts=3)), "#autoscale", "x")
    assert result["delivered"] is False and "still rate-limited after 3 tries" in result["error"]
    assert len(post_calls(slack)) == 3


def test_a_500_is_reported_not_repeated_and_a_503_is_retried(slack):
    # A 500 may come after Slack posted the message (its fatal_error says so); a 503 did not.
    slack.fail(calls=1, status=500)
    result = deliver(SlackNotifier(settings_for(slack)), "#autoscale", "five hundred")
    assert (result["delivered"], result["code"], result["retryable"]) == (False, "http_500", True)
    assert result["error"] == ("Slack: post message #autoscale: Slack answered HTTP 500; the "
                               "message was not posted")
    assert len(post_calls(slack)) == 1
    slack.fail(calls=1, status=503)
    result = deliver(SlackNotifier(settings_for(slack)), "#autoscale", "five oh three")
    assert result["delivered"] is True
    assert [call[2] for call in post_calls(slack)] == [500, 503, 200]


def test_retry_after_values():
    assert retry_after({"Retry-After": "3"}) == 3.0
    assert retry_after({"retry-after": ["2"]}) == 2.0  # slack_sdk's retry handlers see lists
    assert retry_after({"Retry-After": "0.5"}) == 0.5
    assert retry_after({"Retry-After": "-4"}) == 0.0
    assert retry_after({}) == 1.0
    assert retry_after({"Retry-After": "soon"}) == 1.0
    future = time.strftime("%a, %d %b %Y %H:%M:%S GMT", time.gmtime(time.time() + 30))
    assert 25 <= retry_after({"Retry-After": future}) <= 31


# -- failures the operator must act on ------------------------------------------------------------


def test_wrong_token_is_reported_clearly_without_the_token(slack):
    result = run_notify(slack, config=pack_config(slack, token=WRONG), group="web",
                        kind="scale_in", count=1, cause="no alert for 15 min")
    assert result.ok is True
    assert result.result["delivered"] is False and result.result["code"] == "invalid_auth"
    assert "Slack refused the bot token: check config key slack.token" in result.result["error"]
    assert slack.requests[-1].headers["authorization"] == "Bearer " + WRONG  # it was sent
    assert WRONG not in repr(result) and TOKEN not in repr(result)


@pytest.mark.parametrize("channel, code, words", [
    ("#nowhere", "channel_not_found", "channel #nowhere does not exist"),
    ("#quiet", "not_in_channel", "the bot is not a member of #quiet: invite it"),
    ("#old", "is_archived", "channel #old is archived"),
])
def test_channel_errors_say_what_to_fix(slack, channel, code, words):
    result = run_notify(slack, group="web", kind="alert_closed", channel=channel)
    assert result.ok is True
    assert result.result["delivered"] is False and result.result["code"] == code
    assert result.result["channel"] == channel
    assert result.result["error"].startswith("Slack: post message %s: %s" % (channel, words))
    assert result.result["error"].endswith("(%s)" % code)
    assert slack.messages == []


def test_slack_down_is_reported_after_every_try(own_slack):
    slack = own_slack
    config = pack_config(slack)
    slack.stop()  # nothing listens there any more: connection refused
    result = returns(lambda: run_notify(slack, config=config, group="web", kind="repair",
                                        count=1, cause="1 node below the normal size of 2"))
    assert result.ok is True and result.result["delivered"] is False
    assert result.result["code"] == "connection_failed" and result.result["retryable"] is True
    assert "cannot reach Slack at %s" % config["slack"]["base_url"] in result.result["error"]
    # Connection refused, nothing was sent: tried again, within the production defaults'
    # budget (backoff 0.5 s + 1 s).
    assert "3 tries" in result.result["error"]


def test_no_answer_is_a_timeout_and_not_sent_twice(slack):
    slack.set_delay(1.5)
    asked, sleep = sleeps_recorded()
    result = deliver(SlackNotifier(settings_for(slack, timeout=0.3), sleep=sleep),
                     "#autoscale", "slow")
    assert asked == []  # given up at the timeout, not tried again
    assert result["delivered"] is False and result["code"] == "timeout"
    assert "may or may not have been posted" in result["error"]
    # Slack did post it: sending it again would have posted it twice.
    assert len(post_calls(slack)) == 1 and slack.texts() == ["slow"]


@pytest.mark.parametrize("params, words", [
    ({"group": "Web!", "kind": "info", "cause": "x"}, "group name 'Web!' is not a DNS label"),
    ({"group": "web", "kind": "scale_out"}, "a scale_out message needs a count of nodes"),
    ({"group": "web", "kind": "node_added"}, "a node_added message needs a node name"),
    ({"group": "web", "kind": "node_failed", "node": "web_1"}, "node name 'web_1'"),
    ({"group": "web", "kind": "info"}, "an info message needs a cause"),
    ({"group": "web", "kind": "explode"}, "message kind 'explode' is not one of"),
    ({"group": "web", "kind": "paused", "channel": "two words"}, "is not a Slack channel"),
])
def test_the_action_never_fails_on_bad_input(slack, params, words):
    result = run_notify(slack, **params)
    assert result.ok is True, result
    assert result.result["delivered"] is False and words in result.result["error"]
    assert result.result["error"].startswith("Slack: post message: ")
    assert slack.requests == []  # refused before any I/O


def test_announce_never_raises_on_a_bad_config():
    for config in ({}, {"slack": {}}, {"slack": {"token": "xoxb-a b"}},
                   {"slack": {"token": TOKEN, "base_url": "ftp://x"}},
                   {"slack": {"token": TOKEN, "default_channel": "#a b"}}):
        result = announce(config, Datastore().service("autoscale", "T"), "web", "paused")
        assert result["delivered"] is False and "config key slack" in result["error"]
        assert "xoxb-a b" not in result["error"]


def test_settings_from_config():
    settings = SlackSettings.from_config({"slack": {"token": " %s\n" % TOKEN,
                                                    "base_url": "http://127.0.0.1:9/api"}})
    assert settings.token == TOKEN
    assert settings.base_url == "http://127.0.0.1:9/api/"  # slack_sdk joins methods onto it
    assert settings.default_channel == "#autoscale"
    assert TOKEN not in repr(settings)


# -- the words ----------------------------------------------------------------------------------


CAUSE = "critical alert 'High error rate' open for 2 min"


WORDING = [
    (dict(kind=Kind.SCALE_OUT, count=2, cause=CAUSE),
     ":arrow_up: *web*: adding 2 nodes — " + CAUSE),
    (dict(kind=Kind.SCALE_OUT, count=1, cause=CAUSE, dry_run=True),
     ":arrow_up: *web*: _dry run:_ would add 1 node — " + CAUSE),
    (dict(kind=Kind.SCALE_IN, count=1, cause="no alert for 15 min; 1 node above 2"),
     ":arrow_down: *web*: removing 1 node — no alert for 15 min; 1 node above 2"),
    (dict(kind=Kind.REPAIR, count=1, cause="node web-1 failed"),
     ":wrench: *web*: adding 1 node — node web-1 failed"),
    (dict(kind=Kind.BACKOFF, cause="3 node additions failed in a row"),
     ":no_entry: *web*: not adding nodes for now — 3 node additions failed in a row"),
    (dict(kind=Kind.NODE_ADDED, node="web-3f9a1c"),
     ":white_check_mark: *web*: node `web-3f9a1c` is in service"),
    (dict(kind=Kind.NODE_REMOVED, node="web-3f9a1c", cause="scale-in"),
     ":heavy_minus_sign: *web*: node `web-3f9a1c` is removed — scale-in"),
    (dict(kind=Kind.NODE_FAILED, node="web-3f9a1c", cause="Nova: Quota exceeded"),
     ":x: *web*: node `web-3f9a1c` failed — Nova: Quota exceeded"),
    # The cause is the whole sentence: the kind's words only without one.
    (dict(kind=Kind.ORPHAN, node="web-0a0a0a", cause="VM web-0a0a0a is tagged for group web, "
          "but the group has no record of node web-0a0a0a"),
     ":ghost: *web*: VM web-0a0a0a is tagged for group web, but the group has no record of "
     "node web-0a0a0a"),
    (dict(kind=Kind.ORPHAN, node="web-0a0a0a"),
     ":ghost: *web*: VM `web-0a0a0a` belongs to no node record"),
    (dict(kind=Kind.ALERT_OPENED, cause="critical alert 'High error rate' (issue 7d1e8f0a) "
          "opened"),
     ":rotating_light: *web*: critical alert 'High error rate' (issue 7d1e8f0a) opened"),
    (dict(kind=Kind.ALERT_ACKNOWLEDGED), ":eyes: *web*: alert acknowledged"),
    (dict(kind=Kind.ALERT_CLOSED), ":large_green_circle: *web*: alert closed"),
    (dict(kind=Kind.ALERT_EXPIRED, cause="critical alert (issue 42) had no update for 6 h"),
     ":hourglass: *web*: critical alert (issue 42) had no update for 6 h"),
    (dict(kind=Kind.ALERT_EXPIRED), ":hourglass: *web*: alert expired"),
    (dict(kind=Kind.GROUP_CREATED, count=2), ":new: *web*: group created with 2 nodes"),
    (dict(kind=Kind.GROUP_CREATED, count=2, detail="min 2, max 5"),
     ":new: *web*: group created with 2 nodes (min 2, max 5)"),
    (dict(kind=Kind.GROUP_DELETED), ":wastebasket: *web*: group deleted"),
    (dict(kind=Kind.GROUP_DELETED, count=2), ":wastebasket: *web*: group deleted, 2 nodes removed"),
    (dict(kind=Kind.PAUSED), ":double_vertical_bar: *web*: paused: no scaling until resumed"),
    (dict(kind=Kind.RESUMED), ":arrow_forward: *web*: resumed"),
    (dict(kind=Kind.ERROR, node="web-3f9a1c", cause="DNS: refused"),
     ":x: *web*: failed (node `web-3f9a1c`) — DNS: refused"),
    (dict(kind=Kind.INFO, cause="hello"), ":information_source: *web*: hello"),
]


@pytest.mark.parametrize("fields, text", WORDING)
def test_message_wording(fields, text):
    assert format_message(Message(group="web", **fields)) == text


ISSUE = "7d1e8f0a-3c52-4b8e-9a61-2f4d5c6b7e80"
URL = "https://one.newrelic.com/alerts-ai/issues/%s?account=1&duration=3" % ISSUE


def test_a_scale_out_says_each_thing_once():
    """Issue 13: one line per event, the cause once, long issue ids shortened. What is done
    comes with its numbers (detail), then why: the policy's cause without its own 'adding 2
    nodes (2 → 4, max 5)', the trigger's origin left to the history."""
    decision = policy.decide_one(GroupState(
        Group.create(name="web", domain="example.com", min_size=2, max_size=5),
        alert=AlertState(level="critical", issue_id=ISSUE, title="Checkout error rate above 5%",
                         opened_at=1000.0, updated_at=1000.0),
        nodes={"web-%06d" % i: Node("web-%06d" % i, "web", NodeState.IN_SERVICE, 1.0, 1.0)
               for i in range(2)}), [], 1000.0)
    text = format_message(Message.create("web", Kind.SCALE_OUT, decision.why, count=2,
                                         detail=decision.detail))
    assert text == (":arrow_up: *web*: adding 2 nodes (2 → 4, max 5) — critical alert "
                    "'Checkout error rate above 5%' (issue 7d1e8f0a) open for 0 s")
    assert text.count("adding") == 1 and ISSUE not in text


def test_the_issue_links_to_its_url_and_a_bad_url_is_dropped():
    cause = "critical alert 'Sees issue 99' (issue 7d1e8f0a) opened"
    text = format_message(Message.create("web", Kind.ALERT_OPENED, cause, url=URL))
    # The last mention is the real one (a title comes first); & in the address as Slack asks.
    assert text == (":rotating_light: *web*: critical alert 'Sees issue 99' (<%s|issue "
                    "7d1e8f0a>) opened" % URL.replace("&", "&amp;"))
    for bad in ("javascript:alert(1)", "https://x.example/a|b", "https://x.example/<!here>",
                "https://x.example/ a", "ftp://x.example/", 42):
        assert format_message(Message.create("web", Kind.ALERT_OPENED, cause, url=bad)) == (
            ":rotating_light: *web*: " + cause.replace("'", "'")), bad
    # No mention to link: the link stands after the cause.
    assert format_message(Message.create("web", Kind.ALERT_CLOSED, "it went away",
                                         url=URL)).endswith("it went away (<%s|issue>)"
                                                            % URL.replace("&", "&amp;"))


def test_a_decision_is_laid_out_as_fields_for_slack(slack):
    result = run_notify(slack, group="web", kind="scale_in", count=1, cause="no alert for 15 min",
                        detail="5 → 4, normal size 2")
    assert result.result["text"] == (":arrow_down: *web*: removing 1 node (5 → 4, normal size "
                                     "2) — no alert for 15 min")
    (section,) = slack.messages[0].params["blocks"]
    assert section["text"]["text"] == ":arrow_down: *web*: removing 1 node — no alert for 15 min"
    assert section["fields"] == [{"type": "mrkdwn", "text": "*Nodes*\n5 → 4"},
                                 {"type": "mrkdwn", "text": "*Limit*\nnormal size 2"}]
    # A message without numbers is its line alone.
    run_notify(slack, group="web", kind="node_added", node="web-3f9a1c")
    assert "blocks" not in slack.messages[1].params


def test_every_kind_has_a_wording_example():
    kinds = {value for name, value in vars(Kind).items() if name.isupper()}
    tested = {fields["kind"] for fields, _ in WORDING}
    assert kinds == tested


def test_a_long_cause_is_cut_and_control_characters_dropped():
    text = format_message(Message(group="web", cause="a\x00b\x1b[31m" + "x" * 5000))
    assert "\x00" not in text and "\x1b" not in text
    assert text.endswith("x…") and len(text) < 3100


def test_user_text_cannot_mention_link_or_format_tags():
    cause = "<!channel> see <https://evil.example|docs> & ask <@U024BE7LH> &amp;"
    text = format_message(Message(group="web", kind=Kind.ALERT_OPENED, cause=cause))
    assert text == (":rotating_light: *web*: &lt;!channel&gt; see "
                    "&lt;https://evil.example|docs&gt; &amp; ask &lt;@U024BE7LH&gt; &amp;amp;")
    assert "<" not in text and ">" not in text
    assert escape("a & b <c>") == "a &amp; b &lt;c&gt;"


def test_escaped_text_reaches_slack_as_sent_and_reads_as_typed(slack):
    cause = "title with <!here> & <b>tags</b>"
    result = run_notify(slack, group="web", kind="alert_opened", cause=cause)
    assert result.result["delivered"]
    assert slack.messages[0].text.endswith("&lt;!here&gt; &amp; &lt;b&gt;tags&lt;/b&gt;")
    assert slack.transcript().endswith("*web*: " + cause)


# -- the interface ------------------------------------------------------------------------------


class Recorder(Notifier):
    """A second implementation: what another chat system plugs in."""

    def __init__(self):
        self.posted = []

    def format(self, message):
        return "[%s] %s %s" % (message.group, message.kind, message.cause)

    def post(self, channel, text):
        if channel == "#down":
            raise ChatError(channel, "service down", "down", retryable=True)
        self.posted.append((channel, text))
        return Delivery(channel, "1", text)


def test_notify_formats_and_posts_a_message(slack):
    message = Message(group="web", kind=Kind.NODE_REMOVED, node="web-3f9a1c")
    delivery = SlackNotifier(settings_for(slack)).notify("web-ops", message)
    assert delivery == Delivery("C0WEBOPS", slack.messages[0].ts, format_message(message))
    assert slack.texts("C0WEBOPS") == [":heavy_minus_sign: *web*: node `web-3f9a1c` is removed"]


class Broken(Notifier):
    def post(self, channel, text):
        raise KeyError(TOKEN)


def test_another_chat_system_plugs_in_through_the_interface():
    recorder = Recorder()
    config = {"slack": {"token": TOKEN}}
    datastore = Datastore().service("autoscale", "T")
    result = announce(config, datastore, "web", "info", "hi", chat_factory=lambda s: recorder)
    assert result["delivered"] and recorder.posted == [("#autoscale", "[web] info hi")]
    result = announce(config, datastore, "web", "info", "hi", channel="#down",
                      chat_factory=lambda s: recorder)
    assert result == {"delivered": False, "channel": "#down", "ts": "", "text": "[web] info hi",
                      "error": "Slack: post message #down: service down", "code": "down",
                      "retryable": True}
    # Even a broken implementation does not fail the caller, nor leak what it raised.
    result = announce(config, datastore, "web", "info", "hi", chat_factory=lambda s: Broken())
    assert result["delivered"] is False and result["code"] == "unexpected"
    assert result["error"] == "Slack: post message #autoscale: unexpected KeyError"


# -- the fake itself, as slack_sdk and other clients use it --------------------------------------


def raw_post(fake, body, content_type, headers=None):
    headers = dict({"Content-Type": content_type}, **(headers or {}))
    request = urllib.request.Request(fake.api_url + "chat.postMessage", data=body,
                                     headers=headers)
    with urllib.request.urlopen(request, timeout=5) as answer:
        return json.loads(answer.read().decode("utf-8"))


def test_fake_checks_tokens_where_slack_reads_them(slack):
    form = urllib.parse.urlencode({"token": TOKEN, "channel": "web-ops", "text": "form"})
    answer = raw_post(slack, form.encode(), "application/x-www-form-urlencoded")
    assert answer["ok"] and answer["channel"] == "C0WEBOPS"
    # Slack reads no token from a JSON body: only from the header.
    body = json.dumps({"token": TOKEN, "channel": "#autoscale", "text": "json"}).encode()
    assert raw_post(slack, body, "application/json") == {"ok": False, "error": "not_authed"}
    answer = raw_post(slack, body, "application/json; charset=utf-8",
                      {"Authorization": "Bearer " + TOKEN})
    assert answer["ok"] and answer["ts"] == slack.messages[-1].ts
    assert raw_post(slack, body, "application/json", {"Authorization": "Bearer nope"}) == {
        "ok": False, "error": "invalid_auth"}
    assert slack.texts() == ["form", "json"]


def test_fake_speaks_slack_sdk_in_json_and_form(slack):
    client = WebClient(token=TOKEN, base_url=slack.api_url)
    answer = client.api_call("chat.postMessage", params={"channel": "web-ops", "text": "form"})
    assert answer["ok"] and answer["channel"] == "C0WEBOPS"
    assert slack.requests[-1].headers["content-type"] == "application/x-www-form-urlencoded"
    with pytest.raises(SlackApiError) as err, pytest.warns(UserWarning, match="text"):
        client.chat_postMessage(channel="#autoscale", text=" ")
    assert err.value.response["error"] == "no_text"
    with pytest.raises(SlackApiError) as err:
        client.chat_postMessage(channel="#autoscale", text="x" * 40001)
    assert err.value.response["error"] == "msg_too_long"
    assert client.auth_test()["user_id"] == "U0AUTOSCALE"
    assert slack.texts() == ["form"]
    assert slack.transcript() == "#web-ops        form"


# -- secrets ------------------------------------------------------------------------------------


def test_no_token_in_logs_results_or_errors(own_slack, caplog):
    slack = own_slack
    caplog.set_level(logging.DEBUG)  # every logger, slack_sdk's included
    seen = []
    good, wrong = pack_config(slack), pack_config(slack, token=WRONG)
    seen.append(run_notify(slack, config=good, group="web", kind="info",
                           cause="the token is %s" % TOKEN))
    seen.append(run_notify(slack, config=wrong, group="web", kind="paused"))
    slack.rate_limit(calls=1, retry_after=0)
    seen.append(run_notify(slack, config=good, group="web", kind="resumed"))
    seen.append(run_notify(slack, config=good, group="web", kind="paused", channel="#quiet"))
    slack.fail(calls=1, status=500)
    seen.append(run_notify(slack, config=good, group="web", kind="paused"))
    slack.stop()
    seen.append(run_notify(slack, config=good, group="web", kind="paused"))
    codes = [r.result["code"] for r in seen]
    assert codes == ["", "invalid_auth", "", "not_in_channel", "http_500", "connection_failed"]
    # Both tokens really went over the wire, and a token in a cause was not posted.
    sent = {r.headers.get("authorization") for r in slack.requests}
    assert {"Bearer " + TOKEN, "Bearer " + WRONG} <= sent
    assert slack.texts()[0] == ":information_source: *web*: the token is [redacted]"
    # slack_sdk's own DEBUG lines (request and response) were captured and looked at.
    sdk = [r.getMessage() for r in caplog.records if r.name.startswith("slack_sdk")]
    assert any(m.startswith("Sending a request") and "'Authorization': '(redacted)'" in m
               for m in sdk)
    assert any(m.startswith("Received the following response") for m in sdk)
    texts = [repr(r) for r in seen]
    texts += [r.getMessage() for r in caplog.records]
    texts += [repr(r.args) for r in caplog.records]
    texts += [r.exc_text or "" for r in caplog.records]
    for secret in (TOKEN, WRONG):
        for text in texts:
            assert secret not in text
