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

A version already registered for the same spec digest is reused (its gate held
again against its run's metrics), so a build interrupted after registering is
not registered twice.
"""

from __future__ import annotations

import hashlib
import io
import tarfile
from datetime import datetime
from pathlib import Path
from typing import Literal

from agent.runtimes.base import ApplyContext, CancelledError
from agent.runtimes.local import _mlflow, limits
from agent.runtimes.local.env import LocalEnv, env_manager_refusal
from agent.runtimes.local.models import scan
from schemas import commands, signed
from schemas.common import parse_duration
from schemas.model import METRICS_GATE_FAILED, ModelSpec, metrics_gate_failures
from schemas.observed import ModelObserved

TAG_DIGEST = "gitplane.spec_digest"
TAG_ENV_MANAGER = "gitplane.env_manager"
"""The MLflow ``envManager`` a version was built with (builds from a project only)."""


def apply(command: signed.Command, context: ApplyContext, env: LocalEnv) -> signed.ResourceStatus:
    """Build (or import), scan and register the model a command describes."""
    tracking_uri = env.tracking_uri
    model = commands.read(command, commands.ModelCommand)
    spec, name = model.spec, model.name
    registered_name = spec.registered_name or name
    project = spec.source.project
    refused = (
        env_manager_refusal(project.path, project.env_manager, env.env_managers) if project else ""
    )
    refused = refused or limits.refusal(spec.resources, f"Model/{name}")
    if refused:  # Blocked, not Failed: no retry can make the manager (or a GPU) appear
        return _blocked(command, spec, {}, "", refused)
    existing = _mlflow.find_version(tracking_uri, registered_name, TAG_DIGEST, command.digest)
    if existing is not None:
        tags = dict(existing.tags)
        failing = _metrics_gate(spec, env, existing.run_id, tags)
        if failing:  # registered by an agent that did not hold the gate: it still blocks
            return _blocked(command, spec, tags, existing.run_id, failing)
        return _status(command, spec, existing.version, tags, existing.run_id)
    model_dir = context.scratch / "model"
    run_id, model_uri = _produce(spec, name, context=context, env=env, model_dir=model_dir)
    own = _mlflow.versions_of_run(tracking_uri, run_id) if spec.source.project else []
    digest = digest_directory(model_dir)
    report = scan.scan(model_dir, allow=spec.scan.allow_globals, tools=list(spec.scan.tools))
    blocked = report.blocks(spec.scan.fail_on, allow_unscanned=spec.scan.allow_unscanned)
    tags = {
        TAG_DIGEST: command.digest,
        "gitplane.source_commit": context.spec_commit,
        "gitplane.artifact_digest": digest,
        "gitplane.scan": "failed" if blocked else "passed",
        "gitplane.scan_worst": report.worst(),
        "gitplane.scan_files": report.summary()[:5000],
        "gitplane.version": spec.version,
        **spec.tags,
    }
    if project is not None:
        tags[TAG_ENV_MANAGER] = project.env_manager
    if own:  # registered by the project itself, before any scan or gate
        tags["gitplane.self_registered"] = ", ".join(own)[:5000]
    reasons = [_metrics_gate(spec, env, run_id, tags), _flavor_missing(spec, env, model_uri)]
    if blocked:
        reasons.append(f"security scan blocked it: {report.reasons()}")
    why = "; ".join(r for r in reasons if r)
    if why:
        if run_id:
            _mlflow.tag_run(tracking_uri, run_id, {"gitplane.blocked": why[:5000], **tags})
        return _blocked(command, spec, tags, run_id, why)
    registered = _mlflow.register(
        tracking_uri, model_uri, registered_name, tags=tags, aliases=list(spec.aliases)
    )
    return _status(command, spec, registered.version, tags, run_id)


SELF_REGISTERED = (
    "the project registered {versions} itself, unscanned and ungated: "
    "do not deploy it from the registry (remove registered_model_name from the project)"
)


def _flavor_missing(spec: ModelSpec, env: LocalEnv, model_uri: str) -> str:
    """Why the model does not carry the flavor its spec declares, or ``""``. Endpoints load
    every model through ``python_function``, as ``mlflow models serve`` does; the declared
    flavor is what the version must also be loadable as."""
    found = _mlflow.flavors(env.tracking_uri, model_uri)
    if spec.flavor in found:
        return ""
    if not found:
        return f"{model_uri} is not an MLflow model (it has no MLmodel)"
    return f"the model has no {spec.flavor} flavor (its MLmodel has: {', '.join(found)})"


def _metrics_gate(spec: ModelSpec, env: LocalEnv, run_id: str, tags: dict[str, str]) -> str:
    """Hold the run's metrics to the spec's gate; why it fails (``""``: it holds, or there
    is none). Records the verdict in ``tags``."""
    if not spec.metrics_gate:
        return ""
    failures = metrics_gate_failures(spec.metrics_gate, _mlflow.metrics(env.tracking_uri, run_id))
    tags["gitplane.metrics_gate"] = "failed" if failures else "passed"
    return f"{METRICS_GATE_FAILED}: {'; '.join(failures)}" if failures else ""


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
    source = spec.source
    if source.registry is not None:  # gated on the metrics of the run that logged it
        _mlflow.download(tracking_uri, source.registry.uri, model_dir)
        return _mlflow.source_run(tracking_uri, source.registry.uri), source.registry.uri
    project = source.project
    if project is None:  # the schema requires one of the two
        raise commands.CommandSpecError(f"Model/{name}: neither a project nor a registry URI")
    checkout = context.scratch / "project"
    extract(env.repo.archive(context.spec_commit, project.path), checkout)
    experiment = f"gitplane-{name}"
    artifacts = env.state_dir / "mlartifacts" / experiment
    experiment_id = _mlflow.ensure_experiment(tracking_uri, experiment, artifacts)
    tags = {
        "gitplane.model": name,
        "gitplane.version": spec.version,
        "gitplane.source_commit": context.spec_commit,
        "mlflow.source.type": "PROJECT",
        "mlflow.source.name": project.path,
        "mlflow.source.git.commit": context.spec_commit,
        "mlflow.project.entryPoint": project.entry_point,
    }
    parameters = {key: str(value) for key, value in project.parameters.items()}
    run_id = _mlflow.start_run(
        tracking_uri, experiment_id, name=f"{name} {spec.version}", tags=tags
    )
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


def digest_directory(directory: Path) -> str:
    """``sha256:`` over every file's relative path and bytes, in sorted order.

    MLflow writes ``registered_model_meta`` (the registered name and version)
    into a model's artifacts when it is registered, after the build digested
    them; it is never loaded as code, so it is left out of the digest.
    """
    hasher = hashlib.sha256()
    for path in sorted(p for p in directory.rglob("*") if p.is_file()):
        relative = path.relative_to(directory).as_posix()
        if relative == REGISTRY_BOOKKEEPING:
            continue
        hasher.update(relative.encode() + b"\0")
        hasher.update(hashlib.sha256(path.read_bytes()).digest())
    return "sha256:" + hasher.hexdigest()


REGISTRY_BOOKKEEPING = "registered_model_meta"


def _status(
    command: signed.Command, spec: ModelSpec, version: int, tags: dict[str, str], run_id: str
) -> signed.ResourceStatus:
    return _report(command, spec, tags, run_id, phase="Ready", registry_version=version)


def _blocked(
    command: signed.Command, spec: ModelSpec, tags: dict[str, str], run_id: str, message: str
) -> signed.ResourceStatus:
    return _report(command, spec, tags, run_id, phase="Blocked", message=message[:4000])


def _report(
    command: signed.Command,
    spec: ModelSpec,
    tags: dict[str, str],
    run_id: str,
    *,
    phase: Literal["Ready", "Blocked"],
    registry_version: int | None = None,
    message: str = "",
) -> signed.ResourceStatus:
    """What the plane reports for a model: the tags it was (or would have been) registered with."""
    own = tags.get("gitplane.self_registered")
    if own:
        note = SELF_REGISTERED.format(versions=own)
        message = (f"{message}; {note}" if message else note)[:4000]
    observed = ModelObserved(
        version=spec.version,
        artifact_digest=tags.get("gitplane.artifact_digest", ""),
        scan=tags.get("gitplane.scan", ""),
        run_id=run_id,
        scan_worst=tags.get("gitplane.scan_worst", ""),
        scan_files=tags.get("gitplane.scan_files"),
        self_registered=own,
        registry_version=registry_version,
        metrics_gate=tags.get("gitplane.metrics_gate") if spec.metrics_gate else None,
    ).flat()
    return signed.ResourceStatus(
        kind="Model",
        name=command.name,
        phase=phase,
        digest=command.digest,
        message=message,
        observed=observed,
    )


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
    name = spec.registered_name or command.name
    version = ModelObserved.of(last).registry_version or 0
    current = _mlflow.aliases(env.tracking_uri, name) or {}
    moved = sorted(a for a in spec.aliases if current.get(a) != version)
    if not moved:
        fixed = last.message.startswith("drift:")  # put right by hand since
        return last.model_copy(update={"message": ""}) if fixed else last
    drift = f"aliases {', '.join(moved)} no longer point at version {version}"
    if not context.self_heal:
        return last.model_copy(update={"message": f"drift: {drift}"})
    _mlflow.set_aliases(env.tracking_uri, name, version, moved)
    return last.model_copy(update={"message": f"healed drift: {drift}"})


OBSERVE_SECONDS = 60.0
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
