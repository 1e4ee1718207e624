"""Models on a Kubernetes plane: the build is a Job, everything after it is the local plane's.

1. Refuse what the plane cannot build (``Blocked``: no retry helps): an ``envManager`` its
   build image does not offer (:data:`BUILD_ENV_MANAGERS`), a plane without a build image,
   agent image or repository URL. ``resources.gpu`` is allowed: it becomes an
   ``nvidia.com/gpu`` limit of the build container.
2. Reuse the version already registered for the command's digest (as locally).
3. A registry import needs no Job: it is downloaded by the agent, as locally.
4. Otherwise apply the Job (:func:`render.model_build`, a pure function of the command,
   the spec commit and the plane: what ``gitplane agent render`` prints) and follow it.
   Its ``source`` init container fetches the project at the spec commit and checks it is
   the signed tree; its ``stage`` init container (:mod:`.build`) makes the build's MLflow
   run with the local plane's provenance tags (:func:`registration.build_run`) on
   ``MLFLOW_TRACKING_URI``, the plane's tracking server, which the agent reaches at the
   same URI, and says the run's id in its termination message; then
   ``mlflow run . --run-id`` logs into that run.
5. ``Complete``: read the run's id from the pod's status (a pod gone before it was read is
   a failed build: retried), download the run's model and :func:`registration.finish` it
   (digest, gates, flavor, scan, registration, aliases), the code the local plane runs.
   ``Failed``: the run (when staging made one) ends ``FAILED`` and the error carries the
   Job's reason and the failed container's message and log tail (a staging failure, such
   as MLflow out of reach, is the ``stage`` container's). Cancelled, or past the spec's
   timeout: the Job is deleted, the run ends ``KILLED``.

Registered versions are kept when a model is deleted (the registry is history); its Jobs
go. A finished Job is not drift: what a build makes is the registered version, and its Job
is removed a day after it ends (``ttlSecondsAfterFinished``).
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

from agent.runtimes.base import ApplyContext
from agent.runtimes.kubernetes import render
from agent.runtimes.kubernetes.cluster import Cluster, ClusterError, Manifest
from agent.runtimes.kubernetes.inventory import Inventory
from agent.runtimes.local import _mlflow
from agent.runtimes.local.models import OBSERVE_SECONDS, registration
from schemas import commands, signed
from schemas.errors import GitplaneError
from schemas.model import ModelSpec

BUILD_ENV_MANAGERS = frozenset({"local", "uv"})
"""What the plane's build image offers: its own Python with MLflow (``local``) and uv,
which makes each project's environment from its ``python_env.yaml``. Not ``virtualenv``
(pyenv would compile Pythons in every build) nor ``conda``."""
POLL = 0.2
"""Seconds between two reads of a build in progress (from the watch cache when synced)."""
GRACE = 60.0
"""Seconds past ``activeDeadlineSeconds`` the agent waits for the Job controller to say so."""
LOG_LINES = 20
"""How much of the failed container's log the status carries."""
LOOK_EVERY = 10.0
"""Seconds between two looks at a running build's pods, for one that cannot start."""
STARTING = frozenset({"ContainerCreating", "PodInitializing"})
"""Why a container waits while all is well; any other reason is said in the progress."""
OWNED = (("batch/v1", "Job"),)
"""The kinds a Model command makes: what delete looks through."""


class BuildError(GitplaneError):
    """The build Job failed, was removed, or ran past its timeout: the agent retries."""

    def __init__(self, message: str, *, ended: str = "FAILED") -> None:
        super().__init__(message)
        self.ended = ended
        """How the build's MLflow run ends: ``FAILED``, or ``KILLED`` past its timeout."""


class Models:
    """Build, register, observe and delete Model commands in one namespace."""

    def __init__(
        self,
        cluster: Cluster,
        target: render.Target,
        *,
        state_dir: Path | None = None,
        clock: Callable[[], float] = time.monotonic,
        poll: float = POLL,
        look_every: float = LOOK_EVERY,
        inventory: Inventory | None = None,
    ) -> None:
        self.cluster = cluster
        self.target = target if state_dir is None else render.with_state(target, state_dir)
        """The plane, with where new build experiments keep artifacts when the tracking
        URI is not a server (the agent's state directory: :func:`render.with_state`)."""
        self.clock = clock
        self.poll = poll
        self.look_every = look_every
        self.inventory = inventory
        self._checked: dict[str, datetime] = {}
        """When each model's aliases were last looked at (on the agent's clock)."""

    def apply(self, command: signed.Command, context: ApplyContext) -> signed.ResourceStatus:
        """Build (or import), scan and register the model the command describes."""
        context.cancel.check()
        spec = commands.read(command, commands.ModelCommand).spec
        refused = self._refusal(command.name, spec)
        if refused:
            return registration.blocked(command, spec, {}, "", refused)
        tracking = self.target.tracking_uri
        existing = registration.reuse(command, spec, tracking)
        if existing is not None:
            return existing
        model_dir = context.scratch / "model"
        if spec.source.project is None:
            run_id, model_uri = registration.imported(spec, tracking, model_dir)
        else:
            run_id = self._build(command, spec, context)
            model_uri = _mlflow.model_of_run(tracking, run_id, model_dir)
        return registration.finish(
            command,
            spec,
            run_id=run_id,
            model_uri=model_uri,
            model_dir=model_dir,
            spec_commit=context.spec_commit,
            tracking_uri=tracking,
        )

    def observe(
        self, command: signed.Command, last: signed.ResourceStatus, context: ApplyContext
    ) -> signed.ResourceStatus:
        """Alias drift in the registry, healed or reported as on the local plane (and as
        often: once per ``OBSERVE_SECONDS`` per model)."""
        checked = self._checked.get(command.name)
        if last.phase != "Ready" or (
            checked is not None and (context.now - checked).total_seconds() < OBSERVE_SECONDS
        ):
            return last
        self._checked[command.name] = context.now
        spec = commands.read(command, commands.ModelCommand).spec
        return registration.aliases(
            spec,
            command.name,
            last,
            tracking_uri=self.target.tracking_uri,
            self_heal=context.self_heal,
        )

    def delete(self, command: signed.Command) -> None:
        """Delete the resource's build Jobs (and their pods); registered versions stay."""
        selector = render.labels(self.target, command.kind, command.name)
        for api_version, kind in OWNED:
            for found in self.cluster.select(api_version, kind, selector):
                self.cluster.delete(api_version, kind, found["metadata"]["name"])

    def _refusal(self, name: str, spec: ModelSpec) -> str:
        project = spec.source.project
        if project is None:
            return ""
        if project.env_manager not in BUILD_ENV_MANAGERS:
            offered = ", ".join(sorted(BUILD_ENV_MANAGERS))
            return (
                f"{project.path}: envManager {project.env_manager!r} is not offered by a "
                f"Kubernetes plane's build image (it offers: {offered})"
            )
        missing = [
            what
            for what, value in (
                (
                    "a build image (spec.kubernetes.images.build or serving)",
                    self.target.build_image,
                ),
                ("an agent image (spec.kubernetes.images.agent)", self.target.agent_image),
                ("the repository's URL (spec.kubernetes.source.url)", self.target.repo_url),
            )
            if not value
        ]
        if missing:
            return f"Model/{name}: the plane cannot build without {' and '.join(missing)}"
        return ""

    def _build(self, command: signed.Command, spec: ModelSpec, context: ApplyContext) -> str:
        """Run the build Job; the id of the MLflow run its pod made, once it completed."""
        job = render.model_build(command, context.spec_commit, self.target)
        name = job["metadata"]["name"]
        context.progress.step(f"building {command.name} {spec.version} in Job {name}")
        self.delete(command)  # an earlier attempt's Job: a Job's pod template is immutable
        try:
            uid = self.cluster.apply(job)["metadata"]["uid"]
            self._follow(job, uid, context)
            run_id = self._staged(job)
        except (BuildError, ClusterError) as exc:
            self._end(job, getattr(exc, "ended", "FAILED"))
            raise
        except BaseException:  # cancelled (or the agent is going down): stop the build
            self._end(job, "KILLED")
            self._stop(name)
            raise
        if not run_id:
            raise BuildError(f"the build Job {name} completed, but no pod of it says its run")
        _mlflow.end_run(self.target.tracking_uri, run_id, "FINISHED")  # `mlflow run` did
        return run_id

    def _staged(self, job: Manifest) -> str:
        """The run the Job's latest pod to say one made (``""``: none says, or none is left)."""
        said = [staged_run(p) for p in self._pods(job)]
        return next((run for run in reversed(said) if run), "")

    def _end(self, job: Manifest, status: str) -> None:
        """End the run of the Job's pod, if one made it (and the cluster can say which)."""
        with contextlib.suppress(ClusterError):
            run_id = self._staged(job)
            if run_id:
                _mlflow.end_run(self.target.tracking_uri, run_id, status)

    def _follow(self, job: Manifest, uid: str, context: ApplyContext) -> None:
        """Until the Job ``uid`` completes; :class:`BuildError` when it fails, vanishes or
        overruns."""
        name = job["metadata"]["name"]
        deadline = self.clock() + job["spec"]["activeDeadlineSeconds"] + GRACE
        look = self.clock() + self.look_every
        doing = context.progress.now()[0]
        while True:
            live = self._read(name, uid)
            if live is None:
                raise BuildError(f"the build Job {name} was deleted before it finished")
            phase, why = outcome(live)
            if phase == "Complete":
                return
            if phase == "Failed":
                ended = "KILLED" if why.startswith("DeadlineExceeded") else "FAILED"
                raise BuildError(self._cause(job, why), ended=ended)
            if self.clock() > deadline:
                self._end(job, "KILLED")  # while its pod can still say which run
                self._stop(name)
                timeout = job["spec"]["activeDeadlineSeconds"]
                raise BuildError(
                    f"the build Job {name} ran past its {timeout}s timeout", ended="KILLED"
                )
            if self.clock() >= look:
                look = self.clock() + self.look_every
                stuck = "; ".join(filter(None, map(waiting, self._pods(job, "Pending"))))
                context.progress.step(f"{doing}: {stuck}" if stuck else doing)
            if context.cancel.wait(self.poll):
                context.cancel.check()

    def _stop(self, name: str) -> None:
        # unreachable: the run still ends KILLED, and the Job's own deadline ends it
        with contextlib.suppress(ClusterError):
            self.cluster.delete("batch/v1", "Job", name)

    def _read(self, name: str, uid: str) -> Manifest | None:
        """The Job ``uid`` from the watch cache once it shows it (a GET until then: the
        cache may still hold an earlier attempt of the same name); None once it is gone."""
        if self.inventory is not None and self.inventory.synced:
            cached = self.inventory.get("batch/v1", "Job", name)
            if cached is not None and cached["metadata"].get("uid") == uid:
                return cached
        live = self.cluster.get("batch/v1", "Job", name)
        return live if live is not None and live["metadata"].get("uid") == uid else None

    def _cause(self, job: Manifest, why: str) -> str:
        """The Job's reason, and what its failed pod's failed container said last."""
        said = [f"the build Job {job['metadata']['name']} failed: {why}"]
        for pod in self._pods(job, "Failed")[-1:]:
            container, ended = failed_container(pod)
            pod_name = pod["metadata"]["name"]
            said.append(f"pod {pod_name}, container {container} ({ended or 'no exit status'}):")
            try:
                tail = self.cluster.pod_log(pod_name, container, lines=LOG_LINES)
            except ClusterError as exc:
                tail = f"(its log cannot be read: {exc})"
            said.append(tail.strip() or "(its log is empty)")
        return "\n".join(said)

    def _pods(self, job: Manifest, phase: str | None = None) -> list[Manifest]:
        """The Job's pods (found by its template's labels, owned by it), those in ``phase``
        when given, the latest last."""
        name, selector = job["metadata"]["name"], job["spec"]["template"]["metadata"]["labels"]
        pods = [
            p
            for p in self.cluster.select("v1", "Pod", selector)
            if any(o.get("name") == name for o in p["metadata"].get("ownerReferences") or [])
            and (phase is None or (p.get("status") or {}).get("phase") == phase)
        ]
        return sorted(pods, key=lambda p: p["metadata"].get("creationTimestamp", ""))


def outcome(job: Manifest) -> tuple[str, str]:
    """A Job's state as ``Complete``, ``Failed`` (with its reason) or ``Running`` (pure)."""
    for condition in (job.get("status") or {}).get("conditions") or []:
        if condition.get("status") != "True":
            continue
        if condition.get("type") == "Complete":
            return "Complete", ""
        if condition.get("type") == "Failed":
            reason = condition.get("reason") or "Failed"
            return "Failed", f"{reason}: {condition.get('message') or 'no message'}"
    return "Running", ""


def failed_container(pod: Manifest) -> tuple[str, str]:
    """The container to blame (a failed init container, else ``run``) and how it ended
    (exit code, reason and termination message; ``""`` when the pod does not say)."""
    status = pod.get("status") or {}
    for found in [
        *(status.get("initContainerStatuses") or []),
        *(status.get("containerStatuses") or []),
    ]:
        ended = (found.get("state") or {}).get("terminated") or {}
        if ended.get("exitCode", 0) != 0:
            how = f"exit {ended['exitCode']}"
            how += f" ({ended['reason']})" if ended.get("reason") else ""
            message = (ended.get("message") or "").strip()
            return str(found.get("name") or "run"), f"{how}: {message}" if message else how
    return "run", ""


def staged_run(pod: Manifest) -> str:
    """The run id the pod's ``stage`` container said as it ended well (``""``: it did not,
    or not yet) (pure)."""
    for found in (pod.get("status") or {}).get("initContainerStatuses") or []:
        ended = (found.get("state") or {}).get("terminated") or {}
        if found.get("name") == render.STAGE and ended.get("exitCode") == 0:
            with contextlib.suppress(ValueError, AttributeError):
                return str(json.loads(ended.get("message") or "").get("runId") or "")
    return ""


def waiting(pod: Manifest) -> str:
    """Why a pod's container cannot start (a Secret missing, an image not pulled), or ``""``
    while it starts as it should (pure)."""
    status = pod.get("status") or {}
    for found in [
        *(status.get("initContainerStatuses") or []),
        *(status.get("containerStatuses") or []),
    ]:
        held = (found.get("state") or {}).get("waiting") or {}
        reason = held.get("reason") or ""
        if reason and reason not in STARTING:
            said = f"{reason}: {held['message']}" if held.get("message") else reason
            return f"pod {pod['metadata']['name']} container {found.get('name')} waits ({said})"
    return ""
