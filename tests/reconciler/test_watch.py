"""`gitplane reconcile --watch` as a process: file-watch trigger, webhook, metrics, SIGTERM."""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import re
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from ledger import layout
from reconciler import server
from tests.conftest import LOG_TIME, git
from tests.reconciler.conftest import World

SECRET = "s3cret-for-tests"


def _port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _head(world: World, ref: str) -> str:
    bare = Path(world.remote.removeprefix("file://"))
    return git(bare, "for-each-ref", "--format=%(objectname)", ref)


def _wait(condition: object, timeout: float) -> float:
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        if condition():  # type: ignore[operator]
            return time.monotonic() - started
        time.sleep(0.02)
    raise AssertionError("timed out")


@pytest.fixture
def watching(gitplane_bin: str, world: World) -> Iterator[tuple[subprocess.Popen[bytes], str]]:
    port = _port()
    process = subprocess.Popen(
        [
            gitplane_bin,
            "reconcile",
            "--repo",
            world.remote.removeprefix("file://"),
            "--keys",
            str(world.keys_dir),
            "--work-dir",
            str(world.root / "watcher"),
            "--watch",
            "--interval",
            "1h",
            "--listen",
            f"127.0.0.1:{port}",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env={**os.environ, "GITPLANE_WEBHOOK_SECRET": SECRET, "GITPLANE_LOG_FORMAT": "json"},
    )
    url = f"http://127.0.0.1:{port}"
    try:
        _wait(lambda: _head(world, layout.commands_ref("local-dev")), 30)
        yield process, url
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
        process.communicate(timeout=30)


def _get(url: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:  # noqa: S310 - loopback test URL
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def _post(url: str, body: bytes, headers: dict[str, str]) -> int:
    request = urllib.request.Request(url, data=body, headers=headers, method="POST")  # noqa: S310
    try:
        with urllib.request.urlopen(request, timeout=5) as response:  # noqa: S310
            return int(response.status)
    except urllib.error.HTTPError as exc:
        return exc.code


def test_a_pushed_commit_is_reconciled_without_waiting_for_the_poll(
    watching: tuple[subprocess.Popen[bytes], str], world: World
) -> None:
    before = _head(world, layout.commands_ref("local-dev"))

    def longer_ttl(work: Path) -> None:
        path = work / "features" / "customer-activity.yaml"
        path.write_text(path.read_text().replace("ttl: 2d", "ttl: 3d"))

    world.change("longer ttl", longer_ttl)
    seconds = _wait(lambda: _head(world, layout.commands_ref("local-dev")) != before, 20)
    assert seconds < 20  # the poll interval is an hour: the file watch did it


def test_metrics_health_and_webhook(watching: tuple[subprocess.Popen[bytes], str]) -> None:
    _, url = watching
    issued = b'gitplane_commands_issued_total{plane="local-dev"} 2.0'
    _wait(lambda: issued in _get(url + "/metrics")[1], 10)  # counted once the cycle returns
    code, body = _get(url + "/metrics")
    assert code == 200
    cycles = re.search(rb"^gitplane_reconcile_duration_seconds_count (\d+)\.0$", body, re.M)
    assert cycles is not None and int(cycles[1]) >= 1  # more if its own push woke the watch
    code, body = _get(url + "/healthz")
    assert code == 200 and json.loads(body)["ok"] is True
    payload = b'{"ref": "refs/heads/main"}'
    good = "sha256=" + hmac.new(SECRET.encode(), payload, hashlib.sha256).hexdigest()
    assert _post(url + "/webhook", payload, {"X-Hub-Signature-256": good}) == 202
    assert _post(url + "/webhook", payload, {"X-Hub-Signature-256": "sha256=" + "0" * 64}) == 401
    assert _post(url + "/webhook", payload, {"X-Gitlab-Token": SECRET}) == 202
    assert _post(url + "/webhook", payload, {}) == 401
    assert _get(url + "/nope")[0] == 404


def test_sigterm_stops_cleanly(watching: tuple[subprocess.Popen[bytes], str]) -> None:
    process, _ = watching
    process.send_signal(signal.SIGTERM)
    _, stderr = process.communicate(timeout=30)
    assert process.returncode == 0
    lines = [json.loads(line) for line in stderr.decode().splitlines()]  # every line is JSON
    assert all(LOG_TIME.fullmatch(line["time"]) and line["level"] for line in lines), lines
    said = [(line["level"], line["logger"], line["msg"]) for line in lines]
    assert ("info", "gitplane.reconciler", "watching") in said
    assert ("info", "gitplane.reconciler", "issued") in said
    stopping = [line for line in lines if line["msg"] == "stopping"]  # a cycle may end after
    assert [line["signal"] for line in stopping] == ["SIGTERM"]


def test_webhook_verification() -> None:
    body = b"{}"
    signature = "sha256=" + hmac.new(b"k", body, hashlib.sha256).hexdigest()
    assert server.verify_webhook({"x-hub-signature-256": signature}, body, "k")
    assert not server.verify_webhook({"x-hub-signature-256": signature}, b"{ }", "k")
    assert server.verify_webhook({"x-gitlab-token": "k"}, body, "k")
    assert not server.verify_webhook({"x-gitlab-token": "K"}, body, "k")
    assert not server.verify_webhook({}, body, "k")


def _raw_request(port: int, head: bytes, body: bytes = b"") -> bytes:
    """Send bytes as they are (no client library tidies them up); the status line answered."""
    with socket.create_connection(("127.0.0.1", port), timeout=15) as sock:
        sock.sendall(head + b"\r\n\r\n" + body)
        sock.shutdown(socket.SHUT_WR)
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    return answer.split(b"\r\n", 1)[0]


@pytest.mark.parametrize(
    ("headers", "body", "code"),
    [
        pytest.param(b"Content-Length: -1", b"x" * 4096, b"400", id="negative-length"),
        pytest.param(b"Content-Length: abc", b"{}", b"400", id="not-a-number"),
        pytest.param(b"Content-Length: \xd9\xa5", b"{}", b"400", id="arabic-indic-digit"),
        pytest.param(b"Content-Length:  +2", b"{}", b"400", id="signed"),
        pytest.param(b"", b"{}", b"411", id="no-length"),
        pytest.param(b"Content-Length: 99999999999", b"{}", b"413", id="too-large"),
        pytest.param(
            b"Content-Length: 2\r\nX-Hub-Signature-256: sha256=\xe9\xe9", b"{}", b"401",
            id="non-ascii-signature",
        ),
        pytest.param(
            b"Content-Length: 2\r\nX-Gitlab-Token: \xff", b"{}", b"401", id="non-ascii-token"
        ),
        pytest.param(b"Content-Length: 10", b"{}", b"400", id="short-body"),
    ],
)  # fmt: skip
def test_the_webhook_answers_bad_requests_with_4xx_and_keeps_serving(
    headers: bytes, body: bytes, code: bytes, caplog: pytest.LogCaptureFixture
) -> None:
    triggered: list[int] = []
    endpoint = server.serve(
        "127.0.0.1", 0, metrics=server.Metrics(), health=server.Health(), secret="k",
        trigger=lambda: triggered.append(1),
    )  # fmt: skip
    try:
        port = endpoint.server_address[1]
        head = b"POST /webhook HTTP/1.1\r\nHost: x" + (b"\r\n" + headers if headers else b"")
        assert _raw_request(port, head, body).split(b" ")[1] == code
        assert _raw_request(port, b"GET /healthz HTTP/1.1\r\nHost: x").split(b" ")[1] == b"200"
    finally:
        endpoint.shutdown()
        endpoint.server_close()
    assert triggered == []
    assert "Traceback" not in caplog.text
