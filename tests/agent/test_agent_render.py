"""``gitplane agent render`` shows exactly what apply sends (issue 20's acceptance).

A signed log of commands and the plane's settings (ADR 0016) in a real git remote; an
agent with the kubernetes runtime applies it to the API server test double over real HTTP;
the bodies of the server-side applies the double received are compared, object by object,
with what ``gitplane agent render`` prints for the same log. Every kind the runtime
renders has example commands here, so a kind added to the renderer is compared too.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client, config

from agent import agent as agent_agent
from agent.config import load_config
from agent.runtimes.kubernetes import KINDS, render
from cli import clock as cli_clock
from ledger import commands, gitrepo, keys, layout
from schemas import dataplane, signed
from tests.agent.test_kubernetes_deployments import double  # noqa: F401 - the fixture
from tests.agent.test_kubernetes_render import FEATURES_SETTINGS as SETTINGS
from tests.agent.test_kubernetes_render import TARGET, command, features_command
from tests.cli import invoke
from tests.kubeapi.server import KubeApiDouble
from tests.ledger.conftest import (  # noqa: F401 - fixtures
    NOW,
    RECONCILER,
    KeySet,
    keyset,
    log,
    make_mirror,
    remote,
)

PLANE = TARGET.plane
EXAMPLES: dict[str, Callable[[], list[signed.Command]]] = {
    "Deployment": lambda: [
        command("deployments/churn-prod.yaml"),  # with an HPA
        command("deployments/churn-dev.yaml"),
    ],
    "FeatureSet": lambda: [features_command()],  # a backfill up to the issue time, a CronJob
}
"""Commands of every kind the runtime renders exactly, applied here and compared."""
ELSEWHERE = {
    "Model": "a build runs a real pod: its Job compared with the body the double received in "
    "tests/agent/test_kubernetes_models.py and the end-to-end test",
    "DAG": "its Jobs exist per run, with the run's ids: compared, bound to a real run, in "
    "tests/agent/test_kubernetes_dags.py and the end-to-end test",
}
"""Kinds rendered and compared with apply in other tests, and why there."""
RENDERED = sorted(kind for kind, how in KINDS.items() if kind not in ELSEWHERE)

ISSUED = NOW - timedelta(hours=1)
"""When the log's bundles are signed: an hour before the agent applies them (at ``NOW``), so
a value taken from the time of applying would differ from the render."""

Key = tuple[str, str, str]


@pytest.fixture
def plane(
    tmp_path: Path,
    *,
    keyset: KeySet,  # noqa: F811
    log: commands.CommandLog,  # noqa: F811
    remote: str,  # noqa: F811
    double: KubeApiDouble,  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[Callable[..., Path]]:
    """Sign a log for the plane, and write its agent's config (kubernetes, on the double)."""
    monkeypatch.setattr(cli_clock, "now", lambda: NOW)
    specs = log.mirror.commit(None, {"README.md": b"specs\n"}, message="specs", who=RECONCILER)
    log.mirror.push(specs, "refs/heads/main")
    (tmp_path / "root.json").write_bytes(keyset.root_bytes())
    keys.FileSigner.generate().save(tmp_path / "agent.key")
    kubeconfig = double.write_kubeconfig(tmp_path / "kubeconfig")
    api = config.new_client_from_config(config_file=str(kubeconfig))
    client.CoreV1Api(api).create_namespace({"metadata": {"name": TARGET.namespace}})

    def make(
        cmds: list[signed.Command],
        settings: dataplane.KubernetesRuntime | None = SETTINGS,
        runtime: str = "{type: kubernetes, kubeconfig: kubeconfig}",
    ) -> Path:
        if cmds:
            log.append(PLANE, lambda _: cmds, spec_commit="a" * 40, now=ISSUED, kubernetes=settings)
        path = tmp_path / "agent.yaml"
        path.write_text(
            f"plane: {PLANE}\nrepo: {remote}\nrootFile: root.json\nkeyFile: agent.key\n"
            f"stateDir: state\nruntime: {runtime}\n"
        )
        return path

    yield make


def _applied(double: KubeApiDouble) -> dict[Key, Any]:  # noqa: F811
    """The body of the last server-side apply of each object the double received."""
    return {
        (r.body["apiVersion"], r.body["kind"], r.body["metadata"]["name"]): r.body
        for r in double.requests
        if r.method == "PATCH" and r.content_type.startswith("application/apply-patch")
    }


def _keyed(objects: list[Any]) -> dict[Key, Any]:
    return {(o["apiVersion"], o["kind"], o["metadata"]["name"]): o for o in objects}


@pytest.mark.parametrize("kind", RENDERED)
def test_render_shows_exactly_what_apply_sends(
    plane: Callable[..., Path],
    double: KubeApiDouble,  # noqa: F811
    kind: str,
) -> None:
    made = EXAMPLES[kind]()
    path = plane(made)
    worker = agent_agent.Agent(load_config(path))
    try:
        outcome = worker.run_once(NOW)
    finally:
        worker.close()
    assert [c.name for c in outcome.applied] == [c.name for c in made], outcome
    phases = {k: r.phase for k, r in worker.journal.resources.items()}
    assert set(phases.values()) == {"Ready"}, worker.journal.resources
    sent = _applied(double)
    assert len(sent) > len(made)  # each command's objects: a Deployment and its Service...
    as_json = invoke.gitplane(["agent", "render", "--config", str(path), "-o", "json"])
    assert as_json.code == 0, as_json.stderr
    listed = json.loads(as_json.stdout)
    assert (listed["apiVersion"], listed["kind"]) == ("v1", "List")
    assert _keyed(listed["items"]) == sent
    assert len(listed["items"]) == len(sent)
    as_yaml = invoke.gitplane(["agent", "render", "--config", str(path)])
    assert as_yaml.code == 0, as_yaml.stderr
    assert as_yaml.stdout.startswith("---\n")
    assert list(yaml.safe_load_all(as_yaml.stdout)) == listed["items"]


def test_every_kind_rendered_has_examples() -> None:
    assert set(RENDERED) <= set(EXAMPLES), "add example commands of the new kind to EXAMPLES"
    assert set(RENDERED) | set(ELSEWHERE) == set(KINDS)


def test_a_dags_jobs_are_rendered_for_one_run_with_its_ids_to_be_made(
    plane: Callable[..., Path],
) -> None:
    path = plane([command("dags/churn-batch.yaml")])
    done = invoke.gitplane(["agent", "render", "--config", str(path), "-o", "json"])
    assert done.code == 0, done.stderr
    jobs = json.loads(done.stdout)["items"]
    assert {o["kind"] for o in jobs} == {"Job"} and len(jobs) == 3  # one per step
    assert all(o["metadata"]["name"].endswith("-xxxxxxxx") for o in jobs)
    assert "warning: known after apply: DAG/churn-batch: the step Jobs of one run" in done.stderr


def test_a_deleted_resource_is_not_rendered(plane: Callable[..., Path]) -> None:
    prod, dev = EXAMPLES["Deployment"]()
    plane([prod, dev])
    gone = dev.model_copy(update={"action": "delete", "id": "delete-dev"})
    path = plane([gone])
    done = invoke.gitplane(["agent", "render", "--config", str(path), "-o", "json"])
    assert done.code == 0, done.stderr
    names = {o["metadata"]["name"] for o in json.loads(done.stdout)["items"]}
    assert names == {prod.name}


def test_render_assumes_no_keda_unless_told_the_cluster_serves_it(
    plane: Callable[..., Path],
) -> None:
    """The agent finds KEDA by discovery; render asks nothing, so it is told, as
    ``helm template --api-versions`` is, and says what it assumed when it was not."""
    scraped = {"prometheus": {"url": "http://prometheus.monitoring.svc:9090"}}
    settings = SETTINGS.model_copy(
        update={"autoscaling": dataplane.KubernetesAutoscaling.model_validate(scraped)}
    )
    path = plane(EXAMPLES["Deployment"]()[:1], settings)
    plain = invoke.gitplane(["agent", "render", "--config", str(path), "-o", "json"])
    assert plain.code == 0, plain.stderr
    assert {o["kind"] for o in json.loads(plain.stdout)["items"]} == {
        "Deployment", "Service", "HorizontalPodAutoscaler",
    }  # fmt: skip
    assert "warning: assumed: Deployment/churn-prod: a cluster without KEDA" in plain.stderr
    keda = ["--api-versions", "keda.sh/v1alpha1"]
    told = invoke.gitplane(["agent", "render", "--config", str(path), "-o", "json", *keda])
    assert told.code == 0, told.stderr
    assert {o["kind"] for o in json.loads(told.stdout)["items"]} == {
        "Deployment", "Service", "ScaledObject",
    }  # fmt: skip
    assert told.stderr == ""


def test_a_model_renders_as_its_build_job_and_an_import_as_nothing(
    plane: Callable[..., Path], tmp_path: Path
) -> None:
    """The build Job is what apply sends when the version is not registered yet (the pod
    makes its MLflow run, ADR 0020); a registry import sends nothing, so nothing prints."""
    built = command("models/churn.yaml")
    path = plane([built])
    done = invoke.gitplane(["agent", "render", "--config", str(path), "-o", "json"])
    assert (done.code, done.stderr) == (0, "")
    state = tmp_path / "state"  # the agent config's stateDir: where a store keeps artifacts
    job = render.model_build(built, "a" * 40, render.with_state(TARGET, state))
    assert json.loads(done.stdout)["items"] == [job]
    imported = command("models/churn.yaml", source={"registry": {"uri": "models:/churn/3"}})
    path = plane([imported])
    done = invoke.gitplane(["agent", "render", "--config", str(path), "-o", "json"])
    assert (done.code, done.stderr, json.loads(done.stdout)["items"]) == (0, "", [])


def test_a_command_the_plane_cannot_run_is_named_on_stderr_not_rendered(
    plane: Callable[..., Path],
) -> None:
    unsourced = SETTINGS.model_copy(update={"source": None})
    path = plane([command("models/churn.yaml"), *EXAMPLES["Deployment"]()[:1]], unsourced)
    done = invoke.gitplane(["agent", "render", "--config", str(path), "-o", "json"])
    assert done.code == 0, done.stderr
    assert "warning: not rendered: Model/churn: the plane's spec.kubernetes sets no source.url" in (
        done.stderr
    )
    kinds = {o["kind"] for o in json.loads(done.stdout)["items"]}
    assert kinds == {"Deployment", "Service", "HorizontalPodAutoscaler"}


@pytest.mark.parametrize(
    "case",
    [
        ([], SETTINGS, "{type: kubernetes}", 1, f"no command log for plane '{PLANE}'"),
        ("deployment", None, "{type: kubernetes}", 1, "no kubernetes settings signed"),
        ("deployment", SETTINGS, "{type: local}", 2, "runs the local runtime, which applies no"),
    ],
    ids=["no-log", "no-settings", "local-plane"],
)
def test_render_refuses_what_it_cannot_show(
    plane: Callable[..., Path],
    case: tuple[object, dataplane.KubernetesRuntime | None, str, int, str],
) -> None:
    cmds, settings, runtime, code, says = case  # the log, its settings, the config: the answer
    made = EXAMPLES["Deployment"]()[:1] if cmds == "deployment" else []
    path = plane(made, settings, runtime)
    done = invoke.gitplane(["agent", "render", "--config", str(path)])
    assert (done.code, done.stdout) == (code, ""), done.stderr
    assert says in done.stderr and "Traceback" not in done.stderr


def test_render_refuses_a_log_behind_what_the_agent_verified(
    plane: Callable[..., Path],
    tmp_path: Path,
    remote: str,  # noqa: F811
) -> None:
    """The remote's log rewound below the agent's verified head is a rollback, not output."""
    path = plane(EXAMPLES["Deployment"]()[:1])
    first = gitrepo.Mirror.open(tmp_path / "peek.git", remote)
    ref = layout.commands_ref(PLANE)
    old = first.remote_heads(ref)[ref]
    worker = agent_agent.Agent(load_config(path))
    worker.close()
    plane(EXAMPLES["Deployment"]()[1:])
    worker.reader.update(NOW)  # the agent verified bundle 2
    bare = Path(remote.removeprefix("file://"))
    gitrepo.GitRepo(bare).run("update-ref", ref, old)
    done = invoke.gitplane(["agent", "render", "--config", str(path)])
    assert done.code == 1 and done.stdout == ""
    assert "behind or rewritten from what this plane's agent verified" in done.stderr
    assert "Traceback" not in done.stderr


def test_a_blocked_command_runs_once_settings_are_signed_alone(
    plane: Callable[..., Path],
    log: commands.CommandLog,  # noqa: F811
) -> None:
    """No settings yet: the command is Blocked and nothing is sent. A bundle of settings
    alone reaches the journal, and the command's objects go out, even with selfHeal off."""
    made = EXAMPLES["Deployment"]()[:1]
    path = plane([])
    log.append(PLANE, lambda _: made, spec_commit="a" * 40, now=NOW, self_heal=False)
    worker = agent_agent.Agent(load_config(path))
    try:
        worker.run_once(NOW)
        key = f"Deployment/{made[0].name}"
        blocked = worker.journal.resources[key]
        assert (blocked.phase, blocked.message) == (
            "Blocked",
            "no kubernetes settings signed for this plane yet",
        )
        assert log.append(
            PLANE, lambda _: [], spec_commit="a" * 40, now=NOW, self_heal=False, kubernetes=SETTINGS
        )
        for _ in range(50):
            worker.run_once(NOW)
            if worker.journal.resources[key].phase == "Ready":
                break
        assert worker.journal.kubernetes == SETTINGS
        assert worker.journal.self_heal is False
        assert worker.journal.resources[key].phase == "Ready", worker.journal.resources[key]
    finally:
        worker.close()
