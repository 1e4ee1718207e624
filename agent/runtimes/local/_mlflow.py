"""The one module that imports MLflow: run a project, find its model, register it.

Every MLflow failure surfaces as :class:`MlflowError`.
"""

from __future__ import annotations

import logging
import math
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from agent.progress import Progress
from agent.runtimes.base import CancelToken
from agent.runtimes.local import env
from agent.runtimes.local.limits import Limits
from schemas.errors import GitplaneError


class MlflowError(GitplaneError):
    """MLflow refused or failed."""


@dataclass(frozen=True)
class Registered:
    """A registered model version."""

    name: str
    version: int
    run_id: str
    tags: Mapping[str, str]


_TRACKING_LOCK = threading.RLock()
"""MLflow's tracking URI is process-wide: one thread at a time talks to MLflow (an apply on
the agent's worker thread, observing on its own). Project runs are processes: never held
while one runs."""


def _adopt_logs() -> None:
    """Once MLflow is imported: its records go through the agent's logging like any other
    library's (from ``warning`` up, in ``--log-format``), not through the handler MLflow
    installs for itself, and its chatter (``Successfully registered model``) is not
    printed: both wrote lines of their own format to stderr, which broke a JSON log.
    Projects run as processes keep MLflow's own logging, into their log file."""
    from mlflow.utils import logging_utils  # noqa: PLC0415 - imported with MLflow

    logging_utils.disable_logging()  # type: ignore[no-untyped-call] # its stderr stream
    mlflow_log = logging.getLogger("mlflow")
    if not mlflow_log.propagate:
        mlflow_log.handlers.clear()
        mlflow_log.setLevel(logging.NOTSET)
        mlflow_log.propagate = True


@contextmanager
def _tracking(uri: str) -> Iterator[object]:
    import mlflow  # noqa: PLC0415 - MLflow takes seconds to import: only builds pay for it
    from mlflow.exceptions import MlflowException  # noqa: PLC0415

    _adopt_logs()
    with _TRACKING_LOCK:  # the tracking URI is process-wide; an apply thread shares it
        ensure_store(uri)
        previous = os.environ.get("MLFLOW_TRACKING_URI")
        os.environ["MLFLOW_TRACKING_URI"] = uri
        mlflow.set_tracking_uri(uri)
        try:
            yield mlflow
        except MlflowException as exc:
            raise MlflowError(str(exc).splitlines()[0]) from None
        finally:
            if previous is None:
                os.environ.pop("MLFLOW_TRACKING_URI", None)
            else:
                os.environ["MLFLOW_TRACKING_URI"] = previous


_ENSURED: set[str] = set()


def ensure_store(uri: str) -> None:
    """The plane's own SQLite tracking store, whole: created in a temporary file and renamed
    into place (a process killed while MLflow creates its tables leaves no half-made
    store), and brought to MLflow's schema when an earlier run stopped part-way through a
    migration (what ``mlflow db upgrade`` does). Other stores are MLflow's to manage."""
    if not uri.startswith("sqlite:///") or uri in _ENSURED:
        return
    with _TRACKING_LOCK:  # an apply and a scheduled run may both start first
        if uri not in _ENSURED:
            _create_or_upgrade(uri)
            _ENSURED.add(uri)


def _create_or_upgrade(uri: str) -> None:
    from mlflow.exceptions import MlflowException  # noqa: PLC0415 - MLflow imports slowly
    from mlflow.store.db import utils as untyped  # noqa: PLC0415

    _adopt_logs()
    utils: Any = untyped  # MLflow's store set-up, untyped
    path = Path(uri.removeprefix("sqlite:///"))
    try:
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            fresh = path.with_name(f".{path.name}.{os.getpid()}.new")
            fresh.unlink(missing_ok=True)
            engine = utils.create_sqlalchemy_engine_with_retry(f"sqlite:///{fresh}")
            utils._initialize_tables(engine)
            engine.dispose()
            with suppress(FileExistsError):  # another process made it first: keep theirs
                os.link(fresh, path)
            fresh.unlink()
        engine = utils.create_sqlalchemy_engine_with_retry(uri)
        if utils._get_schema_version(engine) != utils._get_latest_schema_revision():
            utils._upgrade_db(engine)
        engine.dispose()
    except (MlflowException, OSError) as exc:
        raise MlflowError(f"the tracking store {path}: {str(exc).splitlines()[0]}") from None


def model_of_run(uri: str, run_id: str, destination: Path) -> str:
    """Download the model the run logged into ``destination``; return its MLflow URI."""
    with _tracking(uri) as mlflow:
        run = mlflow.get_run(run_id)  # type: ignore[attr-defined]
        models = mlflow.search_logged_models(  # type: ignore[attr-defined]
            experiment_ids=[run.info.experiment_id],
            filter_string=f"source_run_id = '{run_id}'",
            output_format="list",
        )
        if not models:
            raise MlflowError(f"run {run_id} logged no model")
        model_uri = f"models:/{models[0].model_id}"
        mlflow.artifacts.download_artifacts(  # type: ignore[attr-defined]
            artifact_uri=model_uri, dst_path=str(destination)
        )
        return model_uri


def download(uri: str, model_uri: str, destination: Path) -> None:
    """Download any model URI (``models:/name/3``, ``runs:/...``) into ``destination``."""
    with _tracking(uri) as mlflow:
        mlflow.artifacts.download_artifacts(  # type: ignore[attr-defined]
            artifact_uri=model_uri, dst_path=str(destination)
        )


def flavors(uri: str, model_uri: str) -> list[str]:
    """The flavors the ``MLmodel`` of ``model_uri`` declares (none when it has no MLmodel)."""
    with _tracking(uri) as mlflow:
        try:
            info = mlflow.models.get_model_info(model_uri)  # type: ignore[attr-defined]
        except Exception as exc:  # MLflow raises many kinds for one missing or bad MLmodel
            if "MLmodel" in str(exc):
                return []
            raise MlflowError(f"the MLmodel of {model_uri} is unreadable: {exc}") from None
        return sorted(info.flavors)


def metrics(uri: str, run_id: str) -> dict[str, float]:
    """The latest value of each metric the run logged (none without a run)."""
    if not run_id:
        return {}
    with _tracking(uri) as mlflow:
        try:
            return dict(mlflow.get_run(run_id).data.metrics)  # type: ignore[attr-defined]
        except Exception as exc:  # a run that is gone: its metrics are unknown, say why
            raise MlflowError(f"run {run_id}: {str(exc).splitlines()[0]}") from None


def source_run(uri: str, model_uri: str) -> str:
    """The run that logged the model ``model_uri`` names (``runs:/<id>/...``,
    ``models:/name/3``, ``models:/name@alias``), or ``""`` when it has none."""
    if model_uri.startswith("runs:/"):
        return model_uri.removeprefix("runs:/").split("/", 1)[0]
    name, _, rest = model_uri.removeprefix("models:/").partition("/")
    name, _, alias = name.partition("@")
    with _tracking(uri) as mlflow:
        client = mlflow.MlflowClient()  # type: ignore[attr-defined]
        try:
            found = (
                client.get_model_version_by_alias(name, alias)
                if alias
                else client.get_model_version(name, rest)
            )
        except Exception as exc:
            raise MlflowError(f"{model_uri}: {str(exc).splitlines()[0]}") from None
        return str(found.run_id or "")


def version_tags(uri: str, name: str, version: int) -> dict[str, str]:
    """The tags of registered model version ``name``/``version``."""
    with _tracking(uri) as mlflow:
        client = mlflow.MlflowClient()  # type: ignore[attr-defined]
        try:
            return dict(client.get_model_version(name, str(version)).tags)
        except Exception as exc:  # an unknown version: say which
            raise MlflowError(f"models:/{name}/{version}: {str(exc).splitlines()[0]}") from None


def tag_run(uri: str, run_id: str, tags: Mapping[str, str]) -> None:
    """Set ``tags`` on the run (what Gitplane decided about what it built)."""
    with _tracking(uri) as mlflow:
        client = mlflow.MlflowClient()  # type: ignore[attr-defined]
        for key, value in tags.items():
            client.set_tag(run_id, key, value)


def find_version(uri: str, name: str, tag: str, value: str) -> Registered | None:
    """The version of ``name`` carrying ``tag=value`` (how a retried build finds its work)."""
    with _tracking(uri) as mlflow:
        client = mlflow.MlflowClient()  # type: ignore[attr-defined]
        try:
            versions = client.search_model_versions(f"name = '{name}'")
        except Exception:  # an unknown model is "not found", whatever MLflow raises
            return None
        for mv in versions:
            if mv.tags.get(tag) == value:
                return Registered(name, int(mv.version), mv.run_id or "", dict(mv.tags))
        return None


def versions_of_run(uri: str, run_id: str) -> list[str]:
    """``name/version`` of every registered model version made from the run."""
    with _tracking(uri) as mlflow:
        client = mlflow.MlflowClient()  # type: ignore[attr-defined]
        found = client.search_model_versions(f"run_id = '{run_id}'")
        return sorted(f"{mv.name}/{mv.version}" for mv in found)


def register(
    uri: str, model_uri: str, name: str, *, tags: Mapping[str, str], aliases: list[str]
) -> Registered:
    """Register ``model_uri`` as a new version of ``name`` with tags, then move aliases."""
    with _tracking(uri) as mlflow:
        mv = mlflow.register_model(model_uri, name, tags=dict(tags))  # type: ignore[attr-defined]
        client = mlflow.MlflowClient()  # type: ignore[attr-defined]
        for alias in aliases:
            client.set_registered_model_alias(name, alias, mv.version)
        return Registered(name, int(mv.version), mv.run_id or "", dict(tags))


def scoring_server(
    model_dir: Path, *, port: int, workers: int, timeout: float, python: str = sys.executable
) -> tuple[list[str], dict[str, str]]:
    """The command and environment of MLflow's own scoring server for a local model directory
    (what ``mlflow models serve`` runs: uvicorn over ``mlflow.pyfunc.scoring_server.app``),
    run by ``python``: the agent's own (``--env-manager local``), or that of the environment
    :func:`prepare_model_env` made for the model."""
    command = [
        python,
        "-m",
        "uvicorn",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--workers",
        str(workers),
        "--no-access-log",
        "mlflow.pyfunc.scoring_server.app:app",
    ]
    env = {
        **os.environ,
        "__pyfunc_model_path__": str(model_dir),  # scoring_server._SERVER_MODEL_PATH
        # whole seconds (MLflow reads an int): under a second would be 0, failing every request
        "MLFLOW_SCORING_SERVER_REQUEST_TIMEOUT": str(max(1, math.ceil(timeout))),
    }
    return command, env


# DAG runs: the parent and child runs are created here, and each step's project runs
# inside the child run made for it (``mlflow run --run-id``).


@dataclass(frozen=True)
class ProjectExit:
    """How a project run inside a given MLflow run ended."""

    code: int | None
    """Its exit code; None when its timeout killed it."""
    tail: str
    """The last lines of its log."""
    log: Path
    """Its whole log (MLflow's lines and the entry point's stdout and stderr)."""


@dataclass(frozen=True)
class ProjectEnvironment:
    """Where a project runs: MLflow's ``--env-manager`` and the directory it keeps the
    environments it creates in (``MLFLOW_ENV_ROOT``)."""

    manager: str
    """``local`` (the agent's own environment), ``uv``, ``virtualenv`` or ``conda``."""
    root: Path
    """MLflow names each uv or virtualenv environment by a hash of the project's Python
    version and requirements, so a run with the same ones reuses it. Conda keeps its
    environments where conda keeps them."""


def is_served(uri: str) -> bool:
    """Whether ``uri`` is a tracking server, which keeps experiments' artifacts itself
    (pure; a store URI, ``sqlite:`` or a path, keeps them where each experiment says)."""
    return uri.split(":", 1)[0] in ("http", "https", "databricks")


def ensure_experiment(uri: str, name: str, artifacts: Path | None) -> str:
    """The id of experiment ``name``: created if missing (restored if deleted). A new
    experiment keeps its artifacts under ``artifacts`` unless a tracking server stores them
    (or ``artifacts`` is None: where the store puts them by default)."""
    with _tracking(uri) as mlflow:
        client = mlflow.MlflowClient()  # type: ignore[attr-defined]
        found = client.get_experiment_by_name(name)
        if found is None:
            location = None if is_served(uri) or artifacts is None else artifacts.as_uri()
            return str(client.create_experiment(name, artifact_location=location))
        if found.lifecycle_stage == "deleted":
            client.restore_experiment(found.experiment_id)
        return str(found.experiment_id)


def start_run(
    uri: str,
    experiment_id: str,
    *,
    name: str,
    tags: Mapping[str, str],
    params: Mapping[str, str] | None = None,
) -> str:
    """Create a run (``RUNNING``) with tags and parameters; return its id."""
    from mlflow.entities import Param  # noqa: PLC0415

    with _tracking(uri) as mlflow:
        client = mlflow.MlflowClient()  # type: ignore[attr-defined]
        run = client.create_run(experiment_id, tags=dict(tags), run_name=name)
        if params:
            client.log_batch(run.info.run_id, params=[Param(k, v) for k, v in params.items()])
        return str(run.info.run_id)


def end_run(uri: str, run_id: str, status: str) -> None:
    """End a run as ``FINISHED``, ``FAILED`` or ``KILLED``, unless it has ended already."""
    with _tracking(uri) as mlflow:
        client = mlflow.MlflowClient()  # type: ignore[attr-defined]
        if client.get_run(run_id).info.status == "RUNNING":
            client.set_terminated(run_id, status)


def upload(uri: str, run_id: str, path: Path, artifact_path: str | None = None) -> None:
    """Add a file, or every file below a directory, to the run's artifacts."""
    with _tracking(uri) as mlflow:
        client = mlflow.MlflowClient()  # type: ignore[attr-defined]
        if path.is_dir():
            client.log_artifacts(run_id, str(path), artifact_path)
        else:
            client.log_artifact(run_id, str(path), artifact_path)


def download_run_artifacts(uri: str, run_id: str, destination: Path) -> None:
    """Download all of a run's artifacts into ``destination`` (created, empty if it has none)."""
    destination.mkdir(parents=True, exist_ok=True)
    with _tracking(uri) as mlflow:
        client = mlflow.MlflowClient()  # type: ignore[attr-defined]
        if client.list_artifacts(run_id):
            mlflow.artifacts.download_artifacts(  # type: ignore[attr-defined]
                run_id=run_id, dst_path=str(destination)
            )


def declared_parameters(project: Path, entry_point: str) -> frozenset[str] | None:
    """The parameter names the project's entry point declares; None for a script entry
    point (a ``.py`` or ``.sh`` file the MLproject does not list), which takes any."""
    from mlflow.exceptions import MlflowException  # noqa: PLC0415
    from mlflow.projects import _project_spec  # noqa: PLC0415

    _adopt_logs()
    try:
        spec = _project_spec.load_project(str(project))  # type: ignore[no-untyped-call]
        found = spec.get_entry_point(entry_point)
    except MlflowException as exc:
        raise MlflowError(str(exc).splitlines()[0]) from None
    if entry_point not in spec._entry_points:
        return None
    return frozenset(found.parameters)


def run_in(
    uri: str,
    project: Path,
    *,
    run_id: str,
    experiment_id: str,
    entry_point: str,
    parameters: Mapping[str, str],
    timeout: float,
    workdir: Path,
    cancel: CancelToken,
    progress: Progress,
    environment: ProjectEnvironment,
    limits: Limits,
) -> ProjectExit:
    """Run an MLflow Project inside the existing run ``run_id``, in its own process group, in
    the environment ``environment`` says MLflow creates (or reuses) for it; past ``timeout``
    seconds the whole group is killed, making the environment included. ``workdir``
    receives its log and MLflow's downloads, and ``progress`` follows the log. The project's
    processes (not the making of its environment) are held to ``limits``."""
    workdir.mkdir(parents=True, exist_ok=True)
    command = [sys.executable, "-m", "mlflow", "run", str(project), "-e", entry_point]
    command += ["--env-manager", environment.manager, "--run-id", run_id]
    command += ["--experiment-id", experiment_id, "--storage-dir", str(workdir / "storage")]
    for key, value in parameters.items():
        command += ["-P", f"{key}={value}"]
    log, variables = workdir / "log.txt", _project_env(uri, environment.root)
    deadline = time.monotonic() + timeout
    with log.open("wb") as out:
        progress.follow(log)
        code: int | None = 0
        if environment.manager in MADE_FIRST:  # whole, or made again: never half made
            making = _making(project, "project", environment.manager)
            code = _wait_or_kill(making, variables, workdir, out, timeout=timeout, cancel=cancel)
        if code == 0:
            left = max(0.0, deadline - time.monotonic())
            held, held_env = limits.command(command), {**variables, **limits.env()}
            code = _wait_or_kill(held, held_env, project, out, timeout=left, cancel=cancel)
    return ProjectExit(code, log_tail(log.read_text(errors="replace")), log)


MADE_FIRST = frozenset({"uv", "virtualenv"})
"""Managers whose environment is made before ``mlflow run``, in a process of its own, under
a lock and marked whole once made (:func:`_make_env`): ``mlflow run`` then finds it made.
MLflow alone takes any existing directory as made, also one a kill left unfinished, and
two runs with the same requirements would make it at once."""


def _making(directory: Path, kind: str, manager: str, answer: Path | None = None) -> list[str]:
    """The command of the process that makes (or finds) ``directory``'s environment."""
    where = [str(answer)] if answer else []
    return [sys.executable, "-m", __name__, kind, str(directory), manager, *where]


def prepare_model_env(
    model_dir: Path,
    *,
    manager: str,
    env_root: Path,
    workdir: Path,
    timeout: float,
    cancel: CancelToken,
    progress: Progress,
) -> str:
    """The Python of an environment made from a model's logged requirements (its
    ``python_env.yaml``) by MLflow's ``uv`` or ``virtualenv`` manager under ``env_root``, as
    ``mlflow models serve --env-manager`` makes it: created once per Python version and
    requirements, in a process of its own (killed past ``timeout`` or on a cancel, the
    environment it left unfinished is made again next time)."""
    workdir.mkdir(parents=True, exist_ok=True)
    answer, log = workdir / "python.txt", workdir / "env-log.txt"
    answer.unlink(missing_ok=True)
    command = _making(model_dir, "model", manager, answer)
    with log.open("wb") as out:
        progress.step(f"making the model's {manager} environment", log)
        code = _wait_or_kill(
            command, _with_env_root(env_root), workdir, out, timeout=timeout, cancel=cancel
        )
    if code != 0 or not answer.exists():
        how = f"exit {code}" if code is not None else f"killed at its {timeout:.0f}s timeout"
        tail = log_tail(log.read_text(errors="replace"))
        raise MlflowError(f"making the model's {manager} environment failed ({how}):\n{tail}")
    return answer.read_text()


def _with_env_root(env_root: Path) -> dict[str, str]:
    """The agent's environment, its tools first on PATH, with MLflow's environments kept in
    ``env_root``: uv and virtualenv environments there are named by requirements."""
    return {**os.environ, "PATH": env.project_path(os.environ), "MLFLOW_ENV_ROOT": str(env_root)}


READY = ".gitplane-ready"
"""Written into an environment :func:`_make_env` made once it is whole: one without it was
cut short (or made by MLflow alone), and is made again."""


def _make_env(directory: Path, kind: str, manager: str) -> Path:
    """In the process :func:`_making` starts: make the environment of a ``project`` or a
    ``model`` directory as MLflow's project backend and ``mlflow models serve`` do (the same
    name, so they find it), unless it is made; its Python."""
    import fcntl  # noqa: PLC0415 - only this process needs it

    from mlflow.utils import virtualenv as untyped  # noqa: PLC0415

    virtualenv: Any = untyped  # MLflow's environment machinery, untyped and private
    if manager == "virtualenv":
        virtualenv._validate_pyenv_is_available()
    python_env = _python_env(directory, kind)
    root = Path(virtualenv._get_mlflow_virtualenv_root())
    root.mkdir(parents=True, exist_ok=True)
    made: Path = root / virtualenv._get_virtualenv_name(python_env, directory)
    with (root / f"{made.name}.lock").open("a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # two runs or endpoints of one environment: one makes it
        if not (made / READY).exists():
            shutil.rmtree(made, ignore_errors=True)  # left unfinished: MLflow would take it as made
            virtualenv._create_virtualenv(
                local_model_path=directory,
                python_env=python_env,
                env_dir=made,
                env_manager=manager,
                extra_env=virtualenv._get_virtualenv_extra_env_vars(),
            )
            (made / READY).touch()
    return made / "bin" / "python"


def _python_env(directory: Path, kind: str) -> Any:
    """MLflow's ``_PythonEnv`` of a model (its logged ``python_env.yaml``) or of a project (the
    file its MLproject names, as ``mlflow.projects.backend.local`` reads it)."""
    from mlflow.projects import _project_spec, env_type  # noqa: PLC0415
    from mlflow.utils import environment, virtualenv  # noqa: PLC0415

    if kind == "model":
        return virtualenv._get_python_env(directory)  # type: ignore[no-untyped-call]
    project = _project_spec.load_project(str(directory))  # type: ignore[no-untyped-call]
    made: Any = environment._PythonEnv  # untyped
    if project.env_type == env_type.CONDA:
        return made.from_conda_yaml(project.env_config_path)
    return made.from_yaml(project.env_config_path) if project.env_config_path else made()


TAIL_LINES = 20
_RAISED = re.compile(
    r"^(?:[A-Za-z_][\w.]*(?:Error|Exception|Exit|Interrupt|Warning)|error|ERROR)\b.*"
)


def log_tail(text: str, lines: int = TAIL_LINES) -> str:
    """The end of a project's log, with the lines that name an exception above it (a chained
    exception's first cause, or the error of a long traceback, is often far above the end)."""
    every = text.strip().splitlines()
    tail = every[-lines:]
    raised = [line for line in every[:-lines] if _RAISED.match(line)]
    if not raised:
        return "\n".join(tail)
    return "\n".join([*raised[-5:], "…", *tail])


def _project_env(uri: str, env_root: Path) -> dict[str, str]:
    ensure_store(uri)  # before a project run creates it: a kill then could leave it half made
    return {**_with_env_root(env_root), "MLFLOW_TRACKING_URI": uri}


def _wait_or_kill(
    command: list[str],
    env: dict[str, str],
    cwd: Path,
    out: IO[bytes],
    *,
    timeout: float,
    cancel: CancelToken,
) -> int | None:
    """The project's exit code, or None when it outlived ``timeout``; its process group is
    killed on a timeout, on a cancel (which then raises) and on any exception."""
    killed: list[subprocess.Popen[bytes]] = []

    def kill() -> None:
        for process in killed:
            _kill_group(process)

    with cancel.hook(kill):  # refuses at once if already cancelled: nothing starts
        process = subprocess.Popen(
            command, stdout=out, stderr=subprocess.STDOUT, env=env, cwd=cwd, start_new_session=True
        )
        killed.append(process)
        if cancel.cancelled:  # cancelled as it started, before the hook could see it
            _kill_group(process)
        try:
            code: int | None = process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            _kill_group(process)
            code = None
        except BaseException:  # the agent is stopping: leave no project running behind it
            _kill_group(process)
            raise
    cancel.check()  # killed by the cancel: not a failure of the project
    return code


def _kill_group(process: subprocess.Popen[bytes]) -> None:
    with suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    process.wait()


def aliases(uri: str, name: str) -> dict[str, int] | None:
    """Every alias of registered model ``name`` and the version it points at; None if the
    model is not registered."""
    with _tracking(uri) as mlflow:
        client = mlflow.MlflowClient()  # type: ignore[attr-defined]
        try:
            model = client.get_registered_model(name)
        except Exception:  # an unknown model is "not found", whatever MLflow raises
            return None
        return {alias: int(version) for alias, version in model.aliases.items()}


def set_aliases(uri: str, name: str, version: int, names: list[str]) -> None:
    """Point each alias in ``names`` at ``version``."""
    with _tracking(uri) as mlflow:
        client = mlflow.MlflowClient()  # type: ignore[attr-defined]
        for alias in names:
            client.set_registered_model_alias(name, alias, str(version))


if __name__ == "__main__":  # _making's process: KIND DIRECTORY MANAGER [ANSWER_FILE]
    _made = _make_env(Path(sys.argv[2]), sys.argv[1], sys.argv[3])
    if len(sys.argv) > 4:
        Path(sys.argv[4]).write_text(str(_made))
