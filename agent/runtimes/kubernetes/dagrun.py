"""One run of a DAG on a Kubernetes plane: its parent MLflow run, then each step's Job.

The driver of :mod:`.dags`, and the pure reading of what a step's Job and pods say.
A step's Job is applied only once every step before it (in ``dependsOn`` order) ended;
a step's instances get their child runs before their Job exists, so each pod runs in the
run made for its completion index. The Job is exactly :func:`render.dag_step`'s (its
``activeDeadlineSeconds`` the step's own ``timeout``): the DAG's ``timeout`` is the agent's
to enforce while it waits, so what ``gitplane agent render`` prints is what is applied.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Literal

from agent.runtimes.base import ApplyContext, CancelledError
from agent.runtimes.kubernetes import models, render
from agent.runtimes.kubernetes.cluster import Cluster, ClusterError, Manifest
from agent.runtimes.local import _mlflow
from agent.runtimes.local.dags import _attempt as _dagattempt
from agent.runtimes.local.dags import _plan as _dagplan
from agent.runtimes.local.dags import _run as _dagrun
from schemas import signed
from schemas.common import parse_duration
from schemas.dag import DAG, Step

if TYPE_CHECKING:
    from agent.runtimes.kubernetes.dags import Dags

FINAL = {"Complete", "Failed"}
"""The conditions a Job ends with."""
KILLED = "Killed"
"""How :meth:`Run._wait` reads a Job the agent deleted when the DAG's ``timeout`` passed."""
TAIL_LINES = 40
TAIL_CHARS = 2000
"""Of a failed step's log, in the status message (as on the local plane)."""


def job_outcome(live: Manifest) -> tuple[str, frozenset[int], str] | None:
    """A finished Job as (``Complete`` or ``Failed``, its completed indexes, why); None
    while it runs (pure; the Job's own conditions, as ``kubectl wait`` reads them)."""
    status = live.get("status") or {}
    ended = [
        c for c in status.get("conditions") or [] if c["type"] in FINAL and c["status"] == "True"
    ]
    if not ended:
        return None
    done = indexes(status.get("completedIndexes") or "")
    if ended[0]["type"] == "Complete" and live["spec"].get("completionMode") != "Indexed":
        done = frozenset({0})
    why = ended[0].get("message") or ended[0].get("reason") or ""
    return ended[0]["type"], done, why


def indexes(text: str) -> frozenset[int]:
    """``"0-2,4"`` as ``{0, 1, 2, 4}``: how a Job lists its completed indexes."""
    found: set[int] = set()
    for part in filter(None, text.split(",")):
        first, _, last = part.partition("-")
        found.update(range(int(first), int(last or first) + 1))
    return frozenset(found)


def tail(cluster: Cluster, job: str) -> str:
    """The log tail of the container that failed in the Job's last failed pod, or
    where to read the logs when the cluster does not give it."""
    where = f"logs: kubectl logs -n {cluster.namespace} job/{job}"
    failed = [
        p
        for p in cluster.select("v1", "Pod", {"job-name": job})
        if (p.get("status") or {}).get("phase") == "Failed"
    ]
    if not failed:
        return where
    pod = max(failed, key=lambda p: p["metadata"].get("creationTimestamp") or "")
    try:
        text = cluster.pod_log(
            pod["metadata"]["name"], models.failed_container(pod)[0], lines=TAIL_LINES
        )
    except ClusterError:
        return where
    return f"log tail:\n{text[-TAIL_CHARS:]}" if text.strip() else where


@dataclass
class Run:
    """One run of a DAG: its parent run, then each step's Job in order."""

    dags: Dags
    command: signed.Command
    dag: DAG
    context: ApplyContext
    trigger: Literal["apply", "schedule"]
    at: datetime
    """When the run starts, or the schedule slot it is for."""
    parent: str = ""
    experiment: str = ""
    deadline: float = 0.0
    tally: _dagrun.Tally = field(init=False)
    done: dict[str, _dagrun.StepOutcome] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.tally = _dagrun.Tally(self.dag)

    @property
    def uri(self) -> str:
        return self.dags.target.tracking_uri

    def run(self) -> _dagrun.Result:
        """Every step, then the parent run ended ``FINISHED`` or ``FAILED`` (``KILLED`` when
        cancelled)."""
        steps = _dagplan.order(self.dag.spec.steps)
        self._begin()
        try:
            outcomes = tuple(self._step(s) for s in steps)
        except CancelledError:
            _mlflow.end_run(self.uri, self.parent, "KILLED")
            raise
        except BaseException:
            _mlflow.end_run(self.uri, self.parent, "FAILED")
            raise
        result = _dagrun.summarise(self.dag, self.at, self.parent, outcomes)
        _mlflow.end_run(self.uri, self.parent, "FINISHED" if result.succeeded else "FAILED")
        return result

    def _begin(self) -> None:
        name = self.dag.spec.tracking.experiment or self.dag.name
        # Only for a tracking URI that is not a server (a test's SQLite): beside the apply's
        # scratch directory, which goes when the apply ends; a server keeps its own.
        artifacts = self.context.scratch.parent / "mlartifacts" / self.dag.name
        self.experiment = _mlflow.ensure_experiment(self.uri, name, artifacts)
        commit = self.context.spec_commit
        tags = _dagrun.parent_tags(self.dag.name, self.command.digest, commit, self.trigger)
        at = _dagplan.stamp(self.at)
        self.parent = _mlflow.start_run(
            self.uri, self.experiment, name=f"{self.dag.name}@{at}", tags=tags
        )
        self.deadline = self.dags.clock() + parse_duration(self.dag.spec.timeout)

    def _step(self, step: Step) -> _dagrun.StepOutcome:
        reason = self.tally.skip_reason(step, self.deadline - self.dags.clock())
        skipped = _dagrun.StepOutcome(step.name, "Skipped", message=reason)
        outcome = skipped if reason else self._job(step)
        self.done[step.name] = outcome
        self.tally.record(step, outcome)
        return outcome

    def _job(self, step: Step) -> _dagrun.StepOutcome:
        self.context.progress.step(f"running step {step.name}")
        count = step.partition.instances if step.partition else 0
        runs = tuple(self._child(step, k, count) for k in range(max(count, 1)))
        inputs = tuple((up, self.done[up].runs) for up in step.depends_on)
        given = render.StepRun(self.parent, runs, inputs)
        commit, target = self.context.spec_commit, self.dags.target
        manifest = render.dag_step(self.command, step.name, commit, given, target)
        name = manifest["metadata"]["name"]
        left = min(parse_duration(step.timeout), self.deadline - self.dags.clock())
        self.dags.cluster.apply(manifest)
        phase, done, why = self._wait(name, runs)
        ended = "KILLED" if phase == KILLED else "FAILED"
        for index, run_id in enumerate(runs):
            _mlflow.end_run(self.uri, run_id, "FINISHED" if index in done else ended)
        kept = tuple(run if k in done else "" for k, run in enumerate(runs))
        if phase == "Complete":
            return _dagrun.StepOutcome(step.name, "Succeeded", kept)
        failed = sorted(set(range(len(runs))) - done)
        which = f"instance(s) {', '.join(map(str, failed))} " if count else ""
        if phase == KILLED:  # the local plane's words for a project the DAG's timeout ended
            message = f"step {step.name} failed ({which}{_dagattempt.killed(left)}; Job {name})"
            return _dagrun.StepOutcome(step.name, "Failed", kept, message)
        attempts = step.retry.limit + 1
        message = (
            f"step {step.name} failed ({which}after {attempts} attempt(s); Job {name}: "
            f"{why or 'Failed'}); {tail(self.dags.cluster, name)}"
        )
        return _dagrun.StepOutcome(step.name, "Failed", kept, message)

    def _child(self, step: Step, index: int, count: int) -> str:
        name = f"{step.name}-part-{index}" if count else step.name
        tags = _dagattempt.tags(
            self.parent, self.dag.name, self.context.spec_commit, step, index=index, attempt=1
        )
        return _mlflow.start_run(self.uri, self.experiment, name=name, tags=tags)

    def _wait(self, name: str, runs: tuple[str, ...]) -> tuple[str, frozenset[int], str]:
        """Until the Job ends, or the DAG's deadline passes (:meth:`_stop`); cancelled, it is
        deleted and its runs marked ``KILLED``."""
        while True:
            live = self.dags.read(name)
            ended = job_outcome(live) if live is not None else None
            if ended is not None:
                return ended
            if self.dags.clock() >= self.deadline:
                return self._stop(name, live)
            if self.context.cancel.wait(self.dags.poll):
                self.dags.cluster.delete("batch/v1", "Job", name)
                for run_id in runs:
                    _mlflow.end_run(self.uri, run_id, "KILLED")
                self.context.cancel.check()

    def _stop(self, name: str, live: Manifest | None) -> tuple[str, frozenset[int], str]:
        """The DAG's ``timeout`` passed while the Job ran: it is deleted (its pods with it),
        as the local plane kills the running project; the indexes it had completed."""
        self.dags.cluster.delete("batch/v1", "Job", name)
        status = (live or {}).get("status") or {}
        return KILLED, indexes(status.get("completedIndexes") or ""), ""
