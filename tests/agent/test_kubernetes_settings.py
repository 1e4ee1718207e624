"""The Kubernetes runtime and the plane's signed settings (ADR 0016): its Target made from
them, ``Blocked`` without them, rebuilt when they change; and what it memoises."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from kubernetes import client, config

from agent.config import load_config
from agent.journal import Journal
from agent.runtimes import select
from agent.runtimes.base import ApplyContext
from agent.runtimes.kubernetes import KubernetesRuntime, render
from agent.runtimes.kubernetes.cluster import Cluster
from agent.runtimes.kubernetes.deployments import Deployments
from ledger import gitrepo
from schemas import dataplane
from tests.agent.test_kubernetes_deployments import NOW, cluster, double  # noqa: F401
from tests.agent.test_kubernetes_render import SETTINGS, TARGET, command
from tests.kubeapi.server import KubeApiDouble


def _settings(**changes: object) -> dataplane.KubernetesRuntime:
    body = {**SETTINGS.model_dump(by_alias=True, exclude_none=True), **changes}
    return dataplane.KubernetesRuntime.model_validate(body)


def _context(
    tmp_path: Path, settings: dataplane.KubernetesRuntime | None = SETTINGS
) -> ApplyContext:
    return ApplyContext("0" * 40, tmp_path, now=NOW, kubernetes=settings)


@pytest.mark.effect(
    "DataPlane", "spec.kubernetes.mlflowTrackingUri", "spec.kubernetes.images.serving"
)
def test_the_target_is_made_from_the_signed_settings() -> None:
    """What the Target holds is what every rendered object uses (the golden manifests)."""
    assert render.target_of(TARGET.plane, SETTINGS) == TARGET


@pytest.mark.parametrize(
    ("settings", "kind", "unset"),
    [
        (
            {"images": {"serving": "ghcr.io/a/serve:1"}},
            "Deployment",
            ["mlflowTrackingUri", "images.agent"],
        ),
        ({"mlflowTrackingUri": "http://mlflow"}, "Deployment", ["images.serving", "images.agent"]),
        (
            {"mlflowTrackingUri": "http://m", "images": {"serving": "ghcr.io/a/serve:1"}},
            "Model",
            ["images.agent", "source.url"],
        ),
    ],
    ids=["no-tracking-uri", "no-images", "build-without-agent-image"],
)
def test_what_a_kind_needs_and_the_plane_did_not_sign_is_named(
    settings: dict[str, object], kind: str, unset: list[str]
) -> None:
    target = render.target_of("p", dataplane.KubernetesRuntime.model_validate(settings))
    assert render.unset(target, kind) == unset


def test_the_build_image_defaults_to_the_serving_image() -> None:
    target = render.target_of("p", _settings(images={"serving": "ghcr.io/a/serve:1"}))
    assert target.build_image == "ghcr.io/a/serve:1"


CONTEXTS: dict[KubernetesRuntime, list[str | None]] = {}
"""The kubeconfig contexts each runtime connected with."""


@pytest.fixture
def runtime(double: KubeApiDouble, tmp_path: Path) -> Iterator[KubernetesRuntime]:  # noqa: F811
    kubeconfig = double.write_kubeconfig(tmp_path / "kubeconfig")
    api = config.new_client_from_config(config_file=str(kubeconfig))
    for namespace in (TARGET.namespace, "gitplane-next"):
        client.CoreV1Api(api).create_namespace({"metadata": {"name": namespace}})
    contexts: list[str | None] = []

    def connect(context: str | None) -> client.ApiClient:
        contexts.append(context)
        return api

    made = KubernetesRuntime(connect, TARGET.plane)
    CONTEXTS[made] = contexts
    yield made
    made.close()


def test_without_signed_settings_a_command_is_blocked_and_nothing_is_sent(
    runtime: KubernetesRuntime,
    double: KubeApiDouble,  # noqa: F811
    tmp_path: Path,
) -> None:
    sent = len(double.requests)
    made = command("deployments/churn-prod.yaml")
    done = runtime.apply(made, _context(tmp_path, None))
    assert (done.phase, done.message) == (
        "Blocked",
        "no kubernetes settings signed for this plane yet",
    )
    assert done.digest == made.digest
    assert runtime.observe(made, done, _context(tmp_path, None)) is done
    runtime.delete(made)  # nothing was applied: nothing to remove
    assert len(double.requests) == sent


def test_settings_that_lack_what_a_kind_needs_block_it(
    runtime: KubernetesRuntime, tmp_path: Path
) -> None:
    lacking = dataplane.KubernetesRuntime.model_validate({"namespace": TARGET.namespace})
    done = runtime.apply(command("deployments/churn-prod.yaml"), _context(tmp_path, lacking))
    assert done.phase == "Blocked"
    assert done.message == (
        "the plane's spec.kubernetes sets no images.serving, mlflowTrackingUri, images.agent"
    )


@pytest.mark.effect("DataPlane", "spec.kubernetes.namespace", "spec.kubernetes.context")
def test_new_settings_rebuild_the_handlers_where_they_say(
    runtime: KubernetesRuntime,
    double: KubeApiDouble,  # noqa: F811
    tmp_path: Path,
) -> None:
    made = command("deployments/churn-prod.yaml")
    assert runtime.apply(made, _context(tmp_path)).phase == "Ready"
    first = runtime.target
    moved = _settings(
        namespace="gitplane-next",
        context="eu",
        images={"serving": "ghcr.io/a/serve:2", "agent": TARGET.agent_image},
    )
    done = runtime.apply(made, _context(tmp_path, moved))
    assert done.phase == "Ready", done.message
    assert CONTEXTS[runtime] == [None, "eu"]  # connected again, to the context signed
    assert runtime.target == render.target_of(TARGET.plane, moved) != first
    where = {
        r.path.split("/namespaces/")[1].split("/")[0]
        for r in double.requests
        if r.method == "PATCH"
    }
    assert where == {TARGET.namespace, "gitplane-next"}


def test_an_idle_observation_parses_and_renders_nothing(
    cluster: Cluster,  # noqa: F811
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    rendered: list[str] = []
    real = render.deployment

    def counted(*args: object) -> list[render.Manifest]:
        rendered.append("once")
        return real(*args)  # type: ignore[arg-type]

    monkeypatch.setattr(render, "deployment", counted)
    deployments = Deployments(cluster, TARGET, poll=0.02)
    made = command("deployments/churn-prod.yaml")
    last = deployments.apply(made, _context(tmp_path))
    for _ in range(3):
        last = deployments.observe(made, last, _context(tmp_path))
    assert last.phase == "Ready" and rendered == ["once"]
    changed = command("deployments/churn-prod.yaml", replicas=3, autoscaling=None)
    deployments.observe(changed, last, _context(tmp_path))
    assert rendered == ["once", "once"]


def test_the_journal_keeps_the_newest_settings_across_a_restart(tmp_path: Path) -> None:
    journal = Journal.load(tmp_path / "journal.json")
    assert journal.kubernetes is None
    journal.kubernetes = SETTINGS
    journal.save()
    assert Journal.load(tmp_path / "journal.json").kubernetes == SETTINGS
    assert b'"mlflowTrackingUri"' in (tmp_path / "journal.json").read_bytes()  # as signed


def test_select_builds_the_kubernetes_runtime_with_the_journals_settings(
    double: KubeApiDouble,  # noqa: F811
    tmp_path: Path,
) -> None:
    double.write_kubeconfig(tmp_path / "kubeconfig")
    path = tmp_path / "agent.yaml"
    path.write_text(
        "plane: prod-eu\nrepo: /srv/specs.git\nrootFile: root.json\nkeyFile: k.key\n"
        "stateDir: state\nruntime: {type: kubernetes, kubeconfig: kubeconfig}\n"
    )
    config = load_config(path)
    journal = Journal(config.state_dir / "journal.json", kubernetes=SETTINGS)
    config.state_dir.mkdir()
    journal.save()
    runtime = select.for_config(config, gitrepo.GitRepo(tmp_path))
    assert isinstance(runtime, KubernetesRuntime)
    assert (runtime.plane, runtime.settings) == ("prod-eu", SETTINGS)
    runtime.delete(command("deployments/churn-prod.yaml"))  # reaches the double: nothing there
    runtime.close()
    assert any(r.method == "GET" for r in double.requests)
