"""A real BIND9 ``named`` on loopback, serving one zone that accepts TSIG-signed updates.

Used by the DNS tests and the local sandbox::

    with BindServer(zone="example.test") as bind:
        bind.config()                  # the pack config's ``dns`` section for this server
        bind.query("web.example.test") # ("NOERROR", ["10.0.0.5"])
        bind.down(); bind.up()         # fault injection: BIND stopped, then back (zone kept)
        bind.restart()                 # the same in one call
        bind.pause(); bind.unpause()   # accepts connections but never answers: timeouts
        bind.zone_records()            # every record, by a zone transfer (allow_transfer=True)

Everything lives in one temporary directory (named.conf, zone file, journal, pid file,
session key, log); ``stop()`` ends ``named`` (SIGTERM, then SIGKILL) and removes it.

Facts this relies on, checked with Debian 12's bind9 9.18:

* started as root without ``-u``, this ``named`` stays root but gives up most capabilities,
  CAP_DAC_OVERRIDE among them; it can still write a directory root owns, such as a
  ``mkdtemp`` one. Debian's own service passes ``-u bind``; we do not, so the temp directory
  need not be readable by ``bind``. As another user it simply runs as that user.
* Debian ships an AppArmor profile attached to the path ``/usr/sbin/named`` that only allows
  /etc/bind, /var/cache/bind and /var/lib/bind; on a host that enforces it, named cannot read
  a config in /tmp. With AppArmor enabled we therefore run a private copy of the binary from
  the temp directory, which the profile does not attach to.
* without ``controls { };`` named opens an rndc channel on 127.0.0.1:953, which two
  instances (or a system named) would fight over.
* a second named on an occupied port starts without an error, hence ``free_port_pair``.
"""

from __future__ import annotations

import atexit
import base64
import os
import shutil
import signal
import subprocess
import tempfile
import time
from typing import Dict, Iterable, List, Optional, Set, Tuple

import dns.exception
import dns.flags
import dns.message
import dns.name
import dns.query
import dns.rcode
import dns.rdatatype
import dns.tsig

from .net import LOOPBACK, free_port_pair
from .process import spawn
from .process import stop as stop_process

DIR_PREFIX = "autoscale-bind-"
SBIN = ("/usr/sbin", "/usr/local/sbin", "/sbin")


# Servers started and not yet stopped: stopped at interpreter exit, should a caller forget.
_LIVE: Set[BindServer] = set()


@atexit.register
def _stop_all() -> None:
    for server in list(_LIVE):
        server.stop()


class BindError(RuntimeError):
    """named could not be set up or started; the message carries its own words."""


def find_program(name: str) -> str:
    found = shutil.which(name) or shutil.which(name, path=os.pathsep.join(SBIN))
    if not found:
        raise BindError("%s not found: install Debian's bind9, bind9-utils and bind9-dnsutils "
                        "(`make system-packages` does)" % name)
    return found


def apparmor_enabled() -> bool:
    try:
        with open("/sys/module/apparmor/parameters/enabled", encoding="ascii") as handle:
            return handle.read().strip() == "Y"
    except OSError:
        return False


class BindServer:
    """One ``named`` serving ``zone`` on 127.0.0.1:``port`` (TCP and UDP).

    ``key_name`` may update the zone. ``other_keys`` are keys the server knows but that may
    not update it (a correctly signed update with one is REFUSED). ``records`` are extra
    zone-file lines (relative names), e.g. ``["alias IN CNAME ns1"]``. With
    ``allow_transfer``, a zone transfer (AXFR) signed with ``key_name`` is allowed.
    """

    def __init__(self, zone: str = "example.test", key_name: str = "autoscale-test",
                 algorithm: str = "hmac-sha256", other_keys: Iterable[str] = (),
                 records: Iterable[str] = (), startup_timeout: float = 15.0,
                 private_binary: Optional[bool] = None, allow_transfer: bool = False) -> None:
        self.zone = zone.rstrip(".").lower()
        self.key_name = key_name
        self.algorithm = algorithm
        self.key_secret = self.new_secret()
        self.other_keys: Dict[str, str] = {name: self.new_secret() for name in other_keys}
        self.records = list(records)
        self.allow_transfer = allow_transfer
        self.startup_timeout = startup_timeout
        self.private_binary = apparmor_enabled() if private_binary is None else private_binary
        self.directory: Optional[str] = None
        self.port: Optional[int] = None
        self.process: Optional[subprocess.Popen] = None
        self._paused = False
        self._log = None

    @staticmethod
    def new_secret() -> str:
        """A fresh TSIG secret (base64 of 32 random bytes), e.g. for a key the server does
        not know."""
        return base64.b64encode(os.urandom(32)).decode("ascii")

    # -- files ---------------------------------------------------------------------------------

    def _path(self, name: str) -> str:
        assert self.directory is not None, "not started"
        return os.path.join(self.directory, name)

    @property
    def config_path(self) -> str:
        return self._path("named.conf")

    @property
    def zone_path(self) -> str:
        return self._path("%s.zone" % self.zone)

    @property
    def log_path(self) -> str:
        return self._path("named.log")

    def _named_conf(self) -> str:
        keys = [(self.key_name, self.key_secret)] + sorted(self.other_keys.items())
        key_blocks = "".join(
            'key "%s" {\n  algorithm %s;\n  secret "%s";\n};\n' % (name, self.algorithm, secret)
            for name, secret in keys
        )
        return (
            'options {\n'
            '  directory "%(dir)s";\n'
            '  pid-file "%(dir)s/named.pid";\n'
            '  session-keyfile "%(dir)s/session.key";\n'
            '  managed-keys-directory "%(dir)s";\n'
            '  listen-on port %(port)d { %(host)s; };\n'
            '  listen-on-v6 { none; };\n'
            '  recursion no;\n'
            '  notify no;\n'
            '  dnssec-validation no;\n'
            '  allow-transfer { none; };\n'
            '};\n'
            '# no rndc channel: it would listen on 127.0.0.1:953 for every instance\n'
            'controls { };\n'
            '%(keys)s'
            'zone "%(zone)s" {\n'
            '  type primary;\n'
            '  file "%(zonefile)s";\n'
            '  allow-update { key "%(key)s"; };\n'
            '%(transfer)s'
            '};\n'
        ) % {"dir": self.directory, "port": self.port, "host": LOOPBACK, "keys": key_blocks,
             "zone": self.zone, "zonefile": self.zone_path, "key": self.key_name,
             "transfer": ('  allow-transfer { key "%s"; };\n' % self.key_name
                          if self.allow_transfer else "")}

    def _zone_file(self) -> str:
        lines = [
            "$TTL 60",
            "@ IN SOA ns1.%s. hostmaster.%s. 1 60 60 3600 60" % (self.zone, self.zone),
            "@ IN NS ns1",
            "ns1 IN A %s" % LOOPBACK,
        ] + self.records
        return "\n".join(lines) + "\n"

    def _check(self, *command: str) -> None:
        done = subprocess.run(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                              timeout=30, check=False)
        if done.returncode != 0:
            output = done.stdout.decode("utf-8", "replace").replace(self.key_secret, "[secret]")
            raise BindError("%s failed:\n%s" % (os.path.basename(command[0]), output))

    # -- running -------------------------------------------------------------------------------

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    @property
    def pid(self) -> Optional[int]:
        return self.process.pid if self.process else None

    def start(self) -> BindServer:
        """Write the config and zone into a new temp directory, check them, start named and
        wait until it answers a SOA query for the zone."""
        if self.directory is None:
            self.directory = tempfile.mkdtemp(prefix=DIR_PREFIX)
            self.port = free_port_pair()
            try:
                with open(self.config_path, "w", encoding="ascii") as handle:
                    handle.write(self._named_conf())
                with open(self.zone_path, "w", encoding="ascii") as handle:
                    handle.write(self._zone_file())
                self._check(find_program("named-checkconf"), self.config_path)
                self._check(find_program("named-checkzone"), self.zone, self.zone_path)
                named = find_program("named")
                if self.private_binary:
                    shutil.copy2(named, self._path("named"))
            except BaseException:
                self._remove_directory()
                raise
        _LIVE.add(self)
        try:
            self.up()
        except BaseException:
            self.stop()
            raise
        return self

    def up(self) -> None:
        """Start named (again) on the same port, with the zone and journal as they are."""
        if self.running:
            return
        named = self._path("named") if self.private_binary else find_program("named")
        if self._log is None:
            self._log = open(self.log_path, "ab")  # closed in stop()
        # -g: foreground, log to stderr (into named.log); -n 1: one worker thread is plenty.
        self.process = spawn([named, "-g", "-n", "1", "-c", self.config_path],
                             stdout=self._log, stderr=subprocess.STDOUT, cwd=self.directory)
        self._paused = False
        deadline = time.monotonic() + self.startup_timeout
        while True:
            if self.process.poll() is not None:
                raise BindError("named exited with status %s while starting:\n%s"
                                % (self.process.returncode, self.log_tail()))
            try:
                rcode, _ = self.query(self.zone, "SOA", timeout=0.3, tcp=False)
                if rcode == "NOERROR":
                    return
            except (dns.exception.Timeout, OSError):
                pass
            if time.monotonic() > deadline:
                self.down()
                raise BindError("named did not answer a SOA query for %s within %.0f s:\n%s"
                                % (self.zone, self.startup_timeout, self.log_tail()))
            time.sleep(0.05)

    def down(self, timeout: float = 5.0) -> None:
        """Stop named but keep its files and port number: "BIND stopped" for fault tests."""
        process, self.process = self.process, None
        if process is None or process.poll() is not None:
            return
        if self._paused:
            os.kill(process.pid, signal.SIGCONT)  # a stopped process cannot act on SIGTERM
            self._paused = False
        stop_process(process, timeout)

    def pause(self) -> None:
        """Freeze named (SIGSTOP): the kernel still accepts TCP connections on its socket but
        nothing answers, so clients time out."""
        if self.running:
            os.kill(self.process.pid, signal.SIGSTOP)
            self._paused = True

    def unpause(self) -> None:
        if self.running and self._paused:
            os.kill(self.process.pid, signal.SIGCONT)
            self._paused = False

    def restart(self) -> None:
        self.down()
        self.up()

    def stop(self) -> None:
        """Stop named and remove the temp directory. Safe to call more than once."""
        _LIVE.discard(self)
        try:
            self.down()
        finally:
            if self._log is not None:
                self._log.close()
                self._log = None
            self._remove_directory()

    def _remove_directory(self) -> None:
        if self.directory is not None:
            shutil.rmtree(self.directory, ignore_errors=True)
            self.directory = None

    def __enter__(self) -> BindServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def log_tail(self, lines: int = 30) -> str:
        try:
            with open(self.log_path, encoding="utf-8", errors="replace") as handle:
                text = handle.read().splitlines()[-lines:]
        except OSError:
            return "(no log)"
        return "\n".join(text).replace(self.key_secret, "[secret]")

    # -- looking at it -------------------------------------------------------------------------

    def config(self, **overrides: object) -> Dict[str, object]:
        """The pack config's ``dns`` section for this server."""
        values: Dict[str, object] = {
            "server": LOOPBACK,
            "port": self.port,
            "zone": self.zone,
            "tsig_key_name": self.key_name,
            "tsig_algorithm": self.algorithm,
            "tsig_secret": self.key_secret,
            "ttl": 60,
            "service_address": "",
        }
        values.update(overrides)
        return values

    def fqdn(self, label: str) -> str:
        return "%s.%s" % (label, self.zone)

    def query(self, name: str, rdtype: str = "A", timeout: float = 2.0,
              tcp: bool = True) -> Tuple[str, List[str]]:
        """(rcode, answers) for ``name`` (absolute, trailing dot optional), without TSIG."""
        request = dns.message.make_query(name.rstrip(".") + ".", rdtype)
        request.flags &= ~dns.flags.RD
        send = dns.query.tcp if tcp else dns.query.udp
        response = send(request, LOOPBACK, timeout=timeout, port=self.port)
        answers = sorted(
            rdata.to_text()
            for rrset in response.answer
            if rrset.rdtype == dns.rdatatype.from_text(rdtype)
            for rdata in rrset
        )
        return dns.rcode.to_text(response.rcode()), answers

    def keyring(self) -> Dict[dns.name.Name, dns.tsig.Key]:
        return {dns.name.from_text(self.key_name): dns.tsig.Key(
            self.key_name, self.key_secret, self.algorithm)}

    def zone_records(self) -> Dict[Tuple[str, str], Tuple[int, List[str]]]:
        """Every record of the zone but its SOA (whose serial every update changes), by a
        TSIG-signed zone transfer: (fqdn without the final dot, type) -> (ttl, sorted rdata).
        Needs ``allow_transfer``."""
        found: Dict[Tuple[str, str], Tuple[int, List[str]]] = {}
        for message in dns.query.xfr(LOOPBACK, self.zone, port=self.port,
                                     keyring=self.keyring(), keyname=self.key_name,
                                     lifetime=5.0, relativize=False):
            for rrset in message.answer:
                if rrset.rdtype == dns.rdatatype.SOA:
                    continue
                key = (rrset.name.to_text().rstrip(".").lower(),
                       dns.rdatatype.to_text(rrset.rdtype))
                _, rdata = found.get(key, (rrset.ttl, []))
                found[key] = (rrset.ttl, sorted(set(rdata + [r.to_text() for r in rrset])))
        return found

    def dig(self, name: str, rdtype: str = "A", *options: str) -> str:
        """``dig @127.0.0.1 -p PORT name type`` output: a second, independent client."""
        done = subprocess.run(
            [find_program("dig"), "@%s" % LOOPBACK, "-p", str(self.port), "+norecurse",
             "+time=2", "+tries=1"] + list(options) + [name, rdtype],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=10, check=False,
        )
        return done.stdout.decode("utf-8", "replace")
