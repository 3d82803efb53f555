"""DNS names of groups and nodes: RFC 2136 dynamic updates signed with TSIG (RFC 8945) (the DNS
role, config section ``dns``, ``type: rfc2136``).

Every node gets an A (IPv4) or AAAA (IPv6) record ``<node>.<domain>``, and a group's service
name ``<group>.<domain>`` points at the load balancer. Any authoritative server that takes
TSIG-signed updates works (BIND, Knot, PowerDNS); the pack only needs the zone's primary and
a key allowed to update it.

The pack changes only names it owns. Ownership is marked in the zone itself, as external-dns's
TXT registry does: beside each name it creates, the pack writes ``_autoscale.<name>``
``TXT "heritage=autoscale,autoscale/owner=<dns.owner_id>"``, and every update carries RFC 2136
prerequisites, so the server itself refuses a change whose premise another writer has made
false in the meantime:

* a new name: the name and its ownership name are not in use; the A/AAAA and the TXT are
  added in one update;
* a change or a delete: the ownership TXT RRset is exactly ours;
* adoption of a name from before ownership records: its A (or AAAA) RRset is exactly the
  address the pack recorded and the ownership name is not in use; the TXT is added (or, on a
  delete, the RRset is removed).

A name that passes none of these is someone else's: ``NotOwnedError``, nothing changed. The
ownership record has a name of its own (a label beneath the owned name) rather than sitting at
the owned name: a value-dependent prerequisite compares a whole RRset, so at the owned name any
TXT another party adds there (a site verification, SPF) would make the pack lose its own
names; nobody asking the owned name for TXT gets the pack's bookkeeping; and no TXT could sit
beside a CNAME, should a backend ever write one. ``_`` cannot start a group or node name, so
an ownership name never collides with a name the pack manages.

An add is idempotent and retried after a timeout like a delete (a retried create finds its own
TXT and becomes a change); deleting a name that has nothing is a success. Each change is
checked with a query to the same server: an update the server acknowledged but does not serve
(a secondary that forwards updates) is an error, not a success.

Names are built zone-relative from validated labels before anything goes on the wire, and a
name outside the zone is refused, so the key can only ever touch names under the zone.

Here: the ``dns`` config section, names, ownership records and the conditional updates; the
client that sends them is rfc2136_api.py.
"""

from __future__ import annotations

import base64
import binascii
import ipaddress
import re
from dataclasses import dataclass, field
from typing import Any, Callable, List, Mapping, Optional, Tuple

import dns.exception
import dns.flags
import dns.message
import dns.name
import dns.query
import dns.rcode
import dns.rdatatype
import dns.tsig
import dns.update

from ..config import backend_section
from ..domain.names import validate_domain, validate_label
from ..errors import ValidationError

TITLE = "RFC 2136"
ADDRESS_TYPES = ("A", "AAAA")
TTL_MAX = 2 ** 31 - 1  # RFC 2181 section 8

# The ownership record of <name>: OWNER_LABEL.<name> TXT "heritage=autoscale,autoscale/owner=ID"
OWNER_LABEL = "_autoscale"
HERITAGE = "autoscale"
DEFAULT_OWNER_ID = "autoscale"
_OWNER_ID_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,62}")
_OWNER_TEXT_RE = re.compile(r'^"heritage=autoscale,autoscale/owner=([^",]*)"$')

# The config's algorithm names (those BIND's key statement uses) to TSIG algorithm names.
ALGORITHMS = {
    "hmac-md5": dns.tsig.HMAC_MD5,
    "hmac-sha1": dns.tsig.HMAC_SHA1,
    "hmac-sha224": dns.tsig.HMAC_SHA224,
    "hmac-sha256": dns.tsig.HMAC_SHA256,
    "hmac-sha384": dns.tsig.HMAC_SHA384,
    "hmac-sha512": dns.tsig.HMAC_SHA512,
}


# ---------------------------------------------------------------------------------------------
# Settings


@dataclass(frozen=True)
class DnsSettings:
    server: str
    zone: str
    tsig_key_name: str
    # repr=False: a settings object in a log line or traceback must not show the key.
    tsig_secret: str = field(repr=False)
    port: int = 53
    tsig_algorithm: str = "hmac-sha256"
    ttl: int = 60
    service_address: str = ""
    owner_id: str = DEFAULT_OWNER_ID
    # Not in the pack config: seconds per request (connect, send, answer) and tries per call.
    timeout: float = 5.0
    attempts: int = 3
    retry_delay: float = 0.5

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> DnsSettings:
        section = backend_section(config, "dns", ("server", "zone", "tsig_key_name", "tsig_secret"))
        server = section["server"]
        try:
            ipaddress.ip_address(server)
        except ValueError:
            raise ValidationError(
                "config key dns.server must be an IP address, not %r" % (server,)) from None
        port = section.get("port", 53)
        if isinstance(port, bool) or not isinstance(port, int) or not 0 < port < 65536:
            raise ValidationError("config key dns.port must be a port number, not %r" % (port,))
        algorithm = section.get("tsig_algorithm") or "hmac-sha256"
        if algorithm not in ALGORITHMS:
            raise ValidationError("config key dns.tsig_algorithm must be one of %s, not %r"
                                  % (", ".join(sorted(ALGORITHMS)), algorithm))
        try:
            key_name = dns.name.from_text(section["tsig_key_name"])
        except dns.exception.DNSException:
            raise ValidationError("config key dns.tsig_key_name %r is not a valid key name"
                                  % (section["tsig_key_name"],)) from None
        secret = section["tsig_secret"]
        try:
            if not isinstance(secret, str) or not base64.b64decode(secret, validate=True):
                raise ValueError
        except (ValueError, binascii.Error):
            # Never quote the value: it is the secret, or a typo of it.
            raise ValidationError(
                "config key dns.tsig_secret is not a base64 key (the secret of BIND's key "
                "statement, as tsig-keygen prints it)") from None
        service_address = section.get("service_address") or ""
        if service_address:
            parse_address(service_address, "config key dns.service_address")
        timeout = section.get("timeout", 5.0)
        if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or timeout <= 0:
            raise ValidationError("config key dns.timeout must be a positive number of seconds, "
                                  "not %r" % (timeout,))
        owner_id = section.get("owner_id") or DEFAULT_OWNER_ID
        if not isinstance(owner_id, str) or not _OWNER_ID_RE.fullmatch(owner_id):
            raise ValidationError(
                "config key dns.owner_id must be 1 to 63 of letters, digits, '.', '_' and '-' "
                "(starting with a letter or digit), not %r" % (owner_id,))
        return cls(
            server=server,
            port=port,
            zone=validate_domain(section["zone"], "config key dns.zone"),
            tsig_key_name=key_name.to_text(omit_final_dot=True),
            tsig_algorithm=algorithm,
            tsig_secret=secret,
            ttl=validate_ttl(section.get("ttl", 60), "config key dns.ttl"),
            service_address=service_address,
            owner_id=owner_id,
            timeout=float(timeout),
        )

    def secrets(self) -> List[str]:
        return [self.tsig_secret]


# ---------------------------------------------------------------------------------------------
# Names, addresses, records: checked before any I/O, the same for every implementation


@dataclass(frozen=True)
class RecordName:
    fqdn: str  # without the final dot: web-3f9a1c.example.com
    zone: str
    relative: str  # to the zone: web-3f9a1c, or "@" for the zone's apex
    owner_fqdn: str = ""  # its ownership record's name: _autoscale.web-3f9a1c.example.com
    owner_relative: str = ""


def record_name(name: Any, domain: Any, zone: Any) -> RecordName:
    """``<name>.<domain>``, which must lie inside ``zone``. ``name`` is one DNS label."""
    label = validate_label(name, "record name")
    domain = validate_domain(domain)
    zone = validate_domain(zone, "zone")
    fqdn = validate_domain("%s.%s" % (label, domain), "record name")
    absolute, origin = dns.name.from_text(fqdn + "."), dns.name.from_text(zone + ".")
    if not absolute.is_subdomain(origin):
        raise ValidationError("record name %s is outside the zone %s: refusing to update it"
                              % (fqdn, zone))
    owner_fqdn = "%s.%s" % (OWNER_LABEL, fqdn)
    if len(owner_fqdn) > 253:
        raise ValidationError("record name %s is too long for its ownership record %s.<name> "
                              "(at most %d characters)" % (fqdn, OWNER_LABEL,
                                                           252 - len(OWNER_LABEL)))
    owner = dns.name.from_text(owner_fqdn + ".")
    return RecordName(fqdn, zone, absolute.relativize(origin).to_text(), owner_fqdn,
                      owner.relativize(origin).to_text())


def owner_text(owner_id: str) -> str:
    """The ownership TXT's text (as in a zone file, quoted) for an installation's owner id."""
    return '"heritage=%s,%s/owner=%s"' % (HERITAGE, HERITAGE, owner_id)


def owner_of(texts: List[str]) -> Optional[str]:
    """The owner id an ownership record names, when its TXT RRset is one pack record."""
    if len(texts) == 1:
        match = _OWNER_TEXT_RE.match(texts[0])
        if match:
            return match.group(1)
    return None


def parse_address(value: Any, what: str = "address") -> Tuple[str, str]:
    """(record type, canonical address): A for IPv4, AAAA for IPv6."""
    if not isinstance(value, str):
        raise ValidationError("%s must be a string, not %s" % (what, type(value).__name__))
    try:
        address = ipaddress.ip_address(value)
    except ValueError:
        raise ValidationError("%s %r is not an IPv4 or IPv6 address" % (what, value)) from None
    if getattr(address, "scope_id", None):
        raise ValidationError("%s %r has a zone index (%%...), which DNS cannot hold"
                              % (what, value))
    if address.is_unspecified or address.is_multicast:
        raise ValidationError("%s %s is not a host's address" % (what, address))
    return ("A" if address.version == 4 else "AAAA"), str(address)


def validate_ttl(value: Any, what: str = "ttl") -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= TTL_MAX:
        raise ValidationError("%s must be a whole number of seconds from 0 to %d, not %r"
                              % (what, TTL_MAX, value))
    return value


# ---------------------------------------------------------------------------------------------
# The conditional updates: each a label and what it puts into an update message (RFC 2136
# prerequisites, then changes). An operation tries them in order; the server applies the first
# whose prerequisites hold, atomically, so a premise another writer has just made false is
# caught by the server, not by a query beforehand.

Fill = Callable[[dns.update.UpdateMessage], None]


def add_attempts(target: RecordName, rdtype: str, address: str, ttl: int,
                 owner_id: str) -> List[Tuple[str, Fill]]:
    mine = owner_text(owner_id)

    def created(message: dns.update.UpdateMessage) -> None:
        message.absent(target.relative)
        message.absent(target.owner_relative)
        message.add(target.relative, ttl, rdtype, address)
        message.add(target.owner_relative, ttl, "TXT", mine)

    def updated(message: dns.update.UpdateMessage) -> None:
        message.present(target.owner_relative, "TXT", mine)
        # replace = delete the RRset, then add: the name ends up with exactly this address.
        message.replace(target.relative, ttl, rdtype, address)

    def adopted(message: dns.update.UpdateMessage) -> None:
        message.present(target.relative, rdtype, address)
        message.absent(target.owner_relative)
        message.add(target.owner_relative, ttl, "TXT", mine)

    # A retried create whose first answer was lost finds its own TXT and becomes an update.
    return [("created", created), ("updated", updated), ("adopted", adopted)]


def delete_attempts(target: RecordName, owner_id: str,
                    recorded: Optional[Tuple[str, str]] = None) -> List[Tuple[str, Fill]]:
    """``recorded``: (type, address) the pack recorded for the name, for adoption."""
    mine = owner_text(owner_id)

    def deleted(message: dns.update.UpdateMessage) -> None:
        message.present(target.owner_relative, "TXT", mine)
        for rdtype in ADDRESS_TYPES:
            message.delete(target.relative, rdtype)
        message.delete(target.owner_relative, "TXT")

    def adopted(message: dns.update.UpdateMessage) -> None:
        assert recorded is not None
        message.present(target.relative, *recorded)
        message.absent(target.owner_relative)
        message.delete(target.relative, recorded[0])

    def absent(message: dns.update.UpdateMessage) -> None:
        for rdtype in ADDRESS_TYPES:
            message.absent(target.relative, rdtype)
        message.absent(target.owner_relative)

    attempts = [("deleted", deleted)]
    if recorded is not None:
        attempts.append(("adopted", adopted))
    return attempts + [("absent", absent)]


def check_attempts(target: RecordName, owner_id: str,
                   recorded: Optional[Tuple[str, str]] = None) -> List[Tuple[str, Fill]]:
    """Prerequisites only: the server answers exactly what an add would meet, and changes
    nothing (RFC 2136 3.2 allows an empty update section)."""
    mine = owner_text(owner_id)

    def ours(message: dns.update.UpdateMessage) -> None:
        message.present(target.owner_relative, "TXT", mine)

    def free(message: dns.update.UpdateMessage) -> None:
        message.absent(target.relative)
        message.absent(target.owner_relative)

    def adoptable(message: dns.update.UpdateMessage) -> None:
        assert recorded is not None
        message.present(target.relative, *recorded)
        message.absent(target.owner_relative)

    attempts = [("ours", ours), ("free", free)]
    if recorded is not None:
        attempts.append(("adoptable", adoptable))
    return attempts
