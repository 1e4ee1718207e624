"""Serving on the local plane: real scoring servers behind the real proxy."""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from agent.runtimes.base import ApplyContext
from agent.runtimes.local import serving
from schemas import signed
from tests.agent.serving_world import (
    FEATURES,
    Served,
    kill_all,
    predict,
    processes_of,
    register_models,
)

NOW = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)
ROWS = [{f: float(i - 2) for f in FEATURES} for i in range(5)]


@pytest.fixture
def served(tmp_path: Path) -> Iterator[Served]:
    env, expected = register_models(tmp_path, ROWS)
    world = Served(env, tmp_path, expected)
    yield world
    kill_all(world.env.state_dir)


@pytest.mark.slow
@pytest.mark.effect("Deployment", "spec.replicas", "spec.protocol")
def test_predictions_through_the_proxy_equal_the_models_own(served: Served) -> None:
    command = served.command({"replicas": 2})
    status = served.apply(command)
    assert status.phase == "Ready", status.message
    assert status.observed["readyReplicas"] == 2
    url = str(status.observed["url"])
    assert predict(url, ROWS) == served.expected

    serving.delete(command, served.env)
    left = processes_of(served.env.state_dir)
    assert left == [], [Path(f"/proc/{p}/cmdline").read_bytes() for p in left]
    assert not (served.env.state_dir / "deployments" / "churn").exists()


def _load(url: str, stop: threading.Event, results: list[str]) -> None:
    """Send predictions until told to stop; record every failure."""
    while not stop.is_set():
        try:
            predict(url, ROWS)
            results.append("ok")
        except (OSError, ValueError) as exc:
            results.append(f"failed: {exc}")


def _under_load(
    url: str, clients: int = 4
) -> tuple[threading.Event, list[str], list[threading.Thread]]:
    stop, results = threading.Event(), []  # type: ignore[var-annotated]
    threads = [threading.Thread(target=_load, args=(url, stop, results)) for _ in range(clients)]
    for thread in threads:
        thread.start()
    return stop, results, threads


@pytest.mark.slow
@pytest.mark.parametrize("count", [1, 2])
def test_a_rollout_under_load_loses_no_request(served: Served, count: int) -> None:
    """Also with one replica: the new one is ready before the old one drains, and a request
    that finds neither ready for a moment is held, not failed."""
    first = served.apply(served.command({"replicas": count}))
    assert first.phase == "Ready", first.message
    url = str(first.observed["url"])
    stop, results, threads = _under_load(url)
    changed = served.command({"replicas": count, "env": {"CHURN_THRESHOLD": "0.5"}})
    second = served.apply(changed)  # a new replica template: every replica is replaced
    time.sleep(1)
    stop.set()
    for thread in threads:
        thread.join()
    assert second.phase == "Ready", second.message
    assert second.observed["url"] == url
    failures = [r for r in results if r != "ok"]
    assert failures == [] and len(results) > 20, (failures[:3], len(results))


@pytest.mark.slow
@pytest.mark.effect("Deployment", "spec.server.maxBatchSize")
def test_max_batch_size_is_enforced_at_the_endpoint(served: Served) -> None:
    limited = served.apply(served.command({"replicas": 1, "server": {"maxBatchSize": 4}}))
    assert limited.phase == "Ready", limited.message
    url = str(limited.observed["url"])
    assert predict(url, ROWS[:4]) == served.expected[:4]
    with pytest.raises(urllib.error.HTTPError) as refused:
        predict(url, ROWS)  # five rows
    assert refused.value.code == 400
    assert json.loads(refused.value.read())["message"] == (
        "a batch of 5 rows is over this endpoint's maxBatchSize (4): split it"
    )


@pytest.mark.slow
@pytest.mark.effect("Deployment", "spec.rollout.autoRollback")
def test_a_version_that_fails_health_checks_is_rolled_back(served: Served) -> None:
    good = served.apply(served.command({"replicas": 1}))
    assert good.phase == "Ready", good.message
    url = str(good.observed["url"])
    broken = served.apply(
        served.command({"replicas": 1, "rollout": {"progressDeadline": "60s"}}, version=2)
    )
    assert broken.phase == "Failed"
    assert "version 1.0.2 failed" in broken.message
    assert "rolled back, still serving 1.0.1" in broken.message
    assert predict(url, ROWS) == served.expected  # the old version kept serving


@pytest.mark.slow
def test_a_replica_that_dies_is_replaced(served: Served) -> None:
    status = served.apply(served.command({"replicas": 1}))
    assert status.phase == "Ready", status.message
    directory = served.env.state_dir / "deployments" / "churn"
    (replica,) = [p for p in processes_of(directory) if b"uvicorn" in _cmdline(p)]
    os.kill(replica, signal.SIGKILL)
    body = _wait_for(directory, lambda b: b["restarts"] == 1 and b["readyReplicas"] == 1)
    assert "restarted a replica" in body["message"]
    assert predict(str(status.observed["url"]), ROWS) == served.expected


@pytest.mark.slow
@pytest.mark.effect(
    "Deployment",
    "spec.autoscaling.maxReplicas",
    "spec.autoscaling.targets.rpsPerReplica",
    "spec.autoscaling.pollingInterval",
    "spec.autoscaling.scaleDownStabilization",
)
def test_load_scales_out_then_back_in(served: Served) -> None:
    scaling = {
        "minReplicas": 1,
        "maxReplicas": 3,
        "targets": {"rpsPerReplica": 5},
        "pollingInterval": "1s",
        "scaleUpStabilization": "2s",
        "scaleDownStabilization": "4s",
        "cooldown": "1s",
    }
    status = served.apply(served.command({"autoscaling": scaling}))
    assert status.phase == "Ready", status.message
    directory = served.env.state_dir / "deployments" / "churn"
    stop, results, threads = _under_load(str(status.observed["url"]))
    started = time.monotonic()
    out = _wait_for(directory, lambda b: b["desiredReplicas"] == 3, timeout=60)
    scaled_after = time.monotonic() - started
    stop.set()
    for thread in threads:
        thread.join()
    # the decision: within the up-stabilisation window plus one interval (and 2 s of slack for
    # a loaded machine); the new replicas then take their start-up time to become ready
    assert scaled_after <= 2 + 1 + 2
    assert "rps at 5 per replica" in out["events"][-1]["reason"]
    back = _wait_for(directory, lambda b: b["desiredReplicas"] == 1, timeout=60)
    assert back["events"][-1]["to"] == 1
    assert [r for r in results if r != "ok"] == []


def _cmdline(pid: int) -> bytes:
    return Path(f"/proc/{pid}/cmdline").read_bytes()


def _wait_for(
    directory: Path, check: Callable[[dict[str, Any]], bool], timeout: float = 60
) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    body: dict[str, Any] = {}
    while time.monotonic() < deadline:
        body = json.loads((directory / "status.json").read_bytes())
        if check(body):
            return body
        time.sleep(0.2)
    raise AssertionError(f"status never matched: {body}")


@pytest.mark.slow
def test_a_stopped_endpoint_is_healed_or_reported_by_the_self_heal_setting(served: Served) -> None:
    command = served.command({"replicas": 1})
    status = served.apply(command)
    assert status.phase == "Ready", status.message
    scratch = served.tmp / "scratch"
    assert serving.stop_all(served.env.state_dir) == 1  # someone stopped it by hand

    kept = serving.observe(
        command, status, ApplyContext("0" * 40, scratch, self_heal=False, now=NOW), served.env
    )
    assert kept.phase == "Failed"
    assert kept.message == "drift: the endpoint was not running"

    healed = serving.observe(command, kept, ApplyContext("0" * 40, scratch, now=NOW), served.env)
    assert healed.phase == "Ready", healed.message
    assert healed.message.startswith("healed drift: the endpoint was not running")
    assert predict(str(healed.observed["url"]), ROWS) == served.expected
    same = serving.observe(command, healed, ApplyContext("0" * 40, scratch, now=NOW), served.env)
    assert same.phase == "Ready"  # nothing drifted since: no new message, no heal
    assert not same.message.startswith("healed")


def test_metrics_reach_status_without_a_commit_per_second() -> None:
    """Pure: the rule that keeps a busy endpoint from writing a status commit per second."""
    base = signed.ResourceStatus(
        kind="Deployment", name="churn", phase="Ready", observed={"readyReplicas": 2}
    )
    first = serving._with_metrics(base, {"rps": 10.4, "p95Ms": 12.0, "errorRate": 0.0}, None, NOW)
    assert first.observed["rps"] == 10 and first.observed["errorRate"] == "0.00%"
    assert first.observed["metricsAt"] == "2026-11-24T12:00:00Z"
    busier = {"rps": 40.0, "p95Ms": 30.0, "errorRate": 0.01}
    soon = serving._with_metrics(base, busier, first, NOW + timedelta(minutes=1))
    assert soon == first  # nothing else changed and it is too soon: no new report
    later = serving._with_metrics(base, busier, first, NOW + timedelta(minutes=6))
    assert later.observed["rps"] == 40 and later.observed["errorRate"] == "1.00%"
    calm = serving._with_metrics(base, {"rps": 11.0}, first, NOW + timedelta(minutes=6))
    assert calm.observed["rps"] == 10  # within 25 %: kept
    scaled = base.model_copy(update={"observed": {"readyReplicas": 3}})
    now = serving._with_metrics(scaled, busier, first, NOW + timedelta(minutes=1))
    assert now.observed["rps"] == 40  # something else changed: fresh figures with it


@pytest.mark.slow
def test_a_warm_standby_makes_a_scale_up_ready_at_once(served: Served) -> None:
    served.env = dataclasses.replace(served.env, standby=1)
    status = served.apply(served.command({"replicas": 1}))
    assert status.phase == "Ready", status.message
    directory = served.env.state_dir / "deployments" / "churn"
    warm = _wait_for(directory, lambda b: len(b["standbyPorts"]) == 1)["standbyPorts"][0]
    _wait_for(directory, lambda b: _answers(warm))  # the standby itself is healthy
    started = time.monotonic()
    scaled = served.apply(served.command({"replicas": 2}))
    took = time.monotonic() - started
    assert scaled.phase == "Ready" and scaled.observed["readyReplicas"] == 2, scaled.message
    assert took < 3.0  # a cold replica takes ~5 s to import MLflow and load the model
    body = _wait_for(
        directory, lambda b: len(b["standbyPorts"]) == 1 and b["standbyPorts"] != [warm]
    )
    assert warm in body["replicaPorts"]  # the standby joined the pool; a new one warms up


def _answers(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/ping", timeout=1) as reply:
            return bool(reply.status == 200)
    except OSError:
        return False
