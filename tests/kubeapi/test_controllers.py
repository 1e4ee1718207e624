"""The double's simulated controllers, stepped by the test, seen through the official client:
rollouts that complete, fail past their progress deadline and roll back; Jobs that complete
or fail, Indexed Jobs with partitions that fail. Double only: a real cluster's controllers
run on their own time."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from kubernetes import client, config

from tests.kubeapi.conftest import apply, cron_job, deployment, job
from tests.kubeapi.jobs import INDEX
from tests.kubeapi.server import KubeApiDouble, ManualClock

NS = "default"


@pytest.fixture
def world(tmp_path: Path) -> Iterator[tuple[KubeApiDouble, client.ApiClient]]:
    with KubeApiDouble() as double:
        api_client = config.new_client_from_config(
            config_file=str(double.write_kubeconfig(tmp_path / "kubeconfig"))
        )
        with api_client:
            yield double, api_client


def conditions(obj: client.V1Deployment | client.V1Job) -> dict[str, tuple[str, str]]:
    return {c.type: (c.status, c.reason) for c in obj.status.conditions or []}


def test_a_rollout_completes_in_one_step(world: tuple[KubeApiDouble, client.ApiClient]) -> None:
    double, api_client = world
    apps = client.AppsV1Api(api_client)
    apply(apps.patch_namespaced_deployment, "web", NS, deployment("web", replicas=3))
    assert apps.read_namespaced_deployment_status("web", NS).status.observed_generation is None
    double.controllers.step()
    status = apps.read_namespaced_deployment_status("web", NS).status
    assert (status.observed_generation, status.ready_replicas, status.available_replicas) == (
        1,
        3,
        3,
    )
    assert conditions(apps.read_namespaced_deployment("web", NS)) == {
        "Available": ("True", "MinimumReplicasAvailable"),
        "Progressing": ("True", "NewReplicaSetAvailable"),
    }


def test_a_failing_image_exceeds_the_progress_deadline_and_a_rollback_completes(
    world: tuple[KubeApiDouble, client.ApiClient],
) -> None:
    double, api_client = world
    apps, patch = (
        client.AppsV1Api(api_client),
        client.AppsV1Api(api_client).patch_namespaced_deployment,
    )
    apply(patch, "web", NS, deployment("web", replicas=2))
    double.controllers.step()
    double.controllers.fail_image("registry.example/serve:2")
    apply(patch, "web", NS, deployment("web", replicas=2, image="registry.example/serve:2"))
    double.controllers.step()
    rolling = apps.read_namespaced_deployment("web", NS)
    assert conditions(rolling)["Progressing"] == ("True", "ReplicaSetUpdated")
    assert (rolling.status.updated_replicas, rolling.status.available_replicas) == (1, 2)
    assert isinstance(double.clock, ManualClock)
    double.clock.advance(601)
    double.controllers.step()
    stuck = apps.read_namespaced_deployment("web", NS)
    assert conditions(stuck)["Progressing"] == ("False", "ProgressDeadlineExceeded")
    assert conditions(stuck)["Available"] == ("True", "MinimumReplicasAvailable")
    apply(patch, "web", NS, deployment("web", replicas=2))
    double.controllers.step()
    assert conditions(apps.read_namespaced_deployment("web", NS))["Progressing"] == (
        "True",
        "NewReplicaSetAvailable",
    )


def test_a_step_that_changes_nothing_writes_nothing(
    world: tuple[KubeApiDouble, client.ApiClient],
) -> None:
    double, api_client = world
    apps = client.AppsV1Api(api_client)
    apply(apps.patch_namespaced_deployment, "web", NS, deployment("web"))
    double.controllers.step()
    settled = double.store.revision
    double.controllers.step()
    apply(apps.patch_namespaced_deployment, "web", NS, deployment("web"))
    assert double.store.revision == settled


def test_a_job_starts_then_completes(world: tuple[KubeApiDouble, client.ApiClient]) -> None:
    double, api_client = world
    batch = client.BatchV1Api(api_client)
    batch.create_namespaced_job(NS, job("train", completions=2))
    double.controllers.step()
    started = batch.read_namespaced_job_status("train", NS).status
    assert (started.active, started.start_time is not None, started.conditions) == (2, True, None)
    double.controllers.step()
    done = batch.read_namespaced_job_status("train", NS)
    assert (done.status.succeeded, done.status.completion_time is not None) == (2, True)
    assert conditions(done) == {"Complete": ("True", "CompletionsReached")}


def test_an_indexed_job_with_a_failing_partition_fails_past_its_backoff_limit(
    world: tuple[KubeApiDouble, client.ApiClient],
) -> None:
    double, api_client = world
    batch = client.BatchV1Api(api_client)
    batch.create_namespaced_job(NS, job("backfill", completions=4, indexed=True, backoff=1))
    double.controllers.fail_job(NS, "backfill", indexes={1})
    double.controllers.step()
    double.controllers.step()
    retrying = batch.read_namespaced_job_status("backfill", NS).status
    assert (retrying.completed_indexes, retrying.failed, retrying.conditions) == ("0,2-3", 1, None)
    double.controllers.step()
    failed = batch.read_namespaced_job_status("backfill", NS)
    assert (failed.status.failed, failed.status.succeeded) == (2, 3)
    assert conditions(failed) == {"Failed": ("True", "BackoffLimitExceeded")}
    core = client.CoreV1Api(api_client)
    pods = core.list_namespaced_pod(NS, label_selector="job-name=backfill").items
    phases = sorted((p.metadata.labels[INDEX], p.status.phase) for p in pods)
    assert phases == [
        ("0", "Succeeded"),
        ("1", "Failed"),
        ("1", "Failed"),
        ("2", "Succeeded"),
        ("3", "Succeeded"),
    ]
    batch.delete_namespaced_job("backfill", NS, propagation_policy="Background")
    assert core.list_namespaced_pod(NS).items == []


def test_a_cron_job_runs_its_job_when_due_and_notes_its_success(
    world: tuple[KubeApiDouble, client.ApiClient],
) -> None:
    double, api_client = world
    batch = client.BatchV1Api(api_client)
    batch.create_namespaced_cron_job(NS, cron_job("nightly"))
    double.controllers.step()
    assert batch.list_namespaced_job(NS).items == []
    assert isinstance(double.clock, ManualClock)
    double.clock.advance(5 * 60 + 1)
    double.controllers.step()
    [made] = batch.list_namespaced_job(NS).items
    assert made.metadata.owner_references[0].kind == "CronJob"
    scheduled = batch.read_namespaced_cron_job_status("nightly", NS).status
    assert scheduled.last_schedule_time.isoformat() == "2026-11-24T12:05:00+00:00"
    assert [ref.name for ref in scheduled.active] == [made.metadata.name]
    double.controllers.step()
    double.controllers.step()
    done = batch.read_namespaced_cron_job_status("nightly", NS).status
    assert (done.active, done.last_successful_time is not None) == (None, True)


def test_a_forbidding_cron_job_starts_nothing_while_its_job_runs(
    world: tuple[KubeApiDouble, client.ApiClient],
) -> None:
    double, api_client = world
    batch = client.BatchV1Api(api_client)
    batch.create_namespaced_cron_job(NS, cron_job("nightly", policy="Forbid"))
    assert isinstance(double.clock, ManualClock)
    double.clock.advance(5 * 60)
    double.controllers.step()
    [running] = batch.list_namespaced_job(NS).items
    double.controllers.fail_job(NS, running.metadata.name)
    double.clock.advance(5 * 60)
    double.controllers.step()
    assert [j.metadata.name for j in batch.list_namespaced_job(NS).items] == [running.metadata.name]
