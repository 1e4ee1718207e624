"""Autoscaling decisions for a local endpoint: pure functions of measurements and time.

The semantics are the Kubernetes HorizontalPodAutoscaler's (``behavior``):

* each target asks for ``ceil(current * measured / target)`` replicas
  (``ceil(rps / rpsPerReplica)`` for request rate), ignoring deviations within
  a 10 % tolerance; the highest ask wins, clamped to ``[min, max]``;
* scaling **up** uses the *lowest* recommendation of the last
  ``scaleUpStabilization`` (load must be sustained), scaling **down** the
  *highest* of the last ``scaleDownStabilization`` (no flapping);
* no two scaling events closer than ``cooldown``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

TOLERANCE = 0.1


@dataclass(frozen=True)
class Policy:
    """The spec's ``autoscaling`` block, in seconds."""

    min_replicas: int
    max_replicas: int
    rps_per_replica: float | None
    p95_latency_ms: float | None
    error_rate: float | None
    interval: float
    up_window: float
    down_window: float
    cooldown: float


@dataclass(frozen=True)
class Sample:
    """What the proxy measured over the last interval."""

    rps: float
    p95_ms: float | None
    """None without requests in the interval."""
    error_rate: float | None


@dataclass(frozen=True)
class Recommendation:
    """Replicas asked for at one moment, and why."""

    at: float
    replicas: int
    reason: str


def recommend(policy: Policy, sample: Sample, current: int, at: float) -> Recommendation:
    """What the measurements ask for right now."""
    asks: list[tuple[int, str]] = []
    if policy.rps_per_replica is not None:
        want = math.ceil(sample.rps / policy.rps_per_replica - TOLERANCE)
        asks.append((want, f"{sample.rps:.1f} rps at {policy.rps_per_replica:g} per replica"))
    if policy.p95_latency_ms is not None and sample.p95_ms is not None:
        want = _ratio(current, sample.p95_ms, policy.p95_latency_ms)
        asks.append((want, f"p95 {sample.p95_ms:.0f} ms against {policy.p95_latency_ms:g} ms"))
    if policy.error_rate is not None and sample.error_rate is not None:
        want = _ratio(current, sample.error_rate, policy.error_rate)
        asks.append((want, f"error rate {sample.error_rate:.1%} against {policy.error_rate:.1%}"))
    if not asks:
        return Recommendation(at, _clamp(policy, current), "no measurements")
    want, reason = max(asks, key=lambda a: a[0])
    return Recommendation(at, _clamp(policy, want), reason)


def _ratio(current: int, measured: float, target: float) -> int:
    ratio = measured / target
    if abs(ratio - 1.0) <= TOLERANCE:
        return current
    return math.ceil(max(current, 1) * ratio)


def _clamp(policy: Policy, replicas: int) -> int:
    return max(policy.min_replicas, min(policy.max_replicas, replicas))


def decide(
    policy: Policy,
    history: Sequence[Recommendation],
    current: int,
    now: float,
    last_event: float | None,
) -> Recommendation | None:
    """The scaling event due now, or None (stable, stabilising or cooling down)."""
    if last_event is not None and now - last_event < policy.cooldown:
        return None
    up = [r for r in history if now - r.at <= policy.up_window]
    down = [r for r in history if now - r.at <= policy.down_window]
    if up:
        lowest = min(up, key=lambda r: r.replicas)
        if lowest.replicas > current:
            return lowest
    if down:
        highest = max(down, key=lambda r: r.replicas)
        if highest.replicas < current and len(down) >= _settled(policy):
            return highest
    return None


def _settled(policy: Policy) -> int:
    """Scale down only once a whole window of recommendations exists (not right at start)."""
    return max(1, int(policy.down_window / policy.interval))


def prune(history: list[Recommendation], policy: Policy, now: float) -> None:
    """Forget recommendations older than both windows."""
    horizon = max(policy.up_window, policy.down_window, policy.interval)
    history[:] = [r for r in history if now - r.at <= horizon]
