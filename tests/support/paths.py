"""Where things are, and small file helpers."""

import os
import textwrap

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
FIXTURES = os.path.join(ROOT, "tests", "fixtures")
# Canned New Relic payloads (a copy of shared/fixtures/newrelic, so the tests run from any clone).
NEWRELIC = os.path.join(FIXTURES, "newrelic")


def write(path, text):
    """Write ``text`` (dedented) to the pathlib ``path``, making its folders."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text).lstrip())
    return path
