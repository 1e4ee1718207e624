"""Deployments on a Kubernetes plane, against the API server test double over real HTTP.

The official client, kubeconfig loading and the API's errors run for real; the double's
simulated controllers move rollouts (tests/kubeapi/README.md says what they do). A thread
steps them, and moves the double's clock a minute a step, so a progress deadline passes
in a fraction of a second of the test.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from kubernetes import client, config

from agent.runtimes.base import ApplyContext, CancelledError, CancelToken
from agent.runtimes.kubernetes import render
from agent.runtimes.kubernetes.cluster import Cluster, ClusterError
from agent.runtimes.kubernetes.deployments import Deployments, drift, owned, rollout
from agent.runtimes.kubernetes.inventory import Inventory
from schemas import signed
from tests.agent.test_kubernetes_render import TARGET, command
from tests.kubeapi.server import KubeApiDouble

NOW = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)
BAD = "ghcr.io/example/mlflow-serve:broken"


@pytest.fixture
def double() -> Iterator[KubeApiDouble]:
    with stepped(keda=False) as started:
        yield started


@contextlib.contextmanager
def stepped(*, keda: bool) -> Iterator[KubeApiDouble]:
    """A double (with KEDA's CRD or not) whose controllers a thread steps."""
    with KubeApiDouble(keda=keda) as started:
        stop = threading.Event()

        def run() -> None:
            while not stop.wait(0.02):
                started.controllers.step()
                started.clock.advance(60)

        stepper = threading.Thread(target=run, daemon=True)
        stepper.start()
        yield started
        stop.set()
        stepper.join()


@pytest.fixture
def cluster(double: KubeApiDouble, tmp_path: Path) -> Cluster:
    """The plane's namespace, made as its install makes it (deploy/kubernetes): the agent's
    namespaced Role cannot create namespaces."""
    kubeconfig = double.write_kubeconfig(tmp_path / "kubeconfig")
    api = config.new_client_from_config(config_file=str(kubeconfig))
    client.CoreV1Api(api).create_namespace({"metadata": {"name": TARGET.namespace}})
    return Cluster(api, TARGET.namespace)


def runtime(cluster: Cluster, image: str = TARGET.serving_image) -> Deployments:
    target = render.Target(**{**TARGET.__dict__, "serving_image": image})
    return Deployments(cluster, target, poll=0.02)


def context(
    tmp_path: Path, *, self_heal: bool = True, cancel: CancelToken | None = None
) -> ApplyContext:
    return ApplyContext("0" * 40, tmp_path, self_heal, now=NOW, cancel=cancel or CancelToken())


def patches(double: KubeApiDouble) -> list[str]:
    return [r.path for r in double.requests if r.method == "PATCH"]


def test_a_deployment_rolls_out_and_reports_ready(
    double: KubeApiDouble, cluster: Cluster, tmp_path: Path
) -> None:
    made = command("deployments/churn-prod.yaml")
    done = runtime(cluster).apply(made, context(tmp_path))
    assert (done.phase, done.digest) == ("Ready", made.digest), done.message
    assert done.observed["url"] == "http://churn-prod.gitplane-prod.svc"
    assert done.observed["servedVersion"] == "1.2.0"
    live = cluster.get("apps/v1", "Deployment", "churn-prod")
    assert live is not None
    assert live["metadata"]["labels"][render.RESOURCE] == "deployment.churn-prod"
    assert {f["manager"] for f in live["metadata"]["managedFields"]} >= {"gitplane"}
    again = runtime(cluster).apply(made, context(tmp_path))
    assert again == done


def test_a_failed_rollout_is_rolled_back_to_what_ran_before(
    double: KubeApiDouble, cluster: Cluster, tmp_path: Path
) -> None:
    good = command("deployments/churn-prod.yaml")
    assert runtime(cluster).apply(good, context(tmp_path)).phase == "Ready"
    ran = cluster.get("apps/v1", "Deployment", "churn-prod")
    assert ran is not None
    double.controllers.fail_image(BAD)
    scaled = command("deployments/churn-prod.yaml", autoscaling=None, replicas=3)
    failed = runtime(cluster, BAD).apply(scaled, context(tmp_path))
    assert failed.phase == "Failed"
    said = 'rollout failed (ProgressDeadlineExceeded): ReplicaSet "churn-prod" has timed out'
    assert failed.message.startswith(said)
    assert failed.message.endswith(f"rolled back to {good.digest}")
    now = cluster.get("apps/v1", "Deployment", "churn-prod")
    assert now is not None
    assert now["spec"]["template"] == ran["spec"]["template"]  # the old pods' template
    seen = runtime(cluster, BAD).observe(scaled, failed, context(tmp_path))
    assert seen == failed  # a heal must not put the failing template back


def test_removing_autoscaling_prunes_the_autoscaler(
    double: KubeApiDouble, cluster: Cluster, tmp_path: Path
) -> None:
    scaled = command("deployments/churn-dev.yaml")
    assert runtime(cluster).apply(scaled, context(tmp_path)).phase == "Ready"
    assert cluster.get("autoscaling/v2", "HorizontalPodAutoscaler", "churn-dev") is not None
    fixed = command("deployments/churn-dev.yaml", autoscaling=None, replicas=2)
    assert runtime(cluster).apply(fixed, context(tmp_path)).phase == "Ready"
    assert cluster.get("autoscaling/v2", "HorizontalPodAutoscaler", "churn-dev") is None
    assert cluster.get("v1", "Service", "churn-dev") is not None


def test_drift_is_healed_or_reported_by_self_heal(
    double: KubeApiDouble, cluster: Cluster, tmp_path: Path
) -> None:
    made = command("deployments/churn-prod.yaml", autoscaling=None, replicas=2)
    applied = runtime(cluster).apply(made, context(tmp_path))
    apps = client.AppsV1Api(cluster.api)
    apps.patch_namespaced_deployment(  # someone runs `kubectl scale --replicas 7`
        "churn-prod", TARGET.namespace, {"spec": {"replicas": 7}}
    )
    kept = runtime(cluster).observe(made, applied, context(tmp_path, self_heal=False))
    assert "drifted from the command (Deployment); selfHeal is off" in kept.message
    runtime(cluster).observe(made, applied, context(tmp_path))
    live = cluster.get("apps/v1", "Deployment", "churn-prod")
    assert live is not None and live["spec"]["replicas"] == 2
    double.controllers.step()  # the controller rolls the healed generation out
    before = len(double.requests)
    quiet = runtime(cluster).observe(made, applied, context(tmp_path))
    assert quiet.phase == "Ready", quiet.message
    assert not [r for r in double.requests[before:] if r.method != "GET"]  # no write when in sync


def test_delete_removes_every_object_by_inventory(
    double: KubeApiDouble, cluster: Cluster, tmp_path: Path
) -> None:
    made = command("deployments/churn-dev.yaml")
    runtime(cluster).apply(made, context(tmp_path))
    runtime(cluster).delete(made)
    runtime(cluster).delete(made)  # twice is harmless
    for api_version, kind in [
        ("apps/v1", "Deployment"),
        ("v1", "Service"),
        ("autoscaling/v2", "HorizontalPodAutoscaler"),
    ]:
        assert cluster.get(api_version, kind, "churn-dev") is None


def test_a_cancelled_apply_sends_nothing(
    double: KubeApiDouble, cluster: Cluster, tmp_path: Path
) -> None:
    cancel = CancelToken()
    cancel.cancel("the agent is stopping")
    with pytest.raises(CancelledError, match="the agent is stopping"):
        runtime(cluster).apply(
            command("deployments/churn-prod.yaml"), context(tmp_path, cancel=cancel)
        )
    assert patches(double) == []


def test_the_cluster_says_why_it_refuses(double: KubeApiDouble, cluster: Cluster) -> None:
    manifest = render.deployment(command("deployments/churn-prod.yaml"), TARGET)[0]
    manifest["spec"]["selector"] = {"matchLabels": {"app": "other"}}
    with pytest.raises(ClusterError, match=r"^422 ") as refused:
        cluster.apply(manifest)
    assert refused.value.status == 422


def test_rollout_and_drift_read_the_objects_as_kubectl_does() -> None:
    live = {
        "metadata": {"generation": 2},
        "spec": {"replicas": 2},
        "status": {"observedGeneration": 1},
    }
    assert rollout(live)[0] == "Progressing"
    live["status"] = {
        "observedGeneration": 2,
        "replicas": 3,
        "updatedReplicas": 2,
        "availableReplicas": 2,
    }
    assert rollout(live) == ("Progressing", "1 old replica(s) still running")
    live["status"]["replicas"] = 2
    assert rollout(live) == ("Ready", "")
    stuck = {"type": "Progressing", "status": "False", "reason": "ProgressDeadlineExceeded"}
    live["status"]["conditions"] = [stuck]
    assert rollout(live)[0] == "Failed"
    assert (
        list(drift({"a": {"b": [1, {"c": "1"}]}}, {"a": {"b": [1, {"c": 1, "d": 0}]}, "e": 1}))
        == []
    )
    assert list(drift({"a": {"b": [1, 2]}}, {"a": {"b": [1]}})) == ["a.b"]
    assert list(drift({"a": "x"}, {})) == ["a"]


def test_status_is_signed_fields_only(
    double: KubeApiDouble, cluster: Cluster, tmp_path: Path
) -> None:
    done = runtime(cluster).apply(command("deployments/churn-prod.yaml"), context(tmp_path))
    assert signed.ResourceStatus.model_validate(done.model_dump()) == done


def test_replicas_of_an_autoscaled_deployment_are_the_autoscalers(
    double: KubeApiDouble, cluster: Cluster, tmp_path: Path
) -> None:
    """The HPA scales by writing ``replicas``: that is not drift, and no heal undoes it."""
    made = command("deployments/churn-prod.yaml")
    applied = runtime(cluster).apply(made, context(tmp_path))
    client.AppsV1Api(cluster.api).patch_namespaced_deployment(
        "churn-prod", TARGET.namespace, {"spec": {"replicas": 5}}
    )
    before = len(double.requests)
    runtime(cluster).observe(made, applied, context(tmp_path))
    assert [r.method for r in double.requests[before:]] == ["GET"] * 4
    live = cluster.get("apps/v1", "Deployment", "churn-prod")
    assert live is not None and live["spec"]["replicas"] == 5


def _watched(cluster: Cluster) -> Inventory:
    selector = {render.MANAGED_BY: "gitplane", render.PLANE: TARGET.plane}
    inventory = Inventory(cluster, selector, owned(keda=False), watch_seconds=5).start()
    assert inventory.wait_synced(5)
    return inventory


def _until(check: Callable[[], bool]) -> bool:
    deadline = time.monotonic() + 5
    while not check():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True


def test_an_idle_plane_is_observed_from_watches_with_no_request(
    double: KubeApiDouble, cluster: Cluster, tmp_path: Path
) -> None:
    """Observing reads the informer's cache: no LIST, no GET per cycle, however many
    deployments; a change anyone makes arrives by the watch, and is healed."""
    inventory = _watched(cluster)
    try:
        watched = Deployments(cluster, TARGET, poll=0.02, inventory=inventory)
        made = command("deployments/churn-prod.yaml", autoscaling=None, replicas=1)
        applied = watched.apply(made, context(tmp_path))
        assert _until(
            lambda: (
                (inventory.get("apps/v1", "Deployment", "churn-prod") or {})
                .get("status", {})
                .get("readyReplicas")
                == 1
            )
        )
        before = len(double.requests)
        for _ in range(20):
            assert watched.observe(made, applied, context(tmp_path)).phase == "Ready"
        assert double.requests[before:] == []  # 20 cycles, not one request
        client.AppsV1Api(cluster.api).patch_namespaced_deployment(
            "churn-prod", TARGET.namespace, {"spec": {"replicas": 4}}
        )  # someone scales it
        assert _until(
            lambda: (
                (inventory.get("apps/v1", "Deployment", "churn-prod") or {})["spec"]["replicas"]
                == 4
            )
        )
        watched.observe(made, applied, context(tmp_path))
        live = cluster.get("apps/v1", "Deployment", "churn-prod")
        assert live is not None and live["spec"]["replicas"] == 1  # healed from the watch's news
        watched.delete(made)
        assert _until(lambda: inventory.get("apps/v1", "Deployment", "churn-prod") is None)
    finally:
        inventory.stop()


def _lists_of_services(double: KubeApiDouble) -> int:
    return sum(
        1
        for r in double.requests
        if r.method == "GET" and r.path.endswith("/services") and "watch" not in r.query
    )


def test_a_watch_too_old_to_resume_lists_again(double: KubeApiDouble, cluster: Cluster) -> None:
    inventory = _watched(cluster)
    try:
        runtime(cluster).cluster.apply(
            render.deployment(command("deployments/churn-prod.yaml"), TARGET)[1]
        )
        assert _until(lambda: inventory.get("v1", "Service", "churn-prod") is not None)
        lists = _lists_of_services(double)
        double.compact()  # the versions the watches hold are gone: 410 on resume
        for stream in list(inventory._watches):
            stream.stop()  # end the current watches as a server would
        cluster.delete("v1", "Service", "churn-prod")
        assert _until(lambda: inventory.get("v1", "Service", "churn-prod") is None)
        assert _lists_of_services(double) == lists + 1  # listed again, as a reflector does
    finally:
        inventory.stop()


def test_a_one_replica_change_is_one_request(
    double: KubeApiDouble, cluster: Cluster, tmp_path: Path
) -> None:
    """With the cache, an apply sends only the objects that changed (the floor: one request
    per changed object) and reads the rollout from the watch, not by polling."""
    inventory = _watched(cluster)
    try:
        watched = Deployments(cluster, TARGET, poll=0.02, inventory=inventory)
        one = command("deployments/churn-prod.yaml", autoscaling=None, replicas=1)
        assert watched.apply(one, context(tmp_path)).phase == "Ready"
        before = len(double.requests)
        two = command("deployments/churn-prod.yaml", autoscaling=None, replicas=2)
        done = watched.apply(two, context(tmp_path))
        assert (done.phase, done.observed["desiredReplicas"]) == ("Ready", 2), done.message
        sent = [(r.method, r.path.rsplit("/", 2)[-2]) for r in double.requests[before:]]
        assert sent == [("PATCH", "deployments")]
    finally:
        inventory.stop()
