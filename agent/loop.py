"""``gitplane agent run`` as a daemon: poll, watch, observe, report, until SIGTERM.

* Every ``pollInterval`` (at once when the remote is a repository on local
  disk and one of its refs moved): fetch, verify and apply new commands.
  An apply runs on a worker thread (a model build, a DAG run): the cycle
  after it finishes records it and applies what follows.
* Every second in between: observe what runs (replicas, scaling events,
  drift, due schedules) and report only when something changed.
* On SIGTERM: an apply in progress is stopped (its MLflow runs killed) and
  applied again at the next start.
* Prometheus metrics on ``--listen host:port`` (any path, ``/metrics`` by
  convention); one log line per cycle (see ``cli.logs`` for its formats).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

from prometheus_client import CollectorRegistry, Counter, Gauge, start_http_server

from agent.agent import Agent, Outcome
from ledger import refwatch
from schemas.common import parse_listen
from schemas.errors import UsageError

OBSERVE_SECONDS = 1.0
log = logging.getLogger("gitplane.agent")


@dataclass
class Metrics:
    """The agent's Prometheus metrics, in their own registry."""

    registry: CollectorRegistry = field(default_factory=CollectorRegistry)

    def __post_init__(self) -> None:
        r = self.registry
        self.cycles = Counter("gitplane_agent_cycles", "Fetch-verify-apply cycles", registry=r)
        self.applied = Counter(
            "gitplane_agent_commands_applied", "Commands applied, by kind", ["kind"], registry=r
        )
        self.refused = Counter(
            "gitplane_agent_verification_failures",
            "Command logs refused, by attack code",
            ["code"],
            registry=r,
        )
        self.unreachable = Gauge(
            "gitplane_agent_git_unreachable", "1 while the git remote cannot be reached", registry=r
        )
        self.reports = Counter("gitplane_agent_status_reports", "Status commits", registry=r)
        self.last_cycle = Gauge(
            "gitplane_agent_last_cycle_timestamp_seconds", "When the last cycle ended", registry=r
        )
        self.in_progress = Gauge(
            "gitplane_agent_apply_in_progress",
            "1 while an apply runs on the worker thread (a build, a DAG run)",
            registry=r,
        )

    def record(self, outcome: Outcome, now: datetime) -> None:
        """Count one cycle, which started at ``now``."""
        self.cycles.inc()
        for command in outcome.applied:
            self.applied.labels(kind=command.kind).inc()
        if outcome.error is not None:
            self.refused.labels(code=outcome.error.code).inc()
        self.unreachable.set(1 if outcome.unreachable else 0)
        if outcome.reported:
            self.reports.inc()
        self.in_progress.set(1 if outcome.in_progress else 0)
        self.last_cycle.set(now.timestamp())


def serve_metrics(metrics: Metrics, listen: str) -> None:
    """Expose ``metrics`` on ``host:port``."""
    try:
        host, port = parse_listen(listen)
    except ValueError as exc:
        raise UsageError(f"--listen {exc}") from None
    try:
        start_http_server(port, addr=host, registry=metrics.registry)
    except OSError as exc:
        raise UsageError(f"--listen {listen}: {exc.strerror}") from None


def run(
    worker: Agent,
    stop: threading.Event,
    metrics: Metrics,
    *,
    clock: Callable[[], datetime],
) -> None:
    """Cycle until ``stop`` is set."""
    wake = threading.Event()
    refwatch.start([worker.config.repo], stop, wake.set)
    next_poll = 0.0
    while not stop.is_set():
        if time.monotonic() >= next_poll or wake.is_set() or worker.landed:
            wake.clear()
            now = clock()
            outcome = worker.run_once(now, wait=False)
            metrics.record(outcome, now)
            log_cycle(worker.config.plane, outcome)
            next_poll = time.monotonic() + worker.config.poll_seconds
        elif worker.observe_only(clock()):
            metrics.reports.inc()
            _log("reported a change", plane=worker.config.plane)
        _sleep(wake, stop, min(OBSERVE_SECONDS, max(0.0, next_poll - time.monotonic())))
    abandoned = worker.abandon()
    _log("stopping", plane=worker.config.plane, abandoned=abandoned)


def _sleep(wake: threading.Event, stop: threading.Event, seconds: float) -> None:
    """Until ``seconds`` pass, a ref moves, or a stop is asked for."""
    deadline = time.monotonic() + seconds
    while not stop.is_set() and not wake.is_set() and time.monotonic() < deadline:
        wake.wait(min(0.1, max(0.0, deadline - time.monotonic())))


def log_cycle(plane: str, outcome: Outcome) -> None:
    """One line for a cycle: what it applied, and why it failed if it did (a warning)."""
    failed = outcome.error is not None or outcome.unreachable is not None
    _log(
        "cycle done",
        level=logging.WARNING if failed else logging.INFO,
        plane=plane,
        applied=[f"{c.kind}/{c.name}" for c in outcome.applied],
        error=outcome.error.code if outcome.error else None,
        unreachable=outcome.unreachable,
        reported=outcome.reported,
        in_progress=outcome.in_progress,
        **({"misconfigured": outcome.misconfigured} if outcome.misconfigured else {}),
    )


def _log(message: str, *, level: int = logging.INFO, **fields: object) -> None:
    log.log(level, message, extra={"fields": fields})
