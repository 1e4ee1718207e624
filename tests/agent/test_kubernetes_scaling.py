"""Which autoscaler a Deployment gets on a Kubernetes plane, and that its status says so.

KEDA is "installed" when the API server test double serves its ScaledObject CRD (and says
so by discovery); the runtime finds out as it would on a cluster, through the official
client. The double has no KEDA operator: the HPA that KEDA would make for a ScaledObject is
made by hand where a test needs it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from pathlib import Path

import pytest
from kubernetes import client, config

from agent.runtimes.kubernetes import KubernetesRuntime, render, scalers
from agent.runtimes.kubernetes.cluster import Cluster
from agent.runtimes.kubernetes.deployments import Deployments
from schemas.deployment import Autoscaling
from schemas.errors import GitplaneError
from schemas.observed import EndpointObserved
from tests.agent.test_kubernetes_deployments import _until, context, stepped
from tests.agent.test_kubernetes_render import KEDA, TARGET, command
from tests.kubeapi.server import KubeApiDouble

SCALED = ("keda.sh/v1alpha1", "ScaledObject")
HPA = ("autoscaling/v2", "HorizontalPodAutoscaler")


@pytest.fixture(params=[True], ids=["with-keda"])
def double(request: pytest.FixtureRequest) -> Iterator[KubeApiDouble]:
    with stepped(keda=request.param) as started:
        yield started


@pytest.fixture
def cluster(double: KubeApiDouble, tmp_path: Path) -> Iterator[Cluster]:
    kubeconfig = double.write_kubeconfig(tmp_path / "kubeconfig")
    with config.new_client_from_config(config_file=str(kubeconfig)) as api:
        client.CoreV1Api(api).create_namespace({"metadata": {"name": TARGET.namespace}})
        yield Cluster(api, TARGET.namespace)


def deployments(cluster: Cluster, target: render.Target = KEDA) -> Deployments:
    return Deployments(cluster, target, poll=0.02)


@pytest.mark.parametrize("double", [False, True], ids=["without-keda", "with-keda"], indirect=True)
def test_the_runtime_discovers_keda_and_watches_scaled_objects_only_then(
    double: KubeApiDouble, cluster: Cluster, tmp_path: Path
) -> None:
    keda = double.keda
    assert cluster.serves(*SCALED) is keda
    assert cluster.serves("apps/v1", "Deployment")
    assert not cluster.serves("apps/v1", "ScaledObject")
    undiscovered = dataclasses.replace(KEDA, keda=False)  # discovery decides
    runtime = KubernetesRuntime(cluster, undiscovered)
    try:
        assert runtime.deployments.target.keda is keda
        assert (SCALED in runtime.inventory.kinds) is keda
        assert runtime.inventory.wait_synced(5)  # a watch of an unserved kind never syncs
        made = command("deployments/churn-dev.yaml")
        done = runtime.deployments.apply(made, context(tmp_path))
        assert EndpointObserved.of(done).scaler == ("keda" if keda else "hpa-cpu")
        scaler = SCALED if keda else HPA
        assert _until(lambda: runtime.inventory.get(*scaler, "churn-dev") is not None)
    finally:
        double.stop()  # ends the watches: closing waits for each one open otherwise
        runtime.close()


def test_with_keda_and_prometheus_a_scaled_object_scales_and_the_status_says_so(
    double: KubeApiDouble, cluster: Cluster, tmp_path: Path
) -> None:
    made = command("deployments/churn-prod.yaml")
    done = deployments(cluster).apply(made, context(tmp_path))
    assert done.phase == "Ready", done.message
    seen = EndpointObserved.of(done)
    assert (seen.scaler, seen.scaler_warning, done.message) == ("keda", None, "")
    scaled = cluster.get(*SCALED, "churn-prod")
    assert scaled is not None and cluster.get(*HPA, "churn-prod") is None
    assert scaled["spec"]["minReplicaCount"] == 2
    assert [t["metadata"]["threshold"] for t in scaled["spec"]["triggers"]] == ["100", "120"]


@pytest.mark.parametrize(
    ("keda", "url", "why"),
    [
        (False, "http://prometheus:9090", "KEDA is not installed in the cluster"),
        (True, "", "no Prometheus URL on the plane"),
    ],
    ids=["no-keda", "no-prometheus"],
)
def test_otherwise_an_hpa_on_cpu_and_the_status_names_the_targets_not_honoured(
    cluster: Cluster, tmp_path: Path, keda: bool, url: str, why: str
) -> None:
    target = dataclasses.replace(TARGET, keda=keda, prometheus_url=url)
    done = deployments(cluster, target).apply(
        command("deployments/churn-prod.yaml"), context(tmp_path)
    )
    seen = EndpointObserved.of(done)
    assert (done.phase, seen.scaler) == ("Ready", "hpa-cpu")
    assert seen.scaler_warning == done.message
    assert done.message == (
        f"autoscaling by hpa-cpu ({why}): not honoured: "
        "targets.rpsPerReplica (an HPA scales on CPU only); "
        "targets.p95LatencyMs (an HPA scales on CPU only)"
    )
    assert cluster.get(*HPA, "churn-prod") is not None
    assert cluster.get(*SCALED, "churn-prod") is None


def test_switching_the_scaler_prunes_the_other_one(
    double: KubeApiDouble, cluster: Cluster, tmp_path: Path
) -> None:
    made = command("deployments/churn-dev.yaml")
    no_prometheus = dataclasses.replace(KEDA, prometheus_url="")
    assert deployments(cluster, no_prometheus).apply(made, context(tmp_path)).phase == "Ready"
    assert cluster.get(*HPA, "churn-dev") is not None
    assert deployments(cluster).apply(made, context(tmp_path)).phase == "Ready"
    assert cluster.get(*HPA, "churn-dev") is None  # pruned: one autoscaler, never two
    assert cluster.get(*SCALED, "churn-dev") is not None
    assert deployments(cluster, no_prometheus).apply(made, context(tmp_path)).phase == "Ready"
    assert cluster.get(*SCALED, "churn-dev") is None
    assert cluster.get(*HPA, "churn-dev") is not None


def test_kedas_own_hpa_is_left_to_keda_and_delete_removes_the_scaled_object(
    double: KubeApiDouble, cluster: Cluster, tmp_path: Path
) -> None:
    """KEDA makes an HPA for each ScaledObject, owned by it and carrying its labels (ours):
    prune and delete must not take it, KEDA's garbage collection does."""
    made = command("deployments/churn-dev.yaml")
    runtime = deployments(cluster)
    runtime.apply(made, context(tmp_path))
    scaled = cluster.get(*SCALED, "churn-dev")
    assert scaled is not None
    owner = {"apiVersion": SCALED[0], "kind": SCALED[1], "name": "churn-dev"}
    owner["uid"] = scaled["metadata"]["uid"]
    kedas = scalers.hpa(
        SCALING,
        name="churn-dev",
        metadata={
            "name": "keda-hpa-churn-dev",
            "namespace": TARGET.namespace,
            "labels": render.labels(TARGET, "Deployment", "churn-dev"),
            "ownerReferences": [owner],
        },
    )
    cluster.apply(kedas)
    runtime.apply(made, context(tmp_path))  # prunes nothing
    assert cluster.get(*HPA, "keda-hpa-churn-dev") is not None
    runtime.delete(made)
    assert cluster.get(*SCALED, "churn-dev") is None
    assert cluster.get("apps/v1", "Deployment", "churn-dev") is None
    assert cluster.get(*HPA, "keda-hpa-churn-dev") is None  # gone with its owner


def test_scale_to_zero_only_with_keda_and_never_silently(
    double: KubeApiDouble, cluster: Cluster, tmp_path: Path
) -> None:
    scaling = {"minReplicas": 0, "maxReplicas": 3, "targets": {"rpsPerReplica": 10}}
    made = command("deployments/churn-prod.yaml", autoscaling=scaling)
    by_keda = deployments(cluster).apply(made, context(tmp_path))
    scaled = cluster.get(*SCALED, "churn-prod")
    assert scaled is not None and scaled["spec"]["minReplicaCount"] == 0
    assert "a request at 0 replicas" in by_keda.message
    by_hpa = deployments(cluster, TARGET).apply(made, context(tmp_path))
    hpa = cluster.get(*HPA, "churn-prod")
    assert hpa is not None and hpa["spec"]["minReplicas"] == 1
    assert "minReplicas 0 (an HPA keeps 1)" in by_hpa.message


def test_a_fixed_replica_count_has_no_scaler() -> None:
    made = command("deployments/churn-prod.yaml", autoscaling=None, replicas=2)
    assert render.scaler(made, KEDA) is None
    assert [m["kind"] for m in render.deployment(made, KEDA)] == ["Deployment", "Service"]


SPEC = {"minReplicas": 1, "maxReplicas": 4, "targets": {"errorRate": 0.05}, "pollingInterval": "5s"}
SCALING = Autoscaling.model_validate(SPEC)


@pytest.mark.parametrize(
    ("keda", "url", "kind", "warning"),
    [
        (True, "http://p:9090", "keda", ""),
        (
            False,
            "http://p:9090",
            "hpa-cpu",
            "autoscaling by hpa-cpu (KEDA is not installed in the cluster): not honoured: "
            "targets.errorRate (an HPA scales on CPU only); "
            "pollingInterval (the cluster's HPA sync period applies)",
        ),
    ],
    ids=["keda", "hpa"],
)
def test_choose(keda: bool, url: str, kind: str, warning: str) -> None:
    chosen = scalers.choose(SCALING, keda=keda, prometheus_url=url)
    assert (chosen.kind, chosen.warning) == (kind, warning)


def test_a_cooldown_between_scaling_events_is_warned_about_under_either_scaler() -> None:
    paced = Autoscaling.model_validate({**SPEC, "cooldown": "30s"})
    for keda, url in [(True, "http://p:9090"), (False, "")]:
        chosen = scalers.choose(paced, keda=keda, prometheus_url=url)
        assert chosen.unhonoured[-1] == (
            "cooldown (Kubernetes paces scaling by the stabilization windows)"
        )
    to_zero = Autoscaling.model_validate({**SPEC, "cooldown": "30s", "minReplicas": 0})
    chosen = scalers.choose(to_zero, keda=True, prometheus_url="http://p:9090")
    assert not [u for u in chosen.unhonoured if u.startswith("cooldown")]  # cooldownPeriod


def test_a_plane_without_an_agent_image_cannot_run_the_proxy() -> None:
    no_agent = dataclasses.replace(TARGET, agent_image="")
    with pytest.raises(GitplaneError, match=r"spec.kubernetes.images.agent"):
        render.deployment(command("deployments/churn-prod.yaml"), no_agent)
