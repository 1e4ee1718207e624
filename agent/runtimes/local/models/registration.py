"""What every plane does with a model once it exists: one implementation for all runtimes.

A runtime produces the model its own way (the local plane runs the MLflow Project in a
process, a Kubernetes plane in a Job) inside an MLflow run that :func:`build_run` made
with the provenance tags; from there :func:`finish` does the rest, the same everywhere:

1. Digest the model's files (sha256 over sorted paths and contents).
2. Hold the metrics the run logged to the spec's ``metricsGate``.
3. Check the model carries the flavor the spec declares.
4. Scan the files (the scanners ``scan.tools`` names: :mod:`.scan`) and block at the
   spec's ``scan.failOn`` severity.
5. Register the version with tags for the source commit, spec digest, artifact digest,
   scan result, metrics gate and environment manager, and move the spec's aliases to it:
   only when it passed every gate. A blocked version is never registered; its MLflow run
   is tagged with why (``gitplane.blocked``).

:func:`reuse` finds a version already registered for the same spec digest (its gate held
again), so a build interrupted after registering is not registered twice; :func:`aliases`
is the registry's drift check, the same on every plane.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Literal

from agent.runtimes.local import _mlflow
from agent.runtimes.local.models import scan
from schemas import signed
from schemas.common import ProjectRef
from schemas.model import METRICS_GATE_FAILED, ModelSpec, metrics_gate_failures
from schemas.observed import ModelObserved

TAG_DIGEST = "gitplane.spec_digest"
TAG_ENV_MANAGER = "gitplane.env_manager"
"""The MLflow ``envManager`` a version was built with (builds from a project only)."""
REGISTRY_BOOKKEEPING = "registered_model_meta"
SELF_REGISTERED = (
    "the project registered {versions} itself, unscanned and ungated: "
    "do not deploy it from the registry (remove registered_model_name from the project)"
)


def reuse(
    command: signed.Command, spec: ModelSpec, tracking_uri: str
) -> signed.ResourceStatus | None:
    """The status of the version already registered for the command's digest, or None."""
    name = spec.registered_name or command.name
    existing = _mlflow.find_version(tracking_uri, name, TAG_DIGEST, command.digest)
    if existing is None:
        return None
    tags = dict(existing.tags)
    failing = _metrics_gate(spec, tracking_uri, existing.run_id, tags)
    if failing:  # registered by an agent that did not hold the gate: it still blocks
        return blocked(command, spec, tags, existing.run_id, failing)
    return _report(command, spec, tags, existing.run_id, "Ready", registry_version=existing.version)


def build_run(
    tracking_uri: str,
    name: str,
    version: str,
    project: ProjectRef,
    *,
    spec_commit: str,
    artifacts: Path | None,
) -> tuple[str, str]:
    """The build's MLflow run (``RUNNING``), made before the project runs inside it, tagged
    with the spec commit and where the project is; (experiment id, run id). A Kubernetes
    plane makes it in the build pod (:mod:`agent.runtimes.kubernetes.build`). The experiment
    ``gitplane-<name>`` keeps its artifacts under ``artifacts`` unless a tracking server
    stores them (None: the store's default)."""
    experiment = f"gitplane-{name}"
    where = None if artifacts is None else artifacts / experiment
    experiment_id = _mlflow.ensure_experiment(tracking_uri, experiment, where)
    tags = {
        "gitplane.model": name,
        "gitplane.version": version,
        "gitplane.source_commit": spec_commit,
        "mlflow.source.type": "PROJECT",
        "mlflow.source.name": project.path,
        "mlflow.source.git.commit": spec_commit,
        "mlflow.project.entryPoint": project.entry_point,
    }
    run_name = f"{name} {version}"
    return experiment_id, _mlflow.start_run(tracking_uri, experiment_id, name=run_name, tags=tags)


def imported(spec: ModelSpec, tracking_uri: str, model_dir: Path) -> tuple[str, str]:
    """A registry import: the model downloaded into ``model_dir``; (the run that logged it,
    whose metrics the gate holds, the model URI)."""
    registry = spec.source.registry
    if registry is None:
        raise RuntimeError("imported() is for models whose source is a registry URI")
    _mlflow.download(tracking_uri, registry.uri, model_dir)
    return _mlflow.source_run(tracking_uri, registry.uri), registry.uri


def finish(
    command: signed.Command,
    spec: ModelSpec,
    *,
    run_id: str,
    model_uri: str,
    model_dir: Path,
    spec_commit: str,
    tracking_uri: str,
) -> signed.ResourceStatus:
    """Digest, gate, scan and register the model in ``model_dir`` (logged as ``model_uri``
    by ``run_id``); ``Ready`` with its registry version, or ``Blocked`` with why."""
    project = spec.source.project
    own = _mlflow.versions_of_run(tracking_uri, run_id) if project else []
    report = scan.scan(model_dir, allow=spec.scan.allow_globals, tools=list(spec.scan.tools))
    failed_scan = report.blocks(spec.scan.fail_on, allow_unscanned=spec.scan.allow_unscanned)
    tags = {
        TAG_DIGEST: command.digest,
        "gitplane.source_commit": spec_commit,
        "gitplane.artifact_digest": digest_directory(model_dir),
        "gitplane.scan": "failed" if failed_scan else "passed",
        "gitplane.scan_worst": report.worst(),
        "gitplane.scan_files": report.summary()[:5000],
        "gitplane.version": spec.version,
        **spec.tags,
    }
    if project is not None:
        tags[TAG_ENV_MANAGER] = project.env_manager
    if own:  # registered by the project itself, before any scan or gate
        tags["gitplane.self_registered"] = ", ".join(own)[:5000]
    reasons = [
        _metrics_gate(spec, tracking_uri, run_id, tags),
        _flavor_missing(spec, tracking_uri, model_uri),
        f"security scan blocked it: {report.reasons()}" if failed_scan else "",
    ]
    why = "; ".join(r for r in reasons if r)
    if why:
        if run_id:
            _mlflow.tag_run(tracking_uri, run_id, {"gitplane.blocked": why[:5000], **tags})
        return blocked(command, spec, tags, run_id, why)
    name = spec.registered_name or command.name
    registered = _mlflow.register(
        tracking_uri, model_uri, name, tags=tags, aliases=list(spec.aliases)
    )
    return _report(command, spec, tags, run_id, "Ready", registry_version=registered.version)


def _flavor_missing(spec: ModelSpec, tracking_uri: str, model_uri: str) -> str:
    """Why the model does not carry the flavor its spec declares, or ``""``. Endpoints load
    every model through ``python_function``, as ``mlflow models serve`` does; the declared
    flavor is what the version must also be loadable as."""
    found = _mlflow.flavors(tracking_uri, model_uri)
    if spec.flavor in found:
        return ""
    if not found:
        return f"{model_uri} is not an MLflow model (it has no MLmodel)"
    return f"the model has no {spec.flavor} flavor (its MLmodel has: {', '.join(found)})"


def _metrics_gate(spec: ModelSpec, tracking_uri: str, run_id: str, tags: dict[str, str]) -> str:
    """Hold the run's metrics to the spec's gate; why it fails (``""``: it holds, or there
    is none). Records the verdict in ``tags``."""
    if not spec.metrics_gate:
        return ""
    failures = metrics_gate_failures(spec.metrics_gate, _mlflow.metrics(tracking_uri, run_id))
    tags["gitplane.metrics_gate"] = "failed" if failures else "passed"
    return f"{METRICS_GATE_FAILED}: {'; '.join(failures)}" if failures else ""


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


def blocked(
    command: signed.Command, spec: ModelSpec, tags: dict[str, str], run_id: str, message: str
) -> signed.ResourceStatus:
    """``Blocked`` with why: no retry helps (a gate, a scan, a manager the plane lacks)."""
    return _report(command, spec, tags, run_id, "Blocked", message=message[:4000])


def _report(
    command: signed.Command,
    spec: ModelSpec,
    tags: dict[str, str],
    run_id: str,
    phase: Literal["Ready", "Blocked"],
    *,
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


def aliases(
    spec: ModelSpec,
    name: str,
    last: signed.ResourceStatus,
    *,
    tracking_uri: str,
    self_heal: bool,
) -> signed.ResourceStatus:
    """Drift in the registry: the spec's aliases moved off the version ``last`` registered
    (by hand, or by another tool). Moved back when ``self_heal``, reported otherwise."""
    registered = spec.registered_name or name
    version = ModelObserved.of(last).registry_version or 0
    current = _mlflow.aliases(tracking_uri, registered) or {}
    moved = sorted(a for a in spec.aliases if current.get(a) != version)
    if not moved:
        fixed = last.message.startswith("drift:")  # put right by hand since
        return last.model_copy(update={"message": ""}) if fixed else last
    drift = f"aliases {', '.join(moved)} no longer point at version {version}"
    if not self_heal:
        return last.model_copy(update={"message": f"drift: {drift}"})
    _mlflow.set_aliases(tracking_uri, registered, version, moved)
    return last.model_copy(update={"message": f"healed drift: {drift}"})
