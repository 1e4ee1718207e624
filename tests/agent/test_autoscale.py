"""Autoscaling decisions: HPA semantics as table tests over measurements and time."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from agent.runtimes.local.serving import desired
from agent.runtimes.local.serving.autoscale import (
    Policy,
    Recommendation,
    Sample,
    decide,
    prune,
    recommend,
)
from schemas.deployment import DeploymentSpec

POLICY = Policy(
    min_replicas=1,
    max_replicas=5,
    rps_per_replica=10.0,
    p95_latency_ms=200.0,
    error_rate=0.05,
    interval=1.0,
    up_window=3.0,
    down_window=5.0,
    cooldown=2.0,
)


@pytest.mark.parametrize(
    ("sample", "current", "replicas", "reason"),
    [
        (Sample(rps=0.0, p95_ms=None, error_rate=None), 3, 1, "0.0 rps at 10 per replica"),
        (Sample(rps=35.0, p95_ms=50.0, error_rate=0.0), 1, 4, "35.0 rps at 10 per replica"),
        (Sample(rps=10.5, p95_ms=50.0, error_rate=0.0), 1, 1, "10.5 rps"),  # within tolerance
        (Sample(rps=5.0, p95_ms=600.0, error_rate=0.0), 1, 3, "p95 600 ms against 200 ms"),
        (Sample(rps=5.0, p95_ms=210.0, error_rate=0.0), 2, 2, "p95 210"),  # within tolerance
        (Sample(rps=5.0, p95_ms=90.0, error_rate=0.2), 2, 5, "error rate 20.0% against 5.0%"),
        (Sample(rps=500.0, p95_ms=90.0, error_rate=0.0), 2, 5, "500.0 rps"),  # capped at max
    ],
    ids=["idle-to-min", "rps", "rps-tolerance", "latency", "latency-tolerance", "errors", "max"],
)
def test_the_highest_ask_wins_within_bounds(
    sample: Sample, current: int, replicas: int, reason: str
) -> None:
    got = recommend(POLICY, sample, current, at=0.0)
    assert got.replicas == replicas
    assert reason in got.reason


def _history(*replicas: int) -> list[Recommendation]:
    return [Recommendation(float(t), r, f"r{t}") for t, r in enumerate(replicas)]


@pytest.mark.parametrize(
    ("history", "current", "now", "last_event", "expected"),
    [
        (_history(1, 4, 4, 4), 1, 3.5, None, 4),  # sustained for the up window: scale up
        (_history(1, 1, 4, 1), 1, 3.0, None, None),  # a spike inside the window: wait
        (_history(2, 3, 4, 4), 1, 3.5, None, 3),  # up to the lowest of the window
        (_history(4, 4, 4, 4), 1, 3.0, 2.5, None),  # cooling down
        (_history(3, 1, 1, 1, 1, 1, 1), 3, 6.0, None, 1),  # down once the 3 left the window
        (_history(1, 1, 2, 1, 1, 1), 3, 5.0, None, 2),
        (_history(1, 1), 3, 1.0, None, None),  # not a whole down window yet
        (_history(2, 2, 2, 2, 2, 2), 2, 5.0, None, None),  # stable
    ],
    ids=[
        "up",
        "spike-ignored",
        "up-to-lowest",
        "cooldown",
        "down",
        "down-to-highest",
        "down-needs-window",
        "stable",
    ],
)
def test_stabilisation_windows_and_cooldown(
    history: list[Recommendation],
    current: int,
    now: float,
    last_event: float | None,
    expected: int | None,
) -> None:
    event = decide(POLICY, history, current, now, last_event)
    assert (event.replicas if event else None) == expected


def test_old_recommendations_are_forgotten() -> None:
    history = _history(1, 2, 3, 4, 5, 5, 5, 5, 5, 5)
    prune(history, POLICY, now=9.0)
    assert [r.at for r in history] == [4.0, 5.0, 6.0, 7.0, 8.0, 9.0]


def _policy(**autoscaling: object) -> Policy:
    """The policy a supervisor runs for a spec's ``autoscaling`` (over a base block)."""
    block = {"maxReplicas": 10, "targets": {"rpsPerReplica": 10}, **autoscaling}
    spec = DeploymentSpec.model_validate(
        {"model": {"name": "m"}, "planeSelector": {}, "autoscaling": block}
    )
    built = desired.build(
        "m", spec, command="c", attempt="a", port=0, version="1", model_dir=Path(),
        python=sys.executable,
    )  # fmt: skip
    assert built.autoscaling is not None
    return built.autoscaling


def _ask(sample: Sample, current: int) -> Callable[[Policy], int | None]:
    return lambda policy: recommend(policy, sample, current, at=0.0).replicas


def _event(
    history: list[Recommendation], current: int, now: float, last: float | None = None
) -> Callable[[Policy], int | None]:
    def run(policy: Policy) -> int | None:
        event = decide(policy, history, current, now, last)
        return event.replicas if event else None

    return run


@pytest.mark.effect(
    "Deployment",
    "spec.autoscaling.minReplicas",
    "spec.autoscaling.maxReplicas",
    "spec.autoscaling.targets.rpsPerReplica",
    "spec.autoscaling.targets.p95LatencyMs",
    "spec.autoscaling.targets.errorRate",
    "spec.autoscaling.cooldown",
    "spec.autoscaling.scaleUpStabilization",
    "spec.autoscaling.scaleDownStabilization",
)
@pytest.mark.parametrize(
    ("field", "run", "with_field", "without"),
    [
        ({"minReplicas": 2}, _ask(Sample(0.0, None, None), 3), 2, 1),
        ({"maxReplicas": 3}, _ask(Sample(500.0, 9.0, 0.0), 2), 3, 10),
        ({"targets": {"rpsPerReplica": 5}}, _ask(Sample(35.0, 9.0, 0.0), 1), 7, 4),
        (
            {"targets": {"rpsPerReplica": 10, "p95LatencyMs": 200}},
            _ask(Sample(5.0, 600.0, 0.0), 1),
            3,
            1,
        ),
        (
            {"targets": {"rpsPerReplica": 10, "errorRate": 0.05}},
            _ask(Sample(5.0, 9.0, 0.2), 2),
            8,
            1,
        ),
        ({"cooldown": "2s"}, _event(_history(4, 4, 4, 4), 1, 3.0, last=0.5), 4, None),
        ({"scaleUpStabilization": "3s"}, _event(_history(1, 1, 1, 4), 1, 3.0), None, 4),
        ({"scaleDownStabilization": "2s"}, _event(_history(3, 3, 1, 1, 1), 3, 4.0), 1, None),
    ],
    ids=[
        "min",
        "max",
        "rps-target",
        "latency-target",
        "error-target",
        "cooldown",
        "up-stabilisation",
        "down-stabilisation",
    ],
)
def test_the_specs_autoscaling_block_decides(
    field: dict[str, object],
    run: Callable[[Policy], int | None],
    with_field: int | None,
    without: int | None,
) -> None:
    """Each field of the spec, through the policy the supervisor runs: what the same
    measurements decide with it set, and without it (its default, or the base targets)."""
    assert (run(_policy(**field)), run(_policy())) == (with_field, without)
