"""The supervisor of one local endpoint: ``python -m agent.runtimes.local.serving.endpoint DIR``.

It owns everything a ``Deployment`` runs on the local plane, as a kubelet
and a Deployment controller would: the front proxy on the endpoint's port,
the replica processes behind it, rolling updates, restarts and autoscaling.
The agent talks to it through two files in ``DIR``:

* ``desired.json`` — written by the agent (``serving.py``); re-read when it
  changes; removing it stops the endpoint;
* ``status.json`` — written here whenever what it reports changes.

An exclusive lock on ``DIR/lock`` makes sure one supervisor runs per
endpoint; SIGTERM stops the proxy and every replica.
"""

from __future__ import annotations

import fcntl
import json
import os
import signal
import sys
import threading
import time
from pathlib import Path
from types import FrameType

from agent.runtimes.local.serving import autoscale, replicas
from agent.runtimes.local.serving.desired import Desired, load_desired
from agent.runtimes.local.serving.proxy import Meter, Pool, Proxy
from schemas import files

TICK_SECONDS = 0.2
DRAIN_SECONDS = 30.0
EVENTS_KEPT = 10
METRICS_SECONDS = 1.0
METRICS_WINDOW = 60.0


class Supervisor:
    """Keeps one endpoint's replicas matching ``desired.json``."""

    def __init__(self, directory: Path, desired: Desired) -> None:
        self.dir, self.desired = directory, desired
        self.pool, self.meter = Pool(), Meter(desired.name)
        self.proxy = Proxy(desired.port, self.pool, self.meter, desired.request_timeout)
        self.proxy.max_batch_size = desired.max_batch_size
        self.replicas: list[replicas.Replica] = []
        self.standby: list[replicas.Replica] = []
        """Started and healthy but outside the pool: a scale-up takes one at once."""
        self.draining: list[tuple[replicas.Replica, float]] = []
        self.serving: replicas.Template | None = None
        self.served_command = ""
        self.rollout_started = 0.0
        self.failed: set[tuple[str, str]] = set()
        self.count = desired.initial_replicas(None)
        self.history: list[autoscale.Recommendation] = []
        self.events: list[dict[str, object]] = []
        self.last_event: float | None = None
        self.next_scale = 0.0
        self.next_metrics = 0.0
        self.restarts, self.message, self.failure = 0, "", ""
        self.written = b""
        self.stopping = threading.Event()

    def run(self) -> None:
        """Serve until SIGTERM or until ``desired.json`` is removed."""
        threading.Thread(target=self.proxy.serve_forever, daemon=True).start()
        try:
            while not self.stopping.is_set() and self._reload():
                self.tick(time.monotonic())
                self.stopping.wait(TICK_SECONDS)
        finally:
            self.shutdown()

    def tick(self, now: float) -> None:
        """One control step."""
        for replica in self.replicas + self.standby:
            replica.probe(now)
        target = self.desired.template()
        if self._rolling(target):
            self._roll(target, now)
        else:
            self._heal(now)
        self._autoscale(now)
        ready = [r for r in self.replicas if r.ready and not r.failed]
        self.pool.replace([r.backend for r in ready])
        self._drain(now)  # after the pool let go of them: no request reaches a stopped one
        self.meter.replicas.set(len(ready))
        self._write_status(target, len(ready))
        self._write_metrics(now)

    def shutdown(self) -> None:
        """Stop taking requests, then stop every replica."""
        self.proxy.shutdown()
        self.proxy.server_close()
        replicas.stop_all(self.replicas + self.standby + [r for r, _ in self.draining])
        self.replicas, self.standby, self.draining = [], [], []

    def _reload(self) -> bool:
        """Pick up a changed ``desired.json``; False once it is gone."""
        try:
            desired = load_desired(self.dir)
        except FileNotFoundError:
            return False
        if desired != self.desired:
            self.count = desired.initial_replicas(
                self.count if desired.scales_like(self.desired) else None
            )
            self.desired = desired
            self.proxy.max_batch_size = desired.max_batch_size
            self.proxy.upstream_timeout = desired.request_timeout
        return True

    # -- rollouts -----------------------------------------------------------------------

    def _rolling(self, target: replicas.Template) -> bool:
        key = (target.revision, self.desired.attempt)
        if key in self.failed:
            return False
        if self.serving is None or self.serving.revision != target.revision:
            return True
        self.served_command = self.desired.command
        return False

    def _roll(self, target: replicas.Template, now: float) -> None:
        replicas.stop_all(self.standby)  # warm for the old template: useless now
        self.standby = []
        new = [r for r in self.replicas if r.template.revision == target.revision]
        old = [r for r in self.replicas if r.template.revision != target.revision]
        if not self.rollout_started:
            self.rollout_started = now
        broken = next((r for r in new if r.failed), None)
        if broken is not None or now - self.rollout_started > self.desired.progress_deadline:
            self._roll_back(target, new, broken)
            return
        if self.desired.strategy == "recreate":
            self._retire(old, len(old))
            old = []
        self._surge(target, new, old)
        ready_new = sum(1 for r in new if r.ready)
        self._retire(old, ready_new + len(old) + self.desired.max_unavailable - self.count)
        if not old and ready_new >= self.count:
            self.serving, self.served_command = target, self.desired.command
            self.rollout_started, self.failure = 0.0, ""
            self.message = f"serving version {self.desired.version}"

    def _surge(
        self, target: replicas.Template, new: list[replicas.Replica], old: list[replicas.Replica]
    ) -> None:
        surge = self.desired.max_surge  # 0: only into the room maxUnavailable retired
        starting = sum(1 for r in new if not r.ready)
        room = self.count + surge - len(new) - len(old)
        wanted = min(self.count - len(new), max(surge, 1) - starting, room)
        if self.serving is None:
            wanted = self.count - len(new)  # first rollout: nothing to protect
        for _ in range(max(0, wanted)):
            self.replicas.append(replicas.start(target, self.dir / "logs"))

    def _retire(self, old: list[replicas.Replica], how_many: int) -> None:
        for replica in sorted(old, key=lambda r: r.ready)[: max(0, how_many)]:
            self._drain_later(replica)

    def _roll_back(
        self,
        target: replicas.Template,
        new: list[replicas.Replica],
        broken: replicas.Replica | None,
    ) -> None:
        why = (
            f"a new replica failed its health checks:\n{broken.tail()}"
            if broken is not None
            else f"not ready within the progress deadline ({self.desired.progress_deadline:.0f}s)"
        )
        for replica in new:
            self.replicas.remove(replica)
            replica.stop()
        self.failed.add((target.revision, self.desired.attempt))
        self.rollout_started = 0.0
        back = f"; rolled back, still serving {self.served_version()}" if self.serving else ""
        self.failure = f"version {self.desired.version} failed: {why}{back}"[-4000:]

    def served_version(self) -> str:
        """The model version the stable replicas serve."""
        return self.serving.version if self.serving else ""

    # -- steady state -------------------------------------------------------------------

    def _heal(self, now: float) -> None:
        """Replace dead replicas and match the replica count."""
        if self.serving is None:
            return
        for replica in [r for r in self.replicas if r.failed]:
            self.replicas.remove(replica)
            replica.stop()
            self.restarts += 1
            self.message = f"restarted a replica that failed:\n{replica.tail(5)}"
        missing = self.count - len(self.replicas)
        for _ in range(max(0, missing)):
            warm = next((r for r in self.standby if r.ready), None)
            if warm is not None:
                self.standby.remove(warm)
            self.replicas.append(warm or replicas.start(self.serving, self.dir / "logs"))
        extra = sorted(self.replicas, key=lambda r: r.ready)[: max(0, -missing)]
        for replica in extra:
            self._drain_later(replica)
        self._keep_standby(self.serving)
        del now

    def _keep_standby(self, serving: replicas.Template) -> None:
        """Keep ``desired.standby`` warm replicas of the serving template once every serving
        replica is ready (they would only slow a start-up down)."""
        for replica in [r for r in self.standby if r.failed or r.template != serving]:
            self.standby.remove(replica)
            replica.stop()
        if len(self.standby) >= self.desired.standby or not all(r.ready for r in self.replicas):
            return
        self.standby.append(replicas.start(serving, self.dir / "logs"))

    def _drain_later(self, replica: replicas.Replica) -> None:
        self.replicas.remove(replica)
        replica.ready = False
        self.draining.append((replica, time.monotonic() + DRAIN_SECONDS))

    def _drain(self, now: float) -> None:
        """Stop drained replicas once their last request finished."""
        for replica, deadline in list(self.draining):
            if replica.backend.in_flight <= 0 or now > deadline:
                self.draining.remove((replica, deadline))
                replica.stop()

    # -- autoscaling --------------------------------------------------------------------

    def _autoscale(self, now: float) -> None:
        policy = self.desired.autoscaling
        if policy is None or now < self.next_scale:
            return
        self.next_scale = now + policy.interval
        sample = self.meter.window(policy.interval)
        self.history.append(autoscale.recommend(policy, sample, self.count, now))
        autoscale.prune(self.history, policy, now)
        event = autoscale.decide(policy, self.history, self.count, now, self.last_event)
        if event is None:
            return
        self.events = [*self.events, _event(self.count, event, sample)][-EVENTS_KEPT:]
        self.count, self.last_event = event.replicas, now

    # -- status -------------------------------------------------------------------------

    def _write_status(self, target: replicas.Template, ready: int) -> None:
        body = {
            "command": self.served_command,
            "desiredCommand": self.desired.command,
            "phase": self._phase(target, ready),
            "message": self.failure or self.message,
            "url": f"http://127.0.0.1:{self.desired.port}",
            "servedVersion": self.served_version(),
            "readyReplicas": ready,
            "desiredReplicas": self.count,
            "restarts": self.restarts,
            "events": self.events,
            "replicaPorts": sorted(r.port for r in self.replicas),
            "standbyPorts": sorted(r.port for r in self.standby),
        }
        data = json.dumps(body, sort_keys=True, indent=1).encode()
        if data != self.written:
            files.atomic_write(self.dir / "status.json", data)
            self.written = data

    def _write_metrics(self, now: float) -> None:
        """The last minute's traffic, for status (``metrics.json``, once a second)."""
        if now < self.next_metrics:
            return
        self.next_metrics = now + METRICS_SECONDS
        sample = self.meter.window(METRICS_WINDOW)
        body: dict[str, float | int] = {
            "rps": round(sample.rps, 2),
            "errorRate": round(sample.error_rate or 0.0, 4),
            "inFlight": sum(b.in_flight for b in self.pool.members()),
        }
        body |= {f"{k}Ms": round(v, 1) for k, v in self.meter.percentiles(METRICS_WINDOW).items()}
        files.atomic_write(self.dir / "metrics.json", json.dumps(body, sort_keys=True).encode())

    def _phase(self, target: replicas.Template, ready: int) -> str:
        if (target.revision, self.desired.attempt) in self.failed:
            return "Failed"
        if self._rolling(target) or ready < self.count:
            return "Progressing"
        return "Ready"


def _event(
    current: int, event: autoscale.Recommendation, sample: autoscale.Sample
) -> dict[str, object]:
    return {
        "at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "from": current,
        "to": event.replicas,
        "reason": event.reason,
        "rps": round(sample.rps, 1),
        "p95Ms": round(sample.p95_ms or 0.0, 1),
    }


def main(argv: list[str]) -> int:
    """Run the supervisor of the endpoint in ``argv[-1]``; exit 0 if one already runs.

    With ``--detach`` it daemonises first (the caller's process returns at once and never
    has to reap it), logging to ``DIR/supervisor.log``.
    """
    directory = Path(argv[-1])
    if argv[0] == "--detach" and not _detach(directory / "supervisor.log"):
        return 0
    with (directory / "lock").open("w") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return 0
        (directory / "supervisor.pid").write_text(str(os.getpid()))
        supervisor = Supervisor(directory, load_desired(directory))

        def stop(signum: int, frame: FrameType | None) -> None:
            del signum, frame
            supervisor.stopping.set()

        signal.signal(signal.SIGTERM, stop)
        signal.signal(signal.SIGINT, stop)
        supervisor.run()
    return 0


def _detach(log: Path) -> bool:
    """Fork into a new session; True in the child that goes on, False in the parent."""
    if os.fork():
        return False
    os.setsid()
    fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    os.close(fd)
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    os.close(null)
    return True


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
