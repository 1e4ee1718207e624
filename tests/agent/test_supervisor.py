"""One endpoint's replicas and supervisor, in process: what the spec's ``server``, ``env``,
``health`` and ``rollout`` fields make them do, each against its default.

Probes go over real HTTP to a server in the test; rollouts run the real supervisor over
simulated replicas (``_Sim``: ready when the test says, no process), tick by tick.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from agent.runtimes.local import _mlflow
from agent.runtimes.local.serving import desired, endpoint, replicas
from agent.runtimes.local.serving.proxy import Backend
from schemas import parse
from schemas.deployment import DeploymentSpec


def _desired(model_dir: Path, version: str = "1", port: int = 0, **spec: object) -> desired.Desired:
    body = {"model": {"name": "m"}, "planeSelector": {}, **spec}
    return desired.build(
        "m",
        DeploymentSpec.model_validate(body),
        command=f"command-{version}",
        attempt="a",
        port=port,
        version=version,
        model_dir=model_dir,
        python=sys.executable,
    )


@pytest.mark.effect("Deployment", "spec.server.workers", "spec.server.requestTimeout", "spec.env")
def test_each_replica_runs_the_specs_server_settings_and_env(tmp_path: Path) -> None:
    spec = {"server": {"workers": 3, "requestTimeout": "7s"}, "env": {"CHURN_THRESHOLD": "0.5"}}
    replica = replicas.start(_desired(tmp_path, **spec).template(), tmp_path / "logs")
    proc = Path(f"/proc/{replica.process.pid}")
    try:
        deadline = time.monotonic() + 10
        while b"uvicorn" not in (proc / "cmdline").read_bytes():  # until the exec shows
            assert time.monotonic() < deadline, "the server never started"
            time.sleep(0.01)
        argv = (proc / "cmdline").read_bytes().split(b"\0")
        environ = (proc / "environ").read_bytes().split(b"\0")
    finally:
        os.killpg(replica.process.pid, signal.SIGKILL)
        replica.process.wait()
    assert argv[argv.index(b"--workers") + 1] == b"3"
    assert b"MLFLOW_SCORING_SERVER_REQUEST_TIMEOUT=7" in environ
    assert b"CHURN_THRESHOLD=0.5" in environ
    _, short = _mlflow.scoring_server(tmp_path, port=1, workers=1, timeout=0.5)
    assert short["MLFLOW_SCORING_SERVER_REQUEST_TIMEOUT"] == "1"  # MLflow counts whole seconds


@pytest.mark.effect("Deployment", "spec.server.requestTimeout")
def test_the_proxy_waits_for_a_replica_as_long_as_the_request_timeout(tmp_path: Path) -> None:
    first = _desired(tmp_path, port=replicas.free_port(), server={"requestTimeout": "7s"})
    supervisor = endpoint.Supervisor(tmp_path, first)
    try:
        assert supervisor.proxy.upstream_timeout == 7.0
        (tmp_path / "desired.json").write_bytes(desired.dumps(_desired(tmp_path, port=first.port)))
        assert supervisor._reload()
        assert supervisor.proxy.upstream_timeout == 60.0  # the default, once the spec drops it
    finally:
        supervisor.proxy.server_close()


# -- health -------------------------------------------------------------------------------


class _Health(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _HealthServer

    def do_GET(self) -> None:
        if self.path == "/slow":
            time.sleep(0.5)
        self.send_response(self.server.codes.get(self.path, 404))
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:
        del format, args


class _HealthServer(ThreadingHTTPServer):
    daemon_threads = True
    codes: dict[str, int]


@pytest.fixture
def health_server() -> Iterator[_HealthServer]:
    server = _HealthServer(("127.0.0.1", 0), _Health)
    server.codes = {}
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server
    server.shutdown()
    server.server_close()


Step = tuple[float, dict[str, int]]
"""Seconds after the replica started, and what the server answers on which path then."""


@dataclass(frozen=True)
class _Probes:
    """(ready, failed) after the probes of ``steps``, with ``health`` set and without."""

    health: dict[str, object]
    steps: list[Step]
    with_field: tuple[bool, bool]
    without: tuple[bool, bool]
    base: dict[str, object] = field(default_factory=dict)


HEALTH = {
    "path": _Probes({"path": "/healthz"}, [(0, {"/healthz": 200})], (True, False), (False, False)),
    "initial-delay": _Probes(
        {"initialDelay": "10s"}, [(1, {"/ping": 200})], (False, False), (True, False)
    ),
    "timeout": _Probes(
        {"timeout": "200ms"}, [(0, {"/slow": 200})], (False, False), (True, False),
        base={"path": "/slow"},  # answers after half a second
    ),
    "period": _Probes(
        {"period": "1s"}, [(0, {"/ping": 200}), (2, {"/ping": 503})], (False, False), (True, False)
    ),
    "failure-threshold": _Probes(
        {"failureThreshold": 1}, [(0, {"/ping": 200}), (6, {"/ping": 503})], (False, True),
        (False, False),
    ),
}  # fmt: skip


@pytest.mark.effect(
    "Deployment",
    "spec.health.path",
    "spec.health.initialDelay",
    "spec.health.timeout",
    "spec.health.period",
    "spec.health.failureThreshold",
)
@pytest.mark.parametrize("case", HEALTH.values(), ids=HEALTH.keys())
def test_a_replicas_probe_follows_the_specs_health_block(
    tmp_path: Path, health_server: _HealthServer, case: _Probes
) -> None:
    got = [
        _probed(tmp_path, health_server, {**case.base, **health}, case.steps)
        for health in (case.health, {})
    ]
    assert got == [case.with_field, case.without]


def _probed(
    tmp: Path, server: _HealthServer, health: dict[str, object], steps: list[Step]
) -> tuple[bool, bool]:
    template = _desired(tmp, health=health).template()
    process = subprocess.Popen(["sleep", "60"])  # alive throughout: only probes fail
    replica = replicas.Replica(template, server.server_port, process, tmp / "log", 1000.0)
    try:
        for seconds, codes in steps:
            server.codes = codes
            replica.probe(1000.0 + seconds)
        return replica.ready, replica.failed
    finally:
        process.kill()
        process.wait()


# -- rollouts -----------------------------------------------------------------------------


@dataclass(eq=False)
class _Sim:
    """A simulated replica: ready when the test marks it, no process."""

    template: replicas.Template
    port: int
    ready: bool = False
    failed: bool = False
    stopped: bool = False
    backend: Backend = field(init=False)

    def __post_init__(self) -> None:
        self.backend = Backend(self.port)

    def probe(self, now: float) -> None:
        del now

    def tail(self, lines: int = 12) -> str:
        del lines
        return "simulated"

    def stop(self) -> None:
        self.stopped = True


@pytest.fixture
def simulated(monkeypatch: pytest.MonkeyPatch) -> list[_Sim]:
    """Every replica the supervisor starts, simulated."""
    started: list[_Sim] = []

    def start(template: replicas.Template, logs: Path) -> _Sim:
        del logs
        started.append(_Sim(template, 40000 + len(started)))
        return started[-1]

    def stop_all(stopped: list[_Sim]) -> None:
        for replica in stopped:
            replica.stop()

    monkeypatch.setattr(replicas, "start", start)
    monkeypatch.setattr(replicas, "stop_all", stop_all)
    return started


def _serving(tmp: Path, simulated: list[_Sim], **spec: object) -> endpoint.Supervisor:
    """A supervisor serving version 1 of ``spec`` on three ready replicas."""
    supervisor = endpoint.Supervisor(
        tmp, _desired(tmp, port=replicas.free_port(), replicas=3, **spec)
    )
    for now in (0.0, 1.0):
        supervisor.tick(now)
        for replica in simulated:
            replica.ready = True
    assert supervisor.served_version() == "1"
    return supervisor


Trace = list[tuple[int, int]]
"""Per tick of a rollout: replicas running (not drained), replicas taking traffic."""


def _roll(supervisor: endpoint.Supervisor, simulated: list[_Sim], **spec: object) -> Trace:
    """Roll to version 2, each started replica ready by the next tick, until it serves."""
    supervisor.desired = _desired(supervisor.dir, "2", supervisor.desired.port, replicas=3, **spec)
    trace: Trace = []
    for now in range(2, 40):
        supervisor.tick(float(now))
        trace.append((len(supervisor.replicas), len(supervisor.pool.members())))
        if supervisor.served_version() == "2":
            return trace
        for replica in simulated:
            replica.ready = not replica.stopped
    raise AssertionError(f"the rollout never finished: {trace}")


ROLLOUTS = {
    "default": ({}, ((4, 3), 4, 3)),
    "max-surge": ({"maxSurge": 2}, ((5, 3), 5, 3)),
    "max-unavailable": ({"maxUnavailable": 1}, ((3, 2), 3, 2)),
    "no-surge": ({"maxSurge": 0, "maxUnavailable": 1}, ((2, 2), 3, 2)),
    "recreate": ({"strategy": "recreate"}, ((1, 0), 3, 0)),
}
"""The rollout block, and: the first tick, the most replicas running, the fewest ready."""


@pytest.mark.effect(
    "Deployment", "spec.rollout.strategy", "spec.rollout.maxSurge", "spec.rollout.maxUnavailable"
)
@pytest.mark.parametrize(("rollout", "expected"), ROLLOUTS.values(), ids=ROLLOUTS.keys())
def test_a_rollout_replaces_replicas_as_its_fields_say(
    tmp_path: Path,
    simulated: list[_Sim],
    rollout: dict[str, object],
    expected: tuple[tuple[int, int], int, int],
) -> None:
    """Three replicas: never more running than 3 + maxSurge, never fewer ready than
    3 - maxUnavailable; recreate stops every old replica before a new one starts."""
    supervisor = _serving(tmp_path, simulated, rollout=rollout)
    try:
        trace = _roll(supervisor, simulated, rollout=rollout)
    finally:
        supervisor.proxy.server_close()
    most_running = max(running for running, _ in trace)
    assert (trace[0], most_running, min(ready for _, ready in trace)) == expected
    assert [r.template.version for r in supervisor.replicas] == ["2", "2", "2"]


def test_a_rollout_that_could_never_replace_a_replica_is_invalid() -> None:
    """As Kubernetes refuses it: with neither room to surge nor to be unavailable."""
    text = (
        b"apiVersion: gitplane.dev/v1alpha1\nkind: Deployment\nmetadata: {name: d}\n"
        b"spec:\n  model: {name: m}\n  planeSelector: {}\n"
        b"  rollout: {maxSurge: 0, maxUnavailable: 0}\n"
    )
    parsed = parse.parse_spec("d.yaml", text)
    assert parsed.document is None
    assert [str(p) for p in parsed.problems] == [
        "d.yaml:7:3: spec.rollout: maxSurge and maxUnavailable must not both be 0: "
        "no replica could be replaced"
    ]


@pytest.mark.effect("Deployment", "spec.rollout.progressDeadline")
@pytest.mark.parametrize(
    ("rollout", "phase"),
    [({"progressDeadline": "30s"}, "Failed"), ({}, "Progressing")],
    ids=["deadline-passed", "default-10m"],
)
def test_a_version_not_ready_by_the_progress_deadline_is_rolled_back(
    tmp_path: Path, simulated: list[_Sim], rollout: dict[str, object], phase: str
) -> None:
    supervisor = _serving(tmp_path, simulated, rollout=rollout)
    try:
        supervisor.desired = _desired(
            tmp_path, "2", supervisor.desired.port, replicas=3, rollout=rollout
        )
        supervisor.tick(2.0)  # a new replica starts, and never becomes ready
        supervisor.tick(40.0)
    finally:
        supervisor.proxy.server_close()
    status = json.loads((tmp_path / "status.json").read_bytes())
    assert (status["phase"], status["servedVersion"], status["readyReplicas"]) == (phase, "1", 3)
    if phase == "Failed":
        assert status["message"] == (
            "version 2 failed: not ready within the progress deadline (30s); "
            "rolled back, still serving 1"
        )
        assert all(r.stopped for r in simulated if r.template.version == "2")
