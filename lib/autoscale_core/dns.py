"""DNS names of groups and nodes: RFC 2136 dynamic updates signed with TSIG (RFC 8945).

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
"""

from __future__ import annotations

import abc
import base64
import binascii
import ipaddress
import logging
import re
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, Tuple

import dns.exception
import dns.flags
import dns.message
import dns.name
import dns.query
import dns.rcode
import dns.rdatatype
import dns.tsig
import dns.update

from .config import backend_section
from .domain.names import validate_domain, validate_label
from .errors import BackendError, ValidationError, retry

LOG = logging.getLogger(__name__)

SYSTEM = "DNS"
ADDRESS_TYPES = ("A", "AAAA")
TTL_MAX = 2 ** 31 - 1  # RFC 2181 section 8

# The ownership record of <name>: OWNER_LABEL.<name> TXT "heritage=autoscale,autoscale/owner=ID"
OWNER_LABEL = "_autoscale"
HERITAGE = "autoscale"
DEFAULT_OWNER_ID = "autoscale"
_OWNER_ID_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,62}")
_OWNER_TEXT_RE = re.compile(r'^"heritage=autoscale,autoscale/owner=([^",]*)"$')
# RFC 2136 2.4: the rcodes of a prerequisite that does not hold.
_PREREQUISITE_FAILED = ("YXDOMAIN", "YXRRSET", "NXDOMAIN", "NXRRSET")
_DNSSEC_TYPES = (dns.rdatatype.RRSIG, dns.rdatatype.NSEC, dns.rdatatype.NSEC3)

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


@dataclass(frozen=True)
class Record:
    fqdn: str
    type: str
    address: str
    ttl: int
    zone: str
    # created (a new name), updated (already ours), adopted (from before ownership records)
    change: str = "created"


@dataclass(frozen=True)
class Removal:
    fqdn: str
    # deleted (ours), adopted (from before ownership records, then deleted), absent (nothing)
    outcome: str


class NotOwnedError(BackendError):
    """The name is in use and not this installation's: nothing was changed."""

    def __init__(self, operation: str, obj: str, fqdn: str, message: str) -> None:
        self.fqdn = fqdn
        super().__init__(SYSTEM, operation, obj, message)


# ---------------------------------------------------------------------------------------------
# Interface


class DnsRegistry(abc.ABC):
    """Where the pack writes node and service names. Errors are BackendError (remote),
    NotOwnedError (a name someone else holds: nothing changed) or ValidationError (bad input,
    raised before any I/O)."""

    @abc.abstractmethod
    def add_record(self, name: str, domain: str, address: str, ttl: Optional[int] = None,
                   zone: Optional[str] = None) -> Record:
        """Make ``<name>.<domain>`` resolve to ``address`` (and only to it, for its record
        type), verified on the server, if the name is free, this installation's, or holds
        exactly ``address`` without an ownership record (adopted). Idempotent."""

    @abc.abstractmethod
    def delete_record(self, name: str, domain: str, zone: Optional[str] = None,
                      address: Optional[str] = None) -> Removal:
        """Remove the A and AAAA records of ``<name>.<domain>`` and its ownership record if
        the name is this installation's, or (with ``address``, the one the pack recorded) its
        A or AAAA RRset if that is exactly ``address`` and no ownership record exists. A name
        without address records is a success."""

    @abc.abstractmethod
    def check_record(self, name: str, domain: str, address: Optional[str] = None,
                     zone: Optional[str] = None) -> str:
        """Whether ``add_record`` may write the name, without changing anything: "free",
        "ours" or "adoptable" (``address`` given); NotOwnedError otherwise."""

    @abc.abstractmethod
    def lookup(self, name: str, domain: str, zone: Optional[str] = None) -> Dict[str, List[str]]:
        """The name's addresses as the server answers them: {"A": [...], "AAAA": [...]}."""


# ---------------------------------------------------------------------------------------------
# RFC 2136


# Why a server refuses an update, in words an operator can act on.
_RCODE_HINTS = {
    "REFUSED": "key %(key)s may not update zone %(zone)s (see allow-update or update-policy)",
    "NOTAUTH": "the server is not authoritative for zone %(zone)s, or did not accept the "
               "TSIG key",
    "NOTZONE": "the name is not in zone %(zone)s",
    "SERVFAIL": "the server failed; see its log",
    "FORMERR": "the server could not parse the update",
    "NOTIMP": "the server does not implement dynamic updates",
}

_PEER_TSIG_ERRORS = (
    (dns.tsig.PeerBadSignature, "BADSIG: the signature does not verify; check "
                                "dns.tsig_secret and dns.tsig_algorithm"),
    (dns.tsig.PeerBadKey, "BADKEY: the server has no key %(key)s with algorithm "
                          "%(algorithm)s; check dns.tsig_key_name and dns.tsig_algorithm"),
    (dns.tsig.PeerBadTime, "BADTIME: this host's clock and the server's differ too much"),
)


class Rfc2136Registry(DnsRegistry):
    """Updates and queries over TCP to the zone's primary, every message signed with TSIG."""

    def __init__(self, settings: DnsSettings) -> None:
        self.settings = settings
        self._key = dns.tsig.Key(settings.tsig_key_name, settings.tsig_secret,
                                 ALGORITHMS[settings.tsig_algorithm])

    # -- interface -----------------------------------------------------------------------------

    def add_record(self, name: str, domain: str, address: str, ttl: Optional[int] = None,
                   zone: Optional[str] = None) -> Record:
        target = record_name(name, domain, zone or self.settings.zone)
        rdtype, address = parse_address(address)
        ttl = self.settings.ttl if ttl is None else validate_ttl(ttl)
        obj = "%s %s %s" % (target.fqdn, rdtype, address)
        change_made = self._first("add", obj, target, add_attempts(
            target, rdtype, address, ttl, self.settings.owner_id))
        if change_made is None:
            raise self._not_owned("add", obj, target)
        found = self._query("add", obj, target, rdtype)
        if found != [address]:
            raise BackendError(
                SYSTEM, "add", obj,
                "the server accepted the update but answers %s for %s %s (a CNAME at this "
                "name, or not the zone's primary?)" % (_answers(found), target.fqdn, rdtype))
        LOG.info("DNS: %s now resolves to %s (ttl %d, %s) on %s", target.fqdn, address, ttl,
                 change_made, self._where())
        return Record(target.fqdn, rdtype, address, ttl, target.zone, change_made)

    def delete_record(self, name: str, domain: str, zone: Optional[str] = None,
                      address: Optional[str] = None) -> Removal:
        target = record_name(name, domain, zone or self.settings.zone)
        recorded = parse_address(address, "recorded address") if address else None
        obj = "%s %s" % (target.fqdn, "/".join(ADDRESS_TYPES))
        attempts = delete_attempts(target, self.settings.owner_id, recorded)
        outcome = self._first("delete", obj, target, attempts)
        if outcome is None:
            raise self._not_owned("delete", obj, target)
        if outcome != "absent":
            for rdtype in ADDRESS_TYPES if outcome == "deleted" else (recorded[0],):
                found = self._query("delete", obj, target, rdtype)
                if found:
                    raise BackendError(
                        SYSTEM, "delete", obj,
                        "the server accepted the update but still answers %s for %s %s"
                        % (_answers(found), target.fqdn, rdtype))
        LOG.info("DNS: %s has no A/AAAA record of this installation on %s (%s)", target.fqdn,
                 self._where(), outcome)
        return Removal(target.fqdn, outcome)

    def check_record(self, name: str, domain: str, address: Optional[str] = None,
                     zone: Optional[str] = None) -> str:
        target = record_name(name, domain, zone or self.settings.zone)
        recorded = parse_address(address) if address else None
        obj = target.fqdn
        attempts = check_attempts(target, self.settings.owner_id, recorded)
        state = self._first("check", obj, target, attempts)
        if state is None:
            raise self._not_owned("check", obj, target)
        return state

    def lookup(self, name: str, domain: str, zone: Optional[str] = None) -> Dict[str, List[str]]:
        target = record_name(name, domain, zone or self.settings.zone)
        return {rdtype: self._query("look up", target.fqdn, target, rdtype)
                for rdtype in ADDRESS_TYPES}

    # -- ownership -----------------------------------------------------------------------------

    def _first(self, operation: str, obj: str, target: RecordName,
               attempts: Sequence[Tuple[str, Fill]]) -> Optional[str]:
        """The label of the first conditional update whose prerequisites hold (it is then
        applied), or None when none holds."""
        for label, fill in attempts:
            if self._update(operation, obj, target, fill, conditional=True) == "NOERROR":
                return label
        return None

    def _not_owned(self, operation: str, obj: str, target: RecordName) -> NotOwnedError:
        """Why the name is not ours, in words naming what is there."""
        held = self._query(operation, obj, target, "ANY")
        texts = [text[len("TXT "):]
                 for text in self._query(operation, obj, target, "ANY", target.owner_fqdn)
                 if text.startswith("TXT ")]
        other = owner_of(texts)
        if other is not None:
            whose = ("%s names owner %r, another installation (dns.owner_id here: %r)"
                     % (target.owner_fqdn, other, self.settings.owner_id))
        else:
            whose = "there is no TXT %s at %s" % (owner_text(self.settings.owner_id),
                                                  target.owner_fqdn)
        holds = ("it holds %s" % ", ".join(held)) if held else "it has no records of its own"
        return NotOwnedError(
            operation, obj, target.fqdn,
            "%s is not managed by this installation: %s and %s; left alone (choose another "
            "name, or remove the record if nobody uses it)" % (target.fqdn, holds, whose))

    # -- wire ----------------------------------------------------------------------------------

    def _where(self) -> str:
        return "%s port %d" % (self.settings.server, self.settings.port)

    def _update_message(self, target: RecordName) -> dns.update.UpdateMessage:
        return dns.update.UpdateMessage(target.zone + ".", keyring=self._key)

    def _update(self, operation: str, obj: str, target: RecordName,
                fill: Fill, conditional: bool = False) -> str:
        """Send the update ``fill`` builds; its rcode. With ``conditional``, a prerequisite
        that does not hold is an answer (returned), not an error."""
        # A fresh message per attempt: a new id and a new TSIG time.
        def attempt() -> str:
            message = self._update_message(target)
            fill(message)
            response = self._exchange(operation, obj, message, "update")
            rcode = dns.rcode.to_text(response.rcode())
            if rcode == "NOERROR" or (conditional and rcode in _PREREQUISITE_FAILED):
                return rcode
            raise self._refused(operation, obj, target, rcode, "update")

        return self._retry(attempt)

    def _query(self, operation: str, obj: str, target: RecordName, rdtype: str,
               fqdn: Optional[str] = None) -> List[str]:
        """The rdata of ``fqdn`` (default the target's name) of type ``rdtype``; for ANY, every
        RRset's as "TYPE rdata" (DNSSEC's own records left out)."""
        def attempt() -> List[str]:
            query = dns.message.make_query((fqdn or target.fqdn) + ".", rdtype)
            query.flags &= ~dns.flags.RD  # ask the server itself, never what it may recurse to
            query.use_tsig(self._key)
            response = self._exchange(operation, obj, query, "query")
            rcode = dns.rcode.to_text(response.rcode())
            if rcode == "NXDOMAIN":
                return []
            if rcode != "NOERROR":
                raise self._refused(operation, obj, target, rcode, "query")
            # Only the name's own records: behind a CNAME the answer also holds the target's.
            own = [rrset for rrset in response.answer if rrset.name == query.question[0].name]
            if rdtype == "ANY":
                return sorted("%s %s" % (dns.rdatatype.to_text(rrset.rdtype), rdata.to_text())
                              for rrset in own if rrset.rdtype not in _DNSSEC_TYPES
                              for rdata in rrset)
            return sorted(rdata.to_text() for rrset in own
                          if rrset.rdtype == dns.rdatatype.from_text(rdtype)
                          for rdata in rrset)

        return self._retry(attempt)

    def _retry(self, call: Callable[[], Any]) -> Any:
        return retry(call, attempts=self.settings.attempts, first_delay=self.settings.retry_delay)

    def _exchange(self, operation: str, obj: str, message: dns.message.Message,
                  what: str) -> dns.message.Message:
        settings = self.settings

        def fail(text: str, retryable: bool = False) -> BackendError:
            return BackendError(SYSTEM, operation, obj, text, retryable=retryable)

        try:
            return dns.query.tcp(message, settings.server, timeout=settings.timeout,
                                 port=settings.port)
        except dns.exception.Timeout:
            raise fail("no answer to the %s from %s within %.1f s"
                       % (what, self._where(), settings.timeout), retryable=True) from None
        except dns.tsig.PeerError as exc:
            hint = "TSIG error %s" % type(exc).__name__
            for kind, text in _PEER_TSIG_ERRORS:
                if isinstance(exc, kind):
                    hint = text % {"key": settings.tsig_key_name,
                                   "algorithm": settings.tsig_algorithm}
            raise fail("server refused the %s (NOTAUTH: TSIG key not accepted, %s)"
                       % (what, hint)) from None
        except (dns.tsig.BadSignature, dns.tsig.BadKey, dns.tsig.BadTime,
                dns.tsig.BadAlgorithm, dns.message.UnknownTSIGKey) as exc:
            raise fail("the server's answer to the %s is not signed with key %s (%s)"
                       % (what, settings.tsig_key_name, type(exc).__name__)) from None
        except ConnectionRefusedError:
            raise fail("connection to %s refused (is the DNS server running?)"
                       % self._where(), retryable=True) from None
        except (EOFError, ConnectionError):
            raise fail("%s closed the connection before answering the %s"
                       % (self._where(), what), retryable=True) from None
        except OSError as exc:
            raise fail("cannot reach %s: %s" % (self._where(), exc.strerror or exc),
                       retryable=True) from None
        except dns.exception.DNSException as exc:
            raise fail("bad answer to the %s from %s: %s"
                       % (what, self._where(), type(exc).__name__)) from None

    def _refused(self, operation: str, obj: str, target: RecordName, rcode: str,
                 what: str) -> BackendError:
        # The hints explain refused updates; a refused query only needs its code.
        hint = _RCODE_HINTS.get(rcode) if what == "update" or rcode == "SERVFAIL" else None
        text = "server refused the %s (%s%s)" % (
            what, rcode, ": " + hint % {"key": self.settings.tsig_key_name, "zone": target.zone}
            if hint else "")
        # SERVFAIL is often passing (zone still loading, journal busy); the call is idempotent.
        return BackendError(SYSTEM, operation, obj, text, retryable=rcode == "SERVFAIL")


def _answers(found: List[str]) -> str:
    return ", ".join(found) if found else "nothing"


def registry(settings: DnsSettings) -> DnsRegistry:
    """The registry for the pack config (one implementation today: RFC 2136)."""
    return Rfc2136Registry(settings)
