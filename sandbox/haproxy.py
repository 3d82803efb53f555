"""A real HAProxy on loopback, for the load balancer tests and the local sandbox.

``HAProxy(servers=[...]).start()`` writes a temporary config, checks it with ``haproxy -c``,
runs ``haproxy -db`` (foreground) and waits until its frontend and its admin socket answer::

    with HAProxy(servers=[("static-a", "127.0.0.1", 8081)]) as lb:
        lb.url                # http://127.0.0.1:<port>/ — the frontend
        lb.socket_path        # the Runtime API at level admin (unix socket)
        lb.tcp_api            # "127.0.0.1:<port>" when started with tcp_api=True
        lb.cli("show info")   # one raw Runtime API command, for checks independent of the pack
        lb.metrics_url        # http://127.0.0.1:<port>/metrics when started with metrics=True

With ``metrics=True`` a second frontend on its own loopback port serves HAProxy's built-in
Prometheus exporter at /metrics (``http-request use-service prometheus-exporter``; Debian's
HAProxy is built with USE_PROMEX=1) and the stats page at /stats: per-backend and per-server
request and response counters by status class, response times, sessions. It is never the
public frontend's, so traffic through ``url`` cannot reach it.

The main backend (``backend``, default "web") uses ``balance roundrobin``, which dynamic
servers need; ``extra_backends`` adds more (name → balance algorithm). Failure injection:
``remove_socket()`` (the socket file vanishes, HAProxy keeps running), ``kill()`` (HAProxy
dies). A port already in use does not stop HAProxy from starting, so every port is picked
free (sandbox.net).
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
from typing import Any, Dict, Iterable, List, Optional, Tuple

from .net import LOOPBACK, free_port, wait_for_port
from .process import kill as kill_process
from .process import spawn
from .process import stop as stop_process

HAPROXY_BIN = os.environ.get("HAPROXY_BIN", "/usr/sbin/haproxy")

Server = Tuple[str, str, int]  # name, address, port


class HAProxyError(RuntimeError):
    pass


class HAProxy:
    def __init__(self, servers: Iterable[Server] = (), backend: str = "web",
                 balance: str = "roundrobin", extra_backends: Optional[Dict[str, str]] = None,
                 tcp_api: bool = False, level: str = "admin", httpchk: Optional[str] = None,
                 binary: str = HAPROXY_BIN, timeouts: Tuple[str, str, str] = ("1s", "10s", "10s"),
                 nbthread: int = 2, metrics: bool = False) -> None:
        self.servers: List[Server] = list(servers)
        self.backend = backend
        self.balance = balance
        self.extra_backends = dict(extra_backends or {})
        self.want_tcp_api = tcp_api
        self.level = level
        self.httpchk = httpchk
        self.binary = binary
        self.timeouts = timeouts
        self.nbthread = nbthread
        self.want_metrics = metrics
        self.directory: Optional[str] = None
        self.frontend_port: Optional[int] = None
        self.tcp_port: Optional[int] = None
        self.metrics_port: Optional[int] = None
        self.process: Optional[subprocess.Popen] = None
        self._log = None

    # -- where ----------------------------------------------------------------------------------

    @property
    def socket_path(self) -> str:
        assert self.directory, "not started"
        return os.path.join(self.directory, "admin.sock")

    @property
    def config_path(self) -> str:
        assert self.directory, "not started"
        return os.path.join(self.directory, "haproxy.cfg")

    @property
    def tcp_api(self) -> str:
        assert self.tcp_port, "started without tcp_api=True"
        return "%s:%d" % (LOOPBACK, self.tcp_port)

    @property
    def url(self) -> str:
        assert self.frontend_port, "not started"
        return "http://%s:%d" % (LOOPBACK, self.frontend_port)

    @property
    def metrics_url(self) -> str:
        """HAProxy's Prometheus exporter (started with ``metrics=True``)."""
        assert self.metrics_port, "started without metrics=True"
        return "http://%s:%d/metrics" % (LOOPBACK, self.metrics_port)

    @property
    def metrics_target(self) -> str:
        """``host:port`` of the exporter, as a Prometheus scrape target names it."""
        assert self.metrics_port, "started without metrics=True"
        return "%s:%d" % (LOOPBACK, self.metrics_port)

    @property
    def pid(self) -> Optional[int]:
        return self.process.pid if self.process else None

    # -- config ---------------------------------------------------------------------------------

    def config_text(self) -> str:
        connect, client, server = self.timeouts
        lines = [
            "global",
            "    nbthread %d" % self.nbthread,
            "    stats socket %s level %s" % (self.socket_path, self.level),
        ]
        if self.tcp_port:
            lines.append("    stats socket ipv4@%s:%d level %s"
                         % (LOOPBACK, self.tcp_port, self.level))
        lines += [
            "    stats timeout 10s",
            "",
            "defaults",
            "    mode http",
            "    option httplog",
            "    timeout connect %s" % connect,
            "    timeout client %s" % client,
            "    timeout server %s" % server,
            "",
            "frontend fe",
            "    bind %s:%d" % (LOOPBACK, self.frontend_port),
            "    default_backend %s" % self.backend,
            "",
            "backend %s" % self.backend,
            "    balance %s" % self.balance,
        ]
        if self.httpchk:
            lines.append("    option httpchk GET %s" % self.httpchk)
        for name, address, port in self.servers:
            lines.append("    server %s %s:%d%s" % (name, address, port,
                                                     " check" if self.httpchk else ""))
        for name, balance in self.extra_backends.items():
            lines += ["", "backend %s" % name, "    balance %s" % balance]
        if self.metrics_port:
            lines += [
                "",
                "frontend metrics",
                "    bind %s:%d" % (LOOPBACK, self.metrics_port),
                "    no log",
                "    http-request use-service prometheus-exporter if { path /metrics }",
                "    stats enable",
                "    stats uri /stats",
                "    stats refresh 5s",
            ]
        return "\n".join(lines) + "\n"

    # -- running --------------------------------------------------------------------------------

    def start(self, timeout: float = 10.0) -> HAProxy:
        if not os.path.exists(self.binary):
            raise HAProxyError("%s not found: install Debian's haproxy package" % self.binary)
        # A short directory: a unix socket path is limited to 107 bytes.
        self.directory = tempfile.mkdtemp(prefix="haproxy-")
        try:
            self.frontend_port = free_port()
            if self.want_tcp_api:
                self.tcp_port = free_port()
            if self.want_metrics:
                self.metrics_port = free_port()
            with open(self.config_path, "w", encoding="utf-8") as handle:
                handle.write(self.config_text())
            check = subprocess.run([self.binary, "-c", "-f", self.config_path],
                                   stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                   timeout=timeout)
            if check.returncode != 0:
                raise HAProxyError("haproxy -c refused the config:\n%s\n%s" % (
                    check.stdout.decode("utf-8", "replace"), self.config_text()))
            self._log = open(os.path.join(self.directory, "haproxy.log"), "wb")
            self.process = spawn([self.binary, "-db", "-f", self.config_path],
                                 stdout=self._log, stderr=subprocess.STDOUT)
            self._wait_ready(timeout)
        except BaseException:
            self.stop()
            raise
        return self

    def _wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while True:
            if self.process.poll() is not None:
                raise HAProxyError("haproxy exited with %s:\n%s"
                                   % (self.process.returncode, self.log()))
            try:
                wait_for_port(self.frontend_port, timeout=0.1)
                if self.tcp_port:
                    wait_for_port(self.tcp_port, timeout=0.1)
                if self.metrics_port:
                    wait_for_port(self.metrics_port, timeout=0.1)
                if "Name: HAProxy" in self.cli("show info"):
                    return
            except (OSError, TimeoutError):
                pass
            if time.monotonic() > deadline:
                raise HAProxyError("haproxy did not answer within %.0f s:\n%s"
                                   % (timeout, self.log()))
            time.sleep(0.05)

    def cli(self, command: str, timeout: float = 5.0, path: Optional[str] = None) -> str:
        """One raw Runtime API command over the unix socket (or the socket file at ``path``,
        e.g. one moved aside); the whole answer."""
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(timeout)
            sock.connect(path or self.socket_path)
            sock.sendall(command.encode("utf-8") + b"\n")
            chunks = []
            while True:
                chunk = sock.recv(65536)
                if not chunk:
                    return b"".join(chunks).decode("utf-8", "replace")
                chunks.append(chunk)

    def servers_state(self) -> Dict[str, Dict[str, str]]:
        """``show servers state`` of the main backend: server name → its columns."""
        lines = self.cli("show servers state %s" % self.backend).splitlines()
        columns = lines[1].lstrip("#").split()
        rows = [dict(zip(columns, line.split())) for line in lines[2:] if line.strip()]
        return {row["srv_name"]: row for row in rows}

    def log(self) -> str:
        if not self.directory:
            return ""
        path = os.path.join(self.directory, "haproxy.log")
        if not os.path.exists(path):
            return ""
        with open(path, encoding="utf-8", errors="replace") as handle:
            return handle.read()

    # -- failure injection ----------------------------------------------------------------------

    def remove_socket(self) -> None:
        """The admin socket file disappears (a botched reload, a wrong path); HAProxy keeps
        serving traffic."""
        if self.directory and os.path.exists(self.socket_path):
            os.unlink(self.socket_path)

    def kill(self) -> None:
        """HAProxy dies (SIGKILL): both the unix socket and the TCP listener stop answering."""
        kill_process(self.process)

    # -- stopping -------------------------------------------------------------------------------

    def stop(self) -> None:
        stop_process(self.process)
        self.process = None
        if self._log is not None:
            self._log.close()
            self._log = None
        if self.directory:
            shutil.rmtree(self.directory, ignore_errors=True)
            self.directory = None

    def __enter__(self) -> HAProxy:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()
