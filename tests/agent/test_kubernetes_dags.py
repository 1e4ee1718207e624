"""DAGs on a Kubernetes plane: rendered Jobs against goldens and the client's models, and
runs against the API server test double (its simulated Job controller ends each Job one
step after it starts it) with a real MLflow (SQLite) for the parent and child runs."""

from __future__ import annotations

import dataclasses
import json
import re
import shutil
import tempfile
import threading
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client, config

from agent.runtimes.base import ApplyContext, CancelledError, CancelToken
from agent.runtimes.kubernetes import KubernetesRuntime, dagrender, dagrun, dags, render, step
from agent.runtimes.kubernetes.cluster import Cluster, Manifest
from agent.runtimes.local import _mlflow
from ledger import envelope
from schemas import signed
from tests.agent.test_kubernetes_deployments import NOW, cluster, double  # noqa: F401
from tests.agent.test_kubernetes_render import COMMIT, GOLDEN, MODELS, ROOT, SETTINGS, TARGET, TREE
from tests.conftest import FIXTURES, commit_all, git, init_repo
from tests.kubeapi.server import KubeApiDouble

PARENT = "0a1b2c3d4e5f40718293a4b5c6d7e8f9"
RUNS = tuple(f"{k}" * 32 for k in "1234")


def command(
    spec: dict[str, Any] | None = None, *, inputs: dict[str, str] | None = None, **fields: Any
) -> signed.Command:
    """example-repo's churn-batch DAG as signed (``spec`` replaces its spec, ``fields`` set
    in it; None removes a field), with the tree of each step's project."""
    document = yaml.safe_load((ROOT / "example-repo" / "dags" / "churn-batch.yaml").read_text())
    declared = {**(spec or document["spec"]), **fields}
    steps = declared["steps"]
    body = {
        "apiVersion": "gitplane.dev/v1alpha1",
        "kind": "DAG",
        "metadata": {"name": "churn-batch"},
        "spec": {k: v for k, v in declared.items() if v is not None},
        "inputs": inputs or {s["project"]["path"]: TREE for s in steps},
    }
    text = json.dumps(body, sort_keys=True)
    digest = envelope.digest(text.encode())
    return signed.Command(
        id=f"DAG/churn-batch@{digest[7:19]}",
        action="apply",
        kind="DAG",
        name="churn-batch",
        spec=text,
        digest=digest,
    )


def _steps_rendered() -> list[Manifest]:
    made = command(schedule=None)
    extract = render.StepRun(PARENT, RUNS[:1])
    score = render.StepRun(PARENT, RUNS, (("extract", RUNS[:1]),))
    return [
        render.dag_step(made, "extract", COMMIT, extract, TARGET),
        render.dag_step(made, "score", COMMIT, score, TARGET),
    ]


def test_dag_steps_render_as_the_golden_manifests() -> None:
    text = yaml.safe_dump_all(_steps_rendered(), sort_keys=True)
    golden = GOLDEN / "dag-churn-batch.yaml"
    assert text == golden.read_text(), f"{golden} differs: review the change, then update it"


def test_dag_step_jobs_are_what_the_official_client_models_know() -> None:
    api = client.ApiClient()
    for manifest in _steps_rendered():
        model = MODELS[(manifest["apiVersion"], manifest["kind"])]
        typed = api.deserialize(json.dumps(manifest), model, "application/json")
        assert api.sanitize_for_serialization(typed) == manifest  # nothing unknown, dropped


def test_a_partitioned_step_is_one_indexed_job_with_the_retries_and_timeout_of_the_step() -> None:
    extract, score = _steps_rendered()
    assert extract["spec"]["backoffLimit"] == 0  # churn-batch's extract: no retry
    assert "completionMode" not in extract["spec"]
    spec = score["spec"]
    assert (spec["completions"], spec["parallelism"], spec["completionMode"]) == (4, 4, "Indexed")
    assert spec["backoffLimitPerIndex"] == 2  # retry.limit
    assert spec["activeDeadlineSeconds"] == 15 * 60  # timeout: 15m
    pod = spec["template"]["spec"]
    fetch, stage = pod["initContainers"]
    assert fetch["args"][fetch["args"].index("--tree") + 1] == TREE
    assert fetch["args"][fetch["args"].index("--commit") + 1] == COMMIT
    plan = json.loads(stage["args"][stage["args"].index("--plan") + 1])
    assert plan["runs"] == list(RUNS)
    assert plan["inputs"] == {"extract": list(RUNS[:1])}
    assert plan["partition"]["instances"] == 4
    assert pod["containers"][0]["args"] == ["sh", "../run.sh"]


def _run_rendered() -> tuple[signed.Command, list[Manifest]]:
    """One run of churn-batch's first two steps (``score`` partitioned from ``extract``), as
    ``gitplane agent render`` prints it."""
    document = yaml.safe_load((ROOT / "example-repo" / "dags" / "churn-batch.yaml").read_text())
    made = command(schedule=None, steps=document["spec"]["steps"][:2])
    return made, dagrender.dag_run(made, COMMIT, TARGET)


def test_a_dag_run_renders_as_the_golden_manifests_and_the_clients_models() -> None:
    _, rendered = _run_rendered()
    text = yaml.safe_dump_all(rendered, sort_keys=True)
    golden = GOLDEN / "dag-run-churn-batch.yaml"
    assert text == golden.read_text(), f"{golden} differs: review the change, then update it"
    api = client.ApiClient()
    for manifest in rendered:
        typed = api.deserialize(json.dumps(manifest), "V1Job", "application/json")
        assert api.sanitize_for_serialization(typed) == manifest


DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")


def test_a_rendered_run_marks_its_ids_and_bound_is_what_the_run_applies() -> None:
    made, (extract, score) = _run_rendered()
    assert [extract["metadata"]["name"], score["metadata"]["name"]] == [
        "churn-batch-extract-xxxxxxxx",
        "churn-batch-score-xxxxxxxx",
    ]
    assert all(DNS_LABEL.match(job["metadata"]["name"]) for job in (extract, score))
    assert score["metadata"]["labels"][render.RUN] == dagrender.RUN_PLACEHOLDER
    plan = json.loads(score["spec"]["template"]["spec"]["initContainers"][1]["args"][-1])
    assert plan["runs"] == [dagrender.placeholder("score", k) for k in range(4)]
    assert plan["inputs"] == {"extract": [dagrender.placeholder("extract", 0)]}
    ids = {"extract": RUNS[:1], "score": RUNS}
    applied = [
        render.dag_step(made, "extract", COMMIT, render.StepRun(PARENT, RUNS[:1]), TARGET),
        render.dag_step(
            made, "score", COMMIT, render.StepRun(PARENT, RUNS, (("extract", RUNS[:1]),)), TARGET
        ),
    ]
    bound = [dagrender.bind_run(job, PARENT, ids) for job in (extract, score)]
    assert bound == applied
    assert "x" * 8 not in json.dumps(bound)
    assert "x" * 8 in json.dumps(score)  # a copy: the render itself is unchanged


@pytest.mark.parametrize(
    ("job", "ids", "said"),
    [
        (lambda: _steps_rendered()[0], {"extract": RUNS[:1]}, "is not a rendered DAG step"),
        (
            lambda: _run_rendered()[1][1],
            {"extract": RUNS[:1], "score": RUNS[:3]},
            "score instance 3",
        ),
        (lambda: _run_rendered()[1][1], {"score": RUNS}, "step extract instance 0"),
    ],
    ids=["applied-not-rendered", "an-instance-short", "an-upstream-missing"],
)
def test_binding_a_run_refuses_what_it_cannot_bind(
    job: Callable[[], Manifest], ids: dict[str, tuple[str, ...]], said: str
) -> None:
    with pytest.raises(ValueError, match=said):
        dagrender.bind_run(job(), PARENT, ids)


def test_job_outcomes_read_as_the_job_controller_writes_them() -> None:
    assert dagrun.indexes("0-2,4") == {0, 1, 2, 4}
    assert dagrun.indexes("") == frozenset()
    running = {"spec": {}, "status": {"active": 1}}
    assert dagrun.job_outcome(running) is None
    failed = {
        "spec": {"completionMode": "Indexed"},
        "status": {
            "completedIndexes": "0,2",
            "conditions": [{"type": "Failed", "status": "True", "reason": "BackoffLimitExceeded"}],
        },
    }
    assert dagrun.job_outcome(failed) == ("Failed", frozenset({0, 2}), "BackoffLimitExceeded")
    done = {"spec": {}, "status": {"conditions": [{"type": "Complete", "status": "True"}]}}
    assert dagrun.job_outcome(done) == ("Complete", frozenset({0}), "")


# -- runs against the double ------------------------------------------------------------------

PIPELINE: dict[str, Any] = {
    "planeSelector": {},
    "tracking": {"experiment": "k8s-dag"},
    "steps": [
        {"name": "extract", "project": {"path": "projects/churn-data"}},
        {
            "name": "score",
            "project": {"path": "projects/churn-batch-score"},
            "dependsOn": ["extract"],
            "partition": {"from": "extract", "instances": 2},
            "retry": {"limit": 1},
        },
        {"name": "report", "project": {"path": "projects/churn-report"}, "dependsOn": ["score"]},
    ],
}


@dataclasses.dataclass
class Recorder:
    """The Jobs applied, each with which Jobs had finished when it was; and the steps
    whose Job is made to fail (all its pods)."""

    cluster: Cluster
    double: KubeApiDouble
    failing: set[str] = dataclasses.field(default_factory=set)
    applied: list[tuple[str, set[str]]] = dataclasses.field(default_factory=list)

    def apply(self, manifest: Manifest) -> Manifest:
        jobs = self.cluster.select("batch/v1", "Job", {})
        ended = {
            j["metadata"]["labels"][render.STEP]
            for j in jobs
            if (dagrun.job_outcome(j) or ("",))[0] == "Complete"
        }
        step = manifest["metadata"]["labels"][render.STEP]
        self.applied.append((step, ended))
        if step in self.failing:
            self.double.controllers.fail_job(self.cluster.namespace, manifest["metadata"]["name"])
        return Cluster.apply(self.cluster, manifest)


@pytest.fixture
def recorder(double: KubeApiDouble, cluster: Cluster) -> Recorder:  # noqa: F811
    made = Recorder(cluster, double)
    cluster.apply = made.apply  # type: ignore[method-assign]
    return made


def runtime(cluster: Cluster, tmp_path: Path) -> dags.Dags:  # noqa: F811
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    return dags.Dags(cluster, dataclasses.replace(TARGET, tracking_uri=uri), poll=0.02)


def context(tmp_path: Path) -> ApplyContext:
    return ApplyContext(COMMIT, tmp_path / "scratch", True, now=NOW)


def mlflow_runs(tmp_path: Path) -> dict[str, Any]:
    from mlflow import MlflowClient  # noqa: PLC0415 - the test reads the runtime's real store

    mlflow = MlflowClient(tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}")
    experiment = mlflow.get_experiment_by_name("k8s-dag")
    assert experiment is not None
    return {r.info.run_name: r for r in mlflow.search_runs([experiment.experiment_id])}


def test_steps_run_in_dependency_order_with_linked_mlflow_runs(
    recorder: Recorder,
    double: KubeApiDouble,  # noqa: F811
    cluster: Cluster,  # noqa: F811
    tmp_path: Path,
) -> None:
    made = command(PIPELINE)
    done = runtime(cluster, tmp_path).apply(made, context(tmp_path))
    assert (done.phase, done.observed["steps"], done.observed["stepsSucceeded"]) == (
        "Ready",
        3,
        3,
    ), done.message
    assert recorder.applied == [
        ("extract", set()),
        ("score", {"extract"}),  # made only once its dependency completed
        ("report", {"extract", "score"}),
    ]
    (score,) = cluster.select("batch/v1", "Job", {render.STEP: "score"})
    assert (score["spec"]["completions"], score["spec"]["completionMode"]) == (2, "Indexed")
    runs = mlflow_runs(tmp_path)
    parent = runs.pop("churn-batch@2026-11-24T12:00:00Z")
    assert parent.info.status == "FINISHED"
    assert parent.info.run_id == done.observed["lastRun"]
    assert sorted(runs) == ["extract", "report", "score-part-0", "score-part-1"]
    for child in runs.values():
        assert child.data.tags["mlflow.parentRunId"] == parent.info.run_id
        assert child.info.status == "FINISHED"
    plan = json.loads(score["spec"]["template"]["spec"]["initContainers"][1]["args"][-1])
    assert plan["runs"] == [runs["score-part-0"].info.run_id, runs["score-part-1"].info.run_id]
    assert plan["inputs"] == {"extract": [runs["extract"].info.run_id]}
    rendered = dagrender.dag_run(made, COMMIT, runtime(cluster, tmp_path).target)
    assert _bound(rendered, parent.info.run_id, runs) == _sent_jobs(double)


def _bound(rendered: list[Manifest], parent: str, runs: dict[str, Any]) -> dict[str, Manifest]:
    """The rendered Jobs, by name, bound to a run's ids: ``runs`` its child runs by name."""
    by_step: dict[str, list[str]] = {}
    for name, run in sorted(runs.items()):  # score-part-0 before score-part-1
        by_step.setdefault(name.partition("-part-")[0], []).append(run.info.run_id)
    bound = [dagrender.bind_run(job, parent, by_step) for job in rendered]
    return {job["metadata"]["name"]: job for job in bound}


def _sent_jobs(double: KubeApiDouble) -> dict[str, Manifest]:  # noqa: F811
    """The body of each Job the double was sent, by name: each a server-side apply, once."""
    sent = [
        r
        for r in double.requests
        if r.method != "GET" and "/jobs" in r.path and not r.path.endswith("/status")
    ]
    applies = [r for r in sent if r.method == "PATCH" and "apply-patch" in r.content_type]
    assert applies == [r for r in sent if r.method != "DELETE"]  # no POST, PUT or other patch
    bodies = {r.body["metadata"]["name"]: r.body for r in applies}
    assert len(bodies) == len(applies)
    return bodies


def test_a_failing_step_with_failure_policy_abort_stops_the_run(
    recorder: Recorder,
    cluster: Cluster,  # noqa: F811
    tmp_path: Path,
) -> None:
    recorder.failing.add("score")
    made = command(PIPELINE)
    done = runtime(cluster, tmp_path).apply(made, context(tmp_path))
    assert done.phase == "Failed"
    assert [step for step, _ in recorder.applied] == ["extract", "score"]  # report never made
    assert "step score failed (instance(s) 0, 1 after 2 attempt(s); Job churn-batch-score-" in (
        done.message
    )
    assert "logs: kubectl logs -n gitplane-prod job/churn-batch-score-" in done.message  # none ran
    assert "step report not started: step score failed (failurePolicy abort)" in done.message
    assert (done.observed["stepsFailed"], done.observed["stepsSkipped"]) == (1, 1)
    (score,) = cluster.select("batch/v1", "Job", {render.STEP: "score"})
    assert score["status"]["failed"] > score["spec"]["backoffLimitPerIndex"]
    runs = mlflow_runs(tmp_path)
    assert runs["score-part-0"].info.status == "FAILED"
    assert runs["churn-batch@2026-11-24T12:00:00Z"].info.status == "FAILED"


def test_with_continue_independent_a_failure_stops_only_its_dependents(
    recorder: Recorder,
    cluster: Cluster,  # noqa: F811
    tmp_path: Path,
) -> None:
    recorder.failing.add("extract")
    spec = {
        **PIPELINE,
        "failurePolicy": "continue-independent",
        "steps": [
            *PIPELINE["steps"],
            {"name": "audit", "project": {"path": "projects/churn-report"}},
        ],
    }
    done = runtime(cluster, tmp_path).apply(command(spec), context(tmp_path))
    assert done.phase == "Failed"
    assert [step for step, _ in recorder.applied] == ["extract", "audit"]
    assert "step score not started: step extract did not succeed" in done.message
    assert "step report not started: step score did not succeed" in done.message
    assert (done.observed["stepsSucceeded"], done.observed["stepsSkipped"]) == (1, 2)


def test_the_same_command_answers_without_running_again_and_delete_removes_every_job(
    recorder: Recorder,
    cluster: Cluster,  # noqa: F811
    tmp_path: Path,
) -> None:
    made, plane = command(PIPELINE), runtime(cluster, tmp_path)
    first = plane.apply(made, context(tmp_path))
    assert plane.apply(made, context(tmp_path)) == first
    assert plane.observe(made, first, context(tmp_path)) == first
    assert len(recorder.applied) == 3
    plane.delete(made)
    plane.delete(made)  # twice is harmless
    assert cluster.select("batch/v1", "Job", render.labels(TARGET, "DAG", "churn-batch")) == []


def test_a_scheduled_dag_runs_when_its_slot_falls_due_as_on_the_local_plane(
    recorder: Recorder,
    cluster: Cluster,  # noqa: F811
    tmp_path: Path,
) -> None:
    made, plane = (
        command({**PIPELINE, "schedule": {"cron": "30 2 * * *"}}),
        runtime(cluster, tmp_path),
    )
    registered = plane.apply(made, context(tmp_path))
    assert (registered.phase, registered.message) == ("Ready", "scheduled")
    assert registered.observed["nextRun"] == "2026-11-25T02:30:00Z"
    assert plane.observe(made, registered, context(tmp_path)) == registered  # not due
    assert recorder.applied == []
    later = dataclasses.replace(context(tmp_path), now=NOW + timedelta(days=2))  # two slots
    ran = plane.observe(made, registered, later)
    assert ran.observed["lastRunAt"] == "2026-11-26T02:30:00Z", ran.message  # the newest only
    assert (ran.phase, ran.observed["lastRunPhase"]) == ("Ready", "Succeeded")
    assert len(recorder.applied) == 3
    assert plane.observe(made, ran, later) == ran  # one slot never runs twice
    assert len(recorder.applied) == 3
    parent = mlflow_runs(tmp_path)["churn-batch@2026-11-26T02:30:00Z"]
    assert parent.data.tags["gitplane.trigger"] == "schedule"


def test_the_runtime_runs_dags_as_jobs_reading_their_jobs_from_its_watches(
    recorder: Recorder,
    cluster: Cluster,  # noqa: F811
    tmp_path: Path,
) -> None:
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    settings = SETTINGS.model_copy(update={"mlflow_tracking_uri": uri})
    runtime = KubernetesRuntime(lambda _: cluster.api, TARGET.plane, settings=settings)
    try:
        assert "DAG" in runtime.jobs
        runtime.delete(command(PIPELINE))  # connects: its watches start (nothing to delete)
        assert runtime.inventory is not None and runtime.inventory.wait_synced(10)
        signed_settings = dataclasses.replace(context(tmp_path), kubernetes=settings)
        done = runtime.apply(command(PIPELINE), signed_settings)
        assert done.phase == "Ready", done.message
        runtime.delete(command(PIPELINE))
        assert cluster.select("batch/v1", "Job", {}) == []
    finally:
        runtime.close()


def test_a_cancelled_run_deletes_its_running_job_and_kills_its_runs(
    recorder: Recorder,
    cluster: Cluster,  # noqa: F811
    tmp_path: Path,
) -> None:
    cancel = CancelToken()
    applied = recorder.apply

    def apply_then_cancel(manifest: Manifest) -> Manifest:
        live = applied(manifest)
        if manifest["metadata"]["labels"][render.STEP] == "score":
            cancel.cancel("the agent is stopping")
        return live

    cluster.apply = apply_then_cancel  # type: ignore[method-assign]
    stopping = dataclasses.replace(context(tmp_path), cancel=cancel)
    with pytest.raises(CancelledError, match="the agent is stopping"):
        runtime(cluster, tmp_path).apply(command(PIPELINE), stopping)
    assert cluster.select("batch/v1", "Job", {render.STEP: "score"}) == []
    runs = mlflow_runs(tmp_path)
    assert runs["score-part-1"].info.status == "KILLED"
    assert runs["churn-batch@2026-11-24T12:00:00Z"].info.status == "KILLED"
    assert "report" not in runs


@pytest.fixture
def still(tmp_path: Path) -> Iterator[tuple[KubeApiDouble, Cluster]]:
    """A double whose controllers move only when the test steps them."""
    with KubeApiDouble() as started:
        yield started, _namespace(started, tmp_path)


@pytest.mark.timeout(60)  # the Job never ends by itself: an agent that waits on fails here
def test_past_the_dags_timeout_the_running_job_is_deleted_and_its_runs_killed(
    still: tuple[KubeApiDouble, Cluster], tmp_path: Path
) -> None:
    """``extract`` ends; while ``score`` runs (instance 0 done, 1 running), the DAG's 10m
    pass on the agent's clock (the test's): the Job goes, as the local plane kills its
    project, and no later step starts. The Jobs were applied with the steps' own deadline,
    as rendered."""
    api, on = still
    now, apply = [0.0], on.apply

    def applied(manifest: Manifest) -> Manifest:
        live = apply(manifest)
        if manifest["metadata"]["labels"][render.STEP] == "extract":
            api.controllers.step()  # started,
            api.controllers.step()  # then Complete
        else:
            running = {"status": {"active": 1, "completedIndexes": "0"}}
            name = manifest["metadata"]["name"]
            client.BatchV1Api(on.api).patch_namespaced_job_status(name, on.namespace, running)
            now[0] = 601.0
        return live

    on.apply = applied  # type: ignore[method-assign]
    plane = dags.Dags(on, runtime(on, tmp_path).target, clock=lambda: now[0], poll=0.02)
    spec = {**PIPELINE, "timeout": "10m", "failurePolicy": "continue-independent"}
    done = plane.apply(command(spec), context(tmp_path))
    assert done.phase == "Failed"
    assert "step score failed (instance(s) 1 killed at its 600s timeout; Job churn-batch-" in (
        done.message
    )
    assert "step report not started: the DAG's 10m timeout passed" in done.message
    assert on.select("batch/v1", "Job", {render.STEP: "score"}) == []
    sent = _sent_jobs(api)
    assert [job["spec"]["activeDeadlineSeconds"] for job in sent.values()] == [3600, 3600]
    runs = mlflow_runs(tmp_path)
    assert {n: r.info.status for n, r in runs.items() if not n.startswith("churn-batch@")} == {
        "extract": "FINISHED",
        "score-part-0": "FINISHED",
        "score-part-1": "KILLED",
    }
    assert runs["churn-batch@2026-11-24T12:00:00Z"].info.status == "FAILED"


# -- the step pod's staging (agent.runtimes.kubernetes.step), for real ------------------------


def test_a_step_pod_stages_its_share_as_the_local_plane_gives_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Instance 1 of 2 of a step partitioned from ``produce``: its run id, its share of the
    upstream run's artifacts (round-robin over sorted names), the partition parameters, and
    a ``run.sh`` that runs the project in that run and logs its ``output_dir``."""
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    experiment = _mlflow.ensure_experiment(uri, "k8s-step", tmp_path / "artifacts")
    made = tmp_path / "made"
    made.mkdir()
    for name in ("a.csv", "b.csv", "c.csv"):
        (made / name).write_text(name)
    upstream = _mlflow.start_run(uri, experiment, name="produce", tags={})
    _mlflow.upload(uri, upstream, made)
    runs = [_mlflow.start_run(uri, experiment, name=f"consume-part-{k}", tags={}) for k in (0, 1)]
    into = tmp_path / "workspace"
    shutil.copytree(FIXTURES / "projects" / "dag-consume", into / "project")
    plan = {
        "entryPoint": "main",
        "envManager": "local",
        "runs": runs,
        "parameters": {"greeting": "hi", "unused": "x"},
        "inputs": {"produce": [upstream]},
        "partitioned": [],
        "partition": {"from": "produce", "instances": 2},
    }
    monkeypatch.setenv("JOB_COMPLETION_INDEX", "1")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    assert step.main(["--into", str(into), "--plan", json.dumps(plan)]) == 0
    assert sorted(p.name for p in (into / "input" / "produce").iterdir()) == ["b.csv"]
    script = (into / "run.sh").read_text()
    assert f"--run-id {runs[1]}" in script
    assert "-P greeting=hi" in script and "unused" not in script  # only what it declares
    assert "-P partition_count=2 -P partition_index=1" in script
    assert f"--local-dir {into / 'output'} --run-id {runs[1]}" in script  # run for real below


@pytest.mark.parametrize(
    ("index", "said"),
    [("2", "JOB_COMPLETION_INDEX=2: the Job has 2 instance(s)"), ("x", "invalid literal")],
    ids=["past-the-last-instance", "not-a-number"],
)
def test_a_step_pod_that_cannot_stage_runs_nothing(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    index: str,
    said: str,
) -> None:
    plan = {"runs": ["a", "b"], "entryPoint": "main"}
    monkeypatch.setenv("JOB_COMPLETION_INDEX", index)
    assert step.main(["--into", str(tmp_path), "--plan", json.dumps(plan)]) == 1
    assert said in capsys.readouterr().err
    assert not (tmp_path / "run.sh").exists()


# -- one real run: the double's kubelet runs the step pods as local processes ------------------


@pytest.fixture
def node(tmp_path: Path) -> Iterator[KubeApiDouble]:
    """The double in kubelet mode, its controllers stepped by a thread (its clock still: a
    real project takes seconds, and no deadline may pass meanwhile)."""
    with KubeApiDouble(kubelet=True, kubelet_root=tmp_path / "node") as started:
        stop = threading.Event()

        def run() -> None:
            while not stop.wait(0.05):
                started.controllers.step()

        stepper = threading.Thread(target=run, daemon=True)
        stepper.start()
        yield started
        stop.set()
        stepper.join()


@pytest.fixture
def kubelet(node: KubeApiDouble, tmp_path: Path) -> Cluster:
    """The plane's namespace on the kubelet-mode double."""
    return _namespace(node, tmp_path)


def _namespace(on: KubeApiDouble, tmp_path: Path) -> Cluster:
    kubeconfig = on.write_kubeconfig(tmp_path / "kubeconfig")
    api = config.new_client_from_config(config_file=str(kubeconfig))
    client.CoreV1Api(api).create_namespace({"metadata": {"name": TARGET.namespace}})
    return Cluster(api, TARGET.namespace)


PROJECTS = ("projects/dag-produce", "projects/dag-consume", "projects/dag-fail")


def real_plane(on: Cluster, tmp_path: Path) -> tuple[dags.Dags, dict[str, str], str]:
    """A spec repository of the fixture projects that pods fetch by a ``file://`` URL; the
    plane's runtime, the projects' trees and the commit."""
    repo = init_repo(tmp_path / "specs")
    for project in PROJECTS:
        shutil.copytree(FIXTURES / project, repo / project)
    commit = commit_all(repo)
    trees = {p: git(repo, "rev-parse", f"{commit}:{p}") for p in PROJECTS}
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    target = dataclasses.replace(
        TARGET, tracking_uri=uri, repo_url=repo.as_uri(), source_secret=None
    )
    return dags.Dags(on, target, poll=0.05), trees, commit


def test_a_dag_of_mlflow_projects_runs_for_real_in_step_pods(
    node: KubeApiDouble, kubelet: Cluster, tmp_path: Path
) -> None:
    """Two steps from a real git repository (the pods fetch it by a file:// URL and check
    the signed trees): ``produce`` writes three files, ``consume`` is an Indexed Job of two
    that each read their share; every run a child of the DAG run in a SQLite MLflow. Each
    Job the double received is the rendered one with the run's ids bound."""
    plane, trees, commit = real_plane(kubelet, tmp_path)
    spec = {
        "planeSelector": {},
        "tracking": {"experiment": "k8s-dag"},
        "parameters": {"greeting": "hi"},
        "steps": [
            {
                "name": "produce",
                "project": {"path": "projects/dag-produce", "parameters": {"names": "a,b,c"}},
            },
            {
                "name": "consume",
                "project": {"path": "projects/dag-consume"},
                "dependsOn": ["produce"],
                "partition": {"from": "produce", "instances": 2},
            },
        ],
    }
    made = command(spec, inputs=trees)
    done = plane.apply(made, ApplyContext(commit, tmp_path / "scratch", True, now=NOW))
    assert (done.phase, done.observed["stepsSucceeded"]) == ("Ready", 2), done.message
    runs = mlflow_runs(tmp_path)
    parent = runs.pop("churn-batch@2026-11-24T12:00:00Z")
    assert sorted(runs) == ["consume-part-0", "consume-part-1", "produce"]
    for child in runs.values():
        assert child.data.tags["mlflow.parentRunId"] == parent.info.run_id
        assert child.info.status == "FINISHED"
    uri = plane.target.tracking_uri
    assert _read(uri, runs["consume-part-0"].info.run_id, "seen-0.txt") == "produce/a\nproduce/c\n"
    assert _read(uri, runs["consume-part-1"].info.run_id, "seen-1.txt") == "produce/b\n"
    assert _read(uri, runs["consume-part-1"].info.run_id, "whoami-1.txt") == "1/2 hi\n"
    rendered = dagrender.dag_run(made, commit, plane.target)
    assert _bound(rendered, parent.info.run_id, runs) == _sent_jobs(node)


def test_a_failing_step_reports_its_pods_log_tail(kubelet: Cluster, tmp_path: Path) -> None:
    plane, trees, commit = real_plane(kubelet, tmp_path)
    spec = {
        "planeSelector": {},
        "tracking": {"experiment": "k8s-dag"},
        "steps": [{"name": "check", "project": {"path": "projects/dag-fail"}}],
    }
    made = command(spec, inputs=trees)
    done = plane.apply(made, ApplyContext(commit, tmp_path / "scratch", True, now=NOW))
    assert done.phase == "Failed"
    assert "step check failed (after 1 attempt(s); Job churn-batch-check-" in done.message
    assert "log tail:" in done.message
    assert "boom: the input is corrupt" in done.message
    assert mlflow_runs(tmp_path)["check"].info.status == "FAILED"


def _read(uri: str, run_id: str, path: str) -> str:
    from mlflow import MlflowClient  # noqa: PLC0415 - the test reads the real store

    into = Path(tempfile.mkdtemp())
    try:
        return Path(
            MlflowClient(tracking_uri=uri).download_artifacts(run_id, path, str(into))
        ).read_text()
    finally:
        shutil.rmtree(into)
