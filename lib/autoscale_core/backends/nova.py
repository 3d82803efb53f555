"""Virtual machines on OpenStack Nova (the compute role: config section ``openstack``,
``type: nova``).

Here is what the pack knows of OpenStack without its libraries: the ``openstack`` config
section. The client (python-novaclient on a keystoneauth1 session) is nova_api.py, imported
only when the pack talks to the cloud: keystoneauth1 and novaclient are the pack's own
requirements, and one that does not import (keystoneauth1 5.14+ beside StackStorm 3.9's
stevedore) must cost what uses the cloud, never a group's creation or the governor.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, List, Mapping

from ..config import backend_section
from ..errors import ValidationError

TITLE = "OpenStack Nova"

AUTH_TYPES = ("password", "v3applicationcredential")
INTERFACES = ("public", "internal", "admin")

_MICROVERSION_RE = re.compile(r"2\.(0|[1-9][0-9]{0,2})")


# ---------------------------------------------------------------------------------------------
# Settings


@dataclass(frozen=True)
class ComputeSettings:
    auth_url: str
    auth_type: str = "v3applicationcredential"
    username: str = ""
    password: str = field(default="", repr=False)
    user_domain_name: str = "Default"
    project_name: str = ""
    project_domain_name: str = "Default"
    application_credential_id: str = ""
    application_credential_secret: str = field(default="", repr=False)
    region_name: str = ""
    interface: str = "public"
    compute_api_version: str = "2.79"
    verify_tls: bool = True
    boot_timeout: int = 600
    # Not in the pack config: seconds for one HTTP exchange, and how long a server whose
    # create answer was lost gets to show up in a listing.
    request_timeout: float = 30.0
    recover_wait: float = 10.0

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> ComputeSettings:
        section = backend_section(config, "openstack")

        def text(key: str, default: str = "") -> str:
            value = section.get(key, default)
            if value is None:
                return default
            if not isinstance(value, str):
                raise ValidationError("config key openstack.%s must be a string" % key)
            return value

        auth_url = text("auth_url").strip()
        if not auth_url:
            raise ValidationError("config key openstack.auth_url is missing")
        if not auth_url.startswith(("http://", "https://")):
            raise ValidationError("config key openstack.auth_url must be an http(s) URL")
        auth_type = text("auth_type", "v3applicationcredential")
        if auth_type not in AUTH_TYPES:
            raise ValidationError("config key openstack.auth_type must be one of %s, not %r"
                                  % (", ".join(AUTH_TYPES), auth_type))
        needed = (("username", "password", "project_name") if auth_type == "password"
                  else ("application_credential_id", "application_credential_secret"))
        for key in needed:
            if not text(key):
                raise ValidationError("config key openstack.%s is missing (needed with "
                                      "auth_type %s)" % (key, auth_type))
        interface = text("interface", "public")
        if interface not in INTERFACES:
            raise ValidationError("config key openstack.interface must be one of %s, not %r"
                                  % (", ".join(INTERFACES), interface))
        version = str(section.get("compute_api_version") or "2.79")
        if not _MICROVERSION_RE.fullmatch(version):
            raise ValidationError("config key openstack.compute_api_version must be a Nova "
                                  "microversion such as \"2.79\", not %r" % version)
        boot_timeout = section.get("boot_timeout", 600)
        if isinstance(boot_timeout, bool) or not isinstance(boot_timeout, int) \
                or boot_timeout < 1:
            raise ValidationError("config key openstack.boot_timeout must be a whole number "
                                  "of seconds, at least 1")
        verify = section.get("verify_tls", True)
        if not isinstance(verify, bool):
            raise ValidationError("config key openstack.verify_tls must be true or false")
        return cls(
            auth_url=auth_url.rstrip("/"),
            auth_type=auth_type,
            username=text("username"),
            password=text("password"),
            user_domain_name=text("user_domain_name", "Default") or "Default",
            project_name=text("project_name"),
            project_domain_name=text("project_domain_name", "Default") or "Default",
            application_credential_id=text("application_credential_id"),
            application_credential_secret=text("application_credential_secret"),
            region_name=text("region_name"),
            interface=interface,
            compute_api_version=version,
            verify_tls=verify,
            boot_timeout=boot_timeout,
        )

    def secrets(self) -> List[str]:
        return [s for s in (self.password, self.application_credential_secret) if s]
