"""B2: the webhook sensor's server. Sustained deliveries per second through the real server
(auth, parsing, routing, dedup with distinct issue ids, dispatch to a counting callback) and
p50/p99 latency, against a bare ThreadingHTTPServer answering 200 on the same stack in the same
run with the same client (one connection per request, N client threads): target >= 0.7x. Then
memory: tracemalloc's current size after 10k and 100k deliveries through ``Receiver.deliver``
and the dedup table's length (bounded at its cap). Then slow clients (issue 12): the server
run as st2's sensor container runs it (a process monkey-patched by eventlet), 256 connections
without credentials each sending a request line and then one header byte a second (reopened
at once when the server cuts one off at its request deadline, so 256 stay connected), and
100 valid deliveries one every 100 ms: the share answered 2xx and the p99 latency (target
100 %, p99 < 1 s), against the same deliveries without the slow clients, in the same run."""

from __future__ import annotations

import http.client
import json
import os
import resource
import socket
import subprocess
import sys
import threading
import time
import tracemalloc
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable, Dict, List

from bench.common import ROOT, median, percentile

TOKEN = "bench-webhook-token"
FIXTURE = os.path.join(ROOT, "tests", "fixtures", "newrelic", "workflows_activated.json")


class Counter:
    """The dispatch callback: counts triggers."""

    def __init__(self) -> None:
        self.count = 0
        self._lock = threading.Lock()

    def __call__(self, trigger: str, payload: Dict[str, Any]) -> None:
        with self._lock:
            self.count += 1


def _template() -> Dict[str, Any]:
    with open(FIXTURE, encoding="utf-8") as handle:
        document = json.load(handle)
    document.update(state="ACTIVATED", priority="CRITICAL", title="Checkout error rate")
    return document


def _bodies(count: int, prefix: str) -> List[bytes]:
    document = _template()
    bodies = []
    for index in range(count):
        document["id"] = "%s-%07d" % (prefix, index)
        bodies.append(json.dumps(document).encode("utf-8"))
    return bodies


def _groups() -> Dict[str, Any]:
    from autoscale_core.domain.model import Group

    return {"web": Group.create(name="web", domain="example.test", min_size=2, max_size=5)}


def _settings():
    from autoscale_core.sources.settings import WebhookSettings

    return WebhookSettings.from_config(
        {"webhook": {"bind_address": "127.0.0.1", "port": 0, "token": TOKEN}})


class _Bare(BaseHTTPRequestHandler):
    """The baseline: read the body, answer 200 with a small JSON body."""

    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        self.rfile.read(length)
        body = b'{"status": "ok"}\n'
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(body)
        self.close_connection = True


def _load(port: int, path: str, bodies: List[bytes], threads: int) -> Dict[str, Any]:
    """POST every body once, from ``threads`` client threads, one connection per request."""
    latencies: List[float] = []
    statuses: Dict[int, int] = {}
    lock = threading.Lock()
    queue = iter(bodies)
    queue_lock = threading.Lock()
    headers = {"Content-Type": "application/json", "Authorization": "Bearer " + TOKEN,
               "Connection": "close"}

    def client() -> None:
        mine: List[float] = []
        codes: Dict[int, int] = {}
        while True:
            with queue_lock:
                body = next(queue, None)
            if body is None:
                break
            started = time.perf_counter()
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
            try:
                connection.request("POST", path, body=body, headers=headers)
                response = connection.getresponse()
                response.read()
                status = response.status
            except OSError:
                status = 0
            finally:
                connection.close()
            mine.append(time.perf_counter() - started)
            codes[status] = codes.get(status, 0) + 1
        with lock:
            latencies.extend(mine)
            for code, count in codes.items():
                statuses[code] = statuses.get(code, 0) + count

    workers = [threading.Thread(target=client, daemon=True) for _ in range(threads)]
    started = time.perf_counter()
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    elapsed = time.perf_counter() - started
    return {"requests": len(bodies), "seconds": elapsed, "per_second": len(bodies) / elapsed,
            "p50_ms": 1000 * median(latencies), "p99_ms": 1000 * percentile(latencies, 0.99),
            "statuses": {str(k): v for k, v in sorted(statuses.items())}}


def _serving(server: Any, serve: Callable[[], None]) -> threading.Thread:
    thread = threading.Thread(target=serve, daemon=True, name="bench-server")
    thread.start()
    return thread


def _throughput(requests: int, threads: int, rounds: int) -> Dict[str, Any]:
    from autoscale_core.sources.server import build_server

    settings = _settings()
    dispatched = Counter()
    groups = _groups()
    server = build_server(settings, dispatched, lambda: groups)
    server_thread = _serving(server, server.serve)
    bare = ThreadingHTTPServer(("127.0.0.1", 0), _Bare)
    bare.daemon_threads = True
    bare_thread = _serving(bare, lambda: bare.serve_forever(poll_interval=0.05))
    path = settings.path + "?asg=web"
    try:
        _load(bare.server_address[1], path, _bodies(50, "warm-bare"), threads)
        _load(server.port, path, _bodies(50, "warm"), threads)
        best_bare: Dict[str, Any] = {}
        best_sensor: Dict[str, Any] = {}
        # Alternate the two, best of ``rounds`` each: both see the same machine noise.
        for round_ in range(rounds):
            bare_run = _load(bare.server_address[1], path,
                             _bodies(requests, "bare%d" % round_), threads)
            sensor_run = _load(server.port, path, _bodies(requests, "r%d" % round_), threads)
            if not best_bare or bare_run["per_second"] > best_bare["per_second"]:
                best_bare = bare_run
            if not best_sensor or sensor_run["per_second"] > best_sensor["per_second"]:
                best_sensor = sensor_run
    finally:
        server.stop()
        bare.shutdown()
        bare.server_close()
        server_thread.join(timeout=5)
        bare_thread.join(timeout=5)
    expected = 50 + requests * rounds
    return {"threads": threads, "rounds": rounds, "sensor": best_sensor, "bare": best_bare,
            "ratio": best_sensor["per_second"] / best_bare["per_second"],
            "dispatched": dispatched.count, "expected_dispatches": expected}


def _memory(checkpoints: List[int]) -> Dict[str, Any]:
    from autoscale_core.sources.receiver import Receiver, RouteCache

    dispatched = Counter()
    groups = _groups()
    receiver = Receiver(_settings(), dispatched, RouteCache(lambda: groups))
    document = _template()
    results = []
    statuses: Dict[int, int] = {}
    tracemalloc.start()
    try:
        done = 0
        for checkpoint in checkpoints:
            while done < checkpoint:
                document["id"] = "mem-%07d" % done
                outcome = receiver.deliver(json.dumps(document).encode("utf-8"),
                                           "application/json", "web")
                statuses[outcome.status] = statuses.get(outcome.status, 0) + 1
                done += 1
            current, peak = tracemalloc.get_traced_memory()
            results.append({"deliveries": done, "current_bytes": current, "peak_bytes": peak,
                            "dedup_entries": len(receiver.dedup)})
    finally:
        tracemalloc.stop()
    return {"checkpoints": results, "dedup_cap": receiver.dedup.max_entries,
            "dispatched": dispatched.count,
            "statuses": {str(k): v for k, v in sorted(statuses.items())}}


_SLOW_HEAD = b"POST /st2/nrhook HTTP/1.1\r\nHost: bench\r\n"


class _Slowloris:
    """``count`` connections without credentials, each sending a request line and then one
    header byte every ``every`` seconds. One the server closes is opened again at once, so
    that ``count`` stay connected; ``cut_off`` counts the ones answered 408."""

    def __init__(self, port: int, count: int, every: float) -> None:
        self._port = port
        self._every = every
        self.sockets = [self._open() for _ in range(count)]
        self.reopened = 0
        self.cut_off = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._trickle, daemon=True, name="slowloris")
        self._thread.start()

    def _open(self) -> socket.socket:
        sock = socket.create_connection(("127.0.0.1", self._port), timeout=5)
        sock.sendall(_SLOW_HEAD)
        sock.setblocking(False)
        return sock

    def _trickle(self) -> None:
        while not self._stop.wait(self._every):
            for index, sock in enumerate(self.sockets):
                try:
                    answer = sock.recv(4096)
                except BlockingIOError:
                    answer = None  # nothing from the server: still waiting for us
                except OSError:
                    answer = b""
                if answer is None:
                    try:
                        sock.send(b"X")
                        continue
                    except OSError:
                        pass
                elif answer.startswith(b"HTTP/1.1 408 "):
                    self.cut_off += 1
                sock.close()
                try:
                    self.sockets[index] = self._open()
                    self.reopened += 1
                except OSError:
                    pass

    def close(self) -> None:
        self._stop.set()
        self._thread.join(10)
        for sock in self.sockets:
            sock.close()


def _paced(port: int, path: str, bodies: List[bytes], interval: float) -> Dict[str, Any]:
    """POST each body on its own connection, one every ``interval`` seconds (each in its own
    thread, so that a slow answer does not delay the next delivery)."""
    latencies: List[float] = []
    statuses: Dict[int, int] = {}
    lock = threading.Lock()
    headers = {"Content-Type": "application/json", "Authorization": "Bearer " + TOKEN,
               "Connection": "close"}

    def one(body: bytes) -> None:
        started = time.perf_counter()
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        try:
            connection.request("POST", path, body=body, headers=headers)
            response = connection.getresponse()
            response.read()
            status = response.status
        except OSError:
            status = 0
        finally:
            connection.close()
        with lock:
            latencies.append(time.perf_counter() - started)
            statuses[status] = statuses.get(status, 0) + 1

    threads = []
    began = time.perf_counter()
    for index, body in enumerate(bodies):
        delay = began + index * interval - time.perf_counter()
        if delay > 0:
            time.sleep(delay)
        thread = threading.Thread(target=one, args=(body,), daemon=True)
        thread.start()
        threads.append(thread)
    for thread in threads:
        thread.join(15)
    answered = sum(count for status, count in statuses.items() if 200 <= status < 300)
    return {"deliveries": len(bodies), "answered_2xx": answered,
            "statuses": {str(k): v for k, v in sorted(statuses.items())},
            "p50_ms": 1000 * median(latencies), "p99_ms": 1000 * percentile(latencies, 0.99),
            "max_ms": 1000 * max(latencies) if latencies else float("nan")}


def _fd_limit(needed: int) -> None:
    """Each slow client is a descriptor here (and one in the server's process)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft < needed:
        target = needed if hard == resource.RLIM_INFINITY else min(needed, hard)
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))


def _slow_clients(hostile: int, deliveries: int, interval: float,
                  trickle: float) -> Dict[str, Any]:
    _fd_limit(hostile + 512)
    server = subprocess.Popen([sys.executable, "-W", "ignore", "-m",
                               "bench.webhook_under_eventlet", TOKEN],
                              cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                              text=True)
    slowloris = None
    try:
        assert server.stdout is not None and server.stdin is not None
        port = json.loads(server.stdout.readline())["port"]
        path = "/st2/nrhook?asg=web"
        _paced(port, path, _bodies(5, "slow-warm"), interval)
        without = _paced(port, path, _bodies(deliveries, "calm"), interval)
        slowloris = _Slowloris(port, hostile, trickle)
        time.sleep(2 * trickle)  # every one accepted and trickling
        under = _paced(port, path, _bodies(deliveries, "slow"), interval)
        connected = sum(1 for sock in slowloris.sockets if sock.fileno() >= 0)
        reopened, cut_off = slowloris.reopened, slowloris.cut_off
        slowloris.close()
        slowloris = None
        server.stdin.close()
        dispatched = json.loads(server.stdout.readline())["dispatched"]
        server.wait(10)
    finally:
        if slowloris is not None:
            slowloris.close()
        if server.poll() is None:
            server.kill()
            server.wait()
    return {"hostile": hostile, "trickle_s": trickle, "interval_s": interval,
            "server": "eventlet-monkey-patched process", "with_slow_clients": under,
            "without": without, "p99_ratio": under["p99_ms"] / without["p99_ms"],
            "slow_clients_connected_at_end": connected, "slow_clients_reopened": reopened,
            "slow_clients_cut_off_408": cut_off,
            "dispatched": dispatched, "expected_dispatches": 5 + 2 * deliveries}


def run(quick: bool) -> Dict[str, Any]:
    if quick:
        throughput = _throughput(requests=300, threads=4, rounds=1)
        memory = _memory([2000, 12000])
        slow = _slow_clients(hostile=64, deliveries=20, interval=0.1, trickle=1.0)
    else:
        throughput = _throughput(requests=2000, threads=8, rounds=3)
        memory = _memory([10000, 100000])
        slow = _slow_clients(hostile=256, deliveries=100, interval=0.1, trickle=1.0)
    first, last = memory["checkpoints"][0], memory["checkpoints"][-1]
    memory["growth"] = last["current_bytes"] / first["current_bytes"]
    return {"throughput": throughput, "memory": memory, "slow_clients": slow}
