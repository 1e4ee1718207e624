"""``DAG`` in the local runtime: Concurrent for MLflow on one machine, scheduled like a CronJob.

* Without ``schedule`` a DAG is a Job: applying it runs it once, now (see ``_dagrun``),
  and its status is the run's outcome: ``Ready`` when it succeeded, ``Failed`` with the
  failing step's log tail when not.
* With ``schedule`` it is a CronJob: applying registers it (``Ready``, ``nextRun``)
  and runs nothing; ``observe`` runs it when a slot falls due (one run for any number
  of missed slots), unless ``suspend``. Runs are synchronous, so no two ever overlap: a
  slot due during a run starts after it (``Forbid``); ``Allow`` and ``Replace`` are not
  applied (``schemas.support`` lists them).
* ``<stateDir>/dags/<name>/state.json`` (written atomically) keeps the command last
  applied, the newest slot run and the status. The same command applied again never
  runs again and one slot never runs twice; another command for the same spec digest
  (the reconciler's retry after a failure) runs a failed Job again.
* A run cut short by a crash is marked ``KILLED`` in MLflow when the next one starts.
"""

from __future__ import annotations

import hashlib
import shutil
from datetime import datetime
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict

from agent.runtimes.base import ApplyContext
from agent.runtimes.local import _mlflow, limits
from agent.runtimes.local.dags import _plan as _dagplan
from agent.runtimes.local.dags import _run as _dagrun
from agent.runtimes.local.env import LocalEnv, env_manager_refusal
from schemas import commands, files, signed
from schemas.dag import DAG

MESSAGE_CHARS = 4096


class DagState(BaseModel):
    """What the runtime remembers of one DAG between applies and observations."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    digest: str
    """The spec digest applied."""
    command: str
    """sha256 of the command applied (a retry is another command for the same digest)."""
    registered: str
    """When the schedule was registered: only slots after it are due."""
    last_slot: str = ""
    """The newest schedule slot a run was started for."""
    running: str = ""
    """The parent run of a run in progress; left behind only by a crash."""
    status: signed.ResourceStatus | None = None


def apply(command: signed.Command, context: ApplyContext, env: LocalEnv) -> signed.ResourceStatus:
    """Register a scheduled DAG, or run an unscheduled one, at ``context.now``."""
    now = context.now
    dag = parse(command)
    refused = [
        r
        for s in dag.spec.steps
        if (
            r := env_manager_refusal(s.project.path, s.project.env_manager, env.env_managers)
            or limits.refusal(s.resources, f"DAG/{dag.name} step {s.name}")
        )
    ]
    if refused:  # nothing runs: a step in the wrong environment is worse than none
        return signed.ResourceStatus(
            kind="DAG", name=dag.name, phase="Blocked", digest=command.digest,
            message="; ".join(refused)[:4000],
        )  # fmt: skip
    kept = load_state(env, dag.name)
    if kept is not None and kept.status is not None and is_settled(kept, command):
        return kept.status
    fresh = DagState(
        digest=command.digest,
        command=command_key(command),
        registered=_dagplan.stamp(now),
        running=kept.running if kept else "",
    )
    if dag.spec.schedule is None:
        return _launch(command, dag, context, env, kept=fresh, now=now, trigger="apply")
    registered = status(command, dag, None, now)
    persist_state(env, dag.name, fresh.model_copy(update={"status": registered}))
    return registered


def is_settled(kept: DagState, command: signed.Command) -> bool:
    """Whether ``command`` is answered by the stored status without running: the same command
    again, or another one for a spec whose run did not fail."""
    if kept.digest != command.digest or kept.status is None:
        return False
    return kept.command == command_key(command) or kept.status.phase != "Failed"


def command_key(command: signed.Command) -> str:
    """What tells one command from another for the same digest (the reconciler's retry)."""
    return hashlib.sha256(command.model_dump_json().encode()).hexdigest()


def observe(
    command: signed.Command,
    last: signed.ResourceStatus,
    context: ApplyContext,
    env: LocalEnv,
) -> signed.ResourceStatus:
    """Run a scheduled DAG whose slot has fallen due; otherwise ``last``, unchanged."""
    now = context.now
    dag = parse(command)
    schedule, kept = dag.spec.schedule, load_state(env, dag.name)
    if schedule is None or schedule.suspend or kept is None or kept.digest != command.digest:
        return last
    slot = _dagplan.due(schedule, _dagplan.parse_stamp(kept.last_slot or kept.registered), now)
    if slot is None:
        return last
    kept = kept.model_copy(update={"last_slot": _dagplan.stamp(slot)})
    return _launch(command, dag, context, env, kept=kept, now=now, trigger="schedule", at=slot)


def _launch(
    command: signed.Command,
    dag: DAG,
    context: ApplyContext,
    env: LocalEnv,
    *,
    kept: DagState,
    now: datetime,
    trigger: Literal["apply", "schedule"],
    at: datetime | None = None,
) -> signed.ResourceStatus:
    """One run, with the parent run id persisted while it goes (so a crash is noticed)."""
    if kept.running:
        _mlflow.end_run(env.tracking_uri, kept.running, "KILLED")
    launch = _dagrun.Launch(
        dag,
        command.digest,
        context.spec_commit,
        at or now,
        trigger,
        env,
        context.scratch,
        context.cancel,
        context.progress,
    )
    begun = _dagrun.begin(launch)
    persist_state(env, dag.name, kept.model_copy(update={"running": begun.parent.run_id}))
    result = _dagrun.complete(launch, begun)
    ended = status(command, dag, result, now)
    persist_state(env, dag.name, kept.model_copy(update={"running": "", "status": ended}))
    return ended


def status(
    command: signed.Command, dag: DAG, result: _dagrun.Result | None, now: datetime
) -> signed.ResourceStatus:
    """The DAG's status: the run's outcome (``result``, None before any run) and its
    schedule, in the same fields on every runtime."""
    observed: dict[str, str | int | bool] = {"experiment": dag.spec.tracking.experiment or dag.name}
    observed |= _schedule_fields(dag, now) | (_run_fields(result) if result else {})
    failed = result is not None and not result.succeeded
    phase: Literal["Ready", "Failed"] = (
        "Failed" if failed and dag.spec.schedule is None else "Ready"
    )
    return signed.ResourceStatus(
        kind="DAG",
        name=command.name,
        phase=phase,
        digest=command.digest,
        observed=observed,
        message=_message(dag, result),
    )


def _schedule_fields(dag: DAG, now: datetime) -> dict[str, str | int | bool]:
    schedule = dag.spec.schedule
    if schedule is None:
        return {}
    fields: dict[str, str | int | bool] = {"schedule": schedule.cron, "suspended": schedule.suspend}
    if not schedule.suspend:
        fields["nextRun"] = _dagplan.stamp(_dagplan.next_slot(schedule, now))
    return fields


def _run_fields(result: _dagrun.Result) -> dict[str, str | int | bool]:
    phases = [s.phase for s in result.steps]
    return {
        "lastRun": result.run_id,
        "lastRunPhase": "Succeeded" if result.succeeded else "Failed",
        "lastRunAt": _dagplan.stamp(result.at),
        "steps": len(phases),
        "stepsSucceeded": phases.count("Succeeded"),
        "stepsFailed": phases.count("Failed"),
        "stepsSkipped": phases.count("Skipped"),
    }


def _message(dag: DAG, result: _dagrun.Result | None) -> str:
    if result is None:
        return "suspended" if dag.spec.schedule and dag.spec.schedule.suspend else "scheduled"
    outcome = "succeeded" if result.succeeded else "failed"
    head = f"run {result.run_id} {outcome}"
    if not result.message:
        return head
    return f"{head}:\n{result.message}"[:MESSAGE_CHARS]


def parse(command: signed.Command) -> DAG:
    """The command's DAG, every default applied (``schemas.commands``)."""
    try:
        return commands.read(command, commands.DAGCommand)
    except commands.CommandSpecError as exc:
        raise _dagplan.DagError(str(exc)) from None


def load_state(env: LocalEnv, name: str) -> DagState | None:
    """The DAG's remembered state, or None (never applied, deleted, or unreadable)."""
    path = _state_path(env, name)
    try:
        return DagState.model_validate_json(path.read_bytes())
    except (FileNotFoundError, ValueError):
        return None


def persist_state(env: LocalEnv, name: str, value: DagState) -> None:
    """Write the DAG's state atomically."""
    files.atomic_write(_state_path(env, name), value.model_dump_json().encode())


def _state_path(env: LocalEnv, name: str) -> Path:
    return env.kind_dir("DAG", name) / "state.json"


def delete(command: signed.Command, env: LocalEnv) -> None:
    """Forget the DAG (its schedule stops); its MLflow runs are history and stay."""
    shutil.rmtree(env.kind_dir("DAG", command.name))
