"""``gitplane reconcile --watch``: run cycles on every trigger until stopped.

Triggers, cheapest first: file watching of a repository on local disk
(watchfiles on its refs: a commit is seen within a second), a verified
webhook, and polling every interval with one ``ls-remote`` per repository
that only starts a cycle when a ref moved. A failed cycle is logged,
counted and retried on the next trigger with backoff; SIGTERM and Ctrl-C
stop the loop between cycles.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from http.server import ThreadingHTTPServer

from ledger import refwatch
from reconciler import notify, server
from reconciler import reconcile as reconciling
from schemas.common import parse_duration, parse_listen
from schemas.errors import GitplaneError, UsageError

log = logging.getLogger("gitplane.reconciler")


@dataclass(frozen=True)
class WatchSettings:
    """How often to poll, and where to serve metrics and the webhook."""

    interval: float = 30.0
    host: str | None = None
    port: int = 0
    max_backoff: float = 300.0

    @classmethod
    def parse(cls, interval: str, listen: str | None) -> WatchSettings:
        """From ``--interval 30s`` and ``--listen host:port``."""
        try:
            seconds = parse_duration(interval)
        except ValueError as exc:
            raise UsageError(f"--interval {exc}") from None
        if not MIN_INTERVAL <= seconds <= MAX_INTERVAL:
            raise UsageError(f"--interval {interval}: expected between 1s and 7d")
        if listen is None:
            return cls(seconds)
        try:
            host, port = parse_listen(listen)
        except ValueError as exc:
            raise UsageError(f"--listen {exc}") from None
        return cls(seconds, host, port)


MIN_INTERVAL = 1.0
"""Seconds: a shorter poll is a busy loop against the git server (0s was taken)."""
MAX_INTERVAL = 7 * 24 * 3600.0
"""Seconds (a week): a longer wait is a mistake, and past ~10**9 one no timer takes."""


class Watcher:
    """The loop, its triggers and its endpoint."""

    def __init__(
        self,
        reconciler: reconciling.Reconciler,
        settings: WatchSettings,
        *,
        clock: Callable[[], datetime],
        destinations: list[notify.Destination] | None = None,
    ) -> None:
        self.reconciler = reconciler
        self.settings = settings
        self.clock = clock
        self.wake = threading.Event()
        self.stop = threading.Event()
        self.metrics = server.Metrics()
        self.health = server.Health()
        self.notifier = self._notifier(destinations or [])
        self._heads: dict[str, str] = {}

    def run(self) -> None:
        """Cycle until stopped."""
        endpoint = self._serve()
        watcher = self._watch_local()
        failures = 0
        try:
            while not self.stop.is_set():
                failures = 0 if self._cycle() else failures + 1
                self._sleep(self._delay(failures))
        finally:
            self.stop.set()
            if self.notifier is not None:
                self.notifier.close(timeout=notify.DRAIN_TIMEOUT)
            if endpoint is not None:
                endpoint.shutdown()
                endpoint.server_close()
            if watcher is not None:
                watcher.join(timeout=2)

    def _cycle(self) -> bool:
        started, now = time.monotonic(), self.clock()
        try:
            cycle = self.reconciler.reconcile(now)
        except GitplaneError as exc:
            self._failed(type(exc).__name__, str(exc))
            return False
        self.metrics.duration.observe(time.monotonic() - started)
        self.metrics.flagged.set(len(cycle.flags))
        for alarm in cycle.alarms:
            _log("alarm", level=logging.WARNING, alarm=alarm)
        for plane, head in cycle.issued.items():
            count = _commands_in(cycle, plane)
            self.metrics.issued.labels(plane=plane).inc(count)
            _log("issued", plane=plane, sequence=head.sequence, commands=count)
        if self.notifier is not None:
            self.notifier.observe(cycle, self.reconciler.recorded.folded)
        if cycle.problems:
            self._failed("invalid_specs", f"{len(cycle.problems)} problem(s) at {cycle.commit}")
            return True  # nothing to retry: the next commit fixes it
        self.metrics.last_success.set(now.timestamp())
        self.health.set(True, commit=cycle.commit, flags=cycle.flags, alarms=cycle.alarms)
        return True

    def _notifier(self, destinations: list[notify.Destination]) -> notify.Notifier | None:
        """Deliveries counted in ``gitplane_notifications_total``; None without targets."""
        if not destinations:
            return None

        def count(target: str, outcome: str) -> None:
            self.metrics.notifications.labels(target=target, outcome=outcome).inc()

        sender = notify.Sender(outcome=count)
        return notify.Notifier(destinations, self.reconciler.settings.work_dir, sender)

    def _failed(self, reason: str, message: str) -> None:
        self.metrics.errors.labels(reason=reason).inc()
        self.health.set(False, error=message)
        _log("cycle failed", level=logging.ERROR, reason=reason, error=message)

    def _delay(self, failures: int) -> float:
        if failures == 0:
            return self.settings.interval
        return min(self.settings.max_backoff, 2.0**failures)

    def _sleep(self, seconds: float) -> None:
        """Wait for a trigger, the interval, or a moved ref found by a cheap poll."""
        deadline = time.monotonic() + seconds
        while not self.stop.is_set():
            remaining = deadline - time.monotonic()
            if self.wake.wait(timeout=max(0.0, min(remaining, seconds))):
                self.wake.clear()
                return
            if remaining <= 0 or self._refs_moved():
                return

    def _refs_moved(self) -> bool:
        with contextlib.suppress(GitplaneError):
            heads = {
                **self.reconciler.specs.remote_heads(self.reconciler.branch_ref),
                **self.reconciler.state.remote_heads("refs/heads/gitplane/status/*"),
            }
            moved = heads != self._heads
            self._heads = heads
            return moved
        return False

    def _serve(self) -> ThreadingHTTPServer | None:
        if self.settings.host is None:
            return None
        secret = os.environ.get("GITPLANE_WEBHOOK_SECRET")
        return server.serve(
            self.settings.host,
            self.settings.port,
            metrics=self.metrics,
            health=self.health,
            secret=secret,
            trigger=self.wake.set,
        )

    def _watch_local(self) -> threading.Thread | None:
        settings = self.reconciler.settings
        return refwatch.start([settings.repo, settings.state_repo], self.stop, self.wake.set)


def _commands_in(cycle: reconciling.Cycle, plane: str) -> int:
    if cycle.plan is None:
        return 0
    return sum(len(p.commands) for p in cycle.plan.planes if p.plane == plane)


def _log(message: str, *, level: int = logging.INFO, **fields: object) -> None:
    log.log(level, message, extra={"fields": fields})


def run(
    reconciler: reconciling.Reconciler,
    settings: WatchSettings,
    *,
    clock: Callable[[], datetime],
    destinations: list[notify.Destination] | None = None,
) -> None:
    """Run the watch loop in this thread until SIGTERM or Ctrl-C; ``clock`` gives each
    cycle its ``now``; state changes go to ``destinations``."""
    watcher = Watcher(reconciler, settings, clock=clock, destinations=destinations)

    def stop(signum: int, _frame: object) -> None:
        _log("stopping", signal=signal.Signals(signum).name)
        watcher.stop.set()
        watcher.wake.set()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    _log(
        "watching",
        repo=reconciler.settings.repo,
        branch=reconciler.settings.branch,
        interval=settings.interval,
    )
    watcher.run()
