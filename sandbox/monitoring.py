"""A real Prometheus and a real Alertmanager on loopback: the sandbox's monitoring.

Prometheus (Debian package ``prometheus``) scrapes HAProxy's built-in exporter
(``HAProxy(metrics=True)``, which the World's load balancer has) every second and evaluates
the rules below every second; Alertmanager (Debian package ``prometheus-alertmanager``)
delivers what fires to one webhook receiver, the pack's sensor, with bearer (or basic) auth
and ``send_resolved: true``::

    with Monitoring(targets=[world.haproxy.metrics_target],
                    webhook_url="http://127.0.0.1:%d/st2/alerts?asg=web" % port,
                    token=token) as monitoring:
        monitoring.wait_for_targets()      # the first scrape has happened
        monitoring.query('haproxy_backend_http_responses_total{proxy="web"}')
        monitoring.firing()                # alerts Prometheus holds as firing
        monitoring.alertmanager.alerts()   # what Alertmanager holds (its API v2)

The rules (``alert_rules``), for each HAProxy backend (label ``proxy``), both labelled
``service: <backend>`` (the group's name in the sandbox) plus ``extra_labels``:

* ``BackendErrors``, ``severity: critical``: over ``error_ratio`` of the backend's responses
  are 5xx (over ``window``, at ``min_rate`` requests a second or more) for ``for_``;
* ``BackendSlow``, ``severity: warning``: HAProxy's average response time is over ``latency``
  seconds for ``for_``. HAProxy averages over its last ~1024 requests, so this one moves with
  the traffic: at the sandbox's few requests a second it takes tens of seconds; the errors rule
  is the one to watch in a demo.

Each has ``annotations.summary`` (the pack's alert title) and ``description``.

Processes, data and configs live in one temporary directory per server; configs are checked
with ``promtool check config`` and ``amtool check-config`` (when installed) before starting;
``start()`` waits for ``/-/ready``; ``stop()`` ends each process (SIGTERM, then SIGKILL) and
removes its directory. Alertmanager runs with clustering off (no port 9094). The secret for
the webhook is written to a file of mode 0600 (``credentials_file``), never into the YAML or a
log. A process started here dies with the thread that started it (sandbox.process), so
``Monitoring`` starts both from a thread of its own that lives until ``stop()``.
"""

from __future__ import annotations

import atexit
import concurrent.futures
import json
import os
import shutil
import subprocess
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, Set, Tuple, TypeVar

import yaml

from .net import LOOPBACK, free_port
from .process import spawn
from .process import stop as stop_process

PROMETHEUS_BIN = os.environ.get("PROMETHEUS_BIN", "/usr/bin/prometheus")
ALERTMANAGER_BIN = os.environ.get("ALERTMANAGER_BIN", "/usr/bin/prometheus-alertmanager")
PROMTOOL_BIN = os.environ.get("PROMTOOL_BIN", "/usr/bin/promtool")
AMTOOL_BIN = os.environ.get("AMTOOL_BIN", "/usr/bin/amtool")

ERRORS_ALERT = "BackendErrors"
SLOW_ALERT = "BackendSlow"
JOB = "haproxy"

_LIVE: Set[Any] = set()
T = TypeVar("T")


@atexit.register
def _stop_all() -> None:
    for server in list(_LIVE):
        server.stop()


class MonitoringError(RuntimeError):
    """A server could not be set up or started; the message carries its own words."""


def _need(binary: str, package: str) -> str:
    if not os.path.exists(binary):
        raise MonitoringError("%s not found: install Debian's %s package (`make system-packages` "
                              "does)" % (binary, package))
    return binary


def _get(url: str, timeout: float = 5.0) -> Tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


# -- the rules --------------------------------------------------------------------------------


def alert_rules(error_ratio: float = 0.1, latency: float = 0.5, for_: str = "3s",
                window: str = "5s", min_rate: float = 0.5,
                extra_labels: Optional[Mapping[str, str]] = None) -> Dict[str, Any]:
    """The alerting rules file (as a dict; ``yaml.safe_dump`` it) for HAProxy's backends."""
    if not 0 < error_ratio < 1:
        raise ValueError("error_ratio must be between 0 and 1, not %r" % (error_ratio,))
    if not latency > 0:
        raise ValueError("latency must be a positive number of seconds, not %r" % (latency,))
    labels = dict(extra_labels or {})
    labels["service"] = "{{ $labels.proxy }}"
    responses = "sum by (proxy) (rate(haproxy_backend_http_responses_total%s[%s]))"
    errors = (
        "(%s / %s) > %r and on (proxy) %s > %r" % (
            responses % ('{code="5xx"}', window), responses % ("", window), error_ratio,
            responses % ("", window), min_rate))
    slow = "max by (proxy) (haproxy_backend_response_time_average_seconds) > %r" % latency
    return {"groups": [{
        "name": "autoscale-sandbox",
        "rules": [
            {
                "alert": ERRORS_ALERT,
                "expr": errors,
                "for": for_,
                "labels": dict(labels, severity="critical"),
                "annotations": {
                    "summary": "{{ $labels.proxy }}: {{ $value | humanizePercentage }} of "
                               "responses are errors (5xx)",
                    "description": "More than %d%% of the responses of HAProxy backend "
                                   "{{ $labels.proxy }} were 5xx over the last %s."
                                   % (round(error_ratio * 100), window),
                },
            },
            {
                "alert": SLOW_ALERT,
                "expr": slow,
                "for": for_,
                "labels": dict(labels, severity="warning"),
                "annotations": {
                    "summary": "{{ $labels.proxy }}: average response time "
                               "{{ $value | humanizeDuration }}",
                    "description": "HAProxy backend {{ $labels.proxy }} answers in more than "
                                   "%g s on average (its last 1024 requests)." % latency,
                },
            },
        ],
    }]}


# -- one server ---------------------------------------------------------------------------------


class _Server:
    """A Prometheus-family server: a temp directory, checked config, a process, /-/ready."""

    binary = ""
    package = ""
    prefix = "autoscale-prom-"
    name = ""

    def __init__(self, startup_timeout: float = 30.0) -> None:
        self.startup_timeout = startup_timeout
        self.directory: Optional[str] = None
        self.port: Optional[int] = None
        self.process: Optional[subprocess.Popen] = None
        self._log: Any = None

    # -- to implement ----------------------------------------------------------------------

    def write_configs(self) -> None:
        raise NotImplementedError

    def check_configs(self) -> None:
        raise NotImplementedError

    def command(self) -> List[str]:
        raise NotImplementedError

    # -- where ---------------------------------------------------------------------------------

    def path(self, name: str) -> str:
        assert self.directory is not None, "not started"
        return os.path.join(self.directory, name)

    @property
    def url(self) -> str:
        assert self.port, "not started"
        return "http://%s:%d" % (LOOPBACK, self.port)

    @property
    def target(self) -> str:
        assert self.port, "not started"
        return "%s:%d" % (LOOPBACK, self.port)

    @property
    def pid(self) -> Optional[int]:
        return self.process.pid if self.process else None

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    # -- running --------------------------------------------------------------------------

    def start(self) -> Any:
        _need(self.binary, self.package)
        self.directory = tempfile.mkdtemp(prefix=self.prefix)
        _LIVE.add(self)
        try:
            self.port = free_port()
            self.write_configs()
            self.check_configs()
            self._log = open(self.path("%s.log" % self.name), "wb")
            self.process = spawn(self.command(), stdout=self._log, stderr=subprocess.STDOUT,
                                 cwd=self.directory)
            self._wait_ready()
        except BaseException:
            self.stop()
            raise
        return self

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + self.startup_timeout
        while True:
            assert self.process is not None
            if self.process.poll() is not None:
                raise MonitoringError("%s exited with %s while starting:\n%s"
                                      % (self.name, self.process.returncode, self.log_tail()))
            try:
                status, _ = _get(self.url + "/-/ready", timeout=1)
                if status == 200:
                    return
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise MonitoringError("%s was not ready within %.0f s:\n%s"
                                      % (self.name, self.startup_timeout, self.log_tail()))
            time.sleep(0.1)

    def _check(self, *command: str) -> None:
        done = subprocess.run(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                              timeout=60, check=False)
        if done.returncode != 0:
            raise MonitoringError("%s refused the config:\n%s" % (
                " ".join(os.path.basename(part) for part in command[:3]),
                done.stdout.decode("utf-8", "replace")))

    def stop(self) -> None:
        """End the process (SIGTERM, then SIGKILL after 10 s) and remove the directory. Safe
        to call more than once, and after a failed start."""
        _LIVE.discard(self)
        stop_process(self.process, timeout=10.0)
        self.process = None
        if self._log is not None:
            self._log.close()
            self._log = None
        if self.directory is not None:
            shutil.rmtree(self.directory, ignore_errors=True)
            self.directory = None

    def log_tail(self, lines: int = 30) -> str:
        if self.directory is None:
            return "(no log)"
        try:
            with open(self.path("%s.log" % self.name), encoding="utf-8",
                      errors="replace") as handle:
                return "\n".join(handle.read().splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def api(self, path: str, **params: str) -> Any:
        """GET one API path; its JSON answer."""
        url = self.url + path
        if params:
            url += "?" + urllib.parse.urlencode(params)
        status, body = _get(url)
        if status != 200:
            raise MonitoringError("%s %s: HTTP %d %s" % (self.name, path, status,
                                                         body[:300].decode("utf-8", "replace")))
        return json.loads(body.decode("utf-8"))

    def __enter__(self) -> Any:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()


class Alertmanager(_Server):
    """One Alertmanager whose only receiver is a webhook (``webhook_url``) with bearer auth
    (``token``) or basic auth (``basic_auth=(username, password)``), or none."""

    binary = ALERTMANAGER_BIN
    package = "prometheus-alertmanager"
    prefix = "autoscale-am-"
    name = "alertmanager"

    def __init__(self, webhook_url: str, token: Optional[str] = None,
                 basic_auth: Optional[Tuple[str, str]] = None,
                 group_by: Sequence[str] = ("alertname", "service"),
                 group_wait: str = "1s", group_interval: str = "1s",
                 repeat_interval: str = "1m", send_resolved: bool = True, max_alerts: int = 0,
                 startup_timeout: float = 30.0) -> None:
        super().__init__(startup_timeout)
        if token is not None and basic_auth is not None:
            raise ValueError("bearer token or basic auth, not both")
        self.webhook_url = webhook_url
        self.token = token
        self.basic_auth = basic_auth
        self.group_by = list(group_by)
        self.group_wait = group_wait
        self.group_interval = group_interval
        self.repeat_interval = repeat_interval
        self.send_resolved = send_resolved
        self.max_alerts = max_alerts

    @property
    def config_path(self) -> str:
        return self.path("alertmanager.yml")

    def config(self) -> Dict[str, Any]:
        webhook: Dict[str, Any] = {"url": self.webhook_url, "send_resolved": self.send_resolved,
                                   "max_alerts": self.max_alerts}
        if self.token is not None:
            webhook["http_config"] = {"authorization": {
                "type": "Bearer", "credentials_file": self.path("webhook.secret")}}
        elif self.basic_auth is not None:
            webhook["http_config"] = {"basic_auth": {
                "username": self.basic_auth[0], "password_file": self.path("webhook.secret")}}
        return {
            "route": {
                "receiver": "autoscale",
                "group_by": self.group_by,
                "group_wait": self.group_wait,
                "group_interval": self.group_interval,
                "repeat_interval": self.repeat_interval,
            },
            "receivers": [{"name": "autoscale", "webhook_configs": [webhook]}],
        }

    def write_configs(self) -> None:
        secret = self.token if self.token is not None else \
            self.basic_auth[1] if self.basic_auth is not None else None
        if secret is not None:
            descriptor = os.open(self.path("webhook.secret"),
                                 os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
                handle.write(secret)
        with open(self.config_path, "w", encoding="utf-8") as handle:
            yaml.safe_dump(self.config(), handle, sort_keys=False)

    def check_configs(self) -> None:
        if os.path.exists(AMTOOL_BIN):
            self._check(AMTOOL_BIN, "check-config", self.config_path)

    def command(self) -> List[str]:
        return [self.binary,
                "--config.file=%s" % self.config_path,
                "--storage.path=%s" % self.path("data"),
                "--web.listen-address=%s" % self.target,
                "--web.external-url=%s/" % self.url,
                # An empty address turns clustering (gossip on 0.0.0.0:9094) off.
                "--cluster.listen-address=",
                "--log.level=info"]

    def alerts(self, active: Optional[bool] = None) -> List[Dict[str, Any]]:
        """The alerts Alertmanager holds (API v2)."""
        params = {} if active is None else {"active": "true" if active else "false"}
        return self.api("/api/v2/alerts", **params)


class Prometheus(_Server):
    """One Prometheus scraping ``targets`` (``host:port`` of HAProxy exporters; job
    ``haproxy``) every ``scrape_interval``, evaluating ``rules`` every
    ``evaluation_interval``, and sending alerts to ``alertmanager`` (``host:port``)."""

    binary = PROMETHEUS_BIN
    package = "prometheus"
    prefix = "autoscale-prometheus-"
    name = "prometheus"

    def __init__(self, targets: Sequence[str], alertmanager: Optional[str] = None,
                 rules: Optional[Dict[str, Any]] = None, scrape_interval: str = "1s",
                 evaluation_interval: str = "1s", startup_timeout: float = 30.0) -> None:
        super().__init__(startup_timeout)
        self.targets = list(targets)
        self.alertmanager = alertmanager
        self.rules = alert_rules() if rules is None else rules
        self.scrape_interval = scrape_interval
        self.evaluation_interval = evaluation_interval

    @property
    def config_path(self) -> str:
        return self.path("prometheus.yml")

    @property
    def rules_path(self) -> str:
        return self.path("rules.yml")

    def config(self) -> Dict[str, Any]:
        config: Dict[str, Any] = {
            "global": {
                "scrape_interval": self.scrape_interval,
                "scrape_timeout": self.scrape_interval,
                "evaluation_interval": self.evaluation_interval,
            },
            "rule_files": [self.rules_path],
            "scrape_configs": [{"job_name": JOB, "metrics_path": "/metrics",
                                "static_configs": [{"targets": self.targets}]}],
        }
        if self.alertmanager:
            config["alerting"] = {"alertmanagers": [
                {"static_configs": [{"targets": [self.alertmanager]}]}]}
        return config

    def write_configs(self) -> None:
        with open(self.rules_path, "w", encoding="utf-8") as handle:
            yaml.safe_dump(self.rules, handle, sort_keys=False)
        with open(self.config_path, "w", encoding="utf-8") as handle:
            yaml.safe_dump(self.config(), handle, sort_keys=False)

    def check_configs(self) -> None:
        if os.path.exists(PROMTOOL_BIN):
            # check config also checks the rule files it names.
            self._check(PROMTOOL_BIN, "check", "config", self.config_path)

    def command(self) -> List[str]:
        return [self.binary,
                "--config.file=%s" % self.config_path,
                "--storage.tsdb.path=%s" % self.path("data"),
                "--storage.tsdb.retention.time=1h",
                "--web.listen-address=%s" % self.target,
                "--web.external-url=%s/" % self.url,
                "--log.level=info"]

    def query(self, expr: str) -> List[Dict[str, Any]]:
        """An instant query: the result vector (``[{"metric": {...}, "value": [t, "v"]}]``)."""
        answer = self.api("/api/v1/query", query=expr)
        return answer["data"]["result"]

    def alerts(self) -> List[Dict[str, Any]]:
        """Alerts of the rules, pending and firing."""
        return self.api("/api/v1/alerts")["data"]["alerts"]

    def alertmanagers(self) -> List[str]:
        """The Alertmanager URLs Prometheus sends alerts to now."""
        active = self.api("/api/v1/alertmanagers")["data"]["activeAlertmanagers"]
        return [manager["url"] for manager in active]

    def targets_up(self) -> bool:
        """Every target scraped at least once, the last scrape good."""
        active = self.api("/api/v1/targets")["data"]["activeTargets"]
        return bool(active) and all(target["health"] == "up" for target in active)


# -- both -----------------------------------------------------------------------------------------


class Monitoring:
    """Alertmanager (delivering to ``webhook_url``) and Prometheus (scraping ``targets``,
    sending to that Alertmanager), started and stopped together. Rule settings go to
    ``alert_rules``; Alertmanager settings (``group_wait``, ``repeat_interval``, ``group_by``,
    ``basic_auth`` ...) to ``Alertmanager``."""

    def __init__(self, targets: Sequence[str], webhook_url: str, token: Optional[str] = None,
                 rules: Optional[Dict[str, Any]] = None, scrape_interval: str = "1s",
                 evaluation_interval: str = "1s", **alertmanager: Any) -> None:
        self.alertmanager = Alertmanager(webhook_url, token=token, **alertmanager)
        self.prometheus_settings = dict(targets=targets, rules=rules,
                                        scrape_interval=scrape_interval,
                                        evaluation_interval=evaluation_interval)
        self.prometheus: Optional[Prometheus] = None
        self._spawner: Optional[concurrent.futures.ThreadPoolExecutor] = None

    def _spawn(self, start: Callable[[], T]) -> T:
        assert self._spawner is not None
        return self._spawner.submit(start).result()

    def start(self) -> Monitoring:
        # Both binaries first: a missing one fails before anything runs.
        _need(ALERTMANAGER_BIN, "prometheus-alertmanager")
        _need(PROMETHEUS_BIN, "prometheus")
        _LIVE.add(self)
        self._spawner = concurrent.futures.ThreadPoolExecutor(
            max_workers=1, thread_name_prefix="monitoring-processes")
        try:
            self._spawn(self.alertmanager.start)
            self.prometheus = Prometheus(alertmanager=self.alertmanager.target,
                                         **self.prometheus_settings)
            self._spawn(self.prometheus.start)
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        """Stop Prometheus, then Alertmanager; safe to call more than once."""
        _LIVE.discard(self)
        try:
            if self.prometheus is not None:
                self.prometheus.stop()
        finally:
            self.alertmanager.stop()
            if self._spawner is not None:
                self._spawner.shutdown(wait=True)
                self._spawner = None

    def pids(self) -> List[int]:
        return [server.pid for server in (self.prometheus, self.alertmanager)
                if server is not None and server.running and server.pid]

    def wait_for_targets(self, timeout: float = 30.0) -> None:
        """Until every scrape target has been scraped with success and Prometheus knows its
        Alertmanager (MonitoringError else). Prometheus 2.42 hands new targets and
        Alertmanagers over every 5 s, so this takes about 5 s after start; an alert that fires
        before its Alertmanager is known is only sent again a minute later."""
        assert self.prometheus is not None, "not started"
        deadline = time.monotonic() + timeout
        while not (self.prometheus.targets_up() and self.prometheus.alertmanagers()):
            if time.monotonic() > deadline:
                raise MonitoringError("Prometheus has not scraped %s or found its Alertmanager "
                                      "within %.0f s" % (", ".join(self.prometheus.targets),
                                                         timeout))
            time.sleep(0.2)

    def query(self, expr: str) -> List[Dict[str, Any]]:
        assert self.prometheus is not None, "not started"
        return self.prometheus.query(expr)

    def firing(self, alertname: Optional[str] = None) -> List[Dict[str, Any]]:
        """Prometheus's firing alerts (of ``alertname``), with their labels."""
        assert self.prometheus is not None, "not started"
        return [alert for alert in self.prometheus.alerts()
                if alert["state"] == "firing"
                and (alertname is None or alert["labels"].get("alertname") == alertname)]

    def __enter__(self) -> Monitoring:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()
