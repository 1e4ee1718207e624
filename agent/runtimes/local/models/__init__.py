"""Build, digest, scan and register a model: the JFrog ML "build and scan" flow, locally.

1. Check the model's MLflow Project out of the git object store at the
   command's spec commit (never from a working tree; links are not extracted).
2. Run it with MLflow Projects, in the environment its ``envManager`` names (``local``:
   the agent's own; ``uv``, ``virtualenv``: one MLflow creates from the project's
   ``python_env.yaml`` under ``<stateDir>/envs``, reused by every build with the same
   Python and requirements; ``conda``: conda's). It must log a model. A manager the
   plane did not find is refused with the reason, and nothing runs.
3. Digest the model's files (sha256 over sorted paths and contents).
4. Hold the metrics the run logged to the spec's ``metricsGate``.
5. Scan the files (the scanners ``scan.tools`` names: ``models.scan``) and block at the
   spec's ``scan.failOn`` severity.
6. Register the version with tags for the source commit, spec digest,
   artifact digest, scan result, metrics gate and environment manager
   (``gitplane.env_manager``: endpoints serve a version built in its own environment
   in one made from its logged requirements), and move the spec's aliases
   to it — only when it passed both gates. A blocked version is never
   registered: no alias moves to it and no deployment can pin it; its MLflow
   run is tagged with why (``gitplane.blocked``).

Steps 3 to 6 are :mod:`.registration`'s, the one implementation every plane runs after its
build (a Kubernetes plane builds in a Job, then calls the same :func:`finish`).

A version already registered for the same spec digest is reused (its gate held
again against its run's metrics), so a build interrupted after registering is
not registered twice.
"""

from __future__ import annotations

import io
import tarfile
from datetime import datetime
from pathlib import Path

from agent.runtimes.base import ApplyContext, CancelledError
from agent.runtimes.local import _mlflow, limits
from agent.runtimes.local.env import LocalEnv, env_manager_refusal
from agent.runtimes.local.models import registration
from agent.runtimes.local.models.registration import (
    TAG_DIGEST,
    TAG_ENV_MANAGER,
    digest_directory,
    finish,
)
from schemas import commands, signed
from schemas.common import parse_duration
from schemas.model import ModelSpec


def apply(command: signed.Command, context: ApplyContext, env: LocalEnv) -> signed.ResourceStatus:
    """Build (or import), scan and register the model a command describes."""
    model = commands.read(command, commands.ModelCommand)
    spec, name = model.spec, model.name
    project = spec.source.project
    refused = (
        env_manager_refusal(project.path, project.env_manager, env.env_managers) if project else ""
    )
    refused = refused or limits.refusal(spec.resources, f"Model/{name}")
    if refused:  # Blocked, not Failed: no retry can make the manager (or a GPU) appear
        return registration.blocked(command, spec, {}, "", refused)
    existing = registration.reuse(command, spec, env.tracking_uri)
    if existing is not None:
        return existing
    model_dir = context.scratch / "model"
    run_id, model_uri = _produce(spec, name, context=context, env=env, model_dir=model_dir)
    return finish(
        command,
        spec,
        run_id=run_id,
        model_uri=model_uri,
        model_dir=model_dir,
        spec_commit=context.spec_commit,
        tracking_uri=env.tracking_uri,
    )


def _produce(
    spec: ModelSpec,
    name: str,
    *,
    context: ApplyContext,
    env: LocalEnv,
    model_dir: Path,
) -> tuple[str, str]:
    """Run the project (or fetch the registry URI) into ``model_dir``; (run id, model URI).

    The build's MLflow run is created first, tagged with the spec commit and digest, and
    the project runs inside it: a failed build is a ``FAILED`` run (``KILLED`` past its
    timeout or when cancelled) with its whole log as an artifact (``logs/log.txt``), found
    in the MLflow UI beside the successful ones. The experiment keeps its artifacts under
    ``<stateDir>/mlartifacts``: registered versions point at them long after this apply's
    scratch space is gone.
    """
    tracking_uri = env.tracking_uri
    if spec.source.registry is not None:  # gated on the metrics of the run that logged it
        return registration.imported(spec, tracking_uri, model_dir)
    project = spec.source.project
    if project is None:  # the schema requires one of the two
        raise commands.CommandSpecError(f"Model/{name}: neither a project nor a registry URI")
    checkout = context.scratch / "project"
    extract(env.repo.archive(context.spec_commit, project.path), checkout)
    experiment_id, run_id = registration.build_run(
        tracking_uri,
        name,
        spec.version,
        project,
        spec_commit=context.spec_commit,
        artifacts=env.state_dir / "mlartifacts",
    )
    parameters = {key: str(value) for key, value in project.parameters.items()}
    timeout = parse_duration(spec.timeout)
    context.progress.step(f"building {name} {spec.version}")
    try:
        ended = _mlflow.run_in(
            tracking_uri,
            checkout,
            run_id=run_id,
            experiment_id=experiment_id,
            entry_point=project.entry_point,
            parameters=parameters,
            timeout=timeout,
            workdir=context.scratch / "run",
            cancel=context.cancel,
            progress=context.progress,
            environment=_mlflow.ProjectEnvironment(project.env_manager, env.env_root),
            limits=limits.of(spec.resources),
        )
    except CancelledError:
        _mlflow.end_run(tracking_uri, run_id, "KILLED")
        raise
    _mlflow.upload(tracking_uri, run_id, ended.log, "logs")
    if ended.code is None:
        _mlflow.end_run(tracking_uri, run_id, "KILLED")
        raise _mlflow.MlflowError(f"the project run exceeded its {timeout:.0f}s timeout")
    if ended.code != 0:
        _mlflow.end_run(tracking_uri, run_id, "FAILED")
        raise _mlflow.MlflowError(
            f"the project run failed (exit {ended.code}; run {run_id}, log in its "
            f"logs/ artifact):\n{ended.tail}"
        )
    _mlflow.end_run(tracking_uri, run_id, "FINISHED")
    return run_id, _mlflow.model_of_run(tracking_uri, run_id, model_dir)


def extract(archive: bytes, destination: Path) -> None:
    """Unpack a git archive, refusing links, devices and paths outside ``destination``."""
    destination.mkdir(parents=True, exist_ok=True)
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        members = [m for m in tar.getmembers() if m.isfile() or m.isdir()]
        tar.extractall(destination, members=members, filter="data")


def observe(
    command: signed.Command,
    last: signed.ResourceStatus,
    context: ApplyContext,
    env: LocalEnv,
) -> signed.ResourceStatus:
    """Drift in the registry: the spec's aliases moved to another version (by hand, or by
    another tool). Healed when the plane self-heals, reported otherwise. Checked at most
    every ``OBSERVE_SECONDS`` per model."""
    now = context.now
    if last.phase != "Ready" or not _due(env, command.name, now):
        return last
    spec = commands.read(command, commands.ModelCommand).spec
    return registration.aliases(
        spec, command.name, last, tracking_uri=env.tracking_uri, self_heal=context.self_heal
    )


OBSERVE_SECONDS = 60.0
"""How often a plane looks at a ``Ready`` model's aliases in the registry (every plane)."""
_checked: dict[tuple[Path, str], datetime] = {}


def _due(env: LocalEnv, name: str, now: datetime) -> bool:
    key = (env.state_dir, name)
    last = _checked.get(key)
    if last is not None and (now - last).total_seconds() < OBSERVE_SECONDS:
        return False
    _checked[key] = now
    return True


def delete(command: signed.Command, env: LocalEnv) -> None:
    """Registered model versions are kept: the registry is history, and deployments elsewhere
    may still serve them."""
    del command, env


__all__ = [
    "OBSERVE_SECONDS",
    "TAG_DIGEST",
    "TAG_ENV_MANAGER",
    "apply",
    "delete",
    "digest_directory",
    "extract",
    "finish",
    "observe",
]
