"""``envManager`` in the local runtime: builds and DAG steps run in environments MLflow
creates with uv from the project's ``python_env.yaml``, kept under ``<stateDir>/envs`` and
reused by requirements; a manager the plane did not find is refused with the reason.

Real git, real MLflow (SQLite), real ``mlflow run --env-manager uv``, real uv. The fixture
project ``pinned`` pins a click older than Gitplane's own: what it logs shows where it ran.
"""

from __future__ import annotations

import dataclasses
import importlib.metadata
import json
import shutil
import stat
from pathlib import Path
from typing import Any

import pytest

from agent.runtimes.base import ApplyContext
from agent.runtimes.local import LocalRuntime, _mlflow
from agent.runtimes.local.env import LocalEnv, detect_env_managers, env_manager_refusal
from agent.runtimes.local.serving import desired, modelenv
from ledger import envelope, gitrepo
from schemas import commands, signed
from schemas.observed import ModelObserved
from tests.agent import serving_world
from tests.clock import NOW
from tests.conftest import FIXTURES, commit_all, init_repo

OLD_CLICK = "8.1.3"
"""The click ``pinned`` asks for: older than Gitplane's, so a run that logs it ran in its own
environment."""


def python_env() -> str:
    """``pinned``'s ``python_env.yaml``: MLflow at Gitplane's own version (a project run logs
    to the plane's SQLite store, which MLflow refuses to open at another schema version), and
    the old click."""
    return (
        'python: "3.11"\nbuild_dependencies:\n  - pip\ndependencies:\n'
        f"  - mlflow=={importlib.metadata.version('mlflow')}\n  - click=={OLD_CLICK}\n"
    )


@pytest.fixture
def plane(tmp_path: Path) -> tuple[LocalEnv, str]:
    """A spec repository holding ``pinned`` (with its ``python_env.yaml``) and the plane."""
    assert importlib.metadata.version("click") != OLD_CLICK  # else the test proves nothing
    repo = init_repo(tmp_path / "specs")
    project = repo / "projects" / "pinned"
    shutil.copytree(FIXTURES / "projects" / "pinned", project)
    (project / "python_env.yaml").write_text(python_env())
    commit = commit_all(repo)
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    return LocalEnv(gitrepo.GitRepo(repo), uri, tmp_path / "state", tmp_path / "data"), commit


def _command(kind: str, name: str, spec: dict[str, Any]) -> signed.Command:
    body = {
        "apiVersion": "gitplane.dev/v1alpha1",
        "kind": kind,
        "metadata": {"name": name},
        "spec": spec,
    }
    text = json.dumps(body, sort_keys=True)
    return signed.Command(
        id=f"{kind}/{name}", action="apply", kind=kind, name=name, spec=text,
        digest=envelope.digest(text.encode()),
    )  # fmt: skip


def model(manager: str, version: str = "1.0.0") -> signed.Command:
    """A Model built from ``pinned`` with ``manager``."""
    project = {"path": "projects/pinned", "envManager": manager}
    return _command("Model", "pinned", {"version": version, "source": {"project": project}})


def _context(env: LocalEnv, commit: str, name: str) -> ApplyContext:
    scratch = env.state_dir.parent / "scratch" / name
    scratch.mkdir(parents=True)
    return ApplyContext(commit, scratch, now=NOW)


def _run(env: LocalEnv, run_id: str) -> Any:
    from mlflow import MlflowClient  # noqa: PLC0415 - the test reads the runtime's real store

    return MlflowClient(tracking_uri=env.tracking_uri).get_run(run_id)


def environments(env: LocalEnv) -> dict[str, int]:
    """Each environment MLflow made under the plane's env root, and its directory's inode."""
    if not env.env_root.is_dir():
        return {}
    return {p.name: p.stat().st_ino for p in env.env_root.iterdir() if p.is_dir()}


@pytest.mark.slow
def test_a_model_built_with_env_manager_uv_runs_in_its_own_pinned_environment(
    plane: tuple[LocalEnv, str],
) -> None:
    env, commit = plane
    assert "uv" in LocalRuntime(env).capabilities.env_managers  # installed with Gitplane
    built = LocalRuntime(env).apply(model("uv"), _context(env, commit, "first"))
    assert built.phase == "Ready", built.message
    run = _run(env, ModelObserved.of(built).run_id or "")
    assert run.data.params["click_version"] == OLD_CLICK  # not Gitplane's own click
    assert run.data.tags["mlflow.project.env"] == "uv"
    from mlflow import MlflowClient  # noqa: PLC0415

    registered = MlflowClient(tracking_uri=env.tracking_uri).get_model_version("pinned", "1")
    assert registered.tags["gitplane.env_manager"] == "uv"  # how endpoints know
    [made] = environments(env)
    assert made.startswith("mlflow-")  # named by MLflow's hash of Python and requirements


@pytest.mark.slow
def test_a_second_build_with_the_same_requirements_reuses_the_environment(
    plane: tuple[LocalEnv, str],
) -> None:
    env, commit = plane
    runtime = LocalRuntime(env)
    first = runtime.apply(model("uv", "1.0.0"), _context(env, commit, "first"))
    assert first.phase == "Ready", first.message
    made = environments(env)
    python = next(env.env_root.iterdir()) / "bin" / "python"
    created = python.lstat().st_mtime_ns
    second = runtime.apply(model("uv", "1.0.1"), _context(env, commit, "second"))
    assert second.phase == "Ready", second.message
    assert environments(env) == made  # the same one directory, not made again
    assert python.lstat().st_mtime_ns == created
    run = _run(env, ModelObserved.of(second).run_id or "")
    assert run.data.params["click_version"] == OLD_CLICK


@pytest.mark.slow
def test_a_project_environment_a_kill_left_unfinished_is_made_again(
    plane: tuple[LocalEnv, str],
) -> None:
    """MLflow alone takes any existing directory as made: a build killed while uv installed
    would have left every later build with the same requirements broken."""
    env, commit = plane
    runtime = LocalRuntime(env)
    first = runtime.apply(model("uv", "1.0.0"), _context(env, commit, "first"))
    assert first.phase == "Ready", first.message
    [made] = [env.env_root / name for name in environments(env)]
    (made / _mlflow.READY).unlink()  # as a kill while it was made would leave it
    shutil.rmtree(made / "lib")  # click and MLflow half installed, or not at all
    second = runtime.apply(model("uv", "1.0.1"), _context(env, commit, "second"))
    assert second.phase == "Ready", second.message
    assert (made / _mlflow.READY).exists()
    assert _run(env, ModelObserved.of(second).run_id or "").data.params["click_version"] == (
        OLD_CLICK
    )


def test_a_manager_the_plane_did_not_find_blocks_the_build_and_nothing_runs(
    plane: tuple[LocalEnv, str], tmp_path: Path
) -> None:
    """A plane with no conda (detected with an empty PATH: no pyenv, no conda either)."""
    env, commit = plane
    bare = dataclasses.replace(env, env_managers=detect_env_managers({"PATH": str(tmp_path)}))
    runtime = LocalRuntime(bare)
    assert runtime.capabilities.env_managers == {"local", "uv"}
    blocked = runtime.apply(model("conda"), _context(env, commit, "conda"))
    assert blocked.phase == "Blocked"
    assert blocked.message == (
        "projects/pinned: envManager 'conda' is not available on this plane (it has: local, "
        "uv); no conda executable was found (MLFLOW_CONDA_HOME, CONDA_EXE or conda on PATH)"
    )
    assert not (tmp_path / "mlflow.db").exists()  # nothing ran, nothing was logged
    assert environments(env) == {}


@pytest.mark.slow
def test_a_dag_step_with_env_manager_uv_runs_in_its_own_environment(
    plane: tuple[LocalEnv, str],
) -> None:
    env, commit = plane
    step = {"name": "pinned", "project": {"path": "projects/pinned", "envManager": "uv"}}
    command = _command("DAG", "pinned", {"planeSelector": {}, "steps": [step]})
    status = LocalRuntime(env).apply(command, _context(env, commit, "dag"))
    assert status.phase == "Ready", status.message
    from mlflow import MlflowClient  # noqa: PLC0415

    client = MlflowClient(tracking_uri=env.tracking_uri)
    experiment = client.get_experiment_by_name("pinned")
    assert experiment is not None
    [child] = client.search_runs(
        [experiment.experiment_id], filter_string="tags.`gitplane.step` = 'pinned'"
    )
    assert child.data.params["click_version"] == OLD_CLICK
    assert child.data.tags["mlflow.project.env"] == "uv"
    written = client.download_artifacts(child.info.run_id, "click_version.txt", str(env.state_dir))
    assert Path(written).read_text() == OLD_CLICK  # its output, as every step's, an artifact
    assert len(environments(env)) == 1


def _tool(directory: Path, name: str) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    tool = directory / name
    tool.write_text("#!/bin/sh\n")
    tool.chmod(tool.stat().st_mode | stat.S_IXUSR)


@pytest.mark.parametrize(
    ("tools", "environ", "found"),
    [
        ([], {}, {"local", "uv"}),
        (["bin/pyenv"], {"PATH": "bin"}, {"local", "uv", "virtualenv"}),
        (["bin/conda"], {"PATH": "bin"}, {"local", "uv", "conda"}),
        (["conda/bin/conda"], {"MLFLOW_CONDA_HOME": "conda"}, {"local", "uv", "conda"}),
        (["miniconda/bin/conda"], {"CONDA_EXE": "miniconda/bin/conda"}, {"local", "uv", "conda"}),
        ([], {"MLFLOW_CONDA_HOME": "nowhere"}, {"local", "uv"}),
    ],
    ids=["bare", "pyenv", "conda-on-path", "mlflow-conda-home", "conda-exe", "conda-home-empty"],
)
def test_env_managers_are_the_ones_whose_tool_is_found(
    tmp_path: Path, tools: list[str], environ: dict[str, str], found: set[str]
) -> None:
    """uv comes with Gitplane (beside its Python); the others only where MLflow finds them."""
    for tool in tools:
        _tool(tmp_path / Path(tool).parent, Path(tool).name)
    absolute = {key: str(tmp_path / value) for key, value in environ.items()}
    absolute.setdefault("PATH", str(tmp_path / "empty"))
    assert detect_env_managers(absolute) == found


def test_a_refusal_says_which_tool_is_missing() -> None:
    have = frozenset({"local", "uv"})
    assert env_manager_refusal("projects/p", "uv", have) == ""
    assert env_manager_refusal("projects/p", "virtualenv", have) == (
        "projects/p: envManager 'virtualenv' is not available on this plane (it has: local, "
        "uv); MLflow's virtualenv manager installs the project's Python with pyenv, and no "
        "pyenv was found on PATH"
    )


def _deployment(env: LocalEnv, built: signed.ResourceStatus) -> signed.Command:
    """A Deployment of ``pinned``'s registered version, as the reconciler pins it."""
    seen = ModelObserved.of(built)
    pinned = {
        "name": "pinned",
        "version": seen.version,
        "registryVersion": seen.registry_version,
        "digest": seen.artifact_digest,
        "uri": f"models:/pinned/{seen.registry_version}",
    }
    spec = {"model": {"name": "pinned"}, "planeSelector": {}, "replicas": 1}
    command = _command("Deployment", "pinned", spec)
    body = {**json.loads(command.spec), "resolved": {"model": pinned}}
    text = json.dumps(body, sort_keys=True)
    return command.model_copy(update={"spec": text, "digest": envelope.digest(text.encode())})


@pytest.mark.slow
def test_an_endpoint_serves_a_uv_built_model_in_its_own_environment(
    plane: tuple[LocalEnv, str],
) -> None:
    """The model answers with the click it imports: the pinned one, not Gitplane's."""
    env, commit = plane
    env = dataclasses.replace(env, ports=serving_world.ports(), standby=0)
    runtime = LocalRuntime(env)
    built = runtime.apply(model("uv"), _context(env, commit, "build"))
    assert built.phase == "Ready", built.message
    command = _deployment(env, built)
    without = LocalRuntime(dataclasses.replace(env, env_managers=frozenset({"local"})))
    with pytest.raises(modelenv.ModelEnvError, match="envManager 'uv' is not available"):
        without.apply(command, _context(env, commit, "no-uv"))  # never served in the agent's
    try:
        served = runtime.apply(command, _context(env, commit, "serve"))
        assert served.phase == "Ready", served.message
        rows = [{"x": 1.0}, {"x": 2.0}]
        assert serving_world.predict(str(served.observed["url"]), rows) == [OLD_CLICK] * 2
        python = desired.load_desired(env.state_dir / "deployments" / "pinned").python
        assert Path(python).is_relative_to(env.env_root)
        assert len(environments(env)) == 2  # the project's and the model's requirements
    finally:
        runtime.delete(command)
        serving_world.kill_all(env.state_dir)


@pytest.mark.slow
def test_a_models_environment_is_made_once_and_again_when_a_kill_left_it_unfinished(
    plane: tuple[LocalEnv, str],
) -> None:
    env, commit = plane
    built = LocalRuntime(env).apply(model("uv"), _context(env, commit, "build"))
    assert built.phase == "Ready", built.message
    pinned = commands.read(_deployment(env, built), commands.DeploymentCommand).resolved.model
    model_dir = env.state_dir.parent / "model"
    _mlflow.download(env.tracking_uri, pinned.uri, model_dir)

    def prepare(name: str) -> Path:
        context = _context(env, commit, name)
        return Path(modelenv.python(env, pinned, model_dir, context, timeout=300))

    made = prepare("first").parent.parent
    (made / "left-by-this-test").touch()  # gone only if the directory is made again
    assert prepare("again").parent.parent == made
    assert (made / "left-by-this-test").exists()  # reused
    (made / _mlflow.READY).unlink()  # as a kill while MLflow made it would leave it
    assert prepare("after-kill").parent.parent == made
    assert not (made / "left-by-this-test").exists()  # made again, not taken as made
    assert (made / _mlflow.READY).exists()


@pytest.mark.parametrize(
    ("built_with", "served_with"),
    [("local", None), ("", None), ("uv", "uv"), ("virtualenv", "virtualenv"), ("conda", "uv")],
    ids=["local", "untagged", "uv", "virtualenv", "conda"],
)
def test_a_version_is_served_in_an_environment_like_the_one_it_was_built_in(
    built_with: str, served_with: str | None
) -> None:
    """None: the agent's own. A conda build is served with uv: MLflow logs every model's
    ``python_env.yaml`` beside its ``conda.yaml``, with the same pip requirements."""
    assert modelenv.serving_manager(built_with) == served_with
