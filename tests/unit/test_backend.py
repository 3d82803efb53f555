"""The shared backend conventions: error text, retries of idempotent calls, redaction."""

import pytest

from autoscale_core.errors import BackendError, redact, retry


def test_error_names_system_operation_and_object():
    error = BackendError("Nova", "create server", "web-3f9a1c", "Quota exceeded for instances")
    assert str(error) == "Nova: create server web-3f9a1c: Quota exceeded for instances"
    assert error.as_dict()["object"] == "web-3f9a1c" and not error.retryable
    assert str(BackendError("Slack", "post message", "", "ratelimited")) == (
        "Slack: post message: ratelimited")


def test_retry_retries_only_retryable_failures_with_growing_delays():
    sleeps, calls = [], []

    def flaky():
        calls.append(1)
        if len(calls) < 3:
            raise BackendError("DNS", "query", "web.example.com", "timeout", retryable=True)
        return "ok"

    assert retry(flaky, attempts=4, first_delay=0.5, sleep=sleeps.append) == "ok"
    assert sleeps == [0.5, 1.0]

    def refused():
        calls.append(1)
        raise BackendError("DNS", "update", "web.example.com", "REFUSED")

    calls.clear()
    with pytest.raises(BackendError, match="REFUSED"):
        retry(refused, attempts=5, sleep=sleeps.append)
    assert len(calls) == 1

    def always_timeout():
        raise BackendError("DNS", "query", "x", "timeout", retryable=True)

    sleeps.clear()
    with pytest.raises(BackendError, match="timeout"):
        retry(always_timeout, attempts=5, first_delay=3, max_delay=8, sleep=sleeps.append)
    assert sleeps == [3, 6, 8, 8]


def test_redact():
    assert redact("token xoxb-123456 refused", ["xoxb-123456", None, ""]) == (
        "token [redacted] refused")
    assert redact("abc", ["a"]) == "abc"  # too short to be a secret worth masking
