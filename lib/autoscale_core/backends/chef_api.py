"""The Chef Server API, spoken directly with ``requests``, and the provisioner the registry
builds from it (``new_provisioner``; chef.py is what the pack knows of Chef without it).

Every request is signed with Chef's signing protocol 1.3 (chef_signing.py).

Only GET and DELETE are sent, and both are retried after a timeout or a 5xx: reading a node
twice or deleting it twice leaves the server as deleting it once does (a 404 on delete is a
success). Secrets (the client key, the validator key) never appear in a message, a log line
or a result; what the server answers is quoted through ``redact``.
"""

from __future__ import annotations

import calendar
import logging
import re
import time
from dataclasses import asdict, dataclass, field
from typing import Any, Callable, Dict, List, Mapping, Optional
from urllib.parse import urlsplit

import requests

from ..domain.names import validate_node_name
from ..errors import BackendError, ValidationError, redact, retry
from ..ports.provisioner import Provisioner
from .chef import CHEF_NAME_RE, SYSTEM, ChefSettings, cloud_config
from .chef_signing import canonical_time, load_private_key, sign_request

LOG = logging.getLogger(__name__)

# X-Chef-Version, which the API docs require; chef-client sends its own release.
CHEF_VERSION = "18.0.0"


# ---------------------------------------------------------------------------------------------
# What the pack asks for and gets back


def validate_since(value: Any) -> float:
    """The VM's creation time: epoch seconds, or an ISO 8601 UTC time as Nova reports it."""
    if isinstance(value, bool):
        raise ValidationError("since must be a time in epoch seconds, not %r" % (value,))
    if isinstance(value, (int, float)):
        if value < 0:
            raise ValidationError("since must be a time in epoch seconds, not %r" % (value,))
        return float(value)
    if isinstance(value, str):
        text = value.strip()
        for pattern in ("%Y-%m-%dT%H:%M:%SZ", "%Y-%m-%dT%H:%M:%S.%fZ", "%Y-%m-%dT%H:%M:%S"):
            try:
                return float(calendar.timegm(time.strptime(text, pattern)))
            except ValueError:
                continue
        try:
            return validate_since(float(text))
        except ValueError:
            pass
    raise ValidationError("since must be the VM's creation time in epoch seconds or as "
                          "2024-01-31T12:00:00Z, not %r" % (value,))


def _positive(value: Any, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
        raise ValidationError("%s must be a positive number of seconds, not %r" % (what, value))
    return float(value)


def _seconds(value: float) -> str:
    return "%d" % value if float(value).is_integer() else "%.1f" % value


@dataclass(frozen=True)
class NodeStatus:
    node: str
    registered: bool
    # automatic.ohai_time: when the node's last finished Chef run started (its own clock).
    ohai_time: Optional[float] = None
    environment: str = ""
    run_list: List[str] = field(default_factory=list)

    def converged_since(self, since: float) -> bool:
        return self.registered and self.ohai_time is not None and self.ohai_time >= since

    def as_dict(self) -> Dict[str, Any]:
        result = asdict(self)
        result["ohai_time_iso"] = canonical_time(self.ohai_time) if self.ohai_time else ""
        return result


@dataclass(frozen=True)
class Removal:
    node: str
    # True: this call deleted it; False: it was already gone (a 404).
    node_deleted: bool
    client_deleted: bool

    def as_dict(self) -> Dict[str, Any]:
        return asdict(self)


class ConvergeTimeout(BackendError):
    """A node did not converge in time; ``status`` is the last thing the server said."""

    def __init__(self, node: str, message: str, status: Optional[NodeStatus],
                 retryable: bool = False) -> None:
        self.status = status
        super().__init__(SYSTEM, "wait for converge", node, message, retryable)

    def as_dict(self) -> dict:
        result = super().as_dict()
        result["registered"] = bool(self.status and self.status.registered)
        result["ohai_time"] = self.status.ohai_time if self.status else None
        return result


# ---------------------------------------------------------------------------------------------
# Chef Infra Server


class ChefServer(Provisioner):
    """The Chef Server API of one organisation (``server_url`` ends in /organizations/<org>)."""

    def __init__(self, settings: ChefSettings, clock: Callable[[], float] = time.time,
                 session: Optional[requests.Session] = None) -> None:
        parts = urlsplit(settings.server_url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValidationError("config key chef.server_url must be an http(s) URL such as "
                                  "https://chef.example.com/organizations/web, not %r"
                                  % (settings.server_url,))
        if parts.query or parts.fragment:
            raise ValidationError("config key chef.server_url must not have a query or fragment")
        if not CHEF_NAME_RE.fullmatch(settings.client_name):
            raise ValidationError("config key chef.client_name %r is not a Chef client name "
                                  "(letters, digits, '_', '-', '.')" % (settings.client_name,))
        self.settings = settings
        self._key = load_private_key(settings.client_key)
        self._base = settings.server_url.rstrip("/")
        self._where = "%s://%s" % (parts.scheme, parts.netloc)
        self._clock = clock
        self._session = session or requests.Session()

    def close(self) -> None:
        self._session.close()

    # -- operations ------------------------------------------------------------------------

    def cloud_config(self, node: str, run_list: List[str], environment: str) -> Dict[str, Any]:
        """The ``chef:`` section of the node's cloud-config (chef.cloud_config)."""
        return cloud_config(self.settings, node, run_list, environment)

    def bootstrap(self, node: str, run_list: List[str], environment: str) -> Dict[str, Any]:
        return {"chef": self.cloud_config(node, run_list, environment)}

    def node_exists(self, node: str) -> bool:
        return self.node_status(node).registered

    def node_status(self, node: str) -> NodeStatus:
        validate_node_name(node)
        operation = "read node"
        response = self._request("GET", "/nodes/%s" % node, operation, node)
        if response.status_code == 404:
            return NodeStatus(node, registered=False)
        if response.status_code != 200:
            raise self._refused(response, operation, node)
        data = self._json(response, operation, node)
        automatic = data.get("automatic") if isinstance(data.get("automatic"), dict) else {}
        ohai_time = automatic.get("ohai_time")
        if isinstance(ohai_time, bool) or not isinstance(ohai_time, (int, float)):
            ohai_time = None
        run_list = data.get("run_list")
        return NodeStatus(
            node=node,
            registered=True,
            ohai_time=float(ohai_time) if ohai_time is not None else None,
            environment=str(data.get("chef_environment") or ""),
            run_list=[str(item) for item in run_list] if isinstance(run_list, list) else [],
        )

    def wait_converged(self, node: str, since: Any,
                       timeout: Optional[float] = None) -> NodeStatus:
        validate_node_name(node)
        since = validate_since(since)
        timeout = _positive(self.settings.converge_timeout if timeout is None else timeout,
                            "converge timeout")
        deadline = time.monotonic() + timeout
        status, unreachable = None, None
        while True:
            try:
                status, unreachable = self.node_status(node), None
            except BackendError as exc:
                if not exc.retryable:
                    raise
                # The server may come back before the deadline; keep looking.
                unreachable = exc
                LOG.info("Chef: %s; still waiting for %s to converge", exc, node)
            else:
                if status.converged_since(since):
                    LOG.info("Chef: node %s converged (ohai_time %s)", node,
                             canonical_time(status.ohai_time or 0))
                    return status
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            time.sleep(min(self.settings.poll_interval, remaining))
        raise self._not_converged(node, since, timeout, status, unreachable)

    def delete_node(self, node: str) -> Removal:
        validate_node_name(node)
        errors = []
        deleted = {}
        # The client too: the node registered it with the validator, and a client left
        # behind could register a new node of that name.
        for kind, operation in (("nodes", "delete node"), ("clients", "delete client")):
            try:
                deleted[kind] = self._delete(kind, node, operation)
            except BackendError as exc:
                errors.append(exc)
        if errors:
            raise errors[0]
        return Removal(node, node_deleted=deleted["nodes"], client_deleted=deleted["clients"])

    # -- helpers ---------------------------------------------------------------------------

    def _delete(self, kind: str, name: str, operation: str) -> bool:
        response = self._request("DELETE", "/%s/%s" % (kind, name), operation, name)
        if response.status_code in (200, 204):
            LOG.info("Chef: %s %s: deleted", operation, name)
            return True
        if response.status_code == 404:
            LOG.info("Chef: %s %s: already gone", operation, name)
            return False
        raise self._refused(response, operation, name)

    def _request(self, method: str, path: str, operation: str, obj: str) -> requests.Response:
        """One signed, bodiless request (GET or DELETE, both idempotent), retried after a
        timeout, a connection failure, a 429 or a 5xx."""
        url = self._base + path
        signed_path = urlsplit(url).path

        def attempt() -> requests.Response:
            # Signed anew on every try: the timestamp must be fresh.
            headers = sign_request(self._key, self.settings.client_name, method, signed_path,
                                   b"", self._clock(), self.settings.server_api_version)
            headers.update({"Accept": "application/json", "X-Chef-Version": CHEF_VERSION})
            try:
                response = self._session.request(
                    method, url, headers=headers, timeout=self.settings.timeout,
                    verify=self.settings.verify_tls, allow_redirects=False)
            except requests.exceptions.SSLError as exc:
                raise BackendError(SYSTEM, operation, obj, "TLS with %s failed: %s"
                                   % (self._where, self._reason(exc))) from None
            except requests.Timeout:
                raise BackendError(SYSTEM, operation, obj, "no answer from %s within %s s"
                                   % (self._where, _seconds(self.settings.timeout)),
                                   retryable=True) from None
            except requests.ConnectionError as exc:
                raise BackendError(SYSTEM, operation, obj, "cannot connect to %s: %s"
                                   % (self._where, self._reason(exc)), retryable=True) from None
            except requests.RequestException as exc:
                raise BackendError(SYSTEM, operation, obj, "request failed: %s"
                                   % self._reason(exc)) from None
            LOG.debug("Chef: %s %s -> %d", method, signed_path, response.status_code)
            if response.status_code >= 500 or response.status_code == 429:
                raise self._refused(response, operation, obj, retryable=True)
            return response

        return retry(attempt, attempts=max(1, self.settings.attempts),
                     first_delay=self.settings.retry_delay)

    def _json(self, response: requests.Response, operation: str, obj: str) -> Dict[str, Any]:
        try:
            data = response.json()
        except ValueError:
            data = None
        if not isinstance(data, dict):
            raise BackendError(SYSTEM, operation, obj, "the server's answer is not a JSON "
                               "object (is chef.server_url the Chef Server API?)")
        return data

    def _reason(self, exc: BaseException) -> str:
        text = str(exc)
        # requests wraps urllib3's wrapper of the socket error: keep the socket error.
        found = re.search(r"\[Errno [^\]]*\][^'\")]*", text)
        return redact(found.group(0).strip() if found else text[:200] or type(exc).__name__,
                      self.settings.secrets())

    def _server_message(self, response: requests.Response) -> str:
        text = ""
        try:
            data = response.json()
        except ValueError:
            data, text = None, response.text
        if isinstance(data, dict):
            error, message = data.get("error"), data.get("message")
            if isinstance(error, list):
                text = "; ".join(str(item) for item in error)
            elif message:
                text = str(message)
            elif error:
                text = str(error)
        text = " ".join(text.split())[:300]
        return redact(text, self.settings.secrets())

    def _refused(self, response: requests.Response, operation: str, obj: str,
                 retryable: bool = False) -> BackendError:
        status = response.status_code
        said = self._server_message(response)
        quoted = "%d %s" % (status, said) if said else "%d" % status
        if status == 401:
            message = ("the server refused the request signature (%s): check chef.client_name, "
                       "chef.client_key and this host's clock" % quoted)
        elif status == 403:
            message = ("client %s may not do this (%s): give it read and delete permission "
                       "on nodes and clients" % (self.settings.client_name, quoted))
        elif status == 406:
            message = "the server does not take API version %d (%s)" % (
                self.settings.server_api_version, quoted)
        elif 300 <= status < 400:
            message = ("redirected to %s (%s): set chef.server_url to the final URL"
                       % (redact(response.headers.get("Location", "?"),
                                 self.settings.secrets()), quoted))
        else:
            message = "HTTP %s" % quoted
        return BackendError(SYSTEM, operation, obj, message, retryable=retryable)

    def _not_converged(self, node: str, since: float, timeout: float,
                       status: Optional[NodeStatus],
                       unreachable: Optional[BackendError]) -> ConvergeTimeout:
        prefix = "no converge within %s s: " % _seconds(timeout)
        if unreachable is not None:
            return ConvergeTimeout(node, prefix + "the Chef server did not answer at the end "
                                   "(%s)" % unreachable.message, status, retryable=True)
        if status is None or not status.registered:
            return ConvergeTimeout(node, prefix + "the node never registered with the Chef "
                                   "server (did cloud-init install and run chef-client? see "
                                   "the VM's /var/log/cloud-init-output.log)", status)
        if status.ohai_time is None:
            return ConvergeTimeout(node, prefix + "the node registered but no Chef run of it "
                                   "has finished yet", status)
        return ConvergeTimeout(node, prefix + "the node registered but its last finished Chef "
                               "run began at %s, before the VM was created (%s)"
                               % (canonical_time(status.ohai_time), canonical_time(since)),
                               status)


def configuration(settings: ChefSettings, **kwargs: Any) -> ChefServer:
    """The Chef Server API for ``settings`` (the client key is read here)."""
    return ChefServer(settings, **kwargs)


class Chef(Provisioner):
    """Chef as the pack's provisioner. A bootstrap needs only the settings; the Chef Server
    API (``ChefServer``, which reads the client key) is opened by the first call that talks
    to the server."""

    def __init__(self, settings: ChefSettings) -> None:
        self.settings = settings
        self._server: Optional[ChefServer] = None

    def bootstrap(self, node: str, run_list: List[str], environment: str) -> Dict[str, Any]:
        return {"chef": cloud_config(self.settings, node, run_list, environment)}

    def _api(self) -> ChefServer:
        if self._server is None:
            self._server = ChefServer(self.settings)
        return self._server

    def wait_converged(self, node: str, since: Any, timeout: Optional[float] = None) -> Any:
        return self._api().wait_converged(node, since, timeout=timeout)

    def delete_node(self, node: str) -> Any:
        return self._api().delete_node(node)

    def close(self) -> None:
        if self._server is not None:
            self._server.close()


def new_provisioner(config: Mapping[str, Any]) -> Provisioner:
    """The provisioner for the pack config's ``chef`` section."""
    return Chef(ChefSettings.from_config(config))
