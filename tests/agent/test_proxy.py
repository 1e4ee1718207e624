"""The endpoint proxy against real HTTP backends on loopback."""

from __future__ import annotations

import http.client
import json
import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from agent.runtimes.local.serving import replicas
from agent.runtimes.local.serving.proxy import Backend, Meter, Pool, Proxy, batch_rows


class _Echo(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        reply = f"{self.server.server_port}:".encode() + body  # type: ignore[attr-defined]
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(reply)))
        self.end_headers()
        self.wfile.write(reply)

    def log_message(self, format: str, *args: object) -> None:
        del format, args


@pytest.fixture
def backend() -> Iterator[ThreadingHTTPServer]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Echo)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server
    server.shutdown()
    server.server_close()


@pytest.fixture
def proxy() -> Iterator[Proxy]:
    front = Proxy(replicas.free_port(), Pool(), Meter("test"), timeout=5.0, hold=0.5)
    threading.Thread(target=front.serve_forever, daemon=True).start()
    yield front
    front.shutdown()
    front.server_close()
    for member in front.pool.members():
        member.close()


def _post(proxy: Proxy, body: bytes = b"{}") -> tuple[int, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", proxy.server_port, timeout=5)
    try:
        conn.request(
            "POST", "/invocations", body=body, headers={"Content-Type": "application/json"}
        )
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


def test_without_a_ready_replica_the_answer_is_503_after_the_hold(proxy: Proxy) -> None:
    code, body = _post(proxy)
    assert code == 503 and b"no ready replica" in body


def test_a_request_is_held_until_a_replica_is_ready(
    proxy: Proxy, backend: ThreadingHTTPServer
) -> None:
    """The one replica of a rollout handing over to the next: the request waits for it
    instead of failing (the supervisor sets the ready set every tick)."""
    proxy.hold = 30.0
    answer: list[tuple[int, bytes]] = []
    client = threading.Thread(target=lambda: answer.append(_post(proxy, b'{"held": 1}')))
    client.start()
    client.join(timeout=0.5)
    assert client.is_alive() and not answer  # held, not refused
    proxy.pool.replace([])  # a tick with still no replica: it keeps waiting
    client.join(timeout=0.3)
    assert client.is_alive()
    proxy.pool.replace([Backend(backend.server_port)])
    client.join(timeout=10)
    assert answer == [(200, f"{backend.server_port}:".encode() + b'{"held": 1}')]


@pytest.mark.parametrize(
    ("body", "content_type", "rows"),
    [
        pytest.param(
            b'{"dataframe_split": {"columns": ["a"], "data": [[1], [2], [3]]}}',
            "application/json",
            3,
            id="split",
        ),
        pytest.param(
            b'{"dataframe_records": [{"a": 1}, {"a": 2}]}', "application/json", 2, id="records"
        ),
        pytest.param(
            b'{"instances": [[1, 2], [3, 4], [5, 6], [7, 8]]}',
            "application/json",
            4,
            id="instances",
        ),
        pytest.param(
            b'{"inputs": {"a": [1, 2, 3], "b": [1, 2, 3]}}', "application/json", 3, id="tensors"
        ),
        pytest.param(b"a,b\n1,2\n3,4\n", "text/csv; charset=utf-8", 2, id="csv"),
        pytest.param(b"{not json", "application/json", None, id="unreadable"),
        pytest.param(b'{"something": []}', "application/json", None, id="unknown-format"),
    ],
)
def test_the_rows_of_a_batch_are_counted_in_every_mlflow_format(
    body: bytes, content_type: str, rows: int | None
) -> None:
    assert batch_rows(body, content_type) == rows


def test_a_batch_over_max_batch_size_is_refused_before_any_replica_sees_it(
    proxy: Proxy, backend: ThreadingHTTPServer
) -> None:
    proxy.pool.replace([Backend(backend.server_port)])
    proxy.max_batch_size = 2
    code, body = _post(proxy, b'{"dataframe_records": [{"a": 1}, {"a": 2}, {"a": 3}]}')
    assert code == 400
    assert json.loads(body) == {
        "error_code": "BAD_REQUEST",
        "message": "a batch of 3 rows is over this endpoint's maxBatchSize (2): split it",
    }
    ok, echoed = _post(proxy, b'{"dataframe_records": [{"a": 1}, {"a": 2}]}')
    assert ok == 200 and echoed.startswith(str(backend.server_port).encode())


def test_a_replica_that_refuses_connections_is_skipped(
    proxy: Proxy, backend: ThreadingHTTPServer
) -> None:
    dead = Backend(replicas.free_port())  # nothing listens there
    proxy.pool.replace([dead, Backend(backend.server_port)])
    answers = [_post(proxy, b'{"n": %d}' % i) for i in range(6)]
    assert all(code == 200 for code, _ in answers)
    assert {body.split(b":")[0] for _, body in answers} == {str(backend.server_port).encode()}
    assert dead.in_flight == 0


def test_requests_are_measured_and_exported(proxy: Proxy, backend: ThreadingHTTPServer) -> None:
    proxy.pool.replace([Backend(backend.server_port)])
    for _ in range(5):
        _post(proxy)
    sample = proxy.meter.window(60)
    assert sample.rps == pytest.approx(5 / 60)
    assert sample.error_rate == 0.0 and sample.p95_ms is not None
    assert set(proxy.meter.percentiles(60)) == {"p50", "p95", "p99"}
    conn = http.client.HTTPConnection("127.0.0.1", proxy.server_port, timeout=5)
    conn.request("GET", "/metrics")
    text = conn.getresponse().read().decode()
    conn.close()
    assert 'gitplane_endpoint_requests_total{code="200",deployment="test"} 5.0' in text


def _raw(proxy: Proxy, data: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", proxy.server_port), timeout=5) as sock:
        sock.sendall(data)
        sock.shutdown(socket.SHUT_WR)
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


def test_the_proxy_speaks_http_as_clients_do(proxy: Proxy, backend: ThreadingHTTPServer) -> None:
    proxy.pool.replace([Backend(backend.server_port)])
    expect = _raw(
        proxy,
        b"POST /invocations HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\n"
        b"content-length: 2\r\nConnection: close\r\n\r\n{}",
    )
    assert expect.startswith(b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\n")
    assert expect.endswith(f"{backend.server_port}:{{}}".encode())
    old = _raw(proxy, b"POST /invocations HTTP/1.0\r\nContent-Length: 2\r\n\r\n{}")
    assert old.startswith(b"HTTP/1.1 200 OK") and old.endswith(b":{}")  # then closed
    assert _raw(proxy, b"NONSENSE\r\n\r\n").startswith(b"HTTP/1.1 400")
    flood = b"GET / HTTP/1.1\r\n" + b"X-A: b\r\n" * 200 + b"\r\n"
    assert _raw(proxy, flood).startswith(b"HTTP/1.1 431")
