"""The front proxy of a local endpoint: load-balances over ready replicas and measures.

Requests go to the ready replica with the fewest requests in flight, over
kept-alive connections. A replica that refuses or drops a connection before
answering is skipped and the request is sent to another one, so a replica
dying or being drained never fails a request while another is ready. Every
request's latency and status feed the autoscaler (``window``) and the
Prometheus metrics at ``GET /metrics``. A Kubernetes pod runs the same proxy in front of
its one server (:mod:`.sidecar`), so both planes measure requests one way.
"""

from __future__ import annotations

import functools
import http
import json
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import BinaryIO

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from agent.runtimes.local.serving import upstream
from agent.runtimes.local.serving.autoscale import Sample

HOP_BY_HOP = frozenset({"connection", "keep-alive", "transfer-encoding", "te", "upgrade"})
RETRYABLE = (OSError, ValueError)  # ValueError: a malformed length or chunk size
HISTORY_SECONDS = 600.0
JSON = "application/json"
MAX_IDLE = 64
MAX_HEADERS = 100
MAX_LINE = 65_536


@dataclass(eq=False)
class Backend:
    """One replica as the proxy sees it, with its kept-alive connections."""

    port: int
    in_flight: int = 0
    idle: list[upstream.Connection] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def take(self, timeout: float) -> upstream.Connection:
        """An idle kept-alive connection, or a new one."""
        with self.lock:
            if self.idle:
                return self.idle.pop()
        return upstream.Connection(self.port, timeout)

    def give(self, conn: upstream.Connection) -> None:
        """Return a connection whose response was read completely."""
        with self.lock:
            if len(self.idle) < MAX_IDLE:
                self.idle.append(conn)
                return
        conn.close()

    def close(self) -> None:
        """Close every idle connection (the replica is gone)."""
        with self.lock:
            idle, self.idle = self.idle, []
        for conn in idle:
            conn.close()


HOLD_SECONDS = 10.0
"""How long a request waits for a ready replica (a rollout of one replica, a restart)."""


def batch_rows(body: bytes, content_type: str) -> int | None:
    """How many rows a scoring request carries, in each of MLflow's input formats
    (``dataframe_split``, ``dataframe_records``, ``instances``, ``inputs``, CSV); None when
    it cannot tell (the replica answers what it makes of it)."""
    if content_type.split(";", maxsplit=1)[0].strip().lower() == "text/csv":
        return max(0, sum(1 for line in body.splitlines() if line.strip()) - 1)
    try:
        request = json.loads(body)
    except ValueError:
        return None
    return _json_rows(request) if isinstance(request, dict) else None


def _json_rows(request: dict[str, object]) -> int | None:
    for key in ("dataframe_records", "instances", "inputs"):
        found = request.get(key)
        if isinstance(found, list):
            return len(found)
        if isinstance(found, dict):  # columns of tensors: the longest is the batch
            return max((len(v) for v in found.values() if isinstance(v, list)), default=1)
    split = request.get("dataframe_split")
    data = split.get("data") if isinstance(split, dict) else None
    return len(data) if isinstance(data, list) else None


class Pool:
    """The replicas taking traffic; changed by the supervisor, read by request threads."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        self._backends: list[Backend] = []

    def replace(self, backends: list[Backend]) -> None:
        """Replace the ready set (new replicas in, drained ones out); wakes held requests."""
        with self._lock:
            self._backends = list(backends)
            self._changed.notify_all()

    def wait(self, seconds: float) -> None:
        """Until the supervisor next sets the ready set (every tick), or ``seconds`` pass."""
        with self._lock:
            self._changed.wait(max(0.0, seconds))

    def members(self) -> list[Backend]:
        """The current ready set."""
        with self._lock:
            return list(self._backends)

    def acquire(self, skip: set[int]) -> Backend | None:
        """The least busy ready replica not in ``skip``, marked busy."""
        with self._lock:
            choices = [b for b in self._backends if b.port not in skip]
            if not choices:
                return None
            chosen = min(choices, key=lambda b: b.in_flight)
            chosen.in_flight += 1
            return chosen

    def release(self, backend: Backend) -> None:
        """One request on ``backend`` finished."""
        with self._lock:
            backend.in_flight -= 1


class Meter:
    """Request history for the autoscaler, and Prometheus metrics."""

    def __init__(self, deployment: str) -> None:
        self._lock = threading.Lock()
        self._events: deque[tuple[float, float, bool]] = deque()
        self.in_flight = 0
        self.registry = CollectorRegistry()
        labels = {"deployment": deployment}
        self.requests = Counter(
            "gitplane_endpoint_requests",
            "Requests through the proxy",
            ["deployment", "code"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "gitplane_endpoint_request_seconds",
            "Latency at the proxy",
            ["deployment"],
            registry=self.registry,
        ).labels(**labels)
        self.replicas = Gauge(
            "gitplane_endpoint_ready_replicas",
            "Replicas taking traffic",
            ["deployment"],
            registry=self.registry,
        ).labels(**labels)
        self.deployment = deployment

    def record(self, seconds: float, code: int) -> None:
        """One finished request."""
        now = time.monotonic()
        with self._lock:
            self._events.append((now, seconds, code >= 500))
            while self._events and now - self._events[0][0] > HISTORY_SECONDS:
                self._events.popleft()
        self._counter(code).inc()
        self.latency.observe(seconds)

    @functools.cache  # noqa: B019 - one Meter per process, as many codes as HTTP has
    def _counter(self, code: int) -> Counter:
        return self.requests.labels(deployment=self.deployment, code=str(code))

    def window(self, seconds: float) -> Sample:
        """Request rate, p95 latency and error rate over the last ``seconds``."""
        now = time.monotonic()
        with self._lock:
            recent = [e for e in self._events if now - e[0] <= seconds]
        if not recent:
            return Sample(rps=0.0, p95_ms=None, error_rate=None)
        latencies = sorted(e[1] for e in recent)
        p95 = _quantile(latencies, 0.95)
        errors = sum(1 for e in recent if e[2]) / len(recent)
        return Sample(rps=len(recent) / seconds, p95_ms=p95, error_rate=errors)

    def percentiles(self, seconds: float) -> dict[str, float]:
        """p50/p95/p99 in milliseconds over the last ``seconds`` (empty without requests)."""
        now = time.monotonic()
        with self._lock:
            latencies = sorted(e[1] for e in self._events if now - e[0] <= seconds)
        if not latencies:
            return {}
        return {f"p{round(q * 100)}": _quantile(latencies, q) for q in (0.50, 0.95, 0.99)}


def _quantile(ordered: list[float], q: float) -> float:
    """The ``q`` quantile of sorted seconds, in milliseconds."""
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000


class Proxy(ThreadingHTTPServer):
    """An HTTP/1.1 front for one deployment."""

    daemon_threads = True
    request_queue_size = 256

    def __init__(
        self,
        port: int,
        pool: Pool,
        meter: Meter,
        timeout: float,
        *,
        hold: float = HOLD_SECONDS,
        host: str = "127.0.0.1",
        unmetered: frozenset[str] = frozenset(),
    ) -> None:
        self.pool, self.meter, self.upstream_timeout = pool, meter, timeout
        self.hold = hold
        """How long a request waits for a ready replica before it is answered 503."""
        self.max_batch_size: int | None = None
        self.unmetered = unmetered
        """Paths forwarded but not measured (a kubelet's readiness probe as a sidecar)."""
        super().__init__((host, port), _Handler)


class Headers:
    """Request headers: their order and names as sent, looked up without case."""

    def __init__(self) -> None:
        self._items: list[tuple[str, str]] = []
        self._index: dict[str, str] = {}

    def add(self, name: str, value: str) -> None:
        """One header line."""
        self._items.append((name, value))
        self._index.setdefault(name.lower(), value)

    def get(self, name: str, default: str = "") -> str:
        """The first value of ``name``, whatever its case."""
        return self._index.get(name.lower(), default)

    def items(self) -> list[tuple[str, str]]:
        """Every header, as sent."""
        return list(self._items)


def _read_headers(rfile: BinaryIO) -> Headers | None:
    """Header lines up to the blank line; None when there are too many or one is too long."""
    headers = Headers()
    for _ in range(MAX_HEADERS):
        line = rfile.readline(MAX_LINE + 1)
        if len(line) > MAX_LINE:
            return None
        if line in (b"\r\n", b"\n", b""):
            return headers
        name, _, value = line.decode("latin-1").partition(":")
        headers.add(name.strip(), value.strip())
    return None


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: Proxy
    raw_requestline: bytes
    # One send per response: the status line, headers and body are buffered and flushed
    # together once the handler returns, and Nagle is off. Unbuffered, the body went out
    # as a second small segment held back until the client's delayed ACK of the headers
    # (~40 ms on Linux loopback), which made every proxied request 45 ms slower
    # (benchmarks/serving.py).
    wbufsize = 64 * 1024
    disable_nagle_algorithm = True

    def log_message(self, format: str, *args: object) -> None:
        """Access logs would cost more than the request; metrics carry the counts."""

    def parse_request(self) -> bool:
        """The request line and headers, read from the bytes: the standard library hands
        headers to the ``email`` package, which cost a quarter of the proxy's CPU on a
        1-row prediction. HTTP/1.0 and 1.1 only; ``Expect: 100-continue`` is honoured."""
        self.requestline = self.raw_requestline.decode("latin-1").rstrip("\r\n")
        self.command, self.request_version, self.close_connection = "", "HTTP/1.1", True
        words = self.requestline.split()
        if len(words) != 3 or words[2] not in ("HTTP/1.0", "HTTP/1.1"):
            self.send_error(400, "Bad request line")
            return False
        self.command, self.path, self.request_version = words
        headers = _read_headers(self.rfile)  # type: ignore[arg-type]
        if headers is None:
            self.send_error(431, "Too many or too long header lines")
            return False
        self.headers = headers  # type: ignore[assignment]
        connection = headers.get("Connection", "").lower()
        old = self.request_version == "HTTP/1.0"
        self.close_connection = connection == "close" or (old and connection != "keep-alive")
        if headers.get("Expect", "").lower() == "100-continue":
            return self.handle_expect_100()
        return True

    def do_GET(self) -> None:
        """``/metrics`` is the proxy's own; everything else goes to a replica."""
        if self.path == "/metrics":
            self._reply(200, generate_latest(self.server.meter.registry), "text/plain")
            return
        self._forward()

    def do_POST(self) -> None:
        """Forward (``/invocations``)."""
        self._forward()

    def _forward(self) -> None:
        started = time.perf_counter()
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        headers = [(k, v) for k, v in self.headers.items() if k.lower() not in HOP_BY_HOP]
        limit = self.server.max_batch_size
        content_type = self.headers.get("Content-Type") or ""
        rows = batch_rows(body, content_type) if limit else None
        if limit and rows is not None and rows > limit:
            why = f"a batch of {rows} rows is over this endpoint's maxBatchSize ({limit}): split it"
            code, reply, kind = (
                400,
                json.dumps({"error_code": "BAD_REQUEST", "message": why}).encode(),
                JSON,
            )
        else:
            code, reply, kind = self._send(body, headers)
        self._reply(code, reply, kind)
        if self.path not in self.server.unmetered:
            self.server.meter.record(time.perf_counter() - started, code)

    def _send(self, body: bytes, headers: list[tuple[str, str]]) -> tuple[int, bytes, str]:
        """The first answer of a ready replica. While none is ready (a replica restarting,
        the one replica of a rollout handing over), the request is held for the proxy's
        ``hold`` seconds, tried again each time the supervisor sets the ready set, and only
        then answered 503."""
        pool, tried = self.server.pool, set[int]()
        deadline = time.monotonic() + self.server.hold
        while True:
            backend = pool.acquire(tried)
            if backend is None:
                left = deadline - time.monotonic()
                if left <= 0:
                    return (
                        503,
                        b'{"error_code": "UNAVAILABLE", "message": "no ready replica"}',
                        JSON,
                    )
                pool.wait(left)
                tried.clear()
                continue
            try:
                return _exchange(backend, self, body, headers)
            except TimeoutError:
                return 504, b'{"error_code": "TIMEOUT", "message": "replica timed out"}', JSON
            except RETRYABLE:
                tried.add(backend.port)
            finally:
                pool.release(backend)

    def _reply(self, code: int, body: bytes, kind: str) -> None:
        """The whole response in one write (no ``Server``/``Date`` headers to format)."""
        head = f"HTTP/1.1 {code} {_reason(code)}\r\nContent-Type: {kind}\r\n"
        head += f"Content-Length: {len(body)}\r\n"
        if self.close_connection:
            head += "Connection: close\r\n"
        self.wfile.write(head.encode("latin-1") + b"\r\n" + body)


@functools.cache
def _reason(code: int) -> str:
    try:
        return http.HTTPStatus(code).phrase
    except ValueError:
        return ""


def _exchange(
    backend: Backend, handler: _Handler, body: bytes, headers: list[tuple[str, str]]
) -> tuple[int, bytes, str]:
    """One request on a pooled connection. A kept-alive connection the replica closed while
    idle fails at once: the request is sent again on a new connection."""
    timeout = handler.server.upstream_timeout
    while True:
        conn = backend.take(timeout)
        reused = conn.sock is not None
        try:
            answer = conn.request(handler.command, handler.path, headers, body)
        except TimeoutError:
            conn.close()
            raise
        except RETRYABLE:
            conn.close()
            if reused:
                continue
            raise
        except BaseException:
            conn.close()
            raise
        backend.give(conn)
        return answer
