"""deploy/kubernetes, as ``kubectl kustomize`` renders it (kubectl runs for real: no skip).

The Role is checked against the runtime's own table (``cluster.KINDS`` and ``cluster.VERBS``
through :func:`cluster.rules`) in both directions: a rule the runtime does not need is as
much a failure as a call it makes that RBAC would refuse. Whoever adds a kind to
``cluster.KINDS`` learns here what to add to ``deploy/kubernetes/base/role.yaml``.
"""

from __future__ import annotations

import inspect
import json
import re
import shutil
import subprocess
import tomllib
from collections.abc import Iterator
from functools import cache
from pathlib import Path, PurePosixPath
from typing import Any

import pytest
import yaml
from kubernetes import client

from agent import config
from agent.runtimes.kubernetes import cluster, render
from schemas.errors import UsageError
from tests.conftest import EXAMPLE_REPO, ROOT
from tests.packaging import test_dockerfile

DEPLOY = ROOT / "deploy" / "kubernetes"
AGENT_NAMESPACE = "gitplane"
IMAGES = {"base": "gitplane", "overlays/prod-eu": "registry.example.com/ml/gitplane"}
"""The image each kustomization runs (docs/kubernetes.md#images), tagged with the version."""
PLANE_NAMESPACE = {"base": "gitplane-workloads", "overlays/prod-eu": "ml-serving"}
KEY_SECRET = "gitplane-agent-key"
ROOT_CONFIGMAP = "gitplane-agent-root"

Manifest = dict[str, Any]
Triple = tuple[str, str, str]


@cache
def rendered(kustomization: str) -> tuple[Manifest, ...]:
    """``kubectl kustomize deploy/kubernetes/<kustomization>``, parsed."""
    kubectl = shutil.which("kubectl")
    assert kubectl, "kubectl is not on PATH: these checks need it (no skip)"
    done = subprocess.run(
        [kubectl, "kustomize", str(DEPLOY / kustomization)],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert done.returncode == 0, f"kubectl kustomize {kustomization}: {done.stderr}"
    return tuple(doc for doc in yaml.safe_load_all(done.stdout) if doc)


def one(kustomization: str, kind: str, name: str | None = None) -> Manifest:
    found = [
        m
        for m in rendered(kustomization)
        if m["kind"] == kind and name in (None, m["metadata"]["name"])
    ]
    assert len(found) == 1, f"{kustomization}: expected one {kind} {name or ''}, got {len(found)}"
    return found[0]


def pod(kustomization: str) -> Manifest:
    return one(kustomization, "Deployment", "gitplane-agent")["spec"]["template"]["spec"]


def triples(rules: list[Manifest]) -> set[Triple]:
    """(apiGroup, resource, verb) of every permission ``rules`` grant."""
    return {
        (group, resource, verb)
        for rule in rules
        for group in rule.get("apiGroups", [])
        for resource in rule.get("resources", [])
        for verb in rule.get("verbs", [])
    }


def agent_config(kustomization: str) -> Manifest:
    configmap = one(kustomization, "ConfigMap")
    assert configmap["metadata"]["name"].startswith("gitplane-agent-config-")
    loaded = yaml.safe_load(configmap["data"]["agent.yaml"])
    assert isinstance(loaded, dict)
    return loaded


def mounts(kustomization: str) -> dict[str, Manifest]:
    """The agent container's mount path -> its volume."""
    spec = pod(kustomization)
    volumes = {v["name"]: v for v in spec["volumes"]}
    agent = next(c for c in spec["containers"] if c["name"] == "agent")
    return {m["mountPath"]: volumes[m["name"]] for m in agent["volumeMounts"]}


def _under(path: str, kustomization: str) -> Manifest:
    """The volume ``path`` is read from."""
    for mount, volume in mounts(kustomization).items():
        if (
            PurePosixPath(path) == PurePosixPath(mount)
            or PurePosixPath(mount) in PurePosixPath(path).parents
        ):
            return volume
    raise AssertionError(f"{kustomization}: {path} is on no volume of the agent")


def _version() -> str:
    return str(tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"])


KUSTOMIZATIONS = pytest.mark.parametrize("kustomization", ["base", "overlays/prod-eu"])


@KUSTOMIZATIONS
def test_the_kinds_and_no_secret_value(kustomization: str) -> None:
    kinds = sorted(m["kind"] for m in rendered(kustomization))
    assert kinds == sorted(
        [
            "ConfigMap",
            "Deployment",
            "Namespace",
            "Namespace",
            "PersistentVolumeClaim",
            "Role",
            "RoleBinding",
            "ServiceAccount",
        ]
    ), "a Secret in the manifests would be a key in git: it is made out of band"


@KUSTOMIZATIONS
def test_the_role_grants_exactly_what_the_runtime_uses(kustomization: str) -> None:
    granted = triples(one(kustomization, "Role")["rules"])
    needed = triples(cluster.rules())
    assert not needed - granted, (
        f"the runtime calls what the Role does not grant; add to deploy/kubernetes/base/role.yaml: "
        f"{sorted(needed - granted)}"
    )
    assert not granted - needed, (
        f"the Role grants what the runtime never calls (cluster.KINDS, cluster.VERBS); remove: "
        f"{sorted(granted - needed)}"
    )
    assert not any("*" in t for t in granted), "no wildcards"


@KUSTOMIZATIONS
def test_the_role_is_namespaced_in_the_plane_and_bound_to_the_agent_only(
    kustomization: str,
) -> None:
    plane = PLANE_NAMESPACE[kustomization]
    role, binding = one(kustomization, "Role"), one(kustomization, "RoleBinding")
    assert role["metadata"]["namespace"] == binding["metadata"]["namespace"] == plane
    assert binding["roleRef"] == {
        "apiGroup": "rbac.authorization.k8s.io",
        "kind": "Role",
        "name": role["metadata"]["name"],
    }
    account = one(kustomization, "ServiceAccount")["metadata"]
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": account["name"], "namespace": account["namespace"]}
    ]
    assert pod(kustomization)["serviceAccountName"] == account["name"]
    namespaces = {
        m["metadata"]["name"] for m in rendered(kustomization) if m["kind"] == "Namespace"
    }
    assert namespaces == {AGENT_NAMESPACE, plane}
    for manifest in rendered(kustomization):
        if manifest["kind"] not in ("Namespace", "Role", "RoleBinding"):
            assert manifest["metadata"]["namespace"] == AGENT_NAMESPACE, (
                "the agent's own objects live outside the namespace it may change"
            )


def test_the_prod_eu_overlay_serves_the_namespace_of_example_repos_prod_eu_plane() -> None:
    plane = yaml.safe_load((EXAMPLE_REPO / "planes" / "prod.yaml").read_text())
    assert plane["metadata"]["name"] == agent_config("overlays/prod-eu")["plane"] == "prod-eu"
    assert (
        one("overlays/prod-eu", "Role")["metadata"]["namespace"]
        == (plane["spec"]["kubernetes"]["namespace"])
    )


def test_every_kind_names_its_resource_as_the_official_client_does() -> None:
    for (api_version, kind_name), kind in cluster.KINDS.items():
        serialize = getattr(kind.api, f"_list_{kind.suffix}_serialize")
        paths = re.findall(r"resource_path='([^']*)'", inspect.getsource(serialize))
        assert paths, f"{kind_name}: the client's list method has no resource path"
        if paths[0].endswith("/{plural}"):  # CustomObjectsApi: a CRD's plural is given
            assert kind.plural, f"{kind_name}: a custom resource; give Kind(plural=...)"
            continue
        prefix = "/api/v1" if api_version == "v1" else f"/apis/{api_version}"
        assert paths[0] == f"{prefix}/namespaces/{{namespace}}/{kind.resource}", (
            f"{kind_name}: give Kind(plural=...) in cluster.KINDS"
        )


@KUSTOMIZATIONS
def test_one_agent_per_plane_non_root_read_only_with_its_state_on_a_volume(
    kustomization: str,
) -> None:
    deployment = one(kustomization, "Deployment")["spec"]
    assert deployment["replicas"] == 1
    assert deployment["strategy"] == {"type": "Recreate"}
    spec = pod(kustomization)
    context = spec["securityContext"]
    assert context["runAsNonRoot"] is True
    assert context["runAsUser"] == context["runAsGroup"] == context["fsGroup"]
    assert context["runAsUser"] == test_dockerfile.UID
    for container in spec["containers"] + spec["initContainers"]:
        own = container["securityContext"]
        assert own["readOnlyRootFilesystem"] is True
        assert own["allowPrivilegeEscalation"] is False
        assert own["capabilities"] == {"drop": ["ALL"]}
        assert "runAsUser" not in own, "the pod's user, the image's UID"
    state = _under(agent_config(kustomization)["stateDir"], kustomization)
    claim = one(kustomization, "PersistentVolumeClaim")
    assert state["persistentVolumeClaim"]["claimName"] == claim["metadata"]["name"]
    assert claim["spec"]["accessModes"] == ["ReadWriteOnce"]
    assert "/tmp" in mounts(kustomization)


@KUSTOMIZATIONS
def test_the_image_is_the_documented_one_at_this_version(kustomization: str) -> None:
    spec = pod(kustomization)
    image = f"{IMAGES[kustomization]}:{_version()}"
    assert {c["image"] for c in spec["containers"] + spec["initContainers"]} == {image}
    docs = (ROOT / "docs" / "kubernetes.md").read_text()
    assert f"gitplane:{_version()}" in docs
    assert IMAGES["overlays/prod-eu"] in docs


@KUSTOMIZATIONS
def test_the_config_the_deployment_reads_is_the_configmap_at_the_images_path(
    kustomization: str,
) -> None:
    agent = next(c for c in pod(kustomization)["containers"] if c["name"] == "agent")
    args = agent["args"]
    dockerfile_cmd = ["agent", "run", "--config", "/etc/gitplane/agent.yaml"]
    assert args[:4] == dockerfile_cmd
    assert "command" not in agent, "the image's ENTRYPOINT (gitplane) runs"
    volume = _under(dockerfile_cmd[3], kustomization)
    assert volume["configMap"]["name"] == one(kustomization, "ConfigMap")["metadata"]["name"]


@KUSTOMIZATIONS
def test_the_probes_reach_the_metrics_the_agent_serves_with_listen(kustomization: str) -> None:
    agent = next(c for c in pod(kustomization)["containers"] if c["name"] == "agent")
    listen = agent["args"][agent["args"].index("--listen") + 1]
    port = int(listen.rpartition(":")[2])
    assert agent["ports"] == [{"name": "metrics", "containerPort": port}]
    for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
        assert agent[probe]["httpGet"] == {"path": "/metrics", "port": "metrics"}


@KUSTOMIZATIONS
def test_the_key_is_a_secret_reference_copied_private_and_the_root_installed_apart(
    kustomization: str,
) -> None:
    loaded = agent_config(kustomization)
    assert "keyUri" not in loaded
    key = _under(loaded["keyFile"], kustomization)
    assert key["emptyDir"]["medium"] == "Memory"
    spec = pod(kustomization)
    (init,) = spec["initContainers"]
    source, target = init["command"][-2:]
    assert init["command"][:3] == ["install", "-m", "0600"]
    assert target == loaded["keyFile"]
    volumes = {v["name"]: v for v in spec["volumes"]}
    read_from = next(
        volumes[m["name"]]
        for m in init["volumeMounts"]
        if PurePosixPath(m["mountPath"]) in PurePosixPath(source).parents
    )
    assert read_from["secret"]["secretName"] == KEY_SECRET
    root = _under(loaded["rootFile"], kustomization)
    assert root["configMap"]["name"] == ROOT_CONFIGMAP


@KUSTOMIZATIONS
def test_nothing_of_the_agent_carries_the_labels_it_prunes_by(kustomization: str) -> None:
    for manifest in rendered(kustomization):
        labels = manifest["metadata"].get("labels") or {}
        assert labels.get(render.MANAGED_BY) != "gitplane", (
            f"{manifest['kind']} {manifest['metadata']['name']}: the runtime would take it for "
            "its own, and prune it"
        )
        assert labels["app.kubernetes.io/part-of"] == "gitplane"


def _loaded(kustomization: str, tmp_path: Path, drop: tuple[str, ...] = ()) -> config.AgentConfig:
    raw = {k: v for k, v in agent_config(kustomization).items() if k not in drop}
    path = tmp_path / "agent.yaml"
    path.write_text(yaml.safe_dump(raw))
    return config.load_config(path)


@KUSTOMIZATIONS
def test_the_configmap_is_an_agent_config_apart_from_its_runtime(
    kustomization: str, tmp_path: Path
) -> None:
    loaded = _loaded(kustomization, tmp_path, drop=("runtime",))
    assert loaded.state_dir == Path("/var/lib/gitplane")
    assert agent_config(kustomization)["runtime"] == {"type": "kubernetes"}


@pytest.mark.xfail(
    raises=UsageError,
    strict=True,
    reason="agent.config has no kubernetes runtime until k8s-core's KubernetesRuntimeConfig "
    "is merged: remove this mark then",
)
@KUSTOMIZATIONS
def test_the_configmap_is_an_agent_config_load_config_accepts(
    kustomization: str, tmp_path: Path
) -> None:
    assert _loaded(kustomization, tmp_path).runtime.type == "kubernetes"


def _docs_sections() -> Iterator[str]:
    for line in (ROOT / "docs" / "kubernetes.md").read_text().splitlines():
        if line.startswith("## "):
            yield line[3:].strip()


def test_the_docs_cover_installing_upgrading_rbac_images_and_kind() -> None:
    sections = set(_docs_sections())
    for wanted in ("Install on a cluster", "Upgrade", "RBAC", "Images", "Try it on kind"):
        assert wanted in sections, f"docs/kubernetes.md has no section {wanted!r}"
    docs = (ROOT / "docs" / "kubernetes.md").read_text()
    for rule in cluster.rules():
        for resource in rule["resources"]:
            assert f"`{resource}`" in docs, f"docs/kubernetes.md#rbac does not explain {resource}"


@KUSTOMIZATIONS
def test_every_object_is_what_the_official_client_models_know(kustomization: str) -> None:
    api = client.ApiClient()
    for manifest in rendered(kustomization):
        model = f"V1{manifest['kind']}"
        typed = api.deserialize(json.dumps(manifest), model, "application/json")
        assert api.sanitize_for_serialization(typed) == manifest, (
            f"{manifest['kind']}: a field the API does not know (misspelt or misplaced)"
        )


def test_rules_group_kinds_by_api_group_and_verbs(monkeypatch: pytest.MonkeyPatch) -> None:
    kinds = {
        ("apps/v1", "Deployment"): cluster.Kind(client.AppsV1Api, "namespaced_deployment"),
        ("apps/v1", "StatefulSet"): cluster.Kind(client.AppsV1Api, "namespaced_stateful_set"),
        ("v1", "Pod"): cluster.Kind(
            client.CoreV1Api,
            "namespaced_pod",
            verbs=("get", "list", "watch"),
            subresources=("log",),
        ),
        ("networking.k8s.io/v1", "Ingress"): cluster.Kind(
            client.NetworkingV1Api, "namespaced_ingress", plural="ingresses"
        ),
    }
    monkeypatch.setattr(cluster, "KINDS", kinds)
    every = sorted(cluster.VERBS)
    assert cluster.rules() == [
        {"apiGroups": [""], "resources": ["pods/log"], "verbs": ["get"]},
        {"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list", "watch"]},
        {"apiGroups": ["apps"], "resources": ["deployments", "statefulsets"], "verbs": every},
        {"apiGroups": ["networking.k8s.io"], "resources": ["ingresses"], "verbs": every},
    ]
