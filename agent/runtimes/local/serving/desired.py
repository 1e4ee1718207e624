"""``desired.json``: what the agent asks of an endpoint supervisor, in resolved form.

The agent derives it from a verified ``Deployment`` command (``build``); the
supervisor reads it (``load_desired``). Durations are seconds, the model is
a verified local directory.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass
from pathlib import Path

from agent.runtimes.local import limits
from agent.runtimes.local.serving.autoscale import Policy
from agent.runtimes.local.serving.replicas import Template
from schemas.common import parse_duration
from schemas.deployment import DeploymentSpec


@dataclass(frozen=True)
class Desired:
    """One endpoint's resolved desired state."""

    name: str
    command: str
    """Digest of the command this came from."""
    attempt: str
    """Changes on every apply, so a retried command retries a failed rollout."""
    port: int
    version: str
    model_dir: str
    python: str
    """The interpreter replicas run: the agent's own, or the one of an environment made from
    the model's logged requirements (see ``serving.serving_manager``)."""
    # Every value below comes from the Deployment spec, its defaults applied by the schema
    # (``build``): none is restated here. A desired.json missing one is unreadable, which
    # the agent treats as drift and writes again.
    workers: int
    request_timeout: float
    max_batch_size: int | None
    """Rows one request may carry; the proxy refuses more (400) before a replica sees it."""
    env: dict[str, str]
    memory: int | None
    """Bytes each replica process may hold (``resources.memory``; ``limits``)."""
    cpus: int | None
    """Whole CPUs each replica may run on (``resources.cpu``, rounded up)."""
    health_path: str
    initial_delay: float
    period: float
    probe_timeout: float
    failure_threshold: int
    strategy: str
    max_surge: int
    max_unavailable: int
    progress_deadline: float
    replicas: int | None
    autoscaling: Policy | None
    standby: int
    """Warm replicas kept outside the pool for fast scale-ups (the agent's
    ``runtime.standbyReplicas``)."""

    def template(self) -> Template:
        """What each replica runs; its revision changes only when a replica would differ."""
        template = Template(
            revision="",
            version=self.version,
            model_dir=Path(self.model_dir),
            python=self.python,
            workers=self.workers,
            request_timeout=self.request_timeout,
            env=dict(self.env),
            memory=self.memory,
            cpus=self.cpus,
            health_path=self.health_path,
            initial_delay=self.initial_delay,
            period=self.period,
            probe_timeout=self.probe_timeout,
            failure_threshold=self.failure_threshold,
        )
        text = json.dumps(asdict(template), sort_keys=True, default=str)
        return Template(**{**asdict(template), "revision": _short_hash(text)})

    def initial_replicas(self, current: int | None) -> int:
        """The replica count to aim for: fixed, or the autoscaler's, kept within bounds."""
        if self.autoscaling is None:
            return self.replicas if self.replicas is not None else 1
        low, high = self.autoscaling.min_replicas, self.autoscaling.max_replicas
        return max(low, min(high, current if current is not None else low))

    def scales_like(self, other: Desired) -> bool:
        """Whether the autoscaler's current count carries over from ``other``."""
        return self.autoscaling is not None and other.autoscaling is not None


def build(
    name: str,
    spec: DeploymentSpec,
    *,
    command: str,
    attempt: str,
    port: int,
    version: str,
    model_dir: Path,
    python: str,
    standby: int = 0,
) -> Desired:
    """Resolve a Deployment spec into what the supervisor runs."""
    policy = None
    held = limits.of(spec.resources)
    if spec.autoscaling is not None:
        scaling = spec.autoscaling
        policy = Policy(
            min_replicas=scaling.min_replicas,
            max_replicas=scaling.max_replicas,
            rps_per_replica=scaling.targets.rps_per_replica,
            p95_latency_ms=scaling.targets.p95_latency_ms,
            error_rate=scaling.targets.error_rate,
            interval=parse_duration(scaling.polling_interval),
            up_window=parse_duration(scaling.scale_up_stabilization),
            down_window=parse_duration(scaling.scale_down_stabilization),
            cooldown=parse_duration(scaling.cooldown),
        )
    return Desired(
        name=name,
        command=command,
        attempt=attempt,
        port=port,
        version=version,
        model_dir=str(model_dir),
        python=python,
        workers=spec.server.workers,
        request_timeout=parse_duration(spec.server.request_timeout),
        max_batch_size=spec.server.max_batch_size,
        env=dict(spec.env),
        memory=held.memory,
        cpus=held.cpus,
        health_path=spec.health.path,
        initial_delay=parse_duration(spec.health.initial_delay),
        period=parse_duration(spec.health.period),
        probe_timeout=parse_duration(spec.health.timeout),
        failure_threshold=spec.health.failure_threshold,
        strategy=spec.rollout.strategy,
        max_surge=spec.rollout.max_surge,
        max_unavailable=spec.rollout.max_unavailable,
        progress_deadline=parse_duration(spec.rollout.progress_deadline),
        replicas=spec.replicas if spec.autoscaling is None else None,
        autoscaling=policy,
        standby=standby,
    )


def dumps(desired: Desired) -> bytes:
    """The file's bytes."""
    return json.dumps(asdict(desired), sort_keys=True, indent=1).encode()


def load_desired(directory: Path) -> Desired:
    """Read ``desired.json`` (FileNotFoundError once the endpoint was deleted)."""
    body = json.loads((directory / "desired.json").read_bytes())
    policy = body.pop("autoscaling")
    return Desired(**body, autoscaling=Policy(**policy) if policy is not None else None)


def _short_hash(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:12]
