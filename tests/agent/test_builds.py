"""Model builds in the local runtime: a dangerous pickle is blocked, a failed build reported."""

from __future__ import annotations

import dataclasses
import json
import shutil
import threading
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from agent.runtimes.base import ApplyContext, CancelledError
from agent.runtimes.local import LocalRuntime, _mlflow, models
from agent.runtimes.local.env import LocalEnv
from agent.runtimes.local.models import scan
from ledger import envelope, gitrepo
from schemas import signed
from tests.agent.serving_world import register_models
from tests.clock import NOW
from tests.conftest import FIXTURES, commit_all, init_repo


def _repo_with(tmp_path: Path, project: str) -> tuple[gitrepo.GitRepo, str]:
    repo = init_repo(tmp_path / "specs")
    shutil.copytree(FIXTURES / "projects" / project, repo / "projects" / project)
    return gitrepo.GitRepo(repo), commit_all(repo)


def _runtime(repo: gitrepo.GitRepo, tmp_path: Path) -> LocalRuntime:
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    return LocalRuntime(LocalEnv(repo, uri, tmp_path / "state", tmp_path / "data"))


def _build_in(tmp_path: Path, project: str) -> tuple[LocalRuntime, ApplyContext]:
    """A runtime over a repository holding fixture ``project``, and a context at its commit."""
    repo, commit = _repo_with(tmp_path, project)
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    return _runtime(repo, tmp_path), ApplyContext(commit, scratch, now=NOW)


def _command(project: str, fail_on: str = "HIGH", **extra: object) -> signed.Command:
    source: dict[str, object] = {"path": f"projects/{project}"}
    for key in ("parameters", "entryPoint"):
        if key in extra:
            source[key] = extra.pop(key)
    body = {
        "apiVersion": "gitplane.dev/v1alpha1",
        "kind": "Model",
        "metadata": {"name": project},
        "spec": {
            "version": "1.0.0",
            "source": {"project": source},
            "scan": {"failOn": fail_on},
            **extra,
        },
    }
    text = json.dumps(body, sort_keys=True)
    return signed.Command(
        id=f"Model/{project}",
        action="build",
        kind="Model",
        name=project,
        spec=text,
        digest=envelope.digest(text.encode()),
    )


@pytest.mark.slow
def test_a_dangerous_pickle_is_blocked_and_never_registered(tmp_path: Path) -> None:
    runtime, context = _build_in(tmp_path, "evil")
    result = runtime.apply(_command("evil"), context)
    assert result.phase == "Blocked"
    assert "CRITICAL os.system" in result.message
    assert result.observed["scan"] == "failed"
    from mlflow import MlflowClient  # noqa: PLC0415

    client = MlflowClient(tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}")
    assert client.search_registered_models() == []


@pytest.mark.effect("Model", "spec.scan.tools[]")
@pytest.mark.slow
def test_a_dangerous_pickle_is_blocked_by_modelscan_when_the_spec_asks_for_it(
    tmp_path: Path,
) -> None:
    """A real build under ``scan.tools: [modelscan]``: the real modelscan blocks it."""
    runtime, context = _build_in(tmp_path, "evil")
    command = _command("evil", scan={"failOn": "HIGH", "tools": ["modelscan"]})
    result = runtime.apply(command, context)
    assert result.phase == "Blocked"
    assert result.message == "security scan blocked it: CRITICAL os.system"
    # the weights and the pyfunc model's own pickle, both read by modelscan alone
    assert result.observed["scanFiles"] == "pickle 2 (modelscan), text 5 (data only)"


@pytest.mark.effect("Model", "spec.source.project.path")
@pytest.mark.slow
def test_a_failed_build_reports_its_error(tmp_path: Path) -> None:
    runtime, context = _build_in(tmp_path, "broken")
    with pytest.raises(_mlflow.MlflowError) as failure:
        runtime.apply(_command("broken"), context)
    assert "the project run failed" in str(failure.value)
    assert "training data not found: /data/customers.parquet" in str(failure.value)
    # the failed run is in MLflow, found by its commit, with its whole log
    from mlflow import MlflowClient  # noqa: PLC0415

    client = MlflowClient(tracking_uri=runtime.env.tracking_uri)
    [run] = client.search_runs(
        [client.get_experiment_by_name("gitplane-broken").experiment_id],
        filter_string=f"tags.`mlflow.source.git.commit` = '{context.spec_commit}'",
    )
    assert run.info.status == "FAILED"
    assert run.info.run_id in str(failure.value)
    assert run.data.tags["gitplane.version"] == "1.0.0"
    log = client.download_artifacts(run.info.run_id, "logs/log.txt", str(tmp_path))
    assert "training data not found" in Path(log).read_text()


@pytest.mark.effect("Model", "spec.source.project.entryPoint")
@pytest.mark.slow
def test_a_build_runs_the_entry_point_its_spec_names(tmp_path: Path) -> None:
    runtime, context = _build_in(tmp_path, "broken")
    with pytest.raises(_mlflow.MlflowError) as failure:
        runtime.apply(_command("broken", entryPoint="check"), context)
    assert "schema check failed: no column churned" in str(failure.value)  # check.py's words
    assert "training data not found" not in str(failure.value)  # main's
    from mlflow import MlflowClient  # noqa: PLC0415

    client = MlflowClient(tracking_uri=runtime.env.tracking_uri)
    [run] = client.search_runs([client.get_experiment_by_name("gitplane-broken").experiment_id])
    assert run.data.tags["mlflow.project.entryPoint"] == "check"


@pytest.mark.effect("Model", "spec.timeout", "spec.source.project.parameters.*")
@pytest.mark.slow
def test_a_build_past_its_timeout_is_killed_with_everything_it_started(tmp_path: Path) -> None:
    """The project's own process (started by ``mlflow run``) goes too, not only MLflow's."""
    runtime, context = _build_in(tmp_path, "dag-sleep")
    pid_file = tmp_path / "training.pid"
    command = _command("dag-sleep", timeout="20s", parameters={"pid_file": str(pid_file)})
    with pytest.raises(_mlflow.MlflowError, match="exceeded its 20s timeout"):
        runtime.apply(command, context)
    training = int(pid_file.read_text())  # it had started
    assert not _alive(training)


@pytest.mark.slow
def test_a_cancelled_build_is_killed_with_everything_it_started(tmp_path: Path) -> None:
    """The token in the apply context reaches the processes: the build's whole process
    group is killed when the agent cancels (it is stopping, or a newer command came)."""
    runtime, context = _build_in(tmp_path, "dag-sleep")
    pid_file = tmp_path / "training.pid"
    command = _command("dag-sleep", timeout="10m", parameters={"pid_file": str(pid_file)})

    def cancel_once_training() -> None:
        while not pid_file.exists() or not pid_file.read_text():
            if context.cancel.wait(0.1):
                return
        context.cancel.cancel("superseded by bundle 7")

    canceller = threading.Thread(target=cancel_once_training)
    canceller.start()
    try:
        with pytest.raises(CancelledError, match="cancelled: superseded by bundle 7"):
            runtime.apply(command, context)
    finally:
        context.cancel.cancel("the test ended")
        canceller.join()
    training = int(pid_file.read_text())
    assert not _alive(training)


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(") ", 1)[1][0]
    except (OSError, IndexError):
        return False
    return state != "Z"


@pytest.mark.effect(
    "Model",
    "spec.metricsGate[].metric",
    "spec.metricsGate[].op",
    "spec.metricsGate[].threshold",
    "spec.aliases[]",
)
@pytest.mark.slow
def test_a_version_failing_its_metrics_gate_is_never_registered(tmp_path: Path) -> None:
    """The gate holds the metrics the build's own MLflow run logged: rmse 0.859 against
    ``rmse < 0.7`` blocks the version (not registered, its aliases never move), with the
    numbers in the message and on the run; the same build under a gate it meets is
    registered, and an import is held to the metrics of the run that logged it."""
    runtime, context = _build_in(tmp_path, "regressor")
    gate = [
        {"metric": "rmse", "op": "<", "threshold": 0.7},
        {"metric": "r2", "op": ">", "threshold": 0.5},
    ]
    command = _command("regressor", metricsGate=gate, aliases=["champion"])
    blocked = runtime.apply(command, context)
    assert blocked.phase == "Blocked"
    assert blocked.message.startswith("failed its metrics gate: rmse 0.8")
    assert blocked.message.endswith(", needs < 0.7")  # r2 held: only rmse is named
    assert blocked.observed["metricsGate"] == "failed"
    assert "registryVersion" not in blocked.observed
    assert _mlflow.aliases(runtime.env.tracking_uri, "regressor") is None  # never registered
    run = _mlflow_run(runtime.env.tracking_uri, str(blocked.observed["runId"]))
    assert run.data.tags["gitplane.blocked"] == blocked.message
    assert run.data.tags["gitplane.metrics_gate"] == "failed"

    lenient = [{"metric": "rmse", "op": "<=", "threshold": 0.9}]
    passed = runtime.apply(
        _command("regressor", metricsGate=lenient, aliases=["champion"]), context
    )
    assert passed.phase == "Ready", passed.message
    assert passed.observed["metricsGate"] == "passed"
    assert str(passed.observed["scanFiles"]).startswith("skops 1 (skops), text ")  # MLflow 3
    assert _mlflow.aliases(runtime.env.tracking_uri, "regressor") == {"champion": 1}

    imported = _import(
        "models:/regressor@champion", gate=[{"metric": "rmse", "op": "<", "threshold": 0.5}]
    )
    held = runtime.apply(imported, _fresh(context, tmp_path / "import"))
    assert (held.phase, held.observed["metricsGate"]) == ("Blocked", "failed")
    assert held.observed["runId"] == passed.observed["runId"]  # the run that logged it
    missing = _import("models:/regressor/1", gate=[{"metric": "auc", "op": ">", "threshold": 0.5}])
    assert runtime.apply(missing, _fresh(context, tmp_path / "missing")).message == (
        "failed its metrics gate: auc not logged, needs > 0.5"
    )


@pytest.mark.slow
def test_a_version_the_project_registered_itself_is_reported(tmp_path: Path) -> None:
    """As MLflow's wine example does (``registered_model_name=``): that version skipped
    every gate, and the plane says so."""
    runtime, context = _build_in(tmp_path, "regressor")
    command = _command("regressor", parameters={"noise": 0.5, "register_as": "wine"})
    built = runtime.apply(command, context)
    assert built.phase == "Ready", built.message
    assert built.observed["selfRegistered"] == "wine/1"
    assert built.message == (
        "the project registered wine/1 itself, unscanned and ungated: do not deploy it "
        "from the registry (remove registered_model_name from the project)"
    )
    assert _mlflow.aliases(runtime.env.tracking_uri, "regressor") == {}  # its own: v1


def _fresh(context: ApplyContext, scratch: Path) -> ApplyContext:
    scratch.mkdir()
    return dataclasses.replace(context, scratch=scratch)


def _import(
    uri: str, gate: list[dict[str, object]] | None = None, **extra: object
) -> signed.Command:
    spec: dict[str, object] = {"version": "1.0.0", "source": {"registry": {"uri": uri}}, **extra}
    if gate is not None:
        spec["metricsGate"] = gate
    body = {
        "apiVersion": "gitplane.dev/v1alpha1",
        "kind": "Model",
        "metadata": {"name": "imported"},
        "spec": spec,
    }
    text = json.dumps(body, sort_keys=True)
    digest = envelope.digest(text.encode())
    return signed.Command(
        id="Model/imported", action="build", kind="Model", name="imported", spec=text, digest=digest
    )


def _mlflow_run(uri: str, run_id: str) -> Any:
    from mlflow import MlflowClient  # noqa: PLC0415

    return MlflowClient(tracking_uri=uri).get_run(run_id)


def test_a_log_tail_keeps_the_error_a_long_traceback_put_above_it() -> None:
    first = ["Traceback (most recent call last):", '  File "train.py", line 3']
    frames = [f'  File "lib.py", line {n}, in f{n}' for n in range(60)]
    log = "\n".join([*first, "KeyError: 'l1_ratio'", "", *frames, "RuntimeError: fit failed"])
    tail = _mlflow.log_tail(log)
    lines = tail.splitlines()
    assert lines[:2] == ["KeyError: 'l1_ratio'", "…"]  # the first cause, kept
    assert lines[-1] == "RuntimeError: fit failed"
    assert len(lines) == 2 + _mlflow.TAIL_LINES
    assert _mlflow.log_tail("a\nb") == "a\nb"


def test_the_scanner_grades_and_allows(tmp_path: Path) -> None:
    (tmp_path / "model.pkl").write_bytes(b"cos\nsystem\n(S'x'\ntR.")
    report = scan.scan(tmp_path, allow=[])
    assert report.worst() == "CRITICAL"
    assert report.blocks("HIGH") and report.blocks("CRITICAL")
    allowed = scan.scan(tmp_path, allow=["os.system"])
    assert allowed.findings == () and not allowed.blocks("LOW")


@pytest.mark.effect("Model", "spec.source.registry.uri", "spec.aliases[]")
@pytest.mark.slow
def test_a_registry_import_is_digested_scanned_and_registered(tmp_path: Path) -> None:
    env, _ = register_models(tmp_path, [{"tenure_months": 1.0, "support_tickets": 0.0}])
    body = {
        "apiVersion": "gitplane.dev/v1alpha1",
        "kind": "Model",
        "metadata": {"name": "imported"},
        "spec": {
            "version": "2.0.0",
            "source": {"registry": {"uri": "models:/churn/1"}},
            "aliases": ["champion"],
        },
    }
    text = json.dumps(body, sort_keys=True)
    command = signed.Command(
        id="Model/imported",
        action="build",
        kind="Model",
        name="imported",
        spec=text,
        digest=envelope.digest(text.encode()),
    )
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    result = LocalRuntime(env).apply(command, ApplyContext("0" * 40, scratch, now=NOW))
    assert result.phase == "Ready", result.message
    assert result.observed["scan"] == "passed"
    assert result.observed["registryVersion"] == 1
    source = tmp_path / "source"
    _mlflow.download(env.tracking_uri, "models:/churn/1", source)
    assert result.observed["artifactDigest"] == models.digest_directory(source)
    again = LocalRuntime(env).apply(command, ApplyContext("0" * 40, scratch, now=NOW))
    assert again.observed["registryVersion"] == 1  # found by its spec digest, not re-registered

    # someone points the alias at another version: drift, reported or healed
    _mlflow.register(env.tracking_uri, "models:/churn/2", "imported", tags={}, aliases=["champion"])
    now = NOW
    kept = models.observe(command, again, ApplyContext("0" * 40, scratch, False, now=now), env)
    assert kept.message == "drift: aliases champion no longer point at version 1"
    later = now + timedelta(minutes=2)
    healed = models.observe(command, kept, ApplyContext("0" * 40, scratch, now=later), env)
    assert healed.message.startswith("healed drift: aliases champion")
    assert _mlflow.aliases(env.tracking_uri, "imported") == {"champion": 1}


LOGGED = {
    "MLmodel": b"flavors: {python_function: {}}\n",
    "weights.pkl": b"cmypkg\nModel\n(tR.",  # a global picklescan does not know: MEDIUM
    "evil.pkl": b"cos\nsystem\n(S'echo pwned'\ntR.",  # os.system("echo pwned"): CRITICAL
    "extra.h5": b"\x89HDF\r\n\x1a\n" + b"\0" * 64,  # HDF5: picklescan does not read it
}


def _logged(tmp_path: Path, files: dict[str, bytes]) -> tuple[LocalRuntime, ApplyContext, str]:
    """A plane whose MLflow store holds a run that logged ``files`` as a model (real MLflow,
    no build), a context to import it in, and its ``runs:/`` URI."""
    runtime = _runtime(gitrepo.GitRepo(init_repo(tmp_path / "specs")), tmp_path)
    uri = runtime.env.tracking_uri
    _mlflow.ensure_store(uri)
    experiment = _mlflow.ensure_experiment(uri, "logged", tmp_path / "artifacts")
    run_id = _mlflow.start_run(uri, experiment, name="logged", tags={})
    model = tmp_path / "logged"
    model.mkdir()
    for name, data in files.items():
        (model / name).write_bytes(data)
    _mlflow.upload(uri, run_id, model, "model")
    _mlflow.end_run(uri, run_id, "FINISHED")
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    return runtime, ApplyContext("0" * 40, scratch, now=NOW), f"runs:/{run_id}/model"


CRITICAL, MEDIUM = "CRITICAL os.system", "MEDIUM mypkg.Model"
UNSCANNED = "unscanned model/extra.h5 (hdf5)"


@pytest.mark.effect(
    "Model", "spec.scan.allowGlobals[]", "spec.scan.allowUnscanned", "spec.scan.failOn"
)
@pytest.mark.slow
@pytest.mark.parametrize(
    ("policy", "blocked_by"),
    [
        pytest.param({}, [CRITICAL, MEDIUM, UNSCANNED], id="as-is"),
        pytest.param({"allowGlobals": ["os.system"], "allowUnscanned": True}, None, id="allowed"),
        pytest.param({"allowUnscanned": True}, [CRITICAL, MEDIUM, UNSCANNED], id="a-global"),
        pytest.param({"allowGlobals": ["os.system"]}, [MEDIUM, UNSCANNED], id="an-unscanned-file"),
        pytest.param(
            {"allowGlobals": ["os.system"], "allowUnscanned": True, "failOn": "MEDIUM"},
            [MEDIUM, UNSCANNED],
            id="fail-on-medium",
        ),
    ],
)
def test_the_models_scan_policy_decides_whether_its_files_pass(
    tmp_path: Path, policy: dict[str, object], blocked_by: list[str] | None
) -> None:
    """A CRITICAL global, a MEDIUM one and an HDF5 file no scanner reads: what passes is what
    the spec's ``scan`` allows, and only a version that passes is registered."""
    runtime, context, uri = _logged(tmp_path, LOGGED)
    result = runtime.apply(_import(uri, scan=policy), context)
    if blocked_by is None:
        assert (result.phase, result.observed["scan"]) == ("Ready", "passed"), result.message
        assert result.observed["registryVersion"] == 1
        return
    assert (result.phase, result.observed["scan"]) == ("Blocked", "failed")
    assert result.message == "security scan blocked it: " + ", ".join(blocked_by)
    assert "registryVersion" not in result.observed


@pytest.mark.effect("Model", "spec.registeredName", "spec.tags.*")
@pytest.mark.slow
def test_a_version_is_registered_under_its_registered_name_with_its_tags(tmp_path: Path) -> None:
    runtime, context, uri = _logged(tmp_path, {"MLmodel": LOGGED["MLmodel"]})
    command = _import(uri, registeredName="churn-lr", tags={"team": "risk"}, aliases=["live"])
    result = runtime.apply(command, context)
    assert result.phase == "Ready", result.message
    assert _mlflow.aliases(runtime.env.tracking_uri, "churn-lr") == {"live": 1}
    assert _mlflow.aliases(runtime.env.tracking_uri, "imported") is None
    from mlflow import MlflowClient  # noqa: PLC0415

    client = MlflowClient(tracking_uri=runtime.env.tracking_uri)
    assert client.get_model_version("churn-lr", "1").tags["team"] == "risk"


def test_a_tracking_store_is_created_whole_or_not_at_all(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The agent killed while MLflow created its SQLite store (the first build does) left it
    part-way, and every later build failed on "out-of-date database schema". The store is
    now made in a temporary file and renamed into place."""
    from mlflow import MlflowClient  # noqa: PLC0415 - the test reads the store for real
    from mlflow.store.db import utils  # noqa: PLC0415

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    upgrade = utils._upgrade_db

    def killed(engine: object) -> None:
        raise KeyboardInterrupt  # the process dies in the middle of the migrations

    monkeypatch.setattr(utils, "_upgrade_db", killed)
    with pytest.raises(KeyboardInterrupt):
        _mlflow.ensure_store(uri)
    assert not (tmp_path / "mlflow.db").exists()  # nothing half-made where MLflow looks
    monkeypatch.setattr(utils, "_upgrade_db", upgrade)
    _mlflow.ensure_store(uri)  # the next start makes it whole
    assert MlflowClient(tracking_uri=uri).search_registered_models() == []


@pytest.mark.effect("Model", "spec.source.project.envManager")
@pytest.mark.parametrize(
    ("manager", "why"),
    [
        ("virtualenv", "MLflow's virtualenv manager installs the project's Python with pyenv"),
        ("uv", "no uv executable was found beside the agent's Python or on PATH"),
        ("conda", "no conda executable was found"),
    ],
    ids=["virtualenv", "uv", "conda"],
)
def test_an_env_manager_this_plane_lacks_blocks_the_build_instead_of_running_as_local(
    tmp_path: Path, manager: str, why: str
) -> None:
    """Ran as ``local``, a project's pins (``scikit-learn==1.2.0``) were silently ignored. Here
    the plane found only ``local`` (tests/agent/test_env_managers.py runs the others)."""
    runtime, context = _build_in(tmp_path, "regressor")
    runtime = LocalRuntime(dataclasses.replace(runtime.env, env_managers=frozenset({"local"})))
    source: dict[str, object] = {"path": "projects/regressor", "envManager": manager}
    body = {
        "apiVersion": "gitplane.dev/v1alpha1",
        "kind": "Model",
        "metadata": {"name": "pinned"},
        "spec": {"version": "1.0.0", "source": {"project": source}},
    }
    text = json.dumps(body, sort_keys=True)
    command = signed.Command(
        id="Model/pinned", action="build", kind="Model", name="pinned", spec=text,
        digest=envelope.digest(text.encode()),
    )  # fmt: skip
    blocked = runtime.apply(command, context)
    assert blocked.phase == "Blocked"
    assert blocked.message.startswith(
        f"projects/regressor: envManager {manager!r} is not available on this plane "
        f"(it has: local); {why}"
    )
    assert not (tmp_path / "mlflow.db").exists()  # nothing ran, nothing was logged


@pytest.mark.slow
@pytest.mark.effect("Model", "spec.flavor")
def test_a_version_without_the_flavor_its_spec_declares_is_blocked(tmp_path: Path) -> None:
    """The regressor logs a scikit-learn model (flavors python_function and sklearn): declared
    ``sklearn`` it is registered; declared ``xgboost`` it is blocked, never registered."""
    runtime, context = _build_in(tmp_path, "regressor")
    wrong = runtime.apply(_command("regressor", flavor="xgboost"), context)
    assert wrong.phase == "Blocked"
    assert wrong.message == (
        "the model has no xgboost flavor (its MLmodel has: python_function, sklearn)"
    )
    assert _mlflow.aliases(runtime.env.tracking_uri, "regressor") is None
    right = runtime.apply(_command("regressor", flavor="sklearn"), _fresh(context, tmp_path / "2"))
    assert right.phase == "Ready", right.message
