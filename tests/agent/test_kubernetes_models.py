"""Models on a Kubernetes plane, against the API server test double over real HTTP, with a
real MLflow (SQLite) as the plane's tracking server.

The double's Job controller moves a build Job through its status; where a real pod would
stage its run and run ``mlflow run``, the tests' stand-in (:class:`Kubelet`) runs the stage
container's own code (:mod:`agent.runtimes.kubernetes.build`), reports how it ended in the
pod's status as a kubelet does, and logs a scikit-learn model into the run, as the project
does; then steps the controller. Scan, gates and
registration are the local plane's own code (:mod:`agent.runtimes.local.models.registration`).
"""

from __future__ import annotations

import contextlib
import dataclasses
import itertools
import json
import shutil
import subprocess
import threading
import time
import warnings
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path

import mlflow
import pytest
import yaml
from kubernetes import client, config
from mlflow.tracking import MlflowClient

from agent.runtimes.base import ApplyContext, CancelledError, CancelToken
from agent.runtimes.kubernetes import KubernetesRuntime, build, kinds_with_state, models, render
from agent.runtimes.kubernetes.cluster import Cluster
from agent.runtimes.kubernetes.models import BuildError, Models
from agent.runtimes.local.models import OBSERVE_SECONDS
from ledger import commands
from schemas import signed
from tests.agent.test_agent_render import _applied
from tests.agent.test_kubernetes_render import COMMIT, GOLDEN, SETTINGS, TARGET, command
from tests.clock import Running
from tests.conftest import FIXTURES, commit_all, init_repo
from tests.kubeapi import resources
from tests.kubeapi.server import KubeApiDouble

NOW = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)
JOBS = f"/apis/batch/v1/namespaces/{TARGET.namespace}/jobs"


@pytest.fixture
def double() -> Iterator[KubeApiDouble]:
    """The double without a stepping thread: each test moves its Jobs when it means to."""
    with KubeApiDouble() as started:
        yield started


@pytest.fixture
def cluster(double: KubeApiDouble, tmp_path: Path) -> Cluster:
    """The plane's namespace, made as its install makes it."""
    api = config.new_client_from_config(str(double.write_kubeconfig(tmp_path / "kubeconfig")))
    client.CoreV1Api(api).create_namespace({"metadata": {"name": TARGET.namespace}})
    return Cluster(api, TARGET.namespace)


@pytest.fixture
def tracking(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'mlflow.db'}"


@pytest.fixture
def plane(cluster: Cluster, tracking: str, tmp_path: Path) -> Models:
    target = render.Target(**{**TARGET.__dict__, "tracking_uri": tracking})
    return Models(cluster, target, state_dir=tmp_path, poll=0.02)


def context(
    tmp_path: Path, *, cancel: CancelToken | None = None, heal: bool = True, at: float = 0
) -> ApplyContext:
    scratch = tmp_path / f"scratch-{time.monotonic_ns()}"
    scratch.mkdir()
    now = NOW + timedelta(seconds=at)
    return ApplyContext(COMMIT, scratch, heal, now=now, cancel=cancel or CancelToken())


def job_posts(double: KubeApiDouble) -> list[str]:
    return [r.path for r in double.requests if r.method == "PATCH" and r.path.startswith(JOBS)]


def wait_for_job(cluster: Cluster) -> render.Manifest:
    """The build Job, once the agent applied it (the agent runs on another thread)."""
    for _ in range(500):
        found = cluster.select("batch/v1", "Job", {render.RESOURCE: "model.churn"})
        running = [j for j in found if models.outcome(j)[0] == "Running"]  # not an old attempt
        if running:
            return running[0]
        time.sleep(0.02)
    raise AssertionError("no build Job was applied")


def log_model(tracking: str, run_id: str, *, accuracy: float) -> None:
    """What ``mlflow run . --run-id`` does in the build pod: log a model into the run."""
    from sklearn.linear_model import LogisticRegression  # noqa: PLC0415

    fitted = LogisticRegression().fit([[0.0], [1.0], [2.0], [3.0]], [0, 0, 1, 1])
    mlflow.set_tracking_uri(tracking)
    with warnings.catch_warnings(), mlflow.start_run(run_id=run_id):
        warnings.simplefilter("ignore")  # MLflow's own advice on type hints, not the test's
        mlflow.log_metric("accuracy", accuracy)
        mlflow.sklearn.log_model(fitted, name="model")  # type: ignore[attr-defined]


def in_thread(work: Callable[[], object]) -> tuple[threading.Thread, list[BaseException]]:
    """``work`` started on a thread (as the agent applies), and what it raised once joined."""
    raised: list[BaseException] = []

    def run() -> None:
        try:
            work()
        except BaseException as exc:
            raised.append(exc)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread, raised


class Kubelet:
    """The tests' stand-in for a node: waits for the build Job, starts its pod, runs its
    stage container's code (:func:`build.main`, reaching MLflow as ``reach``) and reports
    its end in the pod's status as a kubelet does, then does what the project would (log a
    model, or fail) and steps the Job controller to the Job's end."""

    def __init__(self, double: KubeApiDouble, cluster: Cluster, tracking: str, root: Path) -> None:
        self.double, self.cluster, self.tracking, self.root = double, cluster, tracking, root
        self.reach = tracking
        """The tracking URI as the pod reaches it."""
        self.run_id = ""
        self.script = ""
        """The ``run.sh`` the stage container wrote for the run container."""
        self.staged = threading.Event()
        self.error: BaseException | None = None

    def start(
        self,
        *,
        fail: bool = False,
        accuracy: float = 0.9,
        finish: bool = True,
        lose_pod: bool = False,
    ) -> threading.Thread:
        def run() -> None:
            try:
                job = wait_for_job(self.cluster)
                self.double.controllers.step()  # started: its pod runs
                self.run_id = self.stage(job)
                self.staged.set()
                if not finish:
                    return
                if fail or not self.run_id:
                    self.double.controllers.fail_job(TARGET.namespace, job["metadata"]["name"])
                else:
                    log_model(self.tracking, self.run_id, accuracy=accuracy)
                if lose_pod:  # gone (evicted, deleted by hand) as the Job completes
                    for pod in self.cluster.select("v1", "Pod", {render.RESOURCE: "model.churn"}):
                        with self.double.api.store.lock:
                            name = pod["metadata"]["name"]
                            self.double.api.delete(resources.PODS, TARGET.namespace, name, None)
                self.double.controllers.step()  # Complete, or Failed (backoffLimit 0)
            except BaseException as exc:  # end the build, so the agent's apply ends too
                self.error = exc
                for found in self.cluster.select("batch/v1", "Job", {}):
                    self.double.controllers.fail_job(TARGET.namespace, found["metadata"]["name"])
                self.double.controllers.step()
                self.double.controllers.step()

        thread = threading.Thread(target=run, daemon=True)
        thread.start()
        return thread

    def stage(self, job: render.Manifest) -> str:
        """Run the stage container's code as its pod would; the run it said ("" if none)."""
        spec = job["spec"]["template"]["spec"]
        (container,) = [c for c in spec["initContainers"] if c["name"] == render.STAGE]
        into = self.root / f"pod-{time.monotonic_ns()}"
        (into / "project").mkdir(parents=True)
        args = [*container["args"][2:], "--into", str(into)]  # after `-m MODULE`
        args += ["--termination-log", str(into / "termination-log")]
        code = build.main(args, {"MLFLOW_TRACKING_URI": self.reach})
        said = (into / "termination-log").read_text()
        self.script = (into / "run.sh").read_text() if code == 0 else ""
        (pod,) = self.cluster.select("v1", "Pod", {render.RESOURCE: "model.churn"})
        ended = {"terminated": {"exitCode": code, "message": said}}
        with self.double.api.store.lock:  # as the double's own kubelet writes
            self.double.api.status_patch(
                resources.PODS,
                TARGET.namespace,
                pod["metadata"]["name"],
                {"status": {"initContainerStatuses": [{"name": render.STAGE, "state": ended}]}},
                manager="kubelet",
            )
        return models.staged_run(self.cluster.get("v1", "Pod", pod["metadata"]["name"]) or {})


@pytest.fixture
def kubelet(double: KubeApiDouble, cluster: Cluster, tracking: str, tmp_path: Path) -> Kubelet:
    return Kubelet(double, cluster, tracking, tmp_path / "node")


def built(
    plane: Models, kubelet: Kubelet, made: signed.Command, tmp_path: Path
) -> signed.ResourceStatus:
    pod = kubelet.start()
    try:
        return plane.apply(made, context(tmp_path))
    finally:
        pod.join()
        assert kubelet.error is None, repr(kubelet.error)


def test_a_build_job_logs_into_the_agents_run_and_registers_with_provenance(
    plane: Models, kubelet: Kubelet, tracking: str, tmp_path: Path
) -> None:
    made = command("models/churn.yaml")
    done = built(plane, kubelet, made, tmp_path)
    assert (done.phase, done.digest) == ("Ready", made.digest), done.message
    assert done.observed["runId"] == kubelet.run_id
    version = MlflowClient(tracking).get_model_version(
        "churn", str(done.observed["registryVersion"])
    )
    assert version.tags["gitplane.spec_digest"] == made.digest
    assert version.tags["gitplane.source_commit"] == COMMIT
    assert version.tags["gitplane.scan"] == "passed"
    assert version.tags["gitplane.metrics_gate"] == "passed"
    assert version.tags["gitplane.env_manager"] == "local"
    assert version.tags["domain"] == "retention"
    assert version.tags["gitplane.artifact_digest"].startswith("sha256:")
    run = MlflowClient(tracking).get_run(kubelet.run_id)
    assert run.data.tags["gitplane.source_commit"] == COMMIT
    assert run.data.tags["mlflow.source.git.commit"] == COMMIT
    assert run.data.tags["gitplane.model"] == "churn"
    assert run.data.tags["gitplane.version"] == "1.2.0"
    assert run.data.tags["mlflow.source.name"] == "projects/churn"
    assert run.data.tags["mlflow.project.entryPoint"] == "main"
    assert run.info.status == "FINISHED"
    experiment = MlflowClient(tracking).get_experiment(run.info.experiment_id)
    assert experiment.name == "gitplane-churn"
    assert experiment.artifact_location == (tmp_path / "mlartifacts" / "gitplane-churn").as_uri()
    assert kubelet.script == (
        f"set -e\nmlflow run . -e main --env-manager local --run-id {kubelet.run_id} "
        "-P c=0.5 -P n_samples=4000 -P seed=7\n"
    )
    assert (
        str(MlflowClient(tracking).get_model_version_by_alias("churn", "champion").version) == "1"
    )


def test_the_gate_blocks_what_the_job_built_below_it(
    plane: Models, kubelet: Kubelet, tracking: str, tmp_path: Path
) -> None:
    pod = kubelet.start(accuracy=0.5)
    done = plane.apply(command("models/churn.yaml"), context(tmp_path))
    pod.join()
    assert done.phase == "Blocked"
    assert "accuracy" in done.message
    assert MlflowClient(tracking).search_model_versions("name = 'churn'") == []
    assert "gitplane.blocked" in MlflowClient(tracking).get_run(kubelet.run_id).data.tags


def test_a_version_registered_for_the_digest_is_reused_without_a_job(
    double: KubeApiDouble, plane: Models, kubelet: Kubelet, tmp_path: Path
) -> None:
    made = command("models/churn.yaml")
    first = built(plane, kubelet, made, tmp_path)
    sent = len(job_posts(double))
    again = plane.apply(made, context(tmp_path))
    assert again == first
    assert len(job_posts(double)) == sent == 1


@pytest.fixture
def watched(plane: Models, tracking: str, tmp_path: Path) -> Iterator[Models]:
    """The plane's Models as KubernetesRuntime makes them from the signed settings: reading
    Jobs from its watches."""
    settings = SETTINGS.model_copy(update={"mlflow_tracking_uri": tracking})
    kinds = kinds_with_state(tmp_path)
    fast = dataclasses.replace(kinds["Model"], handler=partial(kinds["Model"].handler, poll=0.02))
    runtime = KubernetesRuntime(
        lambda _: plane.cluster.api, TARGET.plane, settings=settings, kinds={"Model": fast}
    )
    runtime.delete(command("models/churn.yaml"))  # connects: its watches start
    assert runtime.inventory is not None and runtime.inventory.wait_synced(10)
    assert runtime.target is not None
    assert render.with_state(runtime.target, tmp_path) == plane.target
    assert runtime._built is not None
    yield runtime._built.handlers["Model"]  # type: ignore[misc]
    runtime.close()


def test_a_failed_job_is_a_failed_run_with_the_cause(
    double: KubeApiDouble, watched: Models, kubelet: Kubelet, tracking: str, tmp_path: Path
) -> None:
    """Then the retry: its Job has the failed one's name, which the watch cache may still
    hold; only the new Job's own end counts."""
    plane = watched
    pod = kubelet.start(fail=True)
    with pytest.raises(BuildError, match=r"failed: BackoffLimitExceeded") as failed:
        plane.apply(command("models/churn.yaml"), context(tmp_path))
    pod.join()
    assert "\npod churn-build-" in str(failed.value)
    assert ", container run (" in str(failed.value)
    assert MlflowClient(tracking).get_run(kubelet.run_id).info.status == "FAILED"
    assert MlflowClient(tracking).search_model_versions("name = 'churn'") == []
    double.controllers.failing_pods.clear()  # what failed is fixed: the agent retries
    retried = built(plane, kubelet, command("models/churn.yaml"), tmp_path)  # the agent's retry
    assert retried.phase == "Ready", retried.message


def test_the_job_applied_is_the_one_rendered_for_the_command_and_commit(
    double: KubeApiDouble, watched: Models, kubelet: Kubelet, tracking: str, tmp_path: Path
) -> None:
    """What ``gitplane agent render`` prints for a build (the plane's signed settings, the
    agent's state directory, the spec commit) is the body the API server received."""
    made = command("models/churn.yaml")
    assert built(watched, kubelet, made, tmp_path).phase == "Ready"
    settings = SETTINGS.model_copy(update={"mlflow_tracking_uri": tracking})
    target = render.with_state(render.target_of(TARGET.plane, settings), tmp_path)
    job = render.model_build(made, COMMIT, target)
    sent = _applied(double)[("batch/v1", "Job", job["metadata"]["name"])]
    assert json.dumps(sent, sort_keys=True) == json.dumps(job, sort_keys=True)


def test_a_stage_that_cannot_reach_mlflow_is_a_failed_build_with_its_message(
    plane: Models, kubelet: Kubelet, tracking: str, tmp_path: Path
) -> None:
    """The pod reaches no tracking store (here: one that cannot be made): no run, and the
    stage container's termination message is the build's error."""
    (tmp_path / "elsewhere").write_text("a file, where the store's folder would be")
    kubelet.reach = f"sqlite:///{tmp_path / 'elsewhere' / 'mlflow.db'}"
    pod = kubelet.start()
    with pytest.raises(BuildError, match=r"failed: BackoffLimitExceeded") as failed:
        plane.apply(command("models/churn.yaml"), context(tmp_path))
    pod.join()
    assert kubelet.error is None, repr(kubelet.error)
    said = str(failed.value)
    assert ", container stage (exit 1: build: cannot stage the build: the tracking store" in said
    assert MlflowClient(tracking).get_experiment_by_name("gitplane-churn") is None


@pytest.mark.parametrize(
    ("plan", "said"),
    [
        ("{not json", "build: cannot stage the build: Expecting property name"),
        (
            json.dumps({"version": "1", "commit": COMMIT, "project": {"path": "p"}}),
            "build: the plan names no 'model'",
        ),
        (
            json.dumps({"model": "m", "version": "1", "commit": COMMIT, "project": {"pth": "p"}}),
            "build: cannot stage the build: 2 validation errors for ProjectRef",
        ),
    ],
    ids=["not-json", "no-model", "bad-project"],
)
def test_a_stage_given_a_bad_plan_says_why_and_makes_nothing(
    tmp_path: Path, tracking: str, plan: str, said: str
) -> None:
    log = tmp_path / "termination-log"
    argv = ["--into", str(tmp_path), "--plan", plan, "--termination-log", str(log)]
    assert build.main(argv, {"MLFLOW_TRACKING_URI": tracking}) == 1
    assert log.read_text().startswith(said), log.read_text()
    assert not (tmp_path / "run.sh").exists()
    assert not (tmp_path / "mlflow.db").exists()  # MLflow was never reached


def test_a_completed_job_whose_pod_is_gone_is_a_build_to_retry(
    plane: Models, kubelet: Kubelet, tracking: str, tmp_path: Path
) -> None:
    pod = kubelet.start(lose_pod=True)
    with pytest.raises(BuildError, match="completed, but no pod of it says its run"):
        plane.apply(command("models/churn.yaml"), context(tmp_path))
    pod.join()
    assert kubelet.error is None, repr(kubelet.error)
    assert MlflowClient(tracking).search_model_versions("name = 'churn'") == []


def test_a_cancelled_build_deletes_its_job_and_kills_its_run(
    cluster: Cluster,
    plane: Models,
    kubelet: Kubelet,
    tracking: str,
    tmp_path: Path,
) -> None:
    """Cancelled once its pod made the run: the run ends ``KILLED``, the Job goes."""
    cancel = CancelToken()
    pod = kubelet.start(finish=False)
    agent, raised = in_thread(
        lambda: plane.apply(command("models/churn.yaml"), context(tmp_path, cancel=cancel))
    )
    job = wait_for_job(cluster)
    assert kubelet.staged.wait(60)
    pod.join()
    cancel.cancel("a newer command superseded it")
    agent.join()
    assert [type(e) for e in raised] == [CancelledError]
    assert cluster.get("batch/v1", "Job", job["metadata"]["name"]) is None
    assert MlflowClient(tracking).get_run(kubelet.run_id).info.status == "KILLED"


def test_a_build_past_its_timeout_kills_the_run_its_pod_made(
    cluster: Cluster, plane: Models, kubelet: Kubelet, tracking: str, tmp_path: Path
) -> None:
    """The Job controller never says it ended; on the agent's clock, past the Job's deadline
    and the grace, the run ends ``KILLED`` (read from the pod before the Job goes)."""
    calls = itertools.count()

    def clock() -> float:  # the deadline is taken at the first look; late once staged
        return 0.0 if next(calls) == 0 or not kubelet.staged.is_set() else 1e9

    plane.clock = clock
    pod = kubelet.start(finish=False)
    with pytest.raises(BuildError, match=r"ran past its 1800s timeout") as late:
        plane.apply(command("models/churn.yaml"), context(tmp_path))
    pod.join()
    assert late.value.ended == "KILLED"
    assert MlflowClient(tracking).get_run(kubelet.run_id).info.status == "KILLED"
    assert cluster.select("batch/v1", "Job", {render.RESOURCE: "model.churn"}) == []


def test_a_registry_import_needs_no_job(
    double: KubeApiDouble, plane: Models, tracking: str, tmp_path: Path
) -> None:
    mlflow.set_tracking_uri(tracking)
    with mlflow.start_run() as upstream:
        pass
    log_model(tracking, upstream.info.run_id, accuracy=0.8)
    MlflowClient(tracking).create_registered_model("churn-upstream")
    mlflow.register_model(f"runs:/{upstream.info.run_id}/model", "churn-upstream")
    made = command("models/churn.yaml", source={"registry": {"uri": "models:/churn-upstream/1"}})
    done = plane.apply(made, context(tmp_path))
    assert done.phase == "Ready", done.message
    assert done.observed["runId"] == upstream.info.run_id
    assert job_posts(double) == []


def test_delete_removes_the_jobs_and_keeps_the_versions(
    plane: Models,
    kubelet: Kubelet,
    cluster: Cluster,
    tracking: str,
    tmp_path: Path,
) -> None:
    made = command("models/churn.yaml")
    built(plane, kubelet, made, tmp_path)
    plane.delete(made)
    plane.delete(made)  # twice is harmless
    assert cluster.select("batch/v1", "Job", {render.RESOURCE: "model.churn"}) == []
    assert len(MlflowClient(tracking).search_model_versions("name = 'churn'")) == 1


def test_moved_aliases_are_drift_healed_or_reported(
    plane: Models, kubelet: Kubelet, tracking: str, tmp_path: Path
) -> None:
    made = command("models/churn.yaml")
    done = built(plane, kubelet, made, tmp_path)
    MlflowClient(tracking).delete_registered_model_alias("churn", "champion")
    kept = plane.observe(made, done, context(tmp_path, heal=False))
    assert kept.message == "drift: aliases champion no longer point at version 1"
    soon = plane.observe(made, done, context(tmp_path, at=OBSERVE_SECONDS - 1))
    assert soon == done  # looked at once a minute, as on the local plane
    healed = plane.observe(made, done, context(tmp_path, at=OBSERVE_SECONDS))
    assert healed.message.startswith("healed drift")
    alias = MlflowClient(tracking).get_model_version_by_alias("churn", "champion")
    assert str(alias.version) == "1"


@pytest.mark.parametrize(
    "case",
    [
        ({"envManager": "conda"}, None, "envManager 'conda' is not offered"),
        ({"envManager": "virtualenv"}, None, "envManager 'virtualenv' is not offered"),
        ({}, "repo_url", "cannot build without the repository's URL"),
    ],
    ids=["conda", "virtualenv", "no-repository"],
)
def test_what_the_plane_cannot_build_is_blocked_and_sends_nothing(
    double: KubeApiDouble,
    plane: Models,
    tmp_path: Path,
    case: tuple[dict[str, str], str | None, str],
) -> None:
    spec, plane_lacks, said = case
    if plane_lacks:
        plane.target = render.Target(**{**plane.target.__dict__, plane_lacks: ""})
    project = {"path": "projects/churn", "parameters": {"seed": 7}, **spec}
    done = plane.apply(command("models/churn.yaml", source={"project": project}), context(tmp_path))
    assert done.phase == "Blocked"
    assert said in done.message
    assert job_posts(double) == []


def test_a_gpu_build_renders_as_the_golden_manifest_the_client_reads() -> None:
    """GPUs are allowed on Kubernetes (the local plane refuses them): an ``nvidia.com/gpu``
    limit on the build container."""
    made = command("models/churn.yaml", resources={"cpu": "2", "memory": "4Gi", "gpu": 1})
    job = render.model_build(made, COMMIT, TARGET)
    text = yaml.safe_dump(job, sort_keys=True)
    golden = GOLDEN / "build-churn-gpu.yaml"
    assert text == golden.read_text(), f"{golden} differs: review the change, then update it"
    api = client.ApiClient()
    typed = api.deserialize(json.dumps(job), "V1Job", "application/json")
    assert api.sanitize_for_serialization(typed) == job
    resources = job["spec"]["template"]["spec"]["containers"][0]["resources"]
    assert resources["limits"]["nvidia.com/gpu"] == "1"


def test_a_job_reads_as_complete_failed_or_running() -> None:
    failed = {"type": "Failed", "status": "True", "reason": "DeadlineExceeded", "message": "late"}
    assert models.outcome({"status": {"conditions": [failed]}}) == (
        "Failed",
        "DeadlineExceeded: late",
    )
    assert (
        models.outcome({"status": {"conditions": [{"type": "Complete", "status": "True"}]}})[0]
        == "Complete"
    )
    assert models.outcome({})[0] == "Running"
    pod = {
        "status": {
            "initContainerStatuses": [
                {
                    "name": "source",
                    "state": {"terminated": {"exitCode": 1, "message": "tree differs"}},
                }
            ],
            "containerStatuses": [{"name": "run", "state": {"waiting": {}}}],
        }
    }
    assert models.failed_container(pod) == ("source", "exit 1: tree differs")
    assert models.failed_container({}) == ("run", "")


def _stage(state: dict[str, object], name: str = "stage") -> render.Manifest:
    return {"status": {"initContainerStatuses": [{"name": name, "state": state}]}}


@pytest.mark.parametrize(
    ("pod", "run"),
    [
        (_stage({"terminated": {"exitCode": 0, "message": '{"runId": "abc"}'}}), "abc"),
        (_stage({"terminated": {"exitCode": 1, "message": '{"runId": "abc"}'}}), ""),
        (_stage({"terminated": {"exitCode": 0, "message": "not json"}}), ""),
        (_stage({"terminated": {"exitCode": 0, "message": '["abc"]'}}), ""),
        (_stage({"terminated": {"exitCode": 0}}), ""),
        (_stage({"running": {}}), ""),
        (_stage({"terminated": {"exitCode": 0, "message": '{"runId": "abc"}'}}, "source"), ""),
        ({}, ""),
    ],
    ids=["said", "failed", "not-json", "not-an-object", "no-message", "running", "other", "none"],
)
def test_the_run_is_what_the_stage_container_said_as_it_ended_well(
    pod: render.Manifest, run: str
) -> None:
    assert models.staged_run(pod) == run


@contextlib.contextmanager
def on_a_node(tmp_path: Path, **target: object) -> Iterator[Models]:
    """Models on the double in kubelet mode (Job pods run as local processes, on a clock
    running in real time from the test's now), with ``target``'s fields set."""
    double = KubeApiDouble(kubelet=True, clock=Running(NOW), kubelet_root=tmp_path / "node")
    with double:
        double.step_every(0.05)  # the controllers and the kubelet, on their own thread
        api = config.new_client_from_config(str(double.write_kubeconfig(tmp_path / "kubeconfig")))
        client.CoreV1Api(api).create_namespace({"metadata": {"name": TARGET.namespace}})
        where = render.Target(**{**TARGET.__dict__, **target})
        yield Models(Cluster(api, TARGET.namespace), where, state_dir=tmp_path)


def signed_at(project: str, tree: str, **spec: object) -> signed.Command:
    """A build command for fixture ``project`` whose inputs name its real git ``tree``."""
    body = {
        "apiVersion": "gitplane.dev/v1alpha1",
        "kind": "Model",
        "metadata": {"name": "churn"},
        "spec": {"version": "1.0.0", "source": {"project": {"path": project}}, **spec},
        "inputs": {project: tree},
    }
    text = json.dumps(body, sort_keys=True)
    return commands.new_command("Model", "churn", text, action="build")


@pytest.mark.slow
@pytest.mark.parametrize("tampered", [False, True], ids=["built", "tree-differs"])
def test_a_real_build_job_fetches_checks_runs_and_registers(
    tmp_path: Path, tracking: str, tampered: bool
) -> None:
    """Kubelet mode: the Job's init container fetches the project from a real repository
    (``file://``) at the spec commit and checks its tree; ``mlflow run`` logs a model into
    the agent's run; the agent scans and registers it. A tree other than the signed one
    runs nothing."""
    specs = init_repo(tmp_path / "specs")
    shutil.copytree(FIXTURES / "projects" / "regressor", specs / "projects" / "regressor")
    commit = commit_all(specs)
    tree = subprocess.run(
        ["git", "-C", str(specs), "rev-parse", f"{commit}:projects/regressor"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    made = signed_at("projects/regressor", "0" * 40 if tampered else tree, flavor="sklearn")
    where = {"tracking_uri": tracking, "repo_url": specs.as_uri(), "source_secret": None}
    with on_a_node(tmp_path, **where) as plane:
        scratch = tmp_path / "scratch"
        scratch.mkdir()
        apply = partial(plane.apply, made, ApplyContext(commit, scratch, now=NOW))
        if tampered:
            with pytest.raises(BuildError, match="refusing to run it") as refused:
                apply()
            assert "container source (exit 1" in str(refused.value)
            assert MlflowClient(tracking).search_model_versions("name = 'churn'") == []
            return
        done = apply()
    assert done.phase == "Ready", done.message
    version = MlflowClient(tracking).get_model_version("churn", "1")
    assert version.tags["gitplane.source_commit"] == commit
    assert version.tags["gitplane.spec_digest"] == made.digest
    assert version.tags["gitplane.scan"] == "passed"
    run = MlflowClient(tracking).get_run(str(done.observed["runId"]))
    assert run.data.params["noise"] == "0.859"  # the project ran in the agent's run
    assert run.info.status == "FINISHED"


def test_a_build_pod_that_cannot_start_is_said_in_the_progress(
    tmp_path: Path, tracking: str
) -> None:
    """Kubelet mode: the source Secret the plane names is missing, so the init container
    waits (``CreateContainerConfigError``, retried by the kubelet as on a cluster, never a
    failure); the apply says so while it waits, and a cancel ends it."""
    with on_a_node(tmp_path, tracking_uri=tracking) as plane:
        plane.poll, plane.look_every = 0.02, 0.1
        doing = context(tmp_path)
        agent, raised = in_thread(lambda: plane.apply(command("models/churn.yaml"), doing))
        said = ""
        for _ in range(500):
            said = doing.progress.now()[0]
            if "waits" in said:
                break
            time.sleep(0.02)
        doing.cancel.cancel("enough")
        agent.join()
    assert [type(e) for e in raised] == [CancelledError]
    assert said.startswith("building churn 1.2.0 in Job churn-build-")
    assert "container source waits (CreateContainerConfigError: " in said
    assert "specs-read-token" in said
