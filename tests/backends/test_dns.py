"""DNS backend against a real BIND9 ``named`` on loopback: TSIG-signed RFC 2136 updates,
verified with dnspython and with ``dig``; refusals, timeouts and hostile names."""

import dataclasses
import logging
import os
import socket
import subprocess

import dns.message
import dns.query
import dns.rcode
import dns.tsig
import dns.update
import pytest
import yaml

from autoscale_core.backends.rfc2136 import (
    DnsSettings,
    add_attempts,
    delete_attempts,
    parse_address,
    record_name,
)
from autoscale_core.backends.rfc2136_api import Rfc2136Registry, registry
from autoscale_core.errors import BackendError, ValidationError
from autoscale_core.ports.dns import Dns as DnsRegistry
from autoscale_core.ports.dns import NotOwnedError, Removal
from sandbox.bind import DIR_PREFIX, BindError, BindServer
from sandbox.net import LOOPBACK
from st2harness import Datastore, PackLoader
from support.paths import ROOT
from support.waiting import returns

# Every temp directory a test started named in, for the leak check at the end.
STARTED = []

SEEDED = [
    "alias IN CNAME ns1",
    "keep IN A 10.9.9.9",
    "keep IN TXT \"not ours\"",
    # Someone else's names, each a way a name can be in use.
    "www IN A 192.0.2.10",
    "www6 IN AAAA 2001:db8::10",
    "mail IN MX 10 ns1",
    "only-txt IN TXT \"v=spf1 -all\"",
    "theirs IN A 192.0.2.30",
    "_autoscale.theirs IN TXT \"heritage=autoscale,autoscale/owner=other-site\"",
    "claimed IN A 192.0.2.31",
    "_autoscale.claimed IN TXT \"something else\"",
    # Names from before ownership records: an address the pack recorded, no TXT.
    "legacy-add IN A 10.1.1.1",
    "legacy-del IN A 10.1.1.2",
    "legacy-six IN AAAA 2001:db8::12",
    "legacy-moved IN A 10.1.1.3",
    "legacy-svc IN A 10.1.1.5",
    "legacy-taken IN A 10.1.1.4",
    "_autoscale.legacy-taken IN TXT \"heritage=autoscale,autoscale/owner=other-site\"",
]
FOREIGN = ["www", "www6", "mail", "only-txt", "theirs", "claimed", "alias", "keep"]
OWNER = '"heritage=autoscale,autoscale/owner=autoscale"'


def start_bind(**kwargs):
    server = BindServer(**kwargs).start()
    STARTED.append(server.directory)
    return server


def named_processes(directory):
    done = subprocess.run(["pgrep", "-f", directory], stdout=subprocess.PIPE, check=False)
    return done.stdout.split()


def stop_and_check(server):
    directory = server.directory
    server.stop()
    assert named_processes(directory) == [], "named still runs for %s" % directory
    assert not os.path.exists(directory)


@pytest.fixture(scope="module")
def bind():
    server = start_bind(other_keys=["other"], records=SEEDED, allow_transfer=True)
    yield server
    stop_and_check(server)


@pytest.fixture
def own_bind():
    """A server of the test's own, for tests that stop or freeze it."""
    server = start_bind()
    yield server
    stop_and_check(server)


def fast(settings):
    # Short timeouts keep failure tests quick; the production defaults are 5 s x 3.
    return dataclasses.replace(settings, timeout=0.3, attempts=2, retry_delay=0.05)


def settings_for(server, **overrides):
    return fast(DnsSettings.from_config({"dns": server.config(**overrides)}))


@pytest.fixture
def dns_registry(bind):
    return Rfc2136Registry(settings_for(bind))


def pack_config(server, **dns_overrides):
    with open(os.path.join(ROOT, "autoscale.yaml.example"), encoding="utf-8") as handle:
        config = yaml.safe_load(handle)
    config["dns"] = server.config(**dns_overrides)
    return config


def registry_key(server):
    return dns.tsig.Key(server.key_name, server.key_secret, server.algorithm)


def run_action(server, action, config=None, **params):
    loader = PackLoader(ROOT, Datastore(), config=config or pack_config(server))
    return loader.action(action).run(**params)


# -- adding, replacing, deleting ----------------------------------------------------------------


def test_added_record_resolves_over_dns_and_with_dig(bind, dns_registry):
    record = dns_registry.add_record("web-3f9a1c", bind.zone, "10.0.0.5", ttl=120)
    assert (record.fqdn, record.type, record.address, record.ttl) == (
        "web-3f9a1c.example.test", "A", "10.0.0.5", 120)
    assert bind.query("web-3f9a1c.example.test") == ("NOERROR", ["10.0.0.5"])
    assert bind.query("web-3f9a1c.example.test", tcp=False) == ("NOERROR", ["10.0.0.5"])
    # A second, independent client: BIND's own dig.
    assert bind.dig("web-3f9a1c.example.test", "A", "+short").split() == ["10.0.0.5"]
    answer = bind.dig("web-3f9a1c.example.test", "A", "+noall", "+answer").split()
    assert answer == ["web-3f9a1c.example.test.", "120", "IN", "A", "10.0.0.5"]
    assert dns_registry.lookup("web-3f9a1c", bind.zone) == {"A": ["10.0.0.5"], "AAAA": []}


def test_add_replaces_the_address_and_is_idempotent(bind, dns_registry):
    dns_registry.add_record("web-replace", bind.zone, "10.0.0.5")
    dns_registry.add_record("web-replace", bind.zone, "10.0.0.6")
    assert bind.query("web-replace.example.test") == ("NOERROR", ["10.0.0.6"])
    again = dns_registry.add_record("web-replace", bind.zone, "10.0.0.6")
    assert again.address == "10.0.0.6"
    assert bind.query("web-replace.example.test") == ("NOERROR", ["10.0.0.6"])


def test_ipv6_address_makes_an_aaaa_record_beside_the_a(bind, dns_registry):
    dns_registry.add_record("web-six", bind.zone, "10.0.0.7")
    record = dns_registry.add_record("web-six", bind.zone, "2001:DB8:0:0::7")
    assert (record.type, record.address) == ("AAAA", "2001:db8::7")
    assert bind.query("web-six.example.test", "AAAA") == ("NOERROR", ["2001:db8::7"])
    assert bind.dig("web-six.example.test", "AAAA", "+short").split() == ["2001:db8::7"]
    assert bind.query("web-six.example.test", "A") == ("NOERROR", ["10.0.0.7"])


def test_delete_leaves_nxdomain_and_deleting_again_succeeds(bind, dns_registry):
    dns_registry.add_record("web-gone", bind.zone, "10.0.0.8")
    dns_registry.add_record("web-gone", bind.zone, "2001:db8::8")
    assert dns_registry.delete_record("web-gone", bind.zone) == Removal(
        "web-gone.example.test", "deleted")
    assert bind.query("web-gone.example.test") == ("NXDOMAIN", [])
    assert bind.query("web-gone.example.test", "AAAA") == ("NXDOMAIN", [])
    assert bind.query("_autoscale.web-gone.example.test", "TXT") == ("NXDOMAIN", [])
    assert "status: NXDOMAIN" in bind.dig("web-gone.example.test", "A")
    assert dns_registry.delete_record("web-gone", bind.zone) == Removal(
        "web-gone.example.test", "absent")
    assert dns_registry.delete_record("never-there", bind.zone) == Removal(
        "never-there.example.test", "absent")


def test_delete_removes_only_the_address_and_ownership_records(bind, dns_registry):
    dns_registry.add_record("web-mixed", bind.zone, "10.0.0.8")
    # Someone else's records beside the pack's at the same name.
    update = dns.update.UpdateMessage(bind.zone + ".", keyring=registry_key(bind))
    update.add("web-mixed", 60, "TXT", '"theirs"')
    update.add("web-mixed", 60, "MX", "10 ns1")
    assert dns.query.tcp(update, LOOPBACK, timeout=2, port=bind.port).rcode() == 0
    assert dns_registry.delete_record("web-mixed", bind.zone).outcome == "deleted"
    assert bind.query("web-mixed.example.test", "A") == ("NOERROR", [])
    assert bind.query("web-mixed.example.test", "TXT") == ("NOERROR", ['"theirs"'])
    assert bind.query("web-mixed.example.test", "MX") == ("NOERROR", ["10 ns1.example.test."])
    assert bind.query("_autoscale.web-mixed.example.test", "TXT") == ("NXDOMAIN", [])


def test_names_are_zone_relative_when_domain_is_below_the_zone(bind, dns_registry):
    record = dns_registry.add_record("web-1", "eu.example.test", "10.0.1.1", zone=bind.zone)
    assert record.fqdn == "web-1.eu.example.test" and record.zone == "example.test"
    assert bind.query("web-1.eu.example.test") == ("NOERROR", ["10.0.1.1"])
    # the zone's apex itself is inside the zone
    assert record_name("example", "test", "example.test").relative == "@"


# -- ownership ----------------------------------------------------------------------------------


def test_a_new_name_gets_its_ownership_record_and_stays_ours(bind, dns_registry):
    record = dns_registry.add_record("web-owned", bind.zone, "10.0.0.5")
    assert record.change == "created"
    assert bind.query("_autoscale.web-owned.example.test", "TXT") == ("NOERROR", [OWNER])
    assert bind.query("web-owned.example.test", "TXT") == ("NOERROR", [])  # not at the name
    assert dns_registry.add_record("web-owned", bind.zone, "10.0.0.6").change == "updated"
    assert bind.query("web-owned.example.test") == ("NOERROR", ["10.0.0.6"])
    assert dns_registry.check_record("web-owned", bind.zone) == "ours"
    assert dns_registry.delete_record("web-owned", bind.zone).outcome == "deleted"
    assert bind.query("_autoscale.web-owned.example.test", "TXT") == ("NXDOMAIN", [])


@pytest.mark.parametrize("label", FOREIGN)
def test_someone_elses_name_is_never_changed(bind, dns_registry, label):
    before = bind.zone_records()
    fqdn = "%s.example.test" % label
    for call in (lambda: dns_registry.add_record(label, bind.zone, "10.0.0.5"),
                 lambda: dns_registry.add_record(label, bind.zone, "2001:db8::5"),
                 lambda: dns_registry.check_record(label, bind.zone, address="10.0.0.5")):
        with pytest.raises(NotOwnedError) as err:
            call()
        assert err.value.fqdn == fqdn and not err.value.retryable
        assert "%s is not managed by this installation" % fqdn in str(err.value)
        assert "left alone" in str(err.value)
    # A delete refuses too, or, where the name has no address and no ownership record (MX,
    # TXT or CNAME only), finds nothing the pack could have made.
    for address in (None, "10.0.0.5"):
        if label not in ("mail", "only-txt", "alias"):
            with pytest.raises(NotOwnedError, match="not managed by this installation"):
                dns_registry.delete_record(label, bind.zone, address=address)
        else:
            assert dns_registry.delete_record(label, bind.zone, address=address).outcome == \
                "absent"
    assert bind.zone_records() == before


def test_the_refusal_names_what_is_there_and_whose_it_is(bind, dns_registry):
    with pytest.raises(NotOwnedError) as err:
        dns_registry.add_record("www", bind.zone, "10.0.0.5")
    assert str(err.value) == (
        'DNS: add www.example.test A 10.0.0.5: www.example.test is not managed by this '
        'installation: it holds A 192.0.2.10 and there is no TXT %s at '
        '_autoscale.www.example.test; left alone (choose another name, or remove the record if '
        'nobody uses it)' % OWNER)
    with pytest.raises(NotOwnedError, match="it holds A 192.0.2.30 and "
                                            "_autoscale.theirs.example.test names owner "
                                            "'other-site', another installation "
                                            r"\(dns.owner_id here: 'autoscale'\)"):
        dns_registry.check_record("theirs", bind.zone)


def test_another_installation_keeps_its_names_and_ours_stay_ours(bind):
    ours = Rfc2136Registry(settings_for(bind, owner_id="site-a"))
    other = Rfc2136Registry(settings_for(bind, owner_id="site-b"))
    ours.add_record("web-shared", bind.zone, "10.0.0.5")
    before = bind.zone_records()
    with pytest.raises(NotOwnedError, match="names owner 'site-a'"):
        other.add_record("web-shared", bind.zone, "10.0.0.99")
    with pytest.raises(NotOwnedError):
        other.delete_record("web-shared", bind.zone, address="10.0.0.5")
    assert bind.zone_records() == before
    assert ours.delete_record("web-shared", bind.zone).outcome == "deleted"


def test_two_writers_the_second_prerequisite_fails_on_the_server(bind):
    """Both writers see the name free, then both send the pack's own create update: the
    server applies the first and refuses the second (YXDOMAIN), whatever either had read."""
    one = Rfc2136Registry(settings_for(bind, owner_id="writer-one"))
    two = Rfc2136Registry(settings_for(bind, owner_id="writer-two"))
    assert one.check_record("web-race", bind.zone) == two.check_record(
        "web-race", bind.zone) == "free"
    target = record_name("web-race", bind.zone, bind.zone)
    key = registry_key(bind)

    def send(owner_id, attempts, label):
        message = dns.update.UpdateMessage(bind.zone + ".", keyring=key)
        dict(attempts)[label](message)
        response = dns.query.tcp(message, LOOPBACK, timeout=2, port=bind.port)
        return dns.rcode.to_text(response.rcode())

    first = add_attempts(target, "A", "10.0.0.1", 60, "writer-one")
    second = add_attempts(target, "A", "10.0.0.2", 60, "writer-two")
    assert send("writer-one", first, "created") == "NOERROR"
    assert send("writer-two", second, "created") == "YXDOMAIN"
    # Nor can the second writer change or delete it: its TXT is not there.
    assert send("writer-two", second, "updated") == "NXRRSET"
    assert send("writer-two", delete_attempts(target, "writer-two"), "deleted") == "NXRRSET"
    # nor adopt it: the A is not its address, and an ownership record is there
    assert send("writer-two", second, "adopted") in ("NXRRSET", "YXDOMAIN")
    assert bind.query("web-race.example.test") == ("NOERROR", ["10.0.0.1"])
    assert bind.query("_autoscale.web-race.example.test", "TXT") == (
        "NOERROR", ['"heritage=autoscale,autoscale/owner=writer-one"'])
    # The same through the library: refused, nothing changed.
    before = bind.zone_records()
    with pytest.raises(NotOwnedError, match="names owner 'writer-one'"):
        two.add_record("web-race", bind.zone, "10.0.0.2")
    assert bind.zone_records() == before
    assert one.delete_record("web-race", bind.zone).outcome == "deleted"


def test_a_name_from_before_ownership_records_is_adopted_by_its_address(bind, dns_registry):
    # add: the A holds exactly the address: the TXT is added, the A kept.
    record = dns_registry.add_record("legacy-add", bind.zone, "10.1.1.1")
    assert record.change == "adopted"
    assert bind.query("_autoscale.legacy-add.example.test", "TXT") == ("NOERROR", [OWNER])
    assert dns_registry.delete_record("legacy-add", bind.zone).outcome == "deleted"
    # delete with the recorded address: removed without ever getting a TXT.
    assert dns_registry.check_record("legacy-del", bind.zone, address="10.1.1.2") == "adoptable"
    removal = dns_registry.delete_record("legacy-del", bind.zone, address="10.1.1.2")
    assert removal == Removal("legacy-del.example.test", "adopted")
    assert bind.query("legacy-del.example.test") == ("NXDOMAIN", [])
    assert dns_registry.delete_record("legacy-six", bind.zone,
                                      address="2001:db8::12").outcome == "adopted"
    assert bind.query("legacy-six.example.test", "AAAA") == ("NXDOMAIN", [])
    # another address since, or someone else's TXT: not ours.
    before = bind.zone_records()
    for label, address in (("legacy-moved", "10.1.1.9"), ("legacy-taken", "10.1.1.4")):
        with pytest.raises(NotOwnedError):
            dns_registry.add_record(label, bind.zone, address)
        with pytest.raises(NotOwnedError):
            dns_registry.delete_record(label, bind.zone, address=address)
        with pytest.raises(NotOwnedError):
            dns_registry.check_record(label, bind.zone, address=address)
    assert bind.zone_records() == before


def test_a_check_changes_nothing(bind, dns_registry):
    serial = bind.query(bind.zone, "SOA")
    assert dns_registry.check_record("web-unused", bind.zone) == "free"
    assert dns_registry.check_record("legacy-moved", bind.zone, address="10.1.1.3") == \
        "adoptable"
    with pytest.raises(NotOwnedError):
        dns_registry.check_record("www", bind.zone)
    assert bind.query(bind.zone, "SOA") == serial
    assert bind.query("web-unused.example.test") == ("NXDOMAIN", [])
    assert bind.query("_autoscale.legacy-moved.example.test", "TXT") == ("NXDOMAIN", [])


def test_actions_refuse_to_add_and_leave_alone_on_delete(bind):
    before = bind.zone_records()
    added = run_action(bind, "dns_add_record", name="www", domain=bind.zone, address="10.0.0.5")
    assert not added.ok and added.result["not_owned"] is True
    assert "www.example.test is not managed by this installation" in added.result["error"]
    deleted = run_action(bind, "dns_delete_record", name="www", domain=bind.zone)
    assert deleted.ok, deleted
    assert deleted.result["deleted"] is False and deleted.result["outcome"] == "not ours"
    assert "not managed by this installation" in deleted.result["left_alone"]
    # the service name of a group from before ownership records: dns.service_address
    config = pack_config(bind, service_address="10.1.1.5")
    adopted = run_action(bind, "dns_delete_record", config=config, name="legacy-svc",
                         domain=bind.zone, service_name=True)
    assert adopted.ok and adopted.result["outcome"] == "adopted", adopted
    legacy = ("legacy-svc.example.test", "A")
    assert before.pop(legacy) == (60, ["10.1.1.5"])
    assert bind.zone_records() == before


# -- refusals -------------------------------------------------------------------------------


def test_wrong_secret_is_a_clear_error_without_the_secret(bind):
    wrong = BindServer.new_secret()
    bad = Rfc2136Registry(settings_for(bind, tsig_secret=wrong))
    with pytest.raises(BackendError) as err:
        bad.add_record("web-3f9a1c", bind.zone, "10.0.0.5")
    text = str(err.value)
    assert text.startswith("DNS: add web-3f9a1c.example.test A 10.0.0.5: server refused the "
                           "update (NOTAUTH: TSIG key not accepted, BADSIG")
    assert not err.value.retryable
    assert wrong not in text and bind.key_secret not in text
    with pytest.raises(BackendError, match=r"DNS: delete web-x.example.test A/AAAA: .*BADSIG"):
        bad.delete_record("web-x", bind.zone)


def test_unknown_key_and_wrong_algorithm_are_badkey(bind):
    for overrides in ({"tsig_key_name": "nobody"}, {"tsig_algorithm": "hmac-sha512"}):
        with pytest.raises(BackendError, match="BADKEY: the server has no key") as err:
            Rfc2136Registry(settings_for(bind, **overrides)).add_record(
                "web-badkey", bind.zone, "10.0.0.5")
        assert not err.value.retryable
    assert bind.query("web-badkey.example.test") == ("NXDOMAIN", [])


def test_key_without_update_rights_is_refused(bind):
    other = settings_for(bind, tsig_key_name="other", tsig_secret=bind.other_keys["other"])
    with pytest.raises(BackendError, match=r"\(REFUSED: key other may not update zone "
                                           r"example.test") as err:
        Rfc2136Registry(other).add_record("web-other", bind.zone, "10.0.0.5")
    assert not err.value.retryable
    assert bind.query("web-other.example.test") == ("NXDOMAIN", [])


def test_unsigned_update_is_refused_by_the_server(bind):
    update = dns.update.UpdateMessage(bind.zone + ".")
    update.replace("unsigned", 60, "A", "10.6.6.6")
    response = dns.query.tcp(update, LOOPBACK, timeout=2, port=bind.port)
    assert dns.rcode.to_text(response.rcode()) == "REFUSED"
    assert bind.query("unsigned.example.test") == ("NXDOMAIN", [])
    with open(bind.log_path, encoding="utf-8") as handle:
        assert "update 'example.test/IN' denied" in handle.read()


def test_zone_the_server_does_not_serve_is_notauth(bind, dns_registry):
    with pytest.raises(BackendError, match="NOTAUTH: the server is not authoritative for zone "
                                           "elsewhere.test"):
        dns_registry.add_record("web-1", "elsewhere.test", "10.0.0.5", zone="elsewhere.test")


def test_update_the_server_accepts_but_does_not_serve_is_an_error(bind, dns_registry):
    # A name of ours whose A someone replaced with a CNAME: the change's prerequisite (our
    # TXT) holds, BIND answers NOERROR but ignores an A beside a CNAME: only the check query
    # sees it.
    dns_registry.add_record("web-cname", bind.zone, "10.0.0.5")
    update = dns.update.UpdateMessage(bind.zone + ".", keyring=registry_key(bind))
    update.delete("web-cname", "A")
    update.add("web-cname", 60, "CNAME", "ns1")
    assert dns.query.tcp(update, LOOPBACK, timeout=2, port=bind.port).rcode() == 0
    with pytest.raises(BackendError, match=r"DNS: add web-cname.example.test A 10.0.0.5: the "
                                           r"server accepted the update but answers nothing"):
        dns_registry.add_record("web-cname", bind.zone, "10.0.0.5")


HOSTILE_NAMES = ["a;b", "a b", "x\n", "..", "a" * 64, "", "Web", "*", "a.b", "-a", "a\x00",
                 None, 7]
HOSTILE_DOMAINS = ["example.test\n", "ex ample.test", "..", "example..test", "example.test;",
                   "notexample.test", "other.test", "test", ""]
HOSTILE_ADDRESSES = ["10.0.0.256", "10.0.0.5\n", "10.0.0.5; rm", "0.0.0.0", "::", "224.0.0.1",
                     "fe80::1%eth0", "web.example.test", "", 167772165]


def test_hostile_input_is_refused_before_any_io(bind):
    # A listener nothing should ever connect to: the registry points at it.
    with socket.socket() as trap:
        trap.bind((LOOPBACK, 0))
        trap.listen(8)
        trap.setblocking(False)
        settings = dataclasses.replace(settings_for(bind), port=trap.getsockname()[1])
        target = Rfc2136Registry(settings)
        calls = [lambda n=n: target.add_record(n, bind.zone, "10.0.0.5") for n in HOSTILE_NAMES]
        calls += [lambda n=n: target.delete_record(n, bind.zone) for n in HOSTILE_NAMES]
        calls += [lambda n=n: target.check_record(n, bind.zone) for n in HOSTILE_NAMES]
        calls += [lambda a=a: target.delete_record("web", bind.zone, address=a)
                  for a in HOSTILE_ADDRESSES if a]
        calls += [lambda a=a: target.check_record("web", bind.zone, address=a)
                  for a in HOSTILE_ADDRESSES if a]
        calls += [lambda d=d: target.add_record("web", d, "10.0.0.5") for d in HOSTILE_DOMAINS]
        calls += [lambda d=d: target.delete_record("web", d) for d in HOSTILE_DOMAINS]
        calls += [lambda a=a: target.add_record("web", bind.zone, a) for a in HOSTILE_ADDRESSES]
        calls += [lambda t=t: target.add_record("web", bind.zone, "10.0.0.5", ttl=t)
                  for t in (-1, True, "60", 2 ** 31)]
        calls += [lambda: target.add_record("web", "example.test", "10.0.0.5", zone="bad zone")]
        for call in calls:
            with pytest.raises(ValidationError):
                call()
        with pytest.raises(BlockingIOError):
            trap.accept()
    with pytest.raises(ValidationError, match="outside the zone example.test"):
        record_name("web", "notexample.test", "example.test")
    with pytest.raises(ValidationError, match="is 64 characters long"):
        record_name("a" * 64, "example.test", "example.test")


def test_addresses_and_names_are_canonical():
    assert parse_address("2001:0DB8::0001") == ("AAAA", "2001:db8::1")
    assert parse_address("192.0.2.1") == ("A", "192.0.2.1")
    name = record_name("web-1", "Example.Test.", "example.test")
    assert (name.fqdn, name.relative) == ("web-1.example.test", "web-1")


# -- the server away ---------------------------------------------------------------------------


def test_stopped_server_is_a_quick_retryable_error_and_recovers(own_bind):
    target = Rfc2136Registry(settings_for(own_bind))
    target.add_record("web-before", own_bind.zone, "10.0.0.1")
    own_bind.down()
    with pytest.raises(BackendError) as err:
        returns(lambda: target.add_record("web-3f9a1c", own_bind.zone, "10.0.0.5"))
    assert err.value.retryable
    assert str(err.value) == (
        "DNS: add web-3f9a1c.example.test A 10.0.0.5: connection to 127.0.0.1 port %d refused "
        "(is the DNS server running?)" % own_bind.port)
    own_bind.up()
    target.add_record("web-3f9a1c", own_bind.zone, "10.0.0.5")
    # the zone and its journal survive restarts
    own_bind.restart()
    assert own_bind.query("web-before.example.test") == ("NOERROR", ["10.0.0.1"])
    assert own_bind.query("web-3f9a1c.example.test") == ("NOERROR", ["10.0.0.5"])


def test_server_that_does_not_answer_times_out_and_is_tried_again(own_bind, caplog):
    settings = settings_for(own_bind)
    assert settings.attempts == 2
    target = Rfc2136Registry(settings)
    own_bind.pause()
    try:
        for call in (lambda: target.add_record("web-slow", own_bind.zone, "10.0.0.5"),
                     lambda: target.delete_record("web-slow", own_bind.zone)):
            caplog.clear()
            with caplog.at_level(logging.INFO, logger="autoscale_core.errors"):
                with pytest.raises(BackendError, match=r"no answer to the update from "
                                                       r"127.0.0.1 port \d+ within 0.3 s") as err:
                    returns(call)
            # Each attempt waited for its timeout: the first failed, was retried, and the
            # second failed too (the message above).
            retried = [r.getMessage() for r in caplog.records
                       if r.getMessage().startswith("attempt ")]
            assert len(retried) == 1 and retried[0].startswith("attempt 1 of 2 failed ("), \
                retried
            assert "within 0.3 s" in retried[0]
            assert err.value.retryable
    finally:
        own_bind.unpause()
    # the retried updates were idempotent: whatever the server did with them, one answer
    target.add_record("web-slow", own_bind.zone, "10.0.0.5")
    assert own_bind.query("web-slow.example.test") == ("NOERROR", ["10.0.0.5"])


# -- settings ----------------------------------------------------------------------------------


def test_settings_from_config(bind):
    config = bind.config(service_address="10.0.0.80")
    settings = DnsSettings.from_config({"dns": config})
    assert (settings.server, settings.port, settings.zone, settings.ttl) == (
        LOOPBACK, bind.port, "example.test", 60)
    assert bind.key_secret not in repr(settings)
    assert settings.owner_id == "autoscale"  # the default: one installation per zone
    assert DnsSettings.from_config({"dns": dict(config, owner_id="prod-eu.1")}).owner_id == \
        "prod-eu.1"
    assert isinstance(registry(settings), DnsRegistry)
    for key in ("server", "zone", "tsig_key_name", "tsig_secret"):
        with pytest.raises(ValidationError, match="config key dns.%s is missing" % key):
            DnsSettings.from_config({"dns": dict(config, **{key: ""})})
    with pytest.raises(ValidationError, match="config key dns is missing"):
        DnsSettings.from_config({})
    not_base64 = "not base64 but secret!"
    with pytest.raises(ValidationError, match="dns.tsig_secret is not a base64 key") as err:
        DnsSettings.from_config({"dns": dict(config, tsig_secret=not_base64)})
    assert not_base64 not in str(err.value)
    for key, value, message in (
        ("server", "ns1.example.test", "dns.server must be an IP address"),
        ("port", 70000, "dns.port must be a port number"),
        ("tsig_algorithm", "hmac-sha3", "dns.tsig_algorithm must be one of"),
        ("zone", "bad zone", "config key dns.zone 'bad zone' is not a valid DNS name"),
        ("ttl", -5, "config key dns.ttl must be a whole number"),
        ("service_address", "lb.example.test", "dns.service_address 'lb.example.test' is not"),
        ("owner_id", "two words", "config key dns.owner_id must be 1 to 63 of letters"),
        ("owner_id", 'a"b', "config key dns.owner_id must be"),
        ("owner_id", "a,autoscale/owner=b", "config key dns.owner_id must be"),
        ("owner_id", "x" * 64, "config key dns.owner_id must be"),
        ("owner_id", "-lead", "config key dns.owner_id must be"),
        ("owner_id", 7, "config key dns.owner_id must be"),
    ):
        with pytest.raises(ValidationError, match=message):
            DnsSettings.from_config({"dns": dict(config, **{key: value})})


# -- the actions, run as st2 runs them -----------------------------------------------------------


def test_actions_add_and_delete_through_the_harness(bind):
    result = run_action(bind, "dns_add_record", name="web-act", domain=bind.zone,
                        address="10.0.0.9", ttl=None, zone=None)
    assert result.ok, result
    assert result.result == {"fqdn": "web-act.example.test", "type": "A", "address": "10.0.0.9",
                             "ttl": 60, "zone": "example.test", "change": "created",
                             "verified": True}
    assert bind.query("web-act.example.test") == ("NOERROR", ["10.0.0.9"])
    # no address: the group's service name points at the load balancer
    config = pack_config(bind, service_address="10.0.0.80")
    result = run_action(bind, "dns_add_record", config=config, name="web", domain=bind.zone,
                        ttl=30)
    assert result.ok and result.result["address"] == "10.0.0.80" and result.result["ttl"] == 30
    assert bind.query("web.example.test") == ("NOERROR", ["10.0.0.80"])
    result = run_action(bind, "dns_delete_record", name="web-act", domain=bind.zone)
    assert result.ok and result.result == {"fqdn": "web-act.example.test", "deleted": True,
                                           "outcome": "deleted"}
    assert bind.query("web-act.example.test") == ("NXDOMAIN", [])


def test_actions_report_failures(bind):
    result = run_action(bind, "dns_add_record", name="a;b", domain=bind.zone, address="10.0.0.9")
    assert not result.ok
    assert result.result == {"error": "record name 'a;b' is not a DNS label: use lowercase "
                                      "letters, digits and '-', starting and ending with a "
                                      "letter or digit", "retryable": False}
    result = run_action(bind, "dns_add_record", name="web", domain=bind.zone)
    assert not result.ok and "dns.service_address is empty" in result.result["error"]
    config = pack_config(bind, tsig_secret=BindServer.new_secret())
    result = run_action(bind, "dns_delete_record", config=config, name="web-act",
                        domain=bind.zone)
    assert not result.ok
    assert result.result["system"] == "DNS" and result.result["operation"] == "delete"
    assert result.result["object"] == "web-act.example.test A/AAAA"
    assert "BADSIG" in result.result["error"] and result.result["retryable"] is False
    missing = run_action(bind, "dns_delete_record", domain=bind.zone)
    assert not missing.ok and "'name' is a required property" in missing.error


def test_no_secret_in_logs_results_or_errors(bind, caplog):
    caplog.set_level(logging.DEBUG)
    wrong = BindServer.new_secret()
    seen = []
    good = settings_for(bind)
    Rfc2136Registry(good).add_record("web-log", bind.zone, "10.0.0.5")
    Rfc2136Registry(good).delete_record("web-log", bind.zone)
    for bad in (settings_for(bind, tsig_secret=wrong),
                settings_for(bind, tsig_key_name="other", tsig_secret=bind.other_keys["other"])):
        with pytest.raises(BackendError) as err:
            Rfc2136Registry(bad).add_record("web-log", bind.zone, "10.0.0.5")
        seen.append(str(err.value))
        seen.append(repr(err.value))
    for config in (pack_config(bind), pack_config(bind, tsig_secret=wrong)):
        for action, params in (("dns_add_record", {"address": "10.0.0.5"}),
                               ("dns_delete_record", {})):
            result = run_action(bind, action, config=config, name="web-log", domain=bind.zone,
                                **params)
            seen.append(repr(result))
    assert any("BADSIG" in text for text in seen)  # the failure paths really ran
    assert any("'verified': True" in text for text in seen)
    seen += [record.getMessage() for record in caplog.records]
    seen += [repr(record.args) for record in caplog.records]
    seen += [record.exc_text or "" for record in caplog.records]
    assert any("web-log.example.test" in text for text in seen)  # and were logged
    for secret in (bind.key_secret, bind.other_keys["other"], wrong):
        for text in seen:
            assert secret not in text


# -- the BIND launcher itself --------------------------------------------------------------------


def test_bind_refuses_a_broken_zone_with_checkzone_words():
    server = BindServer(records=["broken IN A not-an-address"])
    with pytest.raises(BindError, match="named-checkzone failed") as err:
        server.start()
    assert "not-an-address" in str(err.value) or "bad dotted quad" in str(err.value)
    assert server.directory is None and not server.running


def test_bind_runs_from_a_private_copy_where_apparmor_would_confine_it():
    server = start_bind(private_binary=True)
    try:
        exe = os.path.realpath("/proc/%d/exe" % server.pid)
        assert exe == os.path.join(os.path.realpath(server.directory), "named")
        assert server.query(server.fqdn("ns1")) == ("NOERROR", [LOOPBACK])
        # no rndc channel, so two servers never fight over 127.0.0.1:953
        with open(server.log_path, encoding="utf-8") as handle:
            assert "command channel listening" not in handle.read()
    finally:
        stop_and_check(server)


def test_no_named_left_behind(bind):
    # Whatever ran before (or nothing, when this test runs alone): a server of its own in
    # each state the other tests leave one in, stopped the way the fixtures stop them.
    for leave in ("running", "down", "paused"):
        server = start_bind()
        if leave == "down":
            server.down()
        elif leave == "paused":
            server.pause()
        stop_and_check(server)
    assert len(STARTED) >= 4  # the shared server and the three above, at least
    assert all(os.path.basename(d).startswith(DIR_PREFIX) for d in STARTED)
    # The shared server still runs: pgrep finds it, so an empty answer below means something.
    assert named_processes(bind.directory)
    for directory in STARTED:
        if directory != bind.directory:
            assert named_processes(directory) == [], directory
            assert not os.path.exists(directory)
