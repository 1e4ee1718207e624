"""A Kubernetes plane's settings in its DataPlane spec (ADR 0016): typed, refused at their
place when wrong, and warned about as not read while the runtime does not read them."""

from __future__ import annotations

import pytest

from schemas import support
from schemas.parse import parse_spec
from tests.conftest import EXAMPLE_REPO

PLANE = """apiVersion: gitplane.dev/v1alpha1
kind: DataPlane
metadata: {name: prod-eu, labels: {env: prod}}
spec:
  runtime: kubernetes
  kubernetes:
    namespace: ml-serving
    images:
      serving: ghcr.io/acme/mlflow-serve:2.14
      build: registry.local:5000/ml/build@sha256:%s
    source:
      url: https://git.example.com/ml/specs.git
      secret: specs-read-token
    autoscaling:
      prometheus: {url: "http://prometheus.monitoring.svc:9090"}
    onlineStore:
      redis: {secret: feature-redis}
    offlineStore:
      volume: features-pvc
      path: stores/features
""" % ("ab" * 32)


def test_a_kubernetes_plane_declares_its_images_and_source() -> None:
    parsed = parse_spec("prod.yaml", PLANE.encode())
    assert parsed.problems == []
    kubernetes = parsed.document.spec.kubernetes  # type: ignore[union-attr]
    assert kubernetes.images.serving == "ghcr.io/acme/mlflow-serve:2.14"
    assert kubernetes.images.agent is None
    assert kubernetes.source.secret == "specs-read-token"
    assert kubernetes.autoscaling.prometheus.url == "http://prometheus.monitoring.svc:9090"
    assert kubernetes.online_store.redis.secret == "feature-redis"
    assert (kubernetes.offline_store.volume, kubernetes.offline_store.path) == (
        "features-pvc",
        "stores/features",
    )


@pytest.mark.parametrize(
    ("old", "new", "says"),
    [
        ("serve:2.14", "Serve:2.14",
         "prod.yaml:9:16: spec.kubernetes.images.serving: 'ghcr.io/acme/mlflow-Serve:2.14' "
         "is not an image reference"),
        ("secret: specs-read-token", "secret: Specs_Token",
         "prod.yaml:13:15: spec.kubernetes.source.secret: 'Specs_Token' is not a Secret name"),
        ("namespace: ml-serving", "namespace: ml_serving",
         "prod.yaml:7:16: spec.kubernetes.namespace: 'ml_serving' is not a DNS-1123 label"),
        ("      build:", "      buld:",
         "prod.yaml:10:7: spec.kubernetes.images.buld: unknown field 'buld' "
         "(did you mean 'build'?)"),
        ("url: https://git.example.com/ml/specs.git", "url: /srv/specs",
         "prod.yaml:12:12: spec.kubernetes.source.url: '/srv/specs' is not a git URL"),
        ("prometheus.monitoring", "admin:hunter2@prometheus.monitoring",
         "prod.yaml:15:25: spec.kubernetes.autoscaling.prometheus.url: "
         "'http://admin:hunter2@prometheus.monitoring.svc:9090' is not an http:// or https:// "
         "URL without credentials"),
        ("redis: {secret: feature-redis}", "redis: {secret: r, url: redis}",
         "prod.yaml:17:26: spec.kubernetes.onlineStore.redis.url: unknown field 'url'"),
        ("volume: features-pvc", "volume: Features_PVC",
         "prod.yaml:19:15: spec.kubernetes.offlineStore.volume: 'Features_PVC' is not a "
         "PersistentVolumeClaim name"),
        ("path: stores/features", "path: ../etc",
         "prod.yaml:20:13: spec.kubernetes.offlineStore.path: '../etc' is not a relative path"),
        ("path: stores/features", "path: /srv/features",
         "prod.yaml:20:13: spec.kubernetes.offlineStore.path: '/srv/features' is not a relative"),
    ],
    ids=["image", "secret", "namespace", "typo", "url", "prometheus-credentials", "redis-url",
         "claim", "dotdot", "abs"],
)  # fmt: skip
def test_a_wrong_setting_is_refused_at_its_place(old: str, new: str, says: str) -> None:
    assert old in PLANE
    parsed = parse_spec("prod.yaml", PLANE.replace(old, new).encode())
    assert parsed.document is None
    assert str(parsed.problems[0]).startswith(says), str(parsed.problems[0])


@pytest.mark.effect("DataPlane", "spec.runtime")
@pytest.mark.parametrize(("runtime", "warned"), [("local", False), ("kubernetes", True)])
def test_the_runtime_decides_which_fields_are_warned_about(runtime: str, warned: bool) -> None:
    """A step's retry backoff is applied by the local runtime and not by the kubernetes one
    (a Job has no field for it): the same DAG is warned about only on a kubernetes plane."""
    plane = parse_spec(
        "plane.yaml",
        f"apiVersion: gitplane.dev/v1alpha1\nkind: DataPlane\n"
        f"metadata: {{name: p, labels: {{env: dev}}}}\nspec: {{runtime: {runtime}}}\n".encode(),
    ).document
    dag = parse_spec("dag.yaml", (EXAMPLE_REPO / "dags" / "churn-batch.yaml").read_bytes()).document
    assert plane is not None and dag is not None
    files = [("plane.yaml", plane), ("dag.yaml", dag)]
    found = [str(f.message) for _, f in support.warnings(files)]
    assert any("retry" in m or "a Job has no field" in m for m in found) is warned, found
