"""The endpoint proxy on its own, in front of one server: a Kubernetes pod's ``proxy``.

``python -m agent.runtimes.local.serving.sidecar --listen 0.0.0.0:8000 --upstream
http://127.0.0.1:8080 --deployment churn-prod`` runs the proxy the local runtime runs (the
same :class:`~agent.runtimes.local.serving.proxy.Proxy` and
:class:`~agent.runtimes.local.serving.proxy.Meter`), with the one replica of its pod as
its pool. Every request's latency and status are measured as on a local plane and
exported at ``GET /metrics`` under the same names, so a Prometheus scraping the pods
(and KEDA scaling on it) sees the endpoint as the local autoscaler does. The upstream is on
loopback: the server is in the same pod. SIGTERM or SIGINT stops it (exit 0); bad options
are a one-line error and exit 2.
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from types import FrameType
from urllib.parse import urlsplit

from agent.runtimes.local.serving.proxy import Backend, Meter, Pool, Proxy

LOOPBACK = frozenset({"127.0.0.1", "localhost"})
HOLD_SECONDS = 0.0
"""A request finding the server down is answered 503 at once: Kubernetes routes traffic
only to ready pods, and the readiness probe goes through the proxy."""


@dataclass(frozen=True)
class Options:
    """What the sidecar is started with."""

    host: str
    port: int
    upstream_port: int
    deployment: str
    timeout: float
    """Seconds the server has to answer one request (its ``requestTimeout``)."""
    max_batch_size: int | None
    unmetered: frozenset[str]


def parse(argv: Sequence[str]) -> Options:
    """The options of ``argv``; a bad one exits 2 with argparse's one-line message."""
    parser = argparse.ArgumentParser(prog="python -m agent.runtimes.local.serving.sidecar")
    parser.add_argument("--listen", required=True, help="HOST:PORT to serve on")
    parser.add_argument("--upstream", required=True, help="http://127.0.0.1:PORT (the server)")
    parser.add_argument("--deployment", required=True, help="the metrics' deployment label")
    parser.add_argument("--timeout", type=float, default=60.0, help="seconds per request")
    parser.add_argument("--max-batch-size", type=int, default=None)
    parser.add_argument("--unmetered", action="append", default=[], help="a path not measured")
    found = parser.parse_args(argv)
    host, _, port = found.listen.rpartition(":")
    upstream = urlsplit(found.upstream)
    if not host or not port.isdigit():
        parser.error(f"--listen {found.listen!r}: expected HOST:PORT")
    if upstream.scheme != "http" or upstream.hostname not in LOOPBACK or not upstream.port:
        parser.error(f"--upstream {found.upstream!r}: expected http://127.0.0.1:PORT")
    return Options(
        host=host,
        port=int(port),
        upstream_port=upstream.port,
        deployment=found.deployment,
        timeout=found.timeout,
        max_batch_size=found.max_batch_size,
        unmetered=frozenset(found.unmetered),
    )


def start(options: Options) -> Proxy:
    """A proxy bound to ``options``' address, its pool the one server (not yet serving)."""
    pool, meter = Pool(), Meter(options.deployment)
    pool.replace([Backend(options.upstream_port)])
    meter.replicas.set(1)  # one server behind each sidecar: their sum is the replicas
    proxy = Proxy(
        options.port,
        pool,
        meter,
        options.timeout,
        hold=HOLD_SECONDS,
        host=options.host,
        unmetered=options.unmetered,
    )
    proxy.max_batch_size = options.max_batch_size
    return proxy


def main(argv: Sequence[str] | None = None) -> int:
    """Serve until SIGTERM or SIGINT."""
    options = parse(sys.argv[1:] if argv is None else argv)
    proxy = start(options)

    def stop(signum: int, frame: FrameType | None) -> None:
        del signum, frame
        threading.Thread(target=proxy.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    print(f"serving on {options.host}:{proxy.server_port}", flush=True)
    proxy.serve_forever()
    proxy.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
