"""The manifests a Kubernetes plane applies, rendered from example-repo's own specs.

Two checks keep the renderer honest without a cluster: the output is compared with golden
manifests (a change to them is a reviewed diff), and every object must read into the
official client's model classes and write back unchanged, so no field is misspelt,
misplaced or unknown to the API (the client's models drop what they do not know).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from kubernetes import client

from agent.runtimes.kubernetes import render
from ledger import envelope
from schemas import signed
from schemas.deployment import Deployment
from schemas.parse import parse_spec

ROOT = Path(__file__).resolve().parents[2]
GOLDEN = ROOT / "tests" / "fixtures" / "kubernetes"
TARGET = render.Target(
    plane="prod-eu",
    namespace="gitplane-prod",
    serving_image="ghcr.io/example/mlflow-serve:2.14",
    tracking_uri="http://mlflow.mlflow.svc:5000",
)
PINNED = {
    "name": "churn",
    "version": "1.2.0",
    "registryVersion": 7,
    "digest": "sha256:" + "ab" * 32,
    "uri": "models:/churn/7",
}


def command(path: str, **spec: object) -> signed.Command:
    """The command the reconciler signs for example-repo's ``path``, its model pinned, with
    ``spec``'s fields set (None: removed)."""
    document = parse_spec(path, (ROOT / "example-repo" / path).read_bytes()).document
    assert isinstance(document, Deployment), path
    declared = {**document.spec.model_dump(by_alias=True, exclude_unset=True), **spec}
    body = {
        "apiVersion": "gitplane.dev/v1alpha1",
        "kind": "Deployment",
        "metadata": {"name": document.name},
        "spec": {k: v for k, v in declared.items() if v is not None},
        "resolved": {"model": PINNED},
    }
    text = json.dumps(body, sort_keys=True)
    return signed.Command(
        id=f"Deployment/{document.name}",
        action="apply",
        kind="Deployment",
        name=document.name,
        spec=text,
        digest=envelope.digest(text.encode()),
    )


CASES = {
    "churn-prod": lambda: command("deployments/churn-prod.yaml"),
    "churn-dev": lambda: command("deployments/churn-dev.yaml"),
    "recreate-gpu": lambda: command(
        "deployments/churn-prod.yaml",
        rollout={"strategy": "recreate"},
        resources={"cpu": "2", "memory": "8Gi", "gpu": 1},
    ),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_deployments_render_as_the_golden_manifests(case: str) -> None:
    rendered = render.deployment(CASES[case](), TARGET)
    text = yaml.safe_dump_all(rendered, sort_keys=True)
    golden = GOLDEN / f"deployment-{case}.yaml"
    assert text == golden.read_text(), f"{golden} differs: review the change, then update it"


MODELS = {
    ("apps/v1", "Deployment"): "V1Deployment",
    ("v1", "Service"): "V1Service",
    ("autoscaling/v2", "HorizontalPodAutoscaler"): "V2HorizontalPodAutoscaler",
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_every_object_is_what_the_official_client_models_know(case: str) -> None:
    api = client.ApiClient()
    for manifest in render.deployment(CASES[case](), TARGET):
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
        assert manifest["metadata"]["annotations"][render.DIGEST] == made.digest
    template = render.deployment(made, TARGET)[0]["spec"]["template"]["metadata"]["labels"]
    assert render.DIGEST not in template  # a new digest alone must not roll every pod


def test_autoscaled_deployments_leave_replicas_to_the_autoscaler() -> None:
    scaled = render.deployment(CASES["churn-dev"](), TARGET)
    assert "replicas" not in scaled[0]["spec"]
    assert [m["kind"] for m in scaled] == ["Deployment", "Service", "HorizontalPodAutoscaler"]
    fixed = command("deployments/churn-dev.yaml", autoscaling=None, replicas=3)
    deployment, service = render.deployment(fixed, TARGET)
    assert deployment["spec"]["replicas"] == 3
    assert service["kind"] == "Service"
