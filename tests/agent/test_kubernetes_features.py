"""Feature sets on a Kubernetes plane, against the API server test double in kubelet mode:
the backfill Job's and the CronJob's pods really run the feature job (this checkout's
interpreter stands in for the agent's image), into a real redis-server and the claim's
host directory; the agent reports what their termination messages say."""

from __future__ import annotations

import base64
import shutil
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

import pytest
from kubernetes import client, config

from agent.runtimes.base import ApplyContext
from agent.runtimes.kubernetes import render
from agent.runtimes.kubernetes.cluster import Cluster
from agent.runtimes.kubernetes.features import FeatureSets
from agent.runtimes.kubernetes.online import RedisOnline
from agent.runtimes.local.features import store as featurestore
from schemas import signed
from tests.agent.test_features import APRIL, NAME, SAMPLE, Body, _command, no_backfill
from tests.agent.test_kubernetes_render import FEATURES_TARGET as TARGET
from tests.kubeapi.server import KubeApiDouble

PATIENCE = 60.0
"""Seconds a test waits for the pods' processes at most (each takes a second or two)."""


def two_chunks(spec: Body) -> None:
    spec["backfill"] = {"start": "2026-01-01", "end": "2026-03-01", "chunk": "30d"}
    spec["backfill"]["parallelism"] = 2
    spec["retry"] = {"limit": 0}


def missing_source(spec: Body) -> None:
    spec["source"]["path"] = "data/gone.csv"


@contextmanager
def feature_plane(tmp_path: Path, redis_url: str) -> Iterator[tuple[KubeApiDouble, Cluster]]:
    """The double with a kubelet, its controllers stepped by a thread, and the plane's
    namespace: its Secret holds the Redis URL, its claim the sample events."""
    with KubeApiDouble(kubelet=True, kubelet_root=tmp_path / "node") as double:
        claim = tmp_path / "node" / "claims" / TARGET.namespace / "features" / "data"
        claim.mkdir(parents=True)
        shutil.copy(SAMPLE, claim / "events.csv")
        stop = threading.Event()
        stepper = threading.Thread(target=lambda: _step(double, stop), daemon=True)
        stepper.start()
        try:
            yield double, _namespace(double, tmp_path, redis_url)
        finally:
            stop.set()
            stepper.join()


def _step(double: KubeApiDouble, stop: threading.Event) -> None:
    while not stop.wait(0.05):
        double.controllers.step()


def _namespace(double: KubeApiDouble, tmp_path: Path, redis_url: str) -> Cluster:
    kubeconfig = double.write_kubeconfig(tmp_path / "kubeconfig")
    api = config.new_client_from_config(config_file=str(kubeconfig))
    core = client.CoreV1Api(api)
    core.create_namespace({"metadata": {"name": TARGET.namespace}})
    url = base64.b64encode(redis_url.encode()).decode()
    secret = {"metadata": {"name": "feature-redis"}, "data": {"REDIS_URL": url}}
    core.create_namespaced_secret(TARGET.namespace, secret)
    return Cluster(api, TARGET.namespace)


@pytest.fixture
def plane(tmp_path: Path, redis_url: str) -> Iterator[tuple[KubeApiDouble, Cluster]]:
    with feature_plane(tmp_path, redis_url) as made:
        yield made


@pytest.fixture
def double(plane: tuple[KubeApiDouble, Cluster]) -> KubeApiDouble:
    return plane[0]


@pytest.fixture
def cluster(plane: tuple[KubeApiDouble, Cluster]) -> Cluster:
    return plane[1]


@pytest.fixture
def online(redis_url: str) -> Iterator[RedisOnline]:
    store = RedisOnline(redis_url)
    store.drop(NAME)
    yield store
    store.drop(NAME)
    store.close()


def context(tmp_path: Path) -> ApplyContext:
    return ApplyContext("0" * 40, tmp_path, True, now=APRIL)


def until(
    check: Callable[[signed.ResourceStatus], bool],
    runtime: FeatureSets,
    command: signed.Command,
    last: signed.ResourceStatus,
    tmp_path: Path,
) -> signed.ResourceStatus:
    """Observe until ``check`` holds (the pods are real processes: seconds, not steps)."""
    deadline = time.monotonic() + PATIENCE
    while not check(last):
        assert time.monotonic() < deadline, f"still {last.phase}: {last.message}"
        time.sleep(0.1)
        last = runtime.observe(command, last, context(tmp_path))
    return last


def test_the_backfill_job_and_the_cron_job_really_run_and_are_reported(
    double: KubeApiDouble, cluster: Cluster, online: RedisOnline, tmp_path: Path
) -> None:
    made = _command(two_chunks)
    runtime = FeatureSets(cluster, TARGET, poll=0.05)
    done = runtime.apply(made, context(tmp_path))  # follows the backfill to its end
    backfill = cluster.get("batch/v1", "Job", render.backfill_name(made))
    assert backfill is not None
    assert (backfill["spec"]["completions"], backfill["spec"]["parallelism"]) == (2, 2)
    assert done.phase == "Ready", done.message
    assert done.observed["backfillChunks"] == 2
    assert done.observed["lastJob"] == render.backfill_name(made)
    assert int(done.observed["rows"]) > 0 and int(done.observed["entities.customer"]) > 0
    store = tmp_path / "node" / "claims" / TARGET.namespace / "features" / "features" / NAME
    assert [p.name for p in featurestore.offline_files(store)] == [
        "20260131T000000Z.parquet",
        "20260301T000000Z.parquet",
    ]
    assert online.rows(NAME) == done.observed["entities"]
    again = runtime.apply(made, context(tmp_path))  # the same command: no new Job
    assert again == done
    double.clock.advance(5 * 3600)  # past the next "0 */4 * * *"
    scheduled = until(
        lambda s: s.observed.get("lastJob") != done.observed["lastJob"] and s.phase == "Ready",
        runtime,
        made,
        done,
        tmp_path,
    )
    assert str(scheduled.observed["lastJob"]).startswith(f"{NAME}-")
    assert "backfillChunks" not in scheduled.observed


def test_a_failing_run_is_reported_with_the_pods_own_error(
    double: KubeApiDouble, cluster: Cluster, online: RedisOnline, tmp_path: Path
) -> None:
    made = _command(two_chunks, missing_source)
    runtime = FeatureSets(cluster, TARGET, poll=0.05)
    first = runtime.apply(made, context(tmp_path))
    failed = until(lambda s: s.phase == "Failed", runtime, made, first, tmp_path)
    assert failed.message.startswith(f"{render.backfill_name(made)} failed (BackoffLimitExceeded)")
    assert "source not found" in failed.message
    assert online.rows(NAME) == 0


def test_a_plane_without_the_stores_refuses_and_applies_nothing(
    double: KubeApiDouble, cluster: Cluster, tmp_path: Path
) -> None:
    bare = replace(TARGET, redis_secret=None)
    made = _command(two_chunks)
    refused = FeatureSets(cluster, bare).apply(made, context(tmp_path))
    assert refused.phase == "Failed"
    assert "the plane has no spec.kubernetes.onlineStore" in refused.message
    assert cluster.select("v1", "ConfigMap", render.labels(TARGET, "FeatureSet", NAME)) == []
    again = FeatureSets(cluster, bare).observe(made, refused, context(tmp_path))
    assert again == refused


def test_removing_the_schedule_prunes_the_cron_job_and_delete_removes_the_rest(
    double: KubeApiDouble, cluster: Cluster, tmp_path: Path
) -> None:
    runtime = FeatureSets(cluster, TARGET, poll=0.05)
    scheduled = runtime.apply(_command(no_backfill), context(tmp_path))
    assert (scheduled.phase, scheduled.message) == (
        "Pending",
        "waiting for the schedule's first run",
    )
    assert cluster.get("batch/v1", "CronJob", NAME) is not None
    manual = _command(no_backfill, lambda spec: spec.pop("schedule"))
    runtime.apply(manual, context(tmp_path))
    assert cluster.get("batch/v1", "CronJob", NAME) is None
    assert cluster.get("v1", "ConfigMap", f"{NAME}-featureset") is not None
    runtime.delete(manual)
    for api_version, kind in (("v1", "ConfigMap"), ("batch/v1", "Job")):
        assert cluster.select(api_version, kind, render.labels(TARGET, "FeatureSet", NAME)) == []


def test_a_deleted_cron_job_is_put_back_by_self_heal_or_left_alone(
    double: KubeApiDouble, cluster: Cluster, tmp_path: Path
) -> None:
    runtime = FeatureSets(cluster, TARGET, poll=0.05)
    made = _command(no_backfill)
    issued = APRIL - timedelta(hours=5)
    applied = runtime.apply(made, replace(context(tmp_path), issued_at=issued))
    cluster.delete("batch/v1", "CronJob", NAME)  # someone runs `kubectl delete cronjob`
    left = replace(context(tmp_path), self_heal=False)
    kept = runtime.observe(made, applied, left)
    assert kept.message == "drifted from the command (CronJob deleted); selfHeal is off"
    assert cluster.get("batch/v1", "CronJob", NAME) is None
    later = replace(context(tmp_path), now=APRIL + timedelta(days=3), issued_at=issued)
    assert runtime.observe(made, applied, later) == applied
    healed = cluster.get("batch/v1", "CronJob", NAME)
    assert healed is not None  # as it was first applied: read up to the command's issue time
    args = healed["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"][0]["args"]
    assert args[args.index("--until") + 1] == "2026-04-09T22:00:00Z" != APRIL.isoformat()
