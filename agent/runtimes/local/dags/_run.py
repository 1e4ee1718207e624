"""One run of a DAG: a parent MLflow run, and a child run per step instance and attempt.

* Steps run one at a time in :func:`_dagplan.order`: independent steps one after the
  other too, and the instances of a partitioned step one after another. The local
  runtime is one machine; a sequential run is the easiest to follow in MLflow.
* Each attempt is a child run (``_dagattempt``) running the step's MLflow Project,
  checked out of git at the spec commit, killed at the step's ``timeout`` or when
  the DAG's ``timeout`` runs out, whichever comes first; a failed attempt is retried
  after ``backoff`` (doubling, up to ``maxBackoff``) until ``retry.limit``.
* The runtime sets the parameters an entry point declares among ``input_dir`` (its
  upstream steps' artifacts, see ``_dagdata``), ``output_dir`` (files to log as its
  artifacts), ``partition_index`` and ``partition_count``; they override the DAG's
  ``parameters``, which the step's own ``parameters`` override.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Literal

from agent.progress import Progress
from agent.runtimes.base import CancelledError, CancelToken
from agent.runtimes.local import _mlflow, models
from agent.runtimes.local.dags import _attempt as _dagattempt
from agent.runtimes.local.dags import _data as _dagdata
from agent.runtimes.local.dags import _plan as _dagplan
from agent.runtimes.local.env import LocalEnv
from schemas.common import ParamValue, parse_duration
from schemas.dag import DAG, Step


@dataclass(frozen=True)
class Launch:
    """Everything one run needs."""

    dag: DAG
    digest: str
    spec_commit: str
    at: datetime
    """When the run starts, or the schedule slot it is for."""
    trigger: Literal["apply", "schedule"]
    env: LocalEnv
    scratch: Path
    cancel: CancelToken
    progress: Progress


@dataclass(frozen=True)
class Begun:
    """A run whose parent MLflow run exists."""

    parent: _dagattempt.Parent
    deadline: float
    """``time.monotonic()`` past which nothing new starts and running projects are killed."""


@dataclass(frozen=True)
class StepOutcome:
    """How one step ended."""

    name: str
    phase: Literal["Succeeded", "Failed", "Skipped"]
    runs: tuple[str, ...] = ()
    """The successful child run of each instance (empty where an instance failed)."""
    message: str = ""


@dataclass(frozen=True)
class Result:
    """How a whole run ended."""

    run_id: str
    at: datetime
    """When the run started, or the schedule slot it was for."""
    succeeded: bool
    steps: tuple[StepOutcome, ...]
    message: str


def begin(launch: Launch) -> Begun:
    """Check the steps, then create the parent run (tagged with DAG, digest and commit)."""
    dag, uri = launch.dag, launch.env.tracking_uri
    _dagplan.order(dag.spec.steps)
    experiment = dag.spec.tracking.experiment or dag.name
    artifacts = launch.env.state_dir / "mlartifacts" / dag.name
    experiment_id = _mlflow.ensure_experiment(uri, experiment, artifacts)
    tags = parent_tags(dag.name, launch.digest, launch.spec_commit, launch.trigger)
    name = f"{dag.name}@{_dagplan.stamp(launch.at)}"
    run_id = _mlflow.start_run(uri, experiment_id, name=name, tags=tags)
    parent = _dagattempt.Parent(
        uri, experiment_id, run_id, dag.name, launch.spec_commit, launch.env.env_root
    )
    return Begun(parent, time.monotonic() + parse_duration(dag.spec.timeout))


def parent_tags(dag: str, digest: str, spec_commit: str, trigger: str = "apply") -> dict[str, str]:
    """A DAG run's parent run tags, on every runtime."""
    return {
        "gitplane.dag": dag,
        "gitplane.spec_digest": digest,
        "gitplane.spec_commit": spec_commit,
        "gitplane.trigger": trigger,
        "mlflow.source.git.commit": spec_commit,
    }


def complete(launch: Launch, begun: Begun) -> Result:
    """Run every step (with retries); the parent run ends FINISHED or FAILED (KILLED when
    the run was cancelled)."""
    driver, uri, run_id = _Driver(launch, begun), begun.parent.tracking_uri, begun.parent.run_id
    try:
        outcomes = tuple(driver.step(s) for s in _dagplan.order(launch.dag.spec.steps))
    except CancelledError:
        _mlflow.end_run(uri, run_id, "KILLED")
        raise
    except BaseException:
        _mlflow.end_run(uri, run_id, "FAILED")
        raise
    result = summarise(launch.dag, launch.at, run_id, outcomes)
    _mlflow.end_run(uri, run_id, "FINISHED" if result.succeeded else "FAILED")
    return result


def summarise(dag: DAG, at: datetime, parent: str, outcomes: tuple[StepOutcome, ...]) -> Result:
    """Failed unless every step succeeded or failed with ``continueOnFailure``; the message
    holds each failure (with its log tail), then each step that did not start. Both
    runtimes end a run with it."""
    tolerated = {s.name for s in dag.spec.steps if s.continue_on_failure}
    bad = [
        o
        for o in outcomes
        if o.phase == "Skipped" or (o.phase == "Failed" and o.name not in tolerated)
    ]
    failed = [o.message for o in outcomes if o.phase == "Failed"]
    skipped = [o.message for o in outcomes if o.phase == "Skipped"]
    return Result(parent, at, not bad, outcomes, "\n".join(failed + skipped))


@dataclass
class Tally:
    """What the steps that ended stop from starting (``failurePolicy``, ``dependsOn``, the
    DAG's ``timeout``): the one rule both runtimes' drivers follow, step by step."""

    dag: DAG
    stopped: dict[str, str] = field(default_factory=dict)
    """Steps whose dependents may not run: failed (without continueOnFailure) or skipped."""
    aborted: str = ""

    def skip_reason(self, step: Step, left: float) -> str:
        """Why ``step`` does not start ("" when it does), with ``left`` seconds of the
        DAG's timeout remaining."""
        if self.aborted:
            return f"step {step.name} not started: step {self.aborted} failed (failurePolicy abort)"
        if left <= 0:
            return f"step {step.name} not started: the DAG's {self.dag.spec.timeout} timeout passed"
        upstream = _dagplan.blocker(step, self.stopped)
        return f"step {step.name} not started: step {upstream} did not succeed" if upstream else ""

    def record(self, step: Step, outcome: StepOutcome) -> None:
        """Note how ``step`` ended."""
        blocking = outcome.phase == "Failed" and not step.continue_on_failure
        if blocking or outcome.phase == "Skipped":
            self.stopped[step.name] = outcome.phase
        if blocking and self.dag.spec.failure_policy == "abort":
            self.aborted = step.name


@dataclass
class _Driver:
    launch: Launch
    begun: Begun
    trees: _dagdata.Trees = field(init=False)
    done: dict[str, StepOutcome] = field(default_factory=dict)
    tally: Tally = field(init=False)

    def __post_init__(self) -> None:
        self.trees = _dagdata.Trees(self.launch.env.tracking_uri, self.launch.scratch / "artifacts")
        self.tally = Tally(self.launch.dag)

    def step(self, step: Step) -> StepOutcome:
        reason = self.tally.skip_reason(step, self._left())
        outcome = StepOutcome(step.name, "Skipped", message=reason) if reason else self._run(step)
        self.done[step.name] = outcome
        self.tally.record(step, outcome)
        return outcome

    def _left(self) -> float:
        return self.begun.deadline - time.monotonic()

    def _run(self, step: Step) -> StepOutcome:
        project = self.launch.scratch / "projects" / step.name
        models.extract(
            self.launch.env.repo.archive(self.launch.spec_commit, step.project.path), project
        )
        declared = _mlflow.declared_parameters(project, step.project.entry_point)
        if declared is None:  # a script: it is passed every parameter given
            declared = frozenset(self.launch.dag.spec.parameters) | set(step.project.parameters)
        undeclared = sorted(set(step.project.parameters) - declared)
        if undeclared:  # validate refuses these: a spec that skipped it fails, never drops them
            why = f"step {step.name}: entry point {step.project.entry_point!r} declares no " + (
                ", ".join(repr(name) for name in undeclared)
            )
            return StepOutcome(step.name, "Failed", message=why)
        shares = self._shares(step)
        count = len(shares) if step.partition else 0
        units = [
            _dagattempt.Instance(step, project, declared, k, count, s) for k, s in enumerate(shares)
        ]
        ended = [self._instance(unit) for unit in units]
        failures = [failure for _, failure in ended if failure]
        phase: Literal["Succeeded", "Failed"] = "Failed" if failures else "Succeeded"
        return StepOutcome(step.name, phase, tuple(run for run, _ in ended), "\n".join(failures))

    def _shares(self, step: Step) -> list[tuple[str, ...]]:
        if step.partition is None:
            return [()]
        found = _dagdata.files(self._tree(step.partition.from_))
        return [tuple(share) for share in _dagplan.shares(found, step.partition)]

    def _tree(self, upstream: str) -> Path:
        step = next(s for s in self.launch.dag.spec.steps if s.name == upstream)
        runs = self.done[upstream].runs
        return self.trees.tree(upstream, runs, partitioned=step.partition is not None)

    def _instance(self, unit: _dagattempt.Instance) -> tuple[str, str]:
        """The successful run's id and "", or "" and why the last attempt failed."""
        failure, retry = "", unit.step.retry
        for attempt in range(1, retry.limit + 2):
            if attempt > 1:
                self.launch.cancel.wait(
                    max(0.0, min(_dagplan.backoff(retry, attempt - 1), self._left()))
                )
            if self._left() <= 0:
                timeout = self.launch.dag.spec.timeout  # the same words as Tally.skip_reason
                return (
                    "",
                    failure or f"step {unit.name} not started: the DAG's {timeout} timeout passed",
                )
            run_id, failure = self._attempt(unit, attempt)
            if run_id:
                return run_id, ""
        return "", failure

    def _attempt(self, unit: _dagattempt.Instance, attempt: int) -> tuple[str, str]:
        workdir = self.launch.scratch / "runs" / f"{unit.name}-{attempt}"
        layers = (self.launch.dag.spec.parameters, unit.step.project.parameters)
        parameters = _dagplan.parameters(unit.declared, *layers, self._provided(unit, workdir))
        timeout = min(parse_duration(unit.step.timeout), self._left())
        return _dagattempt.run(
            self.begun.parent,
            unit,
            attempt,
            parameters=parameters,
            workdir=workdir,
            timeout=timeout,
            cancel=self.launch.cancel,
            progress=self.launch.progress,
        )

    def _provided(self, unit: _dagattempt.Instance, workdir: Path) -> dict[str, ParamValue]:
        """The parameters the runtime sets: where inputs are, where outputs go, which part."""
        provided: dict[str, ParamValue] = {}
        if unit.step.depends_on and "input_dir" in unit.declared:
            trees = {upstream: self._tree(upstream) for upstream in unit.step.depends_on}
            inputs = _dagdata.fill(workdir / "input", trees, unit.step.partition, unit.share)
            provided["input_dir"] = str(inputs)
        if "output_dir" in unit.declared:
            (workdir / "output").mkdir(parents=True, exist_ok=True)
            provided["output_dir"] = str(workdir / "output")
        if unit.count:
            provided |= {"partition_index": unit.index, "partition_count": unit.count}
        return provided
