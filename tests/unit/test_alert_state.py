"""A group's alert state under New Relic deliveries (autoscale_core.domain.alert_state), pure and
through the asg_alert_record action."""

import pytest

from autoscale_core.domain import alert_state
from autoscale_core.domain.alert_state import Delivery, apply
from autoscale_core.domain.model import AlertLevel, AlertState
from autoscale_core.errors import ValidationError
from autoscale_core.services import alerts
from support.pack import Pack

NOW = 1_700_000_000.0


def deliver(alert, state, severity, issue, title="", at=NOW, max_age=21600):
    return apply(alert, Delivery(state, severity, issue, title), at, max_age)


def test_open_critical_then_close_ends_the_alert_and_starts_the_scale_in_clock():
    opened = deliver(AlertState(), "open", "critical", "7", "CPU high")
    assert opened.changed and opened.announce == alert_state.OPENED
    assert (opened.alert.level, opened.alert.issue_id, opened.alert.title) == \
        ("critical", "7", "CPU high")
    assert opened.alert.opened_at == NOW and opened.alert.updated_at == NOW
    closed = deliver(opened.alert, "closed", "critical", "7", at=NOW + 300)
    assert closed.changed and closed.announce == alert_state.ENDED
    assert closed.alert.level == AlertLevel.NONE and closed.alert.ended_at == NOW + 300
    assert closed.alert.issues == {}


def test_a_repeat_only_refreshes_and_is_not_announced():
    opened = deliver(AlertState(), "open", "warning", "7").alert
    again = deliver(opened, "open", "warning", "7", at=NOW + 60)
    assert again.announce == "" and again.alert.updated_at == NOW + 60
    assert again.alert.opened_at == NOW and again.alert.level == "warning"


def test_escalation_and_downgrade_of_one_issue_change_the_level():
    warning = deliver(AlertState(), "open", "warning", "7").alert
    critical = deliver(warning, "open", "critical", "7", at=NOW + 10)
    assert critical.announce == alert_state.OPENED and critical.alert.level == "critical"
    lowered = deliver(critical.alert, "open", "warning", "7", at=NOW + 20)
    assert lowered.alert.level == "warning"
    info = deliver(lowered.alert, "open", "info", "7", at=NOW + 30)
    assert info.alert.level == AlertLevel.NONE and info.announce == alert_state.ENDED


def test_info_alerts_never_open_anything():
    change = deliver(AlertState(), "open", "info", "9")
    assert not change.changed and change.alert.level == AlertLevel.NONE
    assert "never scale" in change.cause


def test_the_alert_ends_only_when_the_last_issue_closes():
    alert = deliver(AlertState(), "open", "warning", "1", "latency").alert
    alert = deliver(alert, "open", "critical", "2", "errors", at=NOW + 5).alert
    assert (alert.level, alert.issue_id, sorted(alert.issues)) == ("critical", "2", ["1", "2"])
    first = deliver(alert, "closed", "critical", "2", at=NOW + 50)
    assert first.alert.level == "warning" and first.alert.issue_id == "1"
    assert "1 other issue still open" in first.cause and first.alert.ended_at == 0
    last = deliver(first.alert, "closed", "warning", "1", at=NOW + 90)
    assert last.alert.level == AlertLevel.NONE and last.alert.ended_at == NOW + 90


def test_acknowledged_is_recorded_and_still_counts():
    alert = deliver(AlertState(), "open", "critical", "3").alert
    ack = deliver(alert, "acknowledged", "critical", "3", at=NOW + 5)
    assert ack.announce == alert_state.ACK and ack.alert.acknowledged
    assert ack.alert.level == "critical"
    unknown = deliver(AlertState(), "acknowledged", "critical", "4")
    assert not unknown.changed and "recorded only" in unknown.cause


def test_close_of_an_unknown_issue_ends_an_alert_only_when_nothing_else_is_open():
    alert = deliver(AlertState(), "open", "critical", "3").alert
    other = deliver(alert, "closed", "critical", "99", at=NOW + 5)
    assert not other.changed and other.alert.level == "critical"
    # A record from before issues were tracked holds one issue: its close ends it.
    legacy = AlertState(level="critical", issue_id="3", opened_at=NOW, updated_at=NOW)
    closed = deliver(legacy, "closed", "critical", "3", at=NOW + 5)
    assert closed.alert.level == AlertLevel.NONE and closed.alert.ended_at == NOW + 5


def test_issues_not_heard_of_for_alert_max_age_are_dropped():
    alert = deliver(AlertState(), "open", "critical", "old").alert
    later = deliver(alert, "open", "warning", "new", at=NOW + 7200, max_age=3600)
    assert sorted(later.alert.issues) == ["new"] and later.alert.level == "warning"


def test_the_number_of_open_issues_is_bounded():
    alert = AlertState()
    for index in range(alert_state.ISSUES_MAX + 10):
        alert = deliver(alert, "open", "warning", "i%d" % index, at=NOW + index).alert
    assert len(alert.issues) == alert_state.ISSUES_MAX
    assert "i0" not in alert.issues and "i%d" % (alert_state.ISSUES_MAX + 9) in alert.issues


@pytest.mark.parametrize("fields, message", [
    (("opened", "critical", "1"), "alert state"),
    (("open", "high", "1"), "alert severity"),
    (("open", "critical", ""), "issue_id"),
    (("open", "critical", "x" * 201), "issue_id"),
])
def test_bad_deliveries_are_refused(fields, message):
    with pytest.raises(ValidationError, match=message):
        Delivery(*fields)


def test_the_action_records_state_history_and_says_whether_to_scale_now():
    pack = Pack()
    pack.group("web")
    opened = pack.ok("asg_alert_record", asg="web", state="open", severity="critical",
                     issue_id="42", title="Error rate")
    assert opened["changed"] and opened["scale_now"] and opened["level"] == "critical"
    assert opened["announce"] == "alert_opened" and opened["open_issues"] == ["42"]
    stored = pack.store.load_group("web").alert
    assert stored.level == "critical" and stored.title == "Error rate"
    warning = pack.ok("asg_alert_record", asg="web", state="open", severity="warning",
                      issue_id="43")
    assert not warning["scale_now"] and warning["level"] == "critical"
    closed = pack.ok("asg_alert_record", asg="web", state="closed", severity="critical",
                     issue_id="42")
    assert closed["level"] == "warning" and not closed["scale_now"]
    kinds = [event.kind for event in pack.store.history("web")]
    assert kinds == ["alert_opened", "alert_opened", "alert_closed"]


def test_the_action_refuses_an_unknown_group_and_changes_nothing():
    pack = Pack()
    before = pack.datastore.keys()
    assert "no autoscaling group named 'db'" in pack.refused(
        "asg_alert_record", asg="db", state="open", severity="critical", issue_id="1")
    # st2 refuses a value outside the declared enum before the action runs.
    done = pack.run("asg_alert_record", asg="web", state="open", severity="fatal",
                    issue_id="1")
    assert not done.ok and "'fatal' is not one of" in done.error
    assert pack.datastore.keys() == before


def test_an_unreadable_alert_record_is_replaced_not_fatal():
    pack = Pack()
    pack.group("web")
    pack.datastore.service("autoscale", "X").set_value("autoscale.asg.web.alert", "{oops",
                                                       local=False)
    result = pack.ok("asg_alert_record", asg="web", state="open", severity="warning",
                     issue_id="5")
    assert result["level"] == "warning"
    assert pack.store.load_group("web").alert.issue_id == "5"


def test_status_says_how_many_more_issues_are_open():
    pack = Pack()
    pack.group("web")
    for issue in ("1", "2", "3"):
        pack.ok("asg_alert_record", asg="web", state="open", severity="warning",
                issue_id=issue)
    assert "; 2 more issues open" in pack.ok("asg_status", asg="web")["text"]
    pack.ok("asg_alert_record", asg="web", state="closed", severity="warning", issue_id="1")
    pack.ok("asg_alert_record", asg="web", state="closed", severity="warning", issue_id="2")
    assert "more issue" not in pack.ok("asg_status", asg="web")["text"]


# -- a close for an issue never seen open -------------------------------------------------------


@pytest.mark.parametrize("open_issues", [["3"], ["3", "4"]])
def test_closing_an_issue_never_seen_open_announces_nothing_while_others_are_open(open_issues):
    alert = AlertState()
    for index, issue in enumerate(open_issues):
        alert = deliver(alert, "open", "critical", issue, at=NOW + index).alert
    change = deliver(alert, "closed", "critical", "99", at=NOW + 60)
    assert change.announce == ""
    assert not change.changed and change.alert == alert
    assert change.alert.level == "critical" and sorted(change.alert.issues) == open_issues
    assert "not open here: recorded only" in change.cause


def test_closing_an_issue_never_seen_open_announces_nothing_without_an_alert():
    for alert in (AlertState(), AlertState(ended_at=NOW - 600)):
        change = deliver(alert, "closed", "critical", "99")
        assert change.announce == "" and not change.changed
        assert "recorded only" in change.cause


def test_closing_any_issue_ends_an_alert_whose_issues_all_aged_out():
    """The alert still says critical, but every issue it held went silent past alert_max_age:
    a close now ends it, and says so."""
    alert = deliver(AlertState(), "open", "critical", "old").alert
    change = deliver(alert, "closed", "critical", "99", at=NOW + 7200, max_age=3600)
    assert change.announce == alert_state.ENDED and change.changed
    assert change.alert.level == AlertLevel.NONE and change.alert.ended_at == NOW + 7200
    assert "no other issue is open" in change.cause


# -- alert_max_age: the boundary, both sides ----------------------------------------------------

MAX_AGE = 3600


@pytest.mark.parametrize("age, kept", [
    (MAX_AGE - 1, True),
    (MAX_AGE - 0.001, True),
    (MAX_AGE, False),       # exactly alert_max_age: dropped (like the policy's expiry)
    (MAX_AGE + 0.001, False),
])
def test_an_issue_is_dropped_exactly_at_alert_max_age(age, kept):
    alert = deliver(AlertState(), "open", "critical", "old").alert
    change = deliver(alert, "open", "warning", "new", at=NOW + age, max_age=MAX_AGE)
    assert ("old" in change.alert.issues) is kept
    assert change.alert.level == ("critical" if kept else "warning")


def test_alert_max_age_counts_from_the_last_delivery_not_the_opening():
    alert = deliver(AlertState(), "open", "critical", "old").alert
    alert = deliver(alert, "acknowledged", "critical", "old", at=NOW + MAX_AGE - 10).alert
    later = deliver(alert, "open", "warning", "new", at=NOW + MAX_AGE + 10, max_age=MAX_AGE)
    assert sorted(later.alert.issues) == ["new", "old"] and later.alert.level == "critical"
    gone = deliver(alert, "open", "warning", "new", at=NOW + 2 * MAX_AGE - 10, max_age=MAX_AGE)
    assert sorted(gone.alert.issues) == ["new"]


@pytest.mark.parametrize("age, kept", [(599, True), (600, False)])
def test_record_alert_prunes_at_the_configured_alert_max_age(age, kept):
    pack = Pack(governor={"alert_max_age": 600})
    pack.group("web")
    record = alerts.record_alert
    record(pack.store, "web", "open", "critical", "old", config=pack.loader.config, now=NOW)
    result = record(pack.store, "web", "open", "warning", "new", config=pack.loader.config,
                    now=NOW + age)
    assert result["open_issues"] == (["new", "old"] if kept else ["new"])
