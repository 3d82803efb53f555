"""RFC 2136 dynamic updates signed with TSIG, sent to the zone's primary over TCP: the DNS
role's implementation (rfc2136.py says what the updates hold and why).

Each operation tries its conditional updates in order (rfc2136.add_attempts ...); the server
applies the first whose prerequisites hold, atomically. A name that passes none is someone
else's: ``NotOwnedError``, with what is there in words. Each change is checked with a query
to the same server: an update the server acknowledged but does not serve (a secondary that
forwards updates) is an error, not a success.
"""

from __future__ import annotations

import logging
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, Tuple

import dns.exception
import dns.flags
import dns.message
import dns.query
import dns.rcode
import dns.rdatatype
import dns.tsig
import dns.update

from ..errors import BackendError, retry
from ..ports.dns import SYSTEM, Dns, NotOwnedError, Record, Removal
from .rfc2136 import (
    ADDRESS_TYPES,
    ALGORITHMS,
    DnsSettings,
    Fill,
    RecordName,
    add_attempts,
    check_attempts,
    delete_attempts,
    owner_of,
    owner_text,
    parse_address,
    record_name,
    validate_ttl,
)

LOG = logging.getLogger(__name__)

# RFC 2136 2.4: the rcodes of a prerequisite that does not hold.
_PREREQUISITE_FAILED = ("YXDOMAIN", "YXRRSET", "NXDOMAIN", "NXRRSET")
_DNSSEC_TYPES = (dns.rdatatype.RRSIG, dns.rdatatype.NSEC, dns.rdatatype.NSEC3)


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


class Rfc2136Registry(Dns):
    """Updates and queries over TCP to the zone's primary, every message signed with TSIG."""

    def __init__(self, settings: DnsSettings) -> None:
        self.settings = settings
        self.service_address = settings.service_address
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


def registry(settings: DnsSettings) -> Rfc2136Registry:
    """The registry for ``settings``."""
    return Rfc2136Registry(settings)


def new_dns(config: Mapping[str, Any]) -> Dns:
    """The DNS for the pack config's ``dns`` section."""
    return Rfc2136Registry(DnsSettings.from_config(config))
