"""The webhook sensor's test side: its settings in a pack config, New Relic bodies, and a small
HTTP client for a started sensor."""

import copy
import http.client
import json
import socket

from sandbox.net import free_port
from st2harness import PackLoader
from support.pack import EXAMPLE
from support.paths import ROOT

TOKEN = "tok-3f9a1c77e2b54d08"
PATH = "/st2/nrhook"
ALERT_SCHEMA = PackLoader(ROOT).trigger_types()["autoscale.alert"]["payload_schema"]


def workflows(issue_id="issue-1", state="ACTIVATED", priority="CRITICAL", title="CPU high",
              entities=("storefront",), policy="Storefront golden signals", **extra):
    doc = {"id": issue_id, "state": state, "priority": priority, "title": title,
           "impactedEntities": list(entities), "alertPolicyNames": [policy],
           "alertConditionNames": ["High error rate"]}
    doc.update(extra)
    return json.dumps(doc).encode()


def pack_config(**webhook_settings):
    config = copy.deepcopy(EXAMPLE)
    config["webhook"] = dict({"bind_address": "127.0.0.1", "port": free_port(), "path": PATH,
                              "auth_type": "bearer", "token": TOKEN}, **webhook_settings)
    return config


def bearer(token=TOKEN):
    return {"Authorization": "Bearer %s" % token}


class Running:
    """A started sensor and a small HTTP client for it."""

    def __init__(self, sensor, thread, datastore):
        self.sensor = sensor
        self.thread = thread
        self.datastore = datastore
        self.port = sensor.port
        self.service = sensor.sensor_service

    @property
    def dispatched(self):
        return self.service.dispatched

    def request(self, method="POST", path=PATH, body=None, headers=None, auth=True):
        all_headers = dict(bearer() if auth else {})
        if body is not None:
            all_headers["Content-Type"] = "application/json"
        all_headers.update(headers or {})
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=15)
        try:
            connection.request(method, path, body=body, headers=all_headers)
            response = connection.getresponse()
            data = response.read()
        finally:
            connection.close()
        parsed = json.loads(data) if data else None
        return response.status, response, parsed

    def post(self, body, query="", **kwargs):
        return self.request("POST", PATH + query, body=body, **kwargs)

    def raw(self, data, timeout=5):
        """Send raw bytes, return the status line and the whole answer."""
        with socket.create_connection(("127.0.0.1", self.port), timeout=timeout) as sock:
            sock.sendall(data)
            answer = b""
            while True:
                try:
                    chunk = sock.recv(65536)
                except ConnectionResetError:
                    break
                if not chunk:
                    break
                answer += chunk
        return answer


