"""How many examples a property test (hypothesis) tries.

The full suite (``make test``) tries what each test was written for; ``make test-fast`` sets
``AUTOSCALE_TESTS_FAST=1`` and tries a tenth, so that the unit tests stay under a minute while
still running every property. A property found false in the fast run is false; one that holds
there is held to the full count in the full suite (CI)."""

import os

FAST = os.environ.get("AUTOSCALE_TESTS_FAST", "") not in ("", "0")


def examples(full):
    """``full`` in the full suite, a tenth of it (at least 20) in the fast one."""
    return max(20, full // 10) if FAST else full
