"""A feature set's status: summarised in one place from its persisted state and stores.

``phase`` is ``Failed`` while the pending run is failing (``message`` says why, ``retryAt``
when it runs again), else ``Ready`` once a run succeeded, else ``Pending`` (suspended before
its first run). ``observed`` holds only values that change when something runs, never a
clock, so an idle feature set reports the same status every cycle.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Literal

from agent.runtimes.local.features import _schedule as schedule
from agent.runtimes.local.features import store as featurestore
from schemas import signed
from schemas.featureset import FeatureSetSpec


def status(
    command: signed.Command, spec: FeatureSetSpec, directory: Path, state: schedule.State
) -> signed.ResourceStatus:
    """The one place a feature set's status is summarised, on every exit path."""
    phase: Literal["Ready", "Failed", "Pending"] = "Ready" if state.last_run else "Pending"
    if state.failures:
        phase = "Failed"
    return signed.ResourceStatus(
        kind="FeatureSet",
        name=command.name,
        phase=phase,
        digest=command.digest,
        message=state.message,
        observed=_observed(command.name, spec, directory, state),
    )


Observed = dict[str, str | int | bool]


def _observed(name: str, spec: FeatureSetSpec, directory: Path, state: schedule.State) -> Observed:
    """What the last successful run computed, the run's times, and what the stores hold:
    values that change only when something runs. Zeros and unset times are left out."""
    suspended = spec.schedule is not None and spec.schedule.suspend
    optional: Observed = {
        "backfillChunks": state.outcome.chunks,
        "failures": state.failures,
        "suspended": suspended,
    }
    return {
        **_counts(state.outcome),
        **_times(state),
        **{key: value for key, value in optional.items() if value},
        **_stores(name, spec, directory),
    }


def _counts(outcome: schedule.Outcome) -> Observed:
    """The run's row counts; ``entities.<name>`` per entity of the spec, by its name."""
    per_entity: Observed = {f"entities.{name}": n for name, n in outcome.by_entity.items()}
    return {
        "rows": outcome.rows,
        "sourceRows": outcome.source_rows,
        "entities": outcome.entities,
        **per_entity,
    }


def _times(state: schedule.State) -> Observed:
    times = {
        "lastRun": state.last_run,
        "nextRun": state.next_run,
        "watermark": state.watermark,
        "retryAt": state.retry_at,
    }
    return {key: _iso(value) for key, value in times.items() if value is not None}


def _stores(name: str, spec: FeatureSetSpec, directory: Path) -> Observed:
    found: Observed = {}
    if spec.stores.online.enabled:
        found["onlineRows"] = featurestore.online_rows(directory, name)
    if spec.stores.offline.enabled:
        found["offlineFiles"] = len(featurestore.offline_files(directory))
    return found


def _iso(moment: datetime) -> str:
    utc = moment.astimezone(UTC)
    fraction = f".{utc.microsecond:06d}" if utc.microsecond else ""
    return f"{utc:%Y-%m-%dT%H:%M:%S}{fraction}Z"


def refused(command: signed.Command, message: str) -> signed.ResourceStatus:
    """``Failed``, for a command whose spec cannot run at all."""
    return signed.ResourceStatus(
        kind="FeatureSet",
        name=command.name,
        phase="Failed",
        digest=command.digest,
        message=message[:4000],
    )
