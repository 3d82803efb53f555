"""Waiting on events in tests, never on the clock: poll for what must happen, with a timeout
far beyond any normal run so that a loaded machine does not fail a test (speed figures live
in bench/)."""

import threading
import time

# Long enough for a busy 2-core machine; reached only when something is really wrong.
GENEROUS = 30.0


def wait_until(predicate, timeout=GENEROUS, interval=0.05, what="the condition"):
    """Poll ``predicate`` until it returns something true; return that value."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError("timed out after %s s waiting for %s" % (timeout, what))
        time.sleep(interval)


def returns(call, timeout=GENEROUS, what="the call"):
    """``call()`` run in a thread: its value, or its exception raised here; an AssertionError
    if it has not returned within ``timeout`` (it hangs)."""
    outcome = {}

    def target():
        try:
            outcome["value"] = call()
        except BaseException as exc:  # handed to the caller
            outcome["error"] = exc

    thread = threading.Thread(target=target, daemon=True, name="returns")
    thread.start()
    thread.join(timeout)
    if thread.is_alive():
        raise AssertionError("%s did not return within %s s" % (what, timeout))
    if "error" in outcome:
        raise outcome["error"]
    return outcome["value"]
