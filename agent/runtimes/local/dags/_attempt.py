"""One attempt of one step instance: a child MLflow run with the step's project inside it.

The child run is created here first (tagged ``mlflow.parentRunId``, with the
parameters it is given), then the project runs in it with ``mlflow run --run-id``
in the environment its ``envManager`` names (uv and virtualenv environments kept under
``<stateDir>/envs``, one per Python version and requirements) in its own process group,
killed at ``timeout``. Files the
project writes to its ``output_dir`` become the child run's artifacts; its log
becomes an artifact of the parent run, under ``logs/<child run name>/``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from agent.progress import Progress
from agent.runtimes.base import CancelledError, CancelToken
from agent.runtimes.local import _mlflow, limits
from schemas.dag import Step

TAIL_CHARS = 2000  # of a failed attempt's log, in the status message


@dataclass(frozen=True)
class Parent:
    """The DAG run an attempt belongs to."""

    tracking_uri: str
    experiment_id: str
    run_id: str
    dag: str
    spec_commit: str
    env_root: Path
    """Where MLflow keeps the environments it creates for steps (``LocalEnv.env_root``)."""


@dataclass(frozen=True)
class Instance:
    """One of a step's runs: the only one, or instance ``index`` of ``count``."""

    step: Step
    project: Path
    """The step's MLflow Project, checked out."""
    declared: frozenset[str]
    """The parameters its entry point declares."""
    index: int = 0
    count: int = 0
    """0 when the step is not partitioned."""
    share: tuple[str, ...] = ()
    """The files of the ``from`` step this instance gets (partitioned steps only)."""

    @property
    def name(self) -> str:
        """The child run's name: ``score``, or ``score-part-2``."""
        return f"{self.step.name}-part-{self.index}" if self.count else self.step.name


def run(
    parent: Parent,
    unit: Instance,
    attempt: int,
    *,
    parameters: Mapping[str, str],
    workdir: Path,
    timeout: float,
    cancel: CancelToken,
    progress: Progress,
) -> tuple[str, str]:
    """The child run's id and ``""`` when the project succeeded, else ``""`` and why
    (with the tail of its log)."""
    uri = parent.tracking_uri
    name = unit.name if attempt == 1 else f"{unit.name}-attempt-{attempt}"
    tags = _tags(parent, unit, attempt)
    run_id = _mlflow.start_run(uri, parent.experiment_id, name=name, tags=tags, params=parameters)
    progress.step(f"running step {name}")
    try:
        ended = _mlflow.run_in(
            uri,
            unit.project,
            run_id=run_id,
            experiment_id=parent.experiment_id,
            entry_point=unit.step.project.entry_point,
            parameters=parameters,
            timeout=timeout,
            workdir=workdir,
            limits=limits.of(unit.step.resources),
            cancel=cancel,
            progress=progress,
            environment=_mlflow.ProjectEnvironment(unit.step.project.env_manager, parent.env_root),
        )
    except CancelledError:
        _mlflow.end_run(uri, run_id, "KILLED")
        raise
    _mlflow.upload(uri, parent.run_id, ended.log, f"logs/{name}")
    if ended.code == 0:
        return _succeeded(uri, run_id, workdir / "output"), ""
    _mlflow.upload(uri, run_id, ended.log, "logs")  # a failed run's artifacts are never inputs
    return "", _failed(uri, run_id, ended, unit=unit, attempt=attempt, timeout=timeout)


def _succeeded(uri: str, run_id: str, output: Path) -> str:
    if output.is_dir() and any(output.iterdir()):
        _mlflow.upload(uri, run_id, output)
    _mlflow.end_run(uri, run_id, "FINISHED")
    return run_id


def _failed(
    uri: str,
    run_id: str,
    ended: _mlflow.ProjectExit,
    *,
    unit: Instance,
    attempt: int,
    timeout: float,
) -> str:
    _mlflow.end_run(uri, run_id, "FAILED" if ended.code is not None else "KILLED")
    how = f"exit {ended.code}" if ended.code is not None else killed(timeout)
    attempts = unit.step.retry.limit + 1
    tail = ended.tail[-TAIL_CHARS:]
    return f"step {unit.name} failed ({how}, attempt {attempt} of {attempts}); log tail:\n{tail}"


def killed(timeout: float) -> str:
    """How a step that ran out of time (its own ``timeout`` or what was left of the DAG's)
    reads in the run's message, on every runtime."""
    return f"killed at its {timeout:.0f}s timeout"


def _tags(parent: Parent, unit: Instance, attempt: int) -> dict[str, str]:
    return tags(
        parent.run_id, parent.dag, parent.spec_commit, unit.step, index=unit.index, attempt=attempt
    )


def tags(
    parent_run: str, dag: str, spec_commit: str, step: Step, *, index: int, attempt: int
) -> dict[str, str]:
    """A step attempt's child run tags, on every runtime: linked to the DAG run's parent."""
    return {
        "mlflow.parentRunId": parent_run,
        "mlflow.source.type": "PROJECT",
        "mlflow.source.name": step.project.path,
        "mlflow.source.git.commit": spec_commit,
        "mlflow.project.entryPoint": step.project.entry_point,
        "gitplane.dag": dag,
        "gitplane.step": step.name,
        "gitplane.instance": str(index),
        "gitplane.attempt": str(attempt),
    }
