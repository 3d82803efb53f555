"""A VM's user data as cloud-init reads it: a ``#cloud-config`` document with the SSH keys the
VM accepts and the provisioner's bootstrap sections (its ``chef:``, say).

The body is JSON, which YAML reads as it is: no YAML library is needed at runtime and no
value (a PEM key, a run list entry) can break out of its string.
"""

from __future__ import annotations

import json
from typing import Any, List, Mapping


def build_user_data(ssh_keys: List[str], bootstrap: Mapping[str, Any]) -> str:
    """``#cloud-config`` with ``ssh_authorized_keys`` and the provisioner's sections
    (cloud-init module name -> its settings)."""
    document = {name: dict(section) if isinstance(section, Mapping) else section
                for name, section in bootstrap.items()}
    document["ssh_authorized_keys"] = list(ssh_keys)
    return "#cloud-config\n" + json.dumps(document, indent=2, sort_keys=True) + "\n"
