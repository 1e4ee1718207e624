"""Replica processes of a local endpoint: MLflow's scoring server, started, probed, stopped.

A replica is *starting* until its health path first answers 200 (probed on
every supervisor tick until then, so it takes traffic as soon as it can), *ready*
while it keeps answering, and *failed* when its process exits or it fails
``failureThreshold`` probes in a row after having answered (a server still
importing MLflow refuses connections: that is starting, not failing; the
rollout's progress deadline bounds how long starting may take).
"""

from __future__ import annotations

import contextlib
import http.client
import os
import signal
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

from agent.runtimes.local import _mlflow
from agent.runtimes.local.limits import Limits
from agent.runtimes.local.serving.proxy import Backend

STOP_GRACE_SECONDS = 5.0


@dataclass(frozen=True)
class Template:
    """What every replica of one revision runs."""

    revision: str
    version: str
    model_dir: Path
    python: str
    """The interpreter that runs the scoring server: the agent's, or the model's own
    environment's."""
    workers: int
    request_timeout: float
    env: dict[str, str]
    memory: int | None
    cpus: int | None
    health_path: str
    initial_delay: float
    period: float
    probe_timeout: float
    failure_threshold: int


@dataclass(eq=False)
class Replica:
    """One scoring-server process."""

    template: Template
    port: int
    process: subprocess.Popen[bytes]
    log: Path
    started: float
    ready: bool = False
    answered: bool = False
    failures: int = 0
    next_probe: float = 0.0
    backend: Backend = field(init=False)

    def __post_init__(self) -> None:
        self.backend = Backend(self.port)
        self.next_probe = self.started + self.template.initial_delay

    @property
    def failed(self) -> bool:
        """Exited, or stopped answering its health checks."""
        return self.process.poll() is not None or self.failures >= self.template.failure_threshold

    def probe(self, now: float) -> None:
        """Run the health check if one is due."""
        if now < self.next_probe or self.process.poll() is not None:
            return
        code = _get(self.port, self.template.health_path, self.template.probe_timeout)
        # a starting replica is probed every tick, so it takes traffic as soon as it can
        self.next_probe = now + (self.template.period if code == 200 or self.answered else 0.0)
        if code == 200:
            self.ready = self.answered = True
            self.failures = 0
        elif code is not None or self.answered:
            self.ready = False
            self.failures += 1

    def tail(self, lines: int = 12) -> str:
        """The end of the replica's log, for failure messages."""
        try:
            text = self.log.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.strip().splitlines()[-lines:])

    def stop(self) -> None:
        """SIGTERM the process group, SIGKILL after a grace period."""
        stop_all([self])


def stop_all(replicas: list[Replica]) -> None:
    """Stop replicas together: SIGTERM to all, then SIGKILL whatever outlives the grace period."""
    for replica in replicas:
        replica.backend.close()
        _signal(replica.process, signal.SIGTERM)
    deadline = time.monotonic() + STOP_GRACE_SECONDS
    for replica in replicas:
        try:
            replica.process.wait(max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            _signal(replica.process, signal.SIGKILL)
            replica.process.wait()


def start(template: Template, logs: Path) -> Replica:
    """Start a replica of ``template`` on a free loopback port."""
    port = free_port()
    command, env = _mlflow.scoring_server(
        template.model_dir,
        port=port,
        workers=template.workers,
        timeout=template.request_timeout,
        python=template.python,
    )
    logs.mkdir(parents=True, exist_ok=True)
    log = logs / f"replica-{port}.log"
    held = Limits(template.memory, template.cpus)
    with log.open("wb") as out:
        process = subprocess.Popen(
            held.command(command),
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            env={**env, **held.env(), **template.env},
            cwd=template.model_dir,
            start_new_session=True,
        )
    return Replica(template, port, process, log, time.monotonic())


def free_port() -> int:
    """A loopback port nobody listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def is_bindable(port: int) -> bool:
    """Whether ``port`` is free on loopback."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def _get(port: int, path: str, timeout: float) -> int | None:
    """The status code of ``GET path``, or None when nothing answered."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request("GET", path)
        return conn.getresponse().status
    except OSError:
        return None
    finally:
        conn.close()


def _signal(process: subprocess.Popen[bytes], signum: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signum)
