"""Autoscaling decisions: HPA semantics as table tests over measurements and time."""

from __future__ import annotations

import pytest

from agent.runtimes.local.serving.autoscale import (
    Policy,
    Recommendation,
    Sample,
    decide,
    prune,
    recommend,
)

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
