"""Every backend the pack talks to, started together, wired together, and a pack config for them.

One object for the workflow tests and the sandbox demo::

    with World(zone="example.test", backends=("web", "api"), serve_http=True) as world:
        config = world.config()          # a full pack config (config.schema.yaml's shape)
        world.ssh_pub_key                # for the datastore key ``ssh_pub_key``
        ...                              # run the pack's actions and workflows
        world.fail("dns"); ...; world.heal("dns")
        world.inventory()                # what really exists, for leak checks

It runs, all on 127.0.0.1:

* a real BIND9 serving ``zone``, which takes TSIG-signed updates with the config's key and
  also allows a zone transfer (AXFR) signed with it, which ``inventory()`` uses;
* a real HAProxy: a Runtime API socket at level admin, one frontend, and one backend per name
  in ``backends`` (``balance roundrobin``, which dynamic servers need). The frontend sends a
  request whose Host starts with ``<backend>.`` to that backend (``api.example.test`` → api),
  every other request to the first backend. A second frontend serves HAProxy's Prometheus
  exporter (``world.haproxy.metrics_target``, for ``sandbox.monitoring``);
* FakeOpenStack (Keystone + Nova, flavor ``m1.small``, image ``ubuntu-24.04``, network
  ``private``), FakeChefServer (organisation ``org``, the pack's API client and a validator,
  both with RSA keys made here), FakeSlack (channel ``#autoscale``, the bot a member).

Wiring, through FakeOpenStack's ``on_create``/``on_delete`` hooks: each new server's address
is 127.0.0.1, and its
cloud-init user data is read as cloud-init would: the ``chef:`` section makes the Chef fake
"boot" the node (its client and node register at once, the node converges ``converge_after``
seconds later), but only when it names this Chef server, a validator the server knows and that
validator's key; otherwise the node never registers and ``world.vms[id].problem`` says why.
With ``serve_http=True`` each server also gets a real ``WebNode`` process on 127.0.0.1 and a
free port of its own, which the server's metadata names (``autoscale_port``, read by the
pack's compute backend and passed to the load balancer); deleting the server stops it. A
server that goes to ERROR runs nothing.

The application can be made sick: ``make_sick(node=None, mode="errors"|"slow", latency=None)``
makes one web node (by server name) or every one answer HTTP 500 or late; with ``node=None``
the web nodes started later are sick too (the application is), until ``make_well()``.
``make_well(node)`` heals one node. /health keeps answering 200, so HAProxy keeps the nodes in
rotation: only monitoring (sandbox.monitoring) notices. The switches are on each node's admin
port, which HAProxy never forwards to (sandbox.webnode).

Failure injection: ``fail(what, times=None)`` / ``heal(what=None)`` / ``with
world.failure(what):``; ``what`` is one of ``FAILURES`` (see there). ``times=None`` lasts until
healed. A number counts what fails: servers for nova.active and chef.converge, HTTP requests
for the rest; every injected answer is one the pack does not retry (403, or Slack's 500 to
chat.postMessage), so a failing request is a failing action run. chef_delete_node sends two
DELETEs (node, then client): with ``times=1`` the node stays and the client goes.
"""

from __future__ import annotations

import atexit
import base64
import concurrent.futures
import contextlib
import functools
import http.client
import json
import os
import threading
import time
from dataclasses import asdict, dataclass, field
from typing import Any, Callable, Dict, Iterator, List, Optional, Sequence, Set, Tuple, TypeVar

import dns.name
import dns.query
import dns.rdatatype
import dns.tsig
import dns.update
import yaml
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa

from .bind import BindServer
from .fake_chef import FakeChefServer
from .fake_openstack import FakeOpenStack
from .fake_slack import FakeSlack
from .haproxy import HAProxy
from .http_fake import Failure
from .net import LOOPBACK, free_port
from .webnode import WebNode, check_sickness

# The first label of a name's ownership record, _autoscale.<name> (backends/rfc2136.py).
OWNER_LABEL = "_autoscale"
# The server metadata key that names a node's port (ports/compute.py).
PORT_KEY = "autoscale_port"

# What ``fail`` knows, and what each does (all built on the fakes' and launchers' own knobs).
FAILURES = {
    "nova.create": "Nova refuses server creates: 403 'Quota exceeded for instances'",
    "nova.active": "new servers go to ERROR ('No valid host was found') instead of ACTIVE",
    "nova.delete": "Nova refuses server deletes: 403 (policy)",
    "chef.converge": "new VMs register with Chef but their first run never finishes",
    "chef.delete": "the Chef server refuses DELETE of nodes and clients: 403",
    "dns": "BIND is stopped (connections refused); heal starts it again, zone kept",
    "dns.hang": "BIND is frozen (SIGSTOP): connections open, nothing answers, clients time out",
    "haproxy": "the Runtime API socket is gone (moved away); HAProxy keeps serving traffic",
    "slack": "Slack's Web API answers HTTP 500",
}
# Failures that are a state of a process, not a count of requests.
_STATE_FAILURES = ("dns", "dns.hang", "haproxy")
_FOREVER = 10 ** 9

CLIENT_NAME = "stackstorm"
REGION = "RegionOne"
CHANNEL_ID = "C0AUTOSCALE"
NOVA_FAULT = "No valid host was found. There are not enough hosts available."

_LIVE: Set[World] = set()
T = TypeVar("T")


@atexit.register
def _stop_all() -> None:
    for world in list(_LIVE):
        world.stop()


class WorldError(RuntimeError):
    pass


# -- keys ---------------------------------------------------------------------------------------


@functools.lru_cache(maxsize=None)
def _rsa_key(purpose: str) -> rsa.RSAPrivateKey:
    """One key per purpose per process: making a 2048-bit key costs ~0.1 s."""
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def _pem(key: rsa.RSAPrivateKey) -> str:
    return key.private_bytes(serialization.Encoding.PEM,
                             serialization.PrivateFormat.TraditionalOpenSSL,
                             serialization.NoEncryption()).decode("ascii")


@functools.lru_cache(maxsize=None)
def _ssh_pub_key() -> str:
    public = ed25519.Ed25519PrivateKey.generate().public_key()
    line = public.public_bytes(serialization.Encoding.OpenSSH,
                               serialization.PublicFormat.OpenSSH).decode("ascii")
    return line + " operator@autoscale-sandbox"


# -- the launchers, as the World needs them -------------------------------------------------------


class _LoadBalancer(HAProxy):
    """HAProxy with a backend per name: Host ``<backend>.…`` picks the backend, else the first;
    with a health check path, every backend checks it (``option httpchk``)."""

    def __init__(self, backends: Sequence[str], health_path: Optional[str]) -> None:
        super().__init__(backend=backends[0],
                         extra_backends={name: "roundrobin" for name in backends[1:]},
                         httpchk=health_path, metrics=True)

    def config_text(self) -> str:
        text = super().config_text()
        default = "    default_backend %s\n" % self.backend
        if default not in text:
            raise WorldError("sandbox.haproxy's config changed: no default_backend line")
        routes = "".join("    use_backend %s if { hdr_beg(host) -i %s. }\n" % (name, name)
                         for name in self.extra_backends)
        text = text.replace(default, routes + default)
        if self.httpchk:
            for name, balance in self.extra_backends.items():
                head = "backend %s\n    balance %s\n" % (name, balance)
                text = text.replace(head, head + "    option httpchk GET %s\n" % self.httpchk)
        return text


# -- what the world holds ------------------------------------------------------------------------


@dataclass
class VM:
    """One server the fake Nova created, as the World sees it."""

    server_id: str
    name: str
    address: str
    metadata: Dict[str, str]
    chef_node: str = ""  # the node name its cloud-init registers with Chef ("" if none)
    converges: bool = False
    problem: str = ""  # why it runs nothing, or why its Chef node never registers
    web: Optional[WebNode] = field(default=None, repr=False)


@dataclass
class Inventory:
    """What really exists in the backends (not what the datastore says)."""

    # Nova servers, deleting ones included: name, id, group, node (their metadata tags),
    # status (BUILD, ACTIVE, ERROR), deleting (bool), address.
    servers: List[Dict[str, Any]]
    # Names the pack holds, from an AXFR: fqdn (no trailing dot) -> sorted A and AAAA
    # addresses; a name left with only its ownership record is in, with no address. The
    # zone's own records (ns1) and seed_dns's are left out; group service names are in.
    dns: Dict[str, List[str]]
    # backend -> server name -> address, port, admin_state (ready/drain/maint), op_state.
    haproxy: Dict[str, Dict[str, Dict[str, Any]]]
    chef_nodes: List[str]
    # The nodes' own API clients; the pack's client and the validator are left out.
    chef_clients: List[str]
    slack_messages: int
    web_nodes: List[str]  # names of running web node processes
    # The pack's ownership records: owned fqdn -> TXT texts at _autoscale.<fqdn>.
    dns_owners: Dict[str, List[str]] = field(default_factory=dict)

    def node_names(self) -> Set[str]:
        """Every name some backend holds for a node: server names, the first label of each
        DNS name, HAProxy server names, Chef nodes and clients. DNS brings the groups'
        service names too (``web.example.test`` → ``web``)."""
        names = {server["name"] for server in self.servers}
        names.update(fqdn.split(".", 1)[0] for fqdn in self.dns)
        for servers in self.haproxy.values():
            names.update(servers)
        names.update(self.chef_nodes)
        names.update(self.chef_clients)
        return names

    def as_dict(self) -> Dict[str, Any]:
        return asdict(self)


# -- the world ------------------------------------------------------------------------------------


class World:
    """BIND9, HAProxy, fake Nova, Chef and Slack on 127.0.0.1, wired together.

    Times are seconds. ``boot_delay``: BUILD → ACTIVE; ``converge_after``: from the server's
    create to the end of its first Chef run (None: never); ``delete_delay``: until a deleted
    server is gone. ``boot_timeout``, ``converge_timeout``, ``drain_timeout`` and
    ``dns_timeout`` go into the config.
    """

    def __init__(self, zone: str = "example.test", backend: str = "web",
                 converge_after: Optional[float] = 0.2, boot_delay: float = 0.1,
                 serve_http: bool = False, backends: Optional[Sequence[str]] = None,
                 delete_delay: float = 0.05, org: str = "web", channel: str = "autoscale",
                 boot_timeout: int = 5, converge_timeout: int = 2, drain_timeout: int = 2,
                 dns_timeout: float = 1.0) -> None:
        self.zone = zone.rstrip(".").lower()
        self.backends: Tuple[str, ...] = tuple(backends) if backends else (backend,)
        self.converge_after = converge_after
        self.boot_delay = boot_delay
        self.delete_delay = delete_delay
        self.serve_http = serve_http
        self.org = org
        self.channel = channel.lstrip("#")
        self.boot_timeout = boot_timeout
        self.converge_timeout = converge_timeout
        self.drain_timeout = drain_timeout
        self.dns_timeout = dns_timeout
        self.validator_name = "%s-validator" % org
        self.ssh_pub_key = _ssh_pub_key()
        self.client_key = _rsa_key("client")
        self.validator_key = _rsa_key("validator")
        self.slack_token = "xoxb-sandbox-%s" % base64.b32encode(os.urandom(10)).decode().lower()
        self.webhook_token = base64.urlsafe_b64encode(os.urandom(18)).decode("ascii")

        self.bind: Optional[BindServer] = None
        self.haproxy: Optional[_LoadBalancer] = None
        self.openstack: Optional[FakeOpenStack] = None
        self.chef: Optional[FakeChefServer] = None
        self.slack: Optional[FakeSlack] = None
        self.server_port = 0
        self.webhook_port = 0
        # Server id -> VM, for every server the fake Nova holds (until its deletion is done).
        self.vms: Dict[str, VM] = {}
        # Problems the wiring met (a web node that would not start...), for test failures.
        self.errors: List[str] = []

        self._lock = threading.RLock()
        self._failing: Dict[str, Optional[int]] = {}  # what -> None (until healed) or count
        # The failures this World injected into the fakes, by name, to count and cancel.
        self._injected: Dict[str, List[Failure]] = {}
        self._socket_aside: Optional[str] = None
        # make_sick(node=None): (mode, latency) for every web node, those started later too.
        self._sick_all: Optional[Tuple[str, float]] = None
        # The zone's records at start, and those seed_dns added for someone else: neither
        # is the pack's.
        self._dns_baseline: Set[Tuple[str, str]] = set()
        self._dns_foreign: Set[Tuple[str, str]] = set()
        # Child processes die with the THREAD that started them (PR_SET_PDEATHSIG, see
        # sandbox.process), and FakeOpenStack calls on_create from a request thread that ends
        # with its connection: every process of the World is started from these threads,
        # which live until stop().
        self._spawner: Optional[concurrent.futures.ThreadPoolExecutor] = None
        self.started = False

    # -- running -----------------------------------------------------------------------------

    def start(self) -> World:
        """Start everything; if any part fails, stop what was started and raise."""
        if self.started:
            return self
        _LIVE.add(self)
        self._spawner = concurrent.futures.ThreadPoolExecutor(
            max_workers=4, thread_name_prefix="world-processes")
        try:
            self.server_port = free_port()
            self.webhook_port = free_port()
            self.bind = BindServer(zone=self.zone, key_name="autoscale-sandbox",
                                   allow_transfer=True)
            self._spawn(self.bind.start)
            self.haproxy = _LoadBalancer(self.backends,
                                         "/health" if self.serve_http else None)
            self._spawn(self.haproxy.start)
            self.openstack = FakeOpenStack(
                boot_delay=self.boot_delay, delete_delay=self.delete_delay,
                regions=(REGION,), on_create=self._on_create, on_delete=self._on_delete)
            self.openstack.start()
            self.chef = FakeChefServer(org=self.org)
            self._add_chef_clients()
            self.chef.start()
            self.slack = FakeSlack(token=self.slack_token, channels={self.channel: CHANNEL_ID})
            self.slack.start()
            self._dns_baseline = set(self.zone_records())
        except BaseException:
            with contextlib.suppress(WorldError):  # the first error is the one to see
                self.stop()
            raise
        self.started = True
        return self

    def stop(self) -> None:
        """Stop everything this World started (web nodes, HAProxy, BIND, the fakes). Safe to
        call more than once, and after a failed start."""
        _LIVE.discard(self)
        errors: List[str] = []
        with self._lock:
            vms, self.vms = list(self.vms.values()), {}
        for vm in vms:
            if vm.web is not None:
                self._guard(errors, vm.web.stop)
        if self.bind is not None and self.bind.running:
            self._guard(errors, self.bind.unpause)  # a frozen named cannot act on SIGTERM
        self._socket_back()
        for part in (self.haproxy, self.bind, self.openstack, self.chef, self.slack):
            if part is not None:
                self._guard(errors, part.stop)
        if self.openstack is not None:
            self.openstack.set_hooks(None, None)
        if self._spawner is not None:
            self._spawner.shutdown(wait=True)
            self._spawner = None
        self.started = False
        self._failing.clear()
        if errors:
            raise WorldError("stopping the world: %s" % "; ".join(errors))

    @staticmethod
    def _guard(errors: List[str], call: Any) -> None:
        try:
            call()
        except Exception as exc:  # stop the rest all the same
            errors.append("%s: %s" % (getattr(call, "__qualname__", call), exc))

    def _spawn(self, start: Callable[[], T]) -> T:
        """Run ``start`` (which starts a child process) in one of the World's own threads."""
        if self._spawner is None:
            raise WorldError("the World is not running")
        return self._spawner.submit(start).result()

    def __enter__(self) -> World:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    def _add_chef_clients(self) -> None:
        assert self.chef is not None
        self.chef.add_client(CLIENT_NAME, self.client_key.public_key())
        self.chef.add_client(self.validator_name, self.validator_key.public_key(),
                             validator=True, permissions=("create",))

    def pids(self) -> List[int]:
        """Every process of this World that runs now: named, haproxy, web nodes."""
        found = []
        if self.bind is not None and self.bind.pid and self.bind.running:
            found.append(self.bind.pid)
        if self.haproxy is not None and self.haproxy.process is not None \
                and self.haproxy.process.poll() is None:
            found.append(self.haproxy.pid)
        with self._lock:
            for vm in self.vms.values():
                if vm.web is not None and vm.web.process is not None \
                        and vm.web.process.poll() is None:
                    found.append(vm.web.pid)
        return found

    # -- where things are --------------------------------------------------------------------

    @property
    def lb_url(self) -> str:
        assert self.haproxy is not None, "not started"
        return self.haproxy.url

    def service_host(self, backend: Optional[str] = None) -> str:
        """The Host that routes to ``backend`` through the frontend: ``<backend>.<zone>``."""
        return "%s.%s" % (backend or self.backends[0], self.zone)

    def http_get(self, path: str = "/", backend: Optional[str] = None,
                 timeout: float = 5.0) -> Tuple[int, str]:
        """One request through HAProxy's frontend to ``backend``: (status, body stripped).
        A web node's body is its name."""
        assert self.haproxy is not None and self.haproxy.frontend_port, "not started"
        connection = http.client.HTTPConnection(LOOPBACK, self.haproxy.frontend_port,
                                                timeout=timeout)
        try:
            connection.request("GET", path, headers={"Host": self.service_host(backend)})
            response = connection.getresponse()
            return response.status, response.read().decode("utf-8", "replace").strip()
        finally:
            connection.close()

    # -- the pack config ----------------------------------------------------------------------

    def config(self, **sections: Dict[str, Any]) -> Dict[str, Any]:
        """A full pack config for this World, with short timeouts. Keyword arguments update
        sections key by key, e.g. ``config(chef={"converge_timeout": 5})``."""
        assert self.started and self.bind and self.haproxy and self.openstack and self.chef \
            and self.slack, "start the World first"
        config: Dict[str, Any] = {
            # Each backend section names its type (today's, the default), as the schema lets
            # it: every key set on purpose.
            "openstack": {
                "type": "nova",
                "auth_url": self.openstack.auth_url,
                "auth_type": "v3applicationcredential",
                # The fake also takes these (auth_type "password").
                "username": self.openstack.username,
                "password": self.openstack.password,
                "user_domain_name": self.openstack.user_domain,
                "project_name": self.openstack.project_name,
                "project_domain_name": self.openstack.project_domain,
                "application_credential_id": self.openstack.application_credential_id,
                "application_credential_secret": self.openstack.application_credential_secret,
                "region_name": REGION,
                "interface": "public",
                "compute_api_version": "2.79",
                "verify_tls": True,
                "boot_timeout": self.boot_timeout,
            },
            "chef": {
                "type": "chef",
                "server_url": self.chef.org_url,
                "client_name": CLIENT_NAME,
                "client_key": _pem(self.client_key),
                "validation_client_name": self.validator_name,
                "validation_key": _pem(self.validator_key),
                "converge_timeout": self.converge_timeout,
                "verify_tls": True,
            },
            "dns": dict(self.bind.config(service_address=LOOPBACK, timeout=self.dns_timeout,
                                         owner_id="autoscale"), type="rfc2136"),
            "haproxy": {
                "type": "haproxy",
                "runtime_api": self.haproxy.socket_path,
                "backend": self.backends[0],
                "server_port": self.server_port,
                "health_checks": self.serve_http,
                "drain_timeout": self.drain_timeout,
                "timeout": 2,
            },
            "slack": {
                "type": "slack",
                "token": self.slack_token,
                "default_channel": "#" + self.channel,
                "base_url": self.slack.api_url,
            },
            "webhook": {
                "bind_address": LOOPBACK,
                "port": self.webhook_port,
                "path": "/st2/nrhook",
                "source": "newrelic",
                # The sandbox's Alertmanager (sandbox/monitoring.py) posts here.
                "paths": {"/st2/amhook": "alertmanager"},
                "auth_type": "bearer",
                "token": self.webhook_token,
                # For auth_type basic and header.
                "username": "newrelic",
                "password": self.webhook_token,
                "header_name": "X-Autoscale-Token",
                "allow_insecure": False,
                "body_limit": 65536,
                "dedup_window": 600,
                "request_timeout": 10,
                "idle_timeout": 5,
            },
            "alertmanager": {
                "severity_label": "severity",
                "severities": {},
                "max_alerts": 100,
            },
            "governor": {
                # The tests and the sandbox tick the governor themselves (poll()).
                "interval": 5,
                "global_max_nodes": 20,
                "warning_step": 1,
                "alert_max_age": 600,
                "failure_threshold": 3,
                "backoff_initial": 5,
                "backoff_max": 30,
                "datastore_page_size": 100000,
                "history_ttl": 3600,
                "dispatch_timeout": 60,
                "orphan_scan_interval": 0,
                "orphan_grace": 60,
                "stuck_after": 600,
            },
            "group_defaults": {
                "min_size": 1,
                "max_size": 4,
                "expand_by": 2,
                "deflate_by": 1,
                "scale_out_cooldown": 2,
                "scale_in_cooldown": 4,
                "flavor": "m1.small",
                "image": "ubuntu-24.04",
                "network": "private",
                "chef_run_list": ["role[web]"],
                "chef_environment": "_default",
                "chat_channel": "",
            },
        }
        for name, values in sections.items():
            if name not in config:
                raise KeyError("no config section %r" % name)
            config[name].update(values)
        return json.loads(json.dumps(config))  # a copy nobody shares

    # -- the wiring ---------------------------------------------------------------------------

    def _take(self, what: str) -> bool:
        """Whether a World-side failure applies to this one server (and count it)."""
        with self._lock:
            if what not in self._failing:
                return False
            left = self._failing[what]
            if left is not None:
                if left <= 1:
                    del self._failing[what]
                else:
                    self._failing[what] = left - 1
            return True

    def _on_create(self, server: Dict[str, Any]) -> str:
        """FakeOpenStack's hook, called while it answers the create: boot the VM."""
        address = LOOPBACK
        vm = VM(server["id"], server["name"], address, dict(server.get("metadata") or {}))
        with self._lock:
            self.vms[vm.server_id] = vm
        if self._take("nova.active"):
            vm.problem = "went to ERROR (world.fail('nova.active')): runs nothing"
            self._server_fault(vm.server_id, NOVA_FAULT)
            return address
        try:
            chef = self._cloud_init_chef(server.get("user_data") or "", vm)
            if chef is not None:
                vm.chef_node = chef["node_name"]
                never = self._take("chef.converge") or self.converge_after is None
                vm.converges = not never
                assert self.chef is not None
                self.chef.boot_node(chef["node_name"], register_after=0.0,
                                    converge_after=None if never else self.converge_after,
                                    run_list=chef["run_list"], environment=chef["environment"])
            if self.serve_http:
                port = free_port()
                self._set_metadata(vm.server_id, PORT_KEY, str(port))
                vm.web = self._spawn(WebNode(vm.name, port).start)
                sick = self._sick_all
                if sick is not None:
                    # Before the pack can add it to HAProxy: it never serves a good answer.
                    vm.web.make_sick(*sick)
        except Exception as exc:
            # The VM fails to boot: Nova shows it in ERROR, as it would a failed spawn.
            vm.problem = "failed to boot: %s" % exc
            self.errors.append("server %s (%s): %s" % (vm.name, vm.server_id, exc))
            self._server_fault(vm.server_id, "sandbox: %s" % exc)
        return address

    def _set_metadata(self, server_id: str, key: str, value: str) -> None:
        assert self.openstack is not None
        self.openstack.set_metadata(server_id, key, value)

    def _server_fault(self, server_id: str, message: str) -> None:
        assert self.openstack is not None
        self.openstack.set_server_fault(server_id, message)

    def _cloud_init_chef(self, user_data: str, vm: VM) -> Optional[Dict[str, Any]]:
        """What cloud-init's chef module would register: None without a ``chef:`` section,
        and None (with ``vm.problem`` saying why) when the section could not register a node
        with this Chef server: a real VM would boot, and its node would never appear."""
        try:
            document = yaml.safe_load(user_data) if user_data.strip() else None
        except yaml.YAMLError as exc:
            raise WorldError("cloud-init cannot read the user data: %s" % exc) from None
        if not isinstance(document, dict) or not isinstance(document.get("chef"), dict):
            return None
        chef = document["chef"]
        problem = self._chef_problem(chef)
        if problem:
            vm.problem = "Chef node never registers: %s" % problem
            return None
        return {"node_name": chef["node_name"], "run_list": list(chef.get("run_list") or []),
                "environment": chef.get("environment") or "_default"}

    def _chef_problem(self, chef: Dict[str, Any]) -> str:
        assert self.chef is not None
        if not chef.get("node_name"):
            return "the chef section names no node_name"
        if str(chef.get("server_url") or "").rstrip("/") != self.chef.org_url:
            return "server_url %r is not this Chef server (%s)" % (chef.get("server_url"),
                                                                   self.chef.org_url)
        name = chef.get("validation_name") or "chef-validator"
        client = self.chef.client(name)
        if client is None or not client.get("validator"):
            return "validation_name %r is not a validator of the server" % name
        try:
            key = serialization.load_pem_private_key(
                str(chef.get("validation_cert") or "").encode("ascii"), password=None)
        except (ValueError, TypeError) as exc:
            return "validation_cert is not a PEM private key (%s)" % exc
        if client["public_key"] is None or key.public_key().public_numbers() \
                != client["public_key"].public_numbers():
            return "validation_cert is not the key of validator %s" % name
        return ""

    def _on_delete(self, server: Dict[str, Any]) -> None:
        """FakeOpenStack's hook, once a deleted server is gone: its web node stops."""
        with self._lock:
            vm = self.vms.pop(server["id"], None)
        if vm is not None and vm.web is not None:
            vm.web.stop()

    def web_node(self, name: str) -> Optional[WebNode]:
        """The web node of the server named ``name`` (serve_http), None if it has none."""
        with self._lock:
            for vm in self.vms.values():
                if vm.name == name and vm.web is not None:
                    return vm.web
        return None

    # -- the sick application -----------------------------------------------------------------

    def _web_nodes(self, node: Optional[str]) -> List[WebNode]:
        with self._lock:
            webs = [vm.web for vm in self.vms.values() if vm.web is not None
                    and (node is None or vm.name == node)]
        if node is not None and not webs:
            raise WorldError("no web node %r (serve_http=True, and the server exists?)" % node)
        return webs

    def make_sick(self, node: Optional[str] = None, mode: str = "errors",
                  latency: Optional[float] = None) -> List[str]:
        """Make web node ``node`` (a server name), or every one when None, answer every
        request but /health with HTTP 500 (``errors``) or ``latency`` seconds late (``slow``,
        default 1 s; ``latency`` also delays errors). With ``node=None`` the nodes started later
        are sick too, until ``make_well()``. The names made sick; ValueError for a bad mode or
        latency and WorldError for an unknown node, with nothing changed."""
        latency = check_sickness(mode, latency)
        if node is None:
            # First, so that a node starting meanwhile is either listed here or sees it.
            self._sick_all = (mode, latency)
        webs = self._web_nodes(node)
        for web in webs:
            web.make_sick(mode, latency)
        return sorted(web.name for web in webs)

    def make_well(self, node: Optional[str] = None) -> List[str]:
        """Heal web node ``node``, or every one (and the nodes started later) when None. The
        names healed."""
        if node is None:
            self._sick_all = None
        webs = self._web_nodes(node)
        for web in webs:
            web.make_well()
        return sorted(web.name for web in webs)

    def sick_nodes(self) -> Dict[str, Dict[str, Any]]:
        """Web node name -> its sickness (``{"sick": mode, "latency": s}``), sick ones only,
        as the nodes themselves report it."""
        found = {}
        for web in self._web_nodes(None):
            state = web.state()
            if state["sick"]:
                found[web.name] = {"sick": state["sick"], "latency": state["latency"]}
        return found

    # -- failure injection --------------------------------------------------------------------

    def fail(self, what: str, times: Optional[int] = None) -> None:
        """Make ``what`` (one of FAILURES) fail until ``heal``, or for the next ``times``
        requests / servers. dns, dns.hang and haproxy are states: no ``times``."""
        if what not in FAILURES:
            raise ValueError("unknown failure %r; known: %s" % (what, ", ".join(FAILURES)))
        if times is not None and (what in _STATE_FAILURES or times < 1):
            raise ValueError("%s cannot fail %r times" % (what, times))
        assert self.started and self.openstack and self.chef and self.slack and self.bind
        count = _FOREVER if times is None else times
        injected: Optional[Failure] = None
        if what == "nova.create":
            injected = self.openstack.inject(
                "POST", r"/servers", 403, times=count,
                message="Quota exceeded for instances: Requested 1, but already used 10 of 10 "
                        "instances")
        elif what == "nova.delete":
            injected = self.openstack.inject(
                "DELETE", r"/servers/[^/]+", 403, times=count,
                message="Policy doesn't allow os_compute_api:servers:delete to be performed.")
        elif what == "chef.delete":
            injected = self.chef.fail_next(count, status=403, method="DELETE")
        elif what == "dns":
            self.bind.unpause()
            self.bind.down()
        elif what == "dns.hang":
            if not self.bind.running:
                self._spawn(self.bind.up)
            self.bind.pause()
        elif what == "haproxy":
            self._socket_away()
        elif what == "slack":
            injected = self.slack.fail(count, status=500)
        with self._lock:
            self._failing[what] = times
            if injected is not None:
                self._injected.setdefault(what, []).append(injected)

    def heal(self, what: Optional[str] = None) -> None:
        """Undo ``fail(what)``; every failure when ``what`` is None. Servers that already
        went to ERROR and nodes that never converge stay so (they are broken VMs)."""
        if what is not None and what not in FAILURES:
            raise ValueError("unknown failure %r; known: %s" % (what, ", ".join(FAILURES)))
        names = list(FAILURES) if what is None else [what]
        for name in names:
            with self._lock:
                self._failing.pop(name, None)
                injected = self._injected.pop(name, [])
            for failure in injected:  # only this World's: a test's own stay
                failure.cancel()
            if name == "dns" and self.bind is not None and self.bind.directory:
                if not self.bind.running:
                    self._spawn(self.bind.up)
            elif name == "dns.hang" and self.bind is not None:
                self.bind.unpause()
            elif name == "haproxy":
                self._socket_back()

    @contextlib.contextmanager
    def failure(self, what: str, times: Optional[int] = None) -> Iterator[World]:
        """``with world.failure("dns"): ...`` — healed on the way out, also on an error."""
        self.fail(what, times)
        try:
            yield self
        finally:
            self.heal(what)

    @property
    def failing(self) -> Dict[str, Optional[int]]:
        """What fails now: name -> None (until healed) or how many failures are left."""
        with self._lock:
            found = dict(self._failing)
            injected = {what: list(failures) for what, failures in self._injected.items()}
        for what, failures in injected.items():
            if what not in found:
                continue
            left = sum(failure.left for failure in failures)
            if left <= 0:
                del found[what]
            elif found[what] is not None:
                found[what] = left
        return found

    def _socket_away(self) -> None:
        assert self.haproxy is not None
        if self._socket_aside is None:
            aside = self.haproxy.socket_path + ".gone"
            os.rename(self.haproxy.socket_path, aside)  # the listening socket stays open
            self._socket_aside = aside

    def _socket_back(self) -> None:
        if self._socket_aside is not None and self.haproxy is not None \
                and self.haproxy.directory:
            os.rename(self._socket_aside, self.haproxy.socket_path)
        self._socket_aside = None

    # -- looking at it ------------------------------------------------------------------------

    def lb_command(self, command: str, timeout: float = 5.0) -> str:
        """One raw Runtime API command, also while the socket is 'gone' (fail("haproxy"))."""
        assert self.haproxy is not None and self.haproxy.directory, "not started"
        return self.haproxy.cli(command, timeout, path=self._socket_aside)

    def lb_servers(self, backend: Optional[str] = None) -> Dict[str, Dict[str, Any]]:
        """``show servers state`` of a backend: server name -> address, port, admin_state
        (ready, drain, maint), op_state (down, starting, up, stopping)."""
        backend = backend or self.backends[0]
        lines = self.lb_command("show servers state %s" % backend).splitlines()
        if len(lines) < 2 or not lines[1].startswith("#"):
            raise WorldError("HAProxy: show servers state %s: %s" % (backend, " ".join(lines)))
        columns = lines[1].lstrip("#").split()
        found = {}
        for line in lines[2:]:
            if not line.strip():
                continue
            row = dict(zip(columns, line.split()))
            admin = int(row.get("srv_admin_state", "0"))
            found[row["srv_name"]] = {
                "address": row.get("srv_addr", ""),
                "port": int(row.get("srv_port", "0")),
                "admin_state": ("maint" if admin & 0x27 else "drain" if admin & 0x18
                                else "ready"),
                "op_state": {"0": "down", "1": "starting", "2": "up", "3": "stopping"}.get(
                    row.get("srv_op_state", ""), "unknown"),
            }
        return found

    def zone_records(self) -> Dict[Tuple[str, str], Tuple[int, List[str]]]:
        """Every record of the zone but its SOA, by a TSIG-signed AXFR: (fqdn, type) ->
        (ttl, sorted rdata). For before/after comparisons of someone else's records."""
        assert self.bind is not None
        if "dns" in self._failing or "dns.hang" in self._failing or not self.bind.running:
            raise WorldError("BIND is down or frozen (world.fail('dns'/'dns.hang')): heal it "
                             "before reading the zone")
        return self.bind.zone_records()

    def _pack_records(self) -> Dict[Tuple[str, str], Tuple[int, List[str]]]:
        return {key: value for key, value in self.zone_records().items()
                if key not in self._dns_baseline and key not in self._dns_foreign}

    def dns_records(self) -> Dict[str, List[str]]:
        """Names the pack (or a test) holds: fqdn -> sorted A and AAAA addresses. A name that
        has only its ownership record (``_autoscale.<name>`` TXT) is in too, with no address:
        the ownership record is the pack's as much as the address is."""
        found: Dict[str, List[str]] = {}
        for (name, rdtype), (_, rdata) in self._pack_records().items():
            if rdtype in ("A", "AAAA"):
                found[name] = sorted(set(found.get(name, []) + rdata))
            elif rdtype == "TXT" and name.startswith(OWNER_LABEL + "."):
                found.setdefault(name[len(OWNER_LABEL) + 1:], [])
        return found

    def dns_owners(self) -> Dict[str, List[str]]:
        """The pack's ownership records: owned fqdn -> the TXT texts at ``_autoscale.<fqdn>``."""
        return {name[len(OWNER_LABEL) + 1:]: rdata
                for (name, rdtype), (_, rdata) in self._pack_records().items()
                if rdtype == "TXT" and name.startswith(OWNER_LABEL + ".")}

    def seed_dns(self, records: Sequence[Tuple[str, str, str]], ttl: int = 300) -> None:
        """Add someone else's records (label relative to the zone, type, rdata) as an
        operator's nsupdate would: unconditionally, with the zone's key. They are not the
        pack's: not in ``dns_records``; ``reset`` removes them."""
        assert self.bind is not None
        update = dns.update.UpdateMessage(self.zone, keyring=self.bind.keyring(),
                                          keyname=self.bind.key_name)
        for label, rdtype, rdata in records:
            update.add(label, ttl, rdtype, rdata)
            name = (dns.name.from_text(label, dns.name.from_text(self.zone))
                    .to_text().rstrip(".").lower())
            self._dns_foreign.add((name, rdtype.upper()))
        response = dns.query.tcp(update, LOOPBACK, port=self.bind.port, timeout=5)
        if response.rcode() != 0:
            raise WorldError("BIND refused the seed update: rcode %d" % response.rcode())

    def inventory(self) -> Inventory:
        """What really exists now, read from each backend (an AXFR from BIND, ``show servers
        state`` from HAProxy, the fakes' state). Works while any failure but dns/dns.hang is
        injected; with those it raises WorldError."""
        assert self.started and self.openstack and self.chef and self.slack, "not started"
        servers = []
        for server in sorted(self.openstack.live_servers(), key=lambda s: (s["name"], s["id"])):
            servers.append({
                "name": server["name"], "id": server["id"],
                "group": server["metadata"].get("autoscale_group", ""),
                "node": server["metadata"].get("autoscale_node", ""),
                "status": server["status"], "deleting": server["deleting"],
                "address": server["address"],
            })
        own = {CLIENT_NAME, self.validator_name}
        nodes = self.chef.node_names()
        clients = [name for name in self.chef.client_names() if name not in own]
        with self._lock:
            webs = sorted(vm.name for vm in self.vms.values()
                          if vm.web is not None and vm.web.process is not None
                          and vm.web.process.poll() is None)
        return Inventory(
            servers=servers,
            dns=self.dns_records(),
            dns_owners=self.dns_owners(),
            haproxy={backend: self.lb_servers(backend) for backend in self.backends},
            chef_nodes=nodes,
            chef_clients=clients,
            slack_messages=len(self.slack.messages),
            web_nodes=webs,
        )

    # -- between tests ------------------------------------------------------------------------

    def reset(self) -> None:
        """Back to just after start, without restarting anything: every failure healed, no
        server (web nodes stopped), no Chef node or node client, no added DNS record, no
        HAProxy server, no Slack message."""
        assert self.started and self.openstack and self.chef and self.slack
        self.heal()
        self._sick_all = None
        self.errors.clear()
        with self._lock:
            vms, self.vms = list(self.vms.values()), {}
        for vm in vms:
            if vm.web is not None:
                vm.web.stop()
        self.openstack.reset()
        self.chef.reset()
        self._add_chef_clients()
        self.slack.reset()
        for backend in self.backends:
            for name in self.lb_servers(backend):
                target = "%s/%s" % (backend, name)
                self.lb_command("set server %s state maint" % target)
                self.lb_command("shutdown sessions server %s" % target)
                deadline = time.monotonic() + 5
                while True:
                    answer = self.lb_command("del server %s" % target)
                    if "Server deleted" in answer:
                        break
                    # Idle kept-alive connections to the server go within a moment.
                    if "still has connections" not in answer or time.monotonic() > deadline:
                        raise WorldError("HAProxy: del server %s: %s"
                                         % (target, answer.strip()))
                    time.sleep(0.05)
        extra = [key for key in self.zone_records() if key not in self._dns_baseline]
        if extra:
            assert self.bind is not None
            update = dns.update.UpdateMessage(self.zone, keyring=self.bind.keyring(),
                                              keyname=self.bind.key_name)
            for name, rdtype in extra:
                update.delete(name + ".", rdtype)
            response = dns.query.tcp(update, LOOPBACK, port=self.bind.port, timeout=5)
            if response.rcode() != 0:
                raise WorldError("BIND refused the clean-up update: rcode %d"
                                 % response.rcode())
        self._dns_foreign.clear()


def _main() -> None:  # pragma: no cover - a manual look: python -m sandbox.world
    with World(serve_http=True, backends=("web", "api")) as world:
        print(json.dumps(world.config(), indent=2))
        print(json.dumps(world.inventory().as_dict(), indent=2))


if __name__ == "__main__":  # pragma: no cover
    _main()
