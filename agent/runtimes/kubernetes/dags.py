"""DAGs on a Kubernetes plane: one Job per step of a run, in dependency order.

The semantics are the local runtime's, by the same code (``agent.runtimes.local.dags``):
step order, what a failure stops (``failurePolicy``, ``dependsOn``, the DAG's
``timeout``: ``_run.Tally``), how the run's outcome reads (``_run.summarise``), the
status and its fields (``dags.status``), and when a command runs again
(``dags.is_settled``). Only how a step runs differs:

* The agent makes the parent MLflow run, then for each step a child run per instance
  (tagged ``mlflow.parentRunId``, as on the local plane), then the step's Job
  (:func:`render.dag_step`): Indexed, one completion per instance, when the step is
  partitioned. A step's Job is created only once every step before it ended, so
  a step never starts before its dependencies completed; the run is synchronous (the
  agent's jobs thread), and its status is the run's outcome as on the local plane.
* Retries are the Job's (``backoffLimit``, or ``backoffLimitPerIndex``), all attempts of an
  instance in its one child run; Kubernetes has no retry delay, so ``retry.backoff`` is
  not applied (the support table warns). A step's ``timeout`` is the Job's
  ``activeDeadlineSeconds``; the DAG's ``timeout`` the agent enforces while it waits:
  past it, the running Job is deleted and its runs end ``KILLED``, as the local plane
  kills its project, and the steps after it do not start.
* Data between steps passes through MLflow: a step's ``output_dir`` is logged to its child
  run, and a dependent's pod downloads it into its ``input_dir`` (:mod:`.step`).
* A ``schedule`` works as on the local plane: applying registers it, observing (on the
  jobs thread) runs a slot that fell due, one run for any number of missed slots; runs of
  one DAG never overlap (``Forbid``; ``Allow`` and ``Replace`` are not applied).
* What the agent remembers of a DAG (the command answered, the newest slot run, its
  status) lives in its memory: after a restart, the same command runs an unscheduled DAG
  again, and a schedule counts its slots from the new apply.

A run is driven by :mod:`.dagrun`.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import KW_ONLY, dataclass, field
from datetime import datetime
from typing import Literal

from agent.runtimes.base import ApplyContext
from agent.runtimes.kubernetes import dagrun, render
from agent.runtimes.kubernetes.cluster import Cluster, Manifest
from agent.runtimes.kubernetes.inventory import Inventory
from agent.runtimes.local import dags as local
from agent.runtimes.local.dags import _plan as _dagplan
from schemas import signed
from schemas.dag import DAG

POLL = 0.2
"""Seconds between two reads of a running step's Job."""
OWNED = (("batch/v1", "Job"),)
"""The kinds a DAG command makes: what delete looks through."""


@dataclass
class Dags:
    """Apply and delete DAG commands in one namespace; the DAG's status is its run's."""

    cluster: Cluster
    target: render.Target
    _: KW_ONLY
    clock: Callable[[], float] = time.monotonic
    """Seconds, for the DAG's ``timeout``."""
    poll: float = POLL
    inventory: Inventory | None = None
    """Where running Jobs are read, once synced (no request per poll); else the API."""
    _kept: dict[str, local.DagState] = field(default_factory=dict, init=False)

    def apply(self, command: signed.Command, context: ApplyContext) -> signed.ResourceStatus:
        """Run an unscheduled DAG to its end, or register a scheduled one (``nextRun``);
        a command already answered gets its status again without a run."""
        context.cancel.check()
        dag = local.parse(command)
        kept = self._kept.get(command.name)
        if kept is not None and kept.status is not None and local.is_settled(kept, command):
            return kept.status
        fresh = local.DagState(
            digest=command.digest,
            command=local.command_key(command),
            registered=_dagplan.stamp(context.now),
        )
        if dag.spec.schedule is None:
            return self._run(command, dag, context, fresh, trigger="apply", at=context.now)
        registered = local.status(command, dag, None, context.now)
        self._kept[command.name] = fresh.model_copy(update={"status": registered})
        return registered

    def observe(
        self, command: signed.Command, last: signed.ResourceStatus, context: ApplyContext
    ) -> signed.ResourceStatus:
        """Run a scheduled DAG whose slot has fallen due (one run for any number of missed
        slots, none while suspended); otherwise ``last``, unchanged."""
        dag = local.parse(command)
        schedule, kept = dag.spec.schedule, self._kept.get(command.name)
        if schedule is None or schedule.suspend or kept is None or kept.digest != command.digest:
            return last
        after = _dagplan.parse_stamp(kept.last_slot or kept.registered)
        slot = _dagplan.due(schedule, after, context.now)
        if slot is None:
            return last
        kept = kept.model_copy(update={"last_slot": _dagplan.stamp(slot)})
        return self._run(command, dag, context, kept, trigger="schedule", at=slot)

    def _run(
        self,
        command: signed.Command,
        dag: DAG,
        context: ApplyContext,
        kept: local.DagState,
        *,
        trigger: Literal["apply", "schedule"],
        at: datetime,
    ) -> signed.ResourceStatus:
        self._kept[command.name] = kept  # a slot is taken before its run: never run twice
        result = dagrun.Run(self, command, dag, context, trigger, at).run()
        ended = local.status(command, dag, result, context.now)
        self._kept[command.name] = kept.model_copy(update={"status": ended})
        return ended

    def delete(self, command: signed.Command) -> None:
        """Delete every Job of the DAG (its runs' pods with them), found by its inventory
        labels; its MLflow runs are history and stay."""
        self._kept.pop(command.name, None)
        selector = render.labels(self.target, command.kind, command.name)
        for api_version, kind in OWNED:
            for found in self.cluster.select(api_version, kind, selector):
                self.cluster.delete(api_version, kind, found["metadata"]["name"])

    def read(self, name: str) -> Manifest | None:
        """A Job as the cache (once synced) or the API shows it."""
        if self.inventory is not None and self.inventory.synced:
            return self.inventory.get("batch/v1", "Job", name)
        return self.cluster.get("batch/v1", "Job", name)
