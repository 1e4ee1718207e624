"""The manifests a Kubernetes plane applies, rendered from example-repo's own specs.

Two checks keep the renderer honest without a cluster: the output is compared with golden
manifests (a change to them is a reviewed diff), and every object must read into the
official client's model classes and write back unchanged, so no field is misspelt,
misplaced or unknown to the API (the client's models drop what they do not know).
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import pytest
import yaml
from kubernetes import client

from agent.runtimes.kubernetes import render
from ledger import commands
from schemas import dataplane, signed
from schemas.deployment import Deployment
from schemas.parse import parse_spec

ROOT = Path(__file__).resolve().parents[2]
GOLDEN = ROOT / "tests" / "fixtures" / "kubernetes"
TARGET = render.Target(
    plane="prod-eu",
    namespace="gitplane-prod",
    serving_image="ghcr.io/example/mlflow-serve:2.14",
    tracking_uri="http://mlflow.mlflow.svc:5000",
    build_image="ghcr.io/example/mlflow-build:2.14",
    agent_image="ghcr.io/example/gitplane:0.1.0",
    repo_url="https://git.example.com/ml/specs.git",
    source_secret="specs-read-token",
)
SETTINGS = dataplane.KubernetesRuntime.model_validate({
    "namespace": TARGET.namespace,
    "mlflowTrackingUri": TARGET.tracking_uri,
    "images": {"serving": TARGET.serving_image, "build": TARGET.build_image,
               "agent": TARGET.agent_image},
    "source": {"url": TARGET.repo_url, "secret": TARGET.source_secret},
})  # fmt: skip
"""The plane's signed ``spec.kubernetes`` that :data:`TARGET` is made from (ADR 0016)."""
KEDA = dataclasses.replace(
    TARGET, keda=True, prometheus_url="http://prometheus.monitoring.svc:9090"
)
"""The plane in a cluster with KEDA installed, and a Prometheus scraping the proxies."""
COMMIT = "c0ffee" * 6 + "c0ff"
TREE = "7ee" * 13 + "7"
PINNED = {
    "name": "churn",
    "version": "1.2.0",
    "registryVersion": 7,
    "digest": "sha256:" + "ab" * 32,
    "uri": "models:/churn/7",
}


def command(
    path: str, *, pinned: dict[str, object] | None = None, **spec: object
) -> signed.Command:
    """The command the reconciler signs for example-repo's ``path`` (a deployment's model
    pinned, a model's project tree given), with ``spec``'s fields set (None: removed)."""
    document = parse_spec(path, (ROOT / "example-repo" / path).read_bytes()).document
    assert document is not None, path
    declared = {**document.spec.model_dump(by_alias=True, exclude_unset=True), **spec}  # type: ignore[attr-defined]
    body: dict[str, object] = {
        "apiVersion": "gitplane.dev/v1alpha1",
        "kind": document.KIND,
        "metadata": {"name": document.name},
        "spec": {k: v for k, v in declared.items() if v is not None},
    }
    if isinstance(document, Deployment):
        body["resolved"] = {"model": pinned or PINNED}
    else:
        body["inputs"] = {"projects/churn": TREE}
    text = json.dumps(body, sort_keys=True)
    action = "apply" if isinstance(document, Deployment) else "build"
    return commands.new_command(document.KIND, document.name, text, action=action)


FEATURES_TARGET = replace(TARGET, redis_secret="feature-redis", features_volume="features")
FEATURES_SETTINGS = SETTINGS.model_copy(
    update={
        "online_store": dataplane.KubernetesOnlineStore.model_validate(
            {"redis": {"secret": "feature-redis"}}
        ),
        "offline_store": dataplane.KubernetesOfflineStore.model_validate({"volume": "features"}),
    }
)
"""The settings :data:`FEATURES_TARGET` is made from."""
UNTIL = datetime(2026, 4, 10, 3, 0, tzinfo=UTC)


def features_command() -> signed.Command:
    """example-repo's feature set, backfilled in 4-week chunks, 3 at a time."""
    document = parse_spec(
        "f.yaml", (ROOT / "example-repo/features/customer-activity.yaml").read_bytes()
    )
    assert document.document is not None
    spec = document.document.spec.model_dump(by_alias=True, exclude_unset=True)  # type: ignore[attr-defined]
    spec["backfill"] = {"start": "2026-01-01", "chunk": "28d", "parallelism": 3}
    body = {"apiVersion": "gitplane.dev/v1alpha1", "kind": "FeatureSet"}
    text = json.dumps({**body, "metadata": {"name": "customer-activity"}, "spec": spec})
    return commands.new_command("FeatureSet", "customer-activity", text)


CASES = {
    "churn-prod": lambda: command("deployments/churn-prod.yaml"),
    "churn-dev": lambda: command("deployments/churn-dev.yaml"),
    "recreate-gpu": lambda: command(
        "deployments/churn-prod.yaml",
        rollout={"strategy": "recreate"},
        resources={"cpu": "2", "memory": "8Gi", "gpu": 1},
    ),
}
RENDERS: dict[str, Callable[[], list[render.Manifest]]] = {
    **{
        f"deployment-{case}": (lambda make=make: render.deployment(make(), TARGET))
        for case, make in CASES.items()
    },
    "deployment-churn-dev-keda": lambda: render.deployment(CASES["churn-dev"](), KEDA),
    "build-churn": lambda: [render.model_build(command("models/churn.yaml"), COMMIT, TARGET)],
    "featureset-customer-activity": lambda: render.featureset(
        features_command(), FEATURES_TARGET, UNTIL
    ),
}


@pytest.mark.parametrize("case", sorted(RENDERS))
def test_commands_render_as_the_golden_manifests(case: str) -> None:
    text = yaml.safe_dump_all(RENDERS[case](), sort_keys=True)
    golden = GOLDEN / f"{case}.yaml"
    assert text == golden.read_text(), f"{golden} differs: review the change, then update it"


MODELS = {
    ("apps/v1", "Deployment"): "V1Deployment",
    ("v1", "Service"): "V1Service",
    ("autoscaling/v2", "HorizontalPodAutoscaler"): "V2HorizontalPodAutoscaler",
    ("batch/v1", "Job"): "V1Job",
    ("batch/v1", "CronJob"): "V1CronJob",
    ("v1", "ConfigMap"): "V1ConfigMap",
}


SCALED_OBJECT_FIELDS = {
    "scaleTargetRef": {"apiVersion", "kind", "name", "envSourceContainerName"},
    "triggers": {"type", "name", "metadata", "metricType", "useCachedMetrics", "authenticationRef"},
    "advanced": {
        "horizontalPodAutoscalerConfig",
        "restoreToOriginalReplicaCount",
        "scalingModifiers",
    },
}
SCALED_OBJECT_SPEC = {
    "scaleTargetRef",
    "pollingInterval",
    "cooldownPeriod",
    "initialCooldownPeriod",
    "idleReplicaCount",
    "minReplicaCount",
    "maxReplicaCount",
    "fallback",
    "advanced",
    "triggers",
}
"""KEDA 2.x's ``ScaledObject`` (keda.sh/v1alpha1) fields, from its CRD: the official client
has no model of it to check against."""


def _is_a_scaled_object(manifest: render.Manifest) -> None:
    spec = manifest["spec"]
    assert set(manifest) == {"apiVersion", "kind", "metadata", "spec"}
    assert set(spec) <= SCALED_OBJECT_SPEC
    assert set(spec["scaleTargetRef"]) <= SCALED_OBJECT_FIELDS["scaleTargetRef"]
    assert set(spec["advanced"]) <= SCALED_OBJECT_FIELDS["advanced"]
    for trigger in spec["triggers"]:
        assert set(trigger) <= SCALED_OBJECT_FIELDS["triggers"]
        assert all(isinstance(v, str) for v in trigger["metadata"].values())  # a string map
    behavior = spec["advanced"]["horizontalPodAutoscalerConfig"]["behavior"]
    api = client.ApiClient()  # KEDA passes its HPA config through to the HPA it makes
    typed = api.deserialize(json.dumps(behavior), "V2HorizontalPodAutoscalerBehavior", JSON)
    assert api.sanitize_for_serialization(typed) == behavior


JSON = "application/json"


@pytest.mark.parametrize("case", sorted(RENDERS))
def test_every_object_is_what_the_official_client_models_know(case: str) -> None:
    api = client.ApiClient()
    for manifest in RENDERS[case]():
        if manifest["kind"] == "ScaledObject":
            _is_a_scaled_object(manifest)
            continue
        model = MODELS[(manifest["apiVersion"], manifest["kind"])]
        typed = api.deserialize(json.dumps(manifest), model, "application/json")
        assert type(typed).__name__ == model
        assert api.sanitize_for_serialization(typed) == manifest  # nothing unknown, dropped


def test_inventory_labels_and_the_digest_fit_kubernetes_limits() -> None:
    made = CASES["churn-prod"]()
    for manifest in render.deployment(made, TARGET):
        labels = manifest["metadata"]["labels"]
        assert labels[render.MANAGED_BY] == "gitplane"
        assert labels[render.PLANE] == "prod-eu"
        assert labels[render.RESOURCE] == "deployment.churn-prod"
        assert all(len(v) <= 63 for v in labels.values())
    primary, *companions = render.deployment(made, TARGET)
    assert primary["metadata"]["annotations"][render.DIGEST] == made.digest
    assert render.DIGEST not in primary["spec"]["template"]["metadata"]["labels"]  # no roll
    for companion in companions:  # sent again only when they change, not for every command
        assert render.DIGEST not in companion["metadata"]["labels"]
        assert "annotations" not in companion["metadata"]


def test_autoscaled_deployments_leave_replicas_to_the_autoscaler() -> None:
    scaled = render.deployment(CASES["churn-dev"](), TARGET)
    assert "replicas" not in scaled[0]["spec"]
    assert [m["kind"] for m in scaled] == ["Deployment", "Service", "HorizontalPodAutoscaler"]
    fixed = command("deployments/churn-dev.yaml", autoscaling=None, replicas=3)
    deployment, service = render.deployment(fixed, TARGET)
    assert deployment["spec"]["replicas"] == 3
    assert service["kind"] == "Service"


def test_a_build_runs_the_signed_tree_in_the_run_its_pod_makes() -> None:
    """The init container checks the project against the command's tree; the stage
    container then makes the run from what the command and the plane say (nothing made at
    apply time) and reports its id; the run container runs what it wrote."""
    (job,) = RENDERS["build-churn"]()
    pod = job["spec"]["template"]["spec"]
    fetch, stage = pod["initContainers"]
    assert fetch["args"][fetch["args"].index("--tree") + 1] == TREE
    assert fetch["args"][fetch["args"].index("--commit") + 1] == COMMIT
    assert fetch["envFrom"] == [{"secretRef": {"name": "specs-read-token"}}]
    assert stage["command"] == ["python", "-m", "agent.runtimes.kubernetes.build"]
    plan = json.loads(stage["args"][stage["args"].index("--plan") + 1])
    assert plan == {
        "model": "churn",
        "version": "1.2.0",
        "commit": COMMIT,
        "project": {
            "path": "projects/churn",
            "entryPoint": "main",
            "envManager": "local",
            "parameters": {"n_samples": 4000, "c": 0.5, "seed": 7},
        },
        "artifacts": None,  # the tracking server keeps them
    }
    assert stage["terminationMessagePath"] == render.TERMINATION_LOG
    assert stage["env"] == [{"name": "MLFLOW_TRACKING_URI", "value": TARGET.tracking_uri}]
    (run,) = pod["containers"]
    assert run["args"] == ["sh", "../run.sh"]
    assert (job["spec"]["backoffLimit"], pod["restartPolicy"]) == (0, "Never")


@pytest.mark.parametrize(
    ("uri", "artifacts"),
    [
        ("http://mlflow.mlflow.svc:5000", ""),
        ("https://mlflow.example.com", ""),
        ("sqlite:////var/lib/gitplane/mlflow.db", "/var/lib/gitplane/mlartifacts"),
    ],
    ids=["server", "tls-server", "store"],
)
def test_builds_keep_artifacts_in_the_agents_state_only_without_a_server(
    uri: str, artifacts: str
) -> None:
    target = render.with_state(replace(TARGET, tracking_uri=uri), Path("/var/lib/gitplane"))
    assert target.artifacts == artifacts
    job = render.model_build(command("models/churn.yaml"), COMMIT, target)
    (stage,) = job["spec"]["template"]["spec"]["initContainers"][1:]
    plan = json.loads(stage["args"][stage["args"].index("--plan") + 1])
    assert plan["artifacts"] == (artifacts or None)


def _containers(obj: object) -> list[dict[str, object]]:
    """Every container and init container anywhere in a rendered object."""
    if isinstance(obj, dict):
        found = [c for key in ("containers", "initContainers") for c in obj.get(key, [])]
        return found + [c for value in obj.values() for c in _containers(value)]
    if isinstance(obj, list):
        return [c for value in obj for c in _containers(value)]
    return []


@pytest.mark.parametrize("case", sorted(RENDERS))
def test_containers_of_the_agent_image_name_their_command(case: str) -> None:
    """The agent's image has ``gitplane`` as its entrypoint (the Dockerfile): a container
    of it that ran only ``args`` would run ``gitplane python -m ...``."""
    ours = [c for c in _containers(RENDERS[case]()) if c["image"] == TARGET.agent_image]
    assert all(str(c.get("command", [""])[0]) == "python" for c in ours), ours  # type: ignore[index]
