"""The webhook server as st2's sensor container runs it, for B2's slow-client figure (and a
test): ``python -m bench.webhook_under_eventlet TOKEN [NOFILE]`` monkey-patches with eventlet
first (as st2common.util.monkey_patch does), lowers its soft ``ulimit -n`` to NOFILE if given,
serves on a free 127.0.0.1 port with one group ``web``, prints ``{"port": N}``, and on end of
stdin stops and prints ``{"dispatched": N}``."""

import eventlet

eventlet.monkey_patch(os=True, select=True, socket=True, thread=True, time=True)

import json  # noqa: E402
import resource  # noqa: E402
import sys  # noqa: E402
import threading  # noqa: E402

from eventlet import tpool  # noqa: E402

from bench.common import LIB  # noqa: E402,F401  (puts lib/ on sys.path)


def main() -> int:
    from autoscale_core.domain.model import Group
    from autoscale_core.sources.server import build_server
    from autoscale_core.sources.settings import WebhookSettings

    if len(sys.argv) > 2:
        hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
        resource.setrlimit(resource.RLIMIT_NOFILE, (int(sys.argv[2]), hard))
    settings = WebhookSettings.from_config(
        {"webhook": {"bind_address": "127.0.0.1", "port": 0, "token": sys.argv[1]}})
    groups = {"web": Group.create(name="web", domain="example.test", min_size=2, max_size=5)}
    dispatched = []
    server = build_server(settings, lambda trigger, payload: dispatched.append(payload),
                          lambda: groups)
    thread = threading.Thread(target=server.serve, daemon=True)
    thread.start()
    print(json.dumps({"port": server.port}), flush=True)
    # In a real thread: a plain blocking read here would stop every green thread.
    tpool.execute(sys.stdin.read)
    server.stop()
    thread.join(5)
    print(json.dumps({"dispatched": len(dispatched)}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
