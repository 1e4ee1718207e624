"""The proxy as a Kubernetes pod runs it: a real process in front of a real HTTP server."""

from __future__ import annotations

import http.client
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from agent.runtimes.kubernetes import render
from tests.agent.test_kubernetes_render import TARGET, command
from tests.conftest import ROOT

MODULE = render.SIDECAR
"""The module a Kubernetes pod's ``proxy`` container runs: the one tested here."""


class _Server(BaseHTTPRequestHandler):
    """A scoring server: ``/ping`` answers 200, ``/invocations`` echoes, ``/boom`` is 500."""

    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        self._answer(200 if self.path == "/ping" else 404, b"")

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        self._answer(500 if self.path == "/boom" else 200, body)

    def _answer(self, code: int, body: bytes) -> None:
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        del format, args


@pytest.fixture
def upstream() -> Iterator[ThreadingHTTPServer]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Server)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server
    server.shutdown()
    server.server_close()


def _start(*args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", MODULE, *args],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


@pytest.fixture
def sidecar(upstream: ThreadingHTTPServer) -> Iterator[tuple[subprocess.Popen[str], int]]:
    process = _start(
        "--listen",
        "127.0.0.1:0",
        "--upstream",
        f"http://127.0.0.1:{upstream.server_port}",
        "--deployment",
        "churn-prod",
        "--unmetered",
        "/ping",
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        assert line.startswith("serving on 127.0.0.1:"), line + process.stderr.read()  # type: ignore[union-attr]
        yield process, int(line.rsplit(":", 1)[1])
    finally:
        if process.poll() is None:
            process.kill()
        process.wait(timeout=10)
        for stream in (process.stdout, process.stderr):
            if stream is not None:
                stream.close()


def _ask(port: int, method: str, path: str, body: bytes | None = None) -> tuple[int, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request(method, path, body=body, headers={"Content-Type": "application/json"})
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


def test_the_sidecar_forwards_measures_and_exports_the_local_metrics(
    sidecar: tuple[subprocess.Popen[str], int],
) -> None:
    process, port = sidecar
    assert _ask(port, "POST", "/invocations", b'{"inputs": [1]}') == (200, b'{"inputs": [1]}')
    assert _ask(port, "POST", "/invocations", b"{}")[0] == 200
    assert _ask(port, "POST", "/boom", b"{}")[0] == 500
    assert _ask(port, "GET", "/ping")[0] == 200  # the readiness probe: through, not measured
    code, metrics = _ask(port, "GET", "/metrics")
    text = metrics.decode()
    assert code == 200
    assert 'gitplane_endpoint_requests_total{code="200",deployment="churn-prod"} 2.0' in text
    assert 'gitplane_endpoint_requests_total{code="500",deployment="churn-prod"} 1.0' in text
    assert 'gitplane_endpoint_request_seconds_count{deployment="churn-prod"} 3.0' in text
    assert 'gitplane_endpoint_request_seconds_bucket{deployment="churn-prod",le=' in text
    assert 'gitplane_endpoint_ready_replicas{deployment="churn-prod"} 1.0' in text
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=10) == 0


def test_with_its_server_down_the_sidecar_answers_503_at_once(
    sidecar: tuple[subprocess.Popen[str], int], upstream: ThreadingHTTPServer
) -> None:
    _, port = sidecar
    upstream.shutdown()
    upstream.server_close()
    code, body = _ask(port, "GET", "/ping")
    assert code == 503 and b"no ready replica" in body  # the probe fails: the pod is not ready


@pytest.mark.parametrize(
    ("args", "said"),
    [
        pytest.param(
            ["--listen", "8000", "--upstream", "http://127.0.0.1:8080"],
            "expected HOST:PORT",
            id="listen",
        ),
        pytest.param(
            ["--listen", "0.0.0.0:8000", "--upstream", "http://model.example:8080"],
            "expected http://127.0.0.1:PORT",
            id="not-loopback",
        ),
    ],
)
def test_bad_options_are_one_line_and_exit_2(args: list[str], said: str) -> None:
    process = _start(*args, "--deployment", "x")
    _, err = process.communicate(timeout=30)
    assert process.returncode == 2
    assert said in err and "Traceback" not in err


def test_a_pod_is_reached_and_probed_only_through_its_proxy() -> None:
    made = command("deployments/churn-prod.yaml", server={"maxBatchSize": 64})
    deployment, service = render.deployment(made, TARGET)[:2]
    pod = deployment["spec"]["template"]
    server, proxy = pod["spec"]["containers"]
    assert server["args"][server["args"].index("--host") + 1] == "127.0.0.1"
    assert "readinessProbe" not in server
    assert proxy["command"] == ["python", "-m", MODULE]
    assert proxy["ports"] == [{"name": "http", "containerPort": render.PROXY_PORT}]
    assert service["spec"]["ports"][0]["targetPort"] == "http"  # the proxy's port
    assert proxy["readinessProbe"]["httpGet"] == {"path": "/ping", "port": "http"}
    options = dict(zip(proxy["args"][::2], proxy["args"][1::2], strict=True))
    assert options["--upstream"] == f"http://127.0.0.1:{render.SERVE_PORT}"
    assert (options["--unmetered"], options["--max-batch-size"]) == ("/ping", "64")
    annotations = pod["metadata"]["annotations"]
    assert annotations["prometheus.io/port"] == str(render.PROXY_PORT)
