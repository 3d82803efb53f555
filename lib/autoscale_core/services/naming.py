"""Names: the workflow steps that write and delete node and service names in the configured
DNS, and the check of a new group's service name.

    add_record           dns_add_record
    delete_record        dns_delete_record
    check_service_name   asg_check_service_name

Each returns ``(ok, result)`` as the action does. A name someone else holds is left alone:
an add or a check says so (``not_owned``); a delete has nothing of the pack's to remove and
succeeds.
"""

from __future__ import annotations

import logging
from typing import Any, Dict, Mapping, Optional, Tuple

from .. import backends
from ..errors import BackendError, ValidationError
from ..ports.dns import NotOwnedError
from . import groups
from .action import perform

LOG = logging.getLogger(__name__)

Result = Tuple[bool, Dict[str, Any]]


def _failed(exc: Exception) -> Result:
    if isinstance(exc, NotOwnedError):
        return False, dict(exc.as_dict(), error=str(exc), not_owned=True)
    if isinstance(exc, BackendError):
        return False, dict(exc.as_dict(), error=str(exc))
    return False, {"error": str(exc), "retryable": False}


def add_record(config: Mapping[str, Any], name: str, domain: str,
               address: Optional[str] = None, ttl: Optional[int] = None,
               zone: Optional[str] = None) -> Result:
    """``<name>.<domain>`` -> ``address`` (default: the DNS's service address)."""
    try:
        dns = backends.dns(config)
        if not address and not dns.service_address:
            raise ValidationError("no address given and config key dns.service_address "
                                  "is empty")
        record = dns.add_record(name, domain, address or dns.service_address, ttl=ttl,
                                zone=zone)
    except (BackendError, ValidationError) as exc:
        return _failed(exc)
    return True, {"fqdn": record.fqdn, "type": record.type, "address": record.address,
                  "ttl": record.ttl, "zone": record.zone, "change": record.change,
                  "verified": True}


def delete_record(config: Mapping[str, Any], name: str, domain: str,
                  zone: Optional[str] = None, address: Optional[str] = None,
                  service_name: bool = False, log: logging.Logger = LOG) -> Result:
    """Delete the pack's records of ``<name>.<domain>``; ``address`` (or, for a group's
    service name, the service address) is the one the pack recorded, for a name from before
    ownership records."""
    try:
        dns = backends.dns(config)
        recorded = address or (dns.service_address if service_name else None)
        removal = dns.delete_record(name, domain, zone=zone, address=recorded or None)
    except NotOwnedError as exc:
        # Someone else's name: nothing of ours is there, so the removal's job is done.
        log.warning("%s", exc)
        return True, {"fqdn": exc.fqdn, "deleted": False, "outcome": "not ours",
                      "left_alone": str(exc)}
    except (BackendError, ValidationError) as exc:
        return _failed(exc)
    return True, {"fqdn": removal.fqdn, "deleted": True, "outcome": removal.outcome}


def check_service_name(datastore: Any, config: Mapping[str, Any], name: str, domain: str,
                       dns_zone: Optional[str] = None) -> Result:
    """Where asg_create registers the group's service name (the stored group's, or the one a
    new group gets) and whether the pack may write it: free, ours or adoptable."""
    ok, where = perform(datastore, config, groups.service_name, name, domain, dns_zone=dns_zone,
                        config=config)
    if not ok:
        return False, where
    try:
        dns = backends.dns(config)
        state = dns.check_record(where["name"], where["domain"],
                                 address=dns.service_address or None, zone=where["dns_zone"])
    except (BackendError, ValidationError) as exc:
        return _failed(exc)
    return True, {"fqdn": where["fqdn"], "zone": where["dns_zone"], "state": state}
