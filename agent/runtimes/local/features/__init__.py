"""``FeatureSet`` on the local runtime: computed from its source into an online and an
offline store, backfilled once, run on its schedule and retried with backoff.

A run, at a batch time ``at``:

1. records ``at`` as pending in ``state.json`` (atomically);
2. loads the source (resolved inside the data directory) into memory and computes every
   batch of the run with the transformation SQL, under ``spec.timeout``
   (``_compute``, ``_schedule.spans``);
3. only when every batch succeeded, writes the offline files, then upserts the online store
   (``featurestore``);
4. records the outcome (watermark, last and next run, or the failure and when it is retried).

A command already materialised is not run again, and a run that failed or was interrupted
is run again at its recorded batch time, so its batches and offline files are the same:
applying twice never duplicates history. Layout and formats: ``featurestore``; the user
guide: docs/local-runtime/featuresets.md.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Mapping
from contextlib import closing
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from pydantic import ValidationError

from agent.runtimes.base import ApplyContext
from agent.runtimes.local.env import LocalEnv
from agent.runtimes.local.features import _compute as compute
from agent.runtimes.local.features import _errors as errors
from agent.runtimes.local.features import _schedule as schedule
from agent.runtimes.local.features import _source as loader
from agent.runtimes.local.features import _status as status
from agent.runtimes.local.features import store as featurestore
from schemas import commands, files, signed
from schemas.common import parse_duration
from schemas.featureset import FeatureSetSpec

FeatureError = errors.FeatureError
RunError = errors.RunError
StalledError = errors.StalledError
State = schedule.State
Outcome = schedule.Outcome
KIND = "FeatureSet"
STATE = "state.json"
SUSPENDED = "the schedule is suspended: nothing runs until it is resumed"


def apply(command: signed.Command, context: ApplyContext, env: LocalEnv) -> signed.ResourceStatus:
    """Materialise the feature set at ``context.now`` (see :func:`materialise`)."""
    return materialise(command, env, now=context.now)


def materialise(command: signed.Command, env: LocalEnv, *, now: datetime) -> signed.ResourceStatus:
    """Apply ``command`` at ``now``: backfill on the first apply, then read up to ``now``.
    Nothing runs for a command already materialised, or while the schedule is suspended."""
    now = now.replace(microsecond=0)
    try:
        spec = read_spec(command)
    except errors.StalledError as exc:
        return status.refused(command, str(exc))
    directory = env.kind_dir(KIND, command.name)
    before = load_state(directory)
    if before.digest == command.digest and before.pending is None:
        return status.status(command, spec, directory, before)
    current = for_command(before, command.digest)
    if spec.schedule is not None and spec.schedule.suspend:
        update = {"pending": None, "next_run": None, "retry_at": None, "message": SUSPENDED}
        after = persist_state(directory, current.model_copy(update=update))
    else:
        after = _run(command.name, spec, env, current, at=current.pending or now, now=now)
    return status.status(command, spec, directory, after)


def observe(
    command: signed.Command,
    last: signed.ResourceStatus,
    context: ApplyContext,
    env: LocalEnv,
) -> signed.ResourceStatus:
    """Run what has fallen due at ``now`` (a scheduled run or a retry) and report it;
    ``last`` unchanged when nothing was due."""
    now = context.now.replace(microsecond=0)
    try:
        spec = read_spec(command)
    except errors.StalledError:
        return last
    directory = env.kind_dir(KIND, command.name)
    current = load_state(directory)
    at = schedule.due(current, spec.schedule, now) if current.digest == command.digest else None
    if at is None:
        return last
    after = _run(command.name, spec, env, current, at=at, now=now)
    return status.status(command, spec, directory, after)


def delete(command: signed.Command, env: LocalEnv) -> None:
    """Remove the feature set's stores and state (its whole directory)."""
    try:
        shutil.rmtree(env.kind_dir(KIND, command.name))
    except OSError as exc:
        raise errors.FeatureError(f"cannot delete FeatureSet/{command.name}: {exc}") from None


def backfill_chunks(spec: FeatureSetSpec, until: datetime) -> list[schedule.Span]:
    """The backfill's chunks when it reads up to ``until``, oldest first: on a Kubernetes
    plane each is one completion index of the backfill Job."""
    return [span for span in schedule.spans(spec, schedule.State(), until) if span.backfill]


def after_backfill(spec: FeatureSetSpec, state: schedule.State, until: datetime) -> schedule.State:
    """The state a scheduled run starts from when the backfill runs on its own (the
    Kubernetes plane's Job) up to ``until``: backfilled, and a ``new-only`` read starting
    where the backfill's chunks end."""
    if state.backfilled or spec.backfill is None:
        return state
    chunks = backfill_chunks(spec, until)
    through = chunks[-1].upper if chunks else until
    return state.model_copy(
        update={"backfilled": True, "watermark": through - timedelta(microseconds=1)}
    )


def online_lookup(
    env: LocalEnv, name: str, keys: Mapping[str, object], now: datetime
) -> dict[str, object] | None:
    """The latest features of one entity of feature set ``name``, by all its join keys; None
    when the entity is unknown or its values are older than the feature set's ttl at ``now``."""
    directory = env.kind_dir(KIND, name)
    ttl = load_state(directory).ttl_seconds
    return featurestore.lookup(directory, name, keys, now=now, ttl=ttl)


def read_spec(command: signed.Command) -> FeatureSetSpec:
    """The command's typed spec; a ``StalledError`` when no run can follow it."""
    try:
        spec = commands.read(command, commands.FeatureSetCommand).spec
    except commands.CommandSpecError as exc:
        raise errors.StalledError(str(exc)) from None
    schedule.check(spec)
    return spec


def for_command(before: schedule.State, digest: str) -> schedule.State:
    """The state a new command starts from: the history kept, a failing run forgotten."""
    if before.digest == digest:
        return before
    update = {"digest": digest, "pending": None, "failures": 0, "retry_at": None, "message": ""}
    # ``uncommitted`` is kept: the next run removes what the abandoned one wrote
    return before.model_copy(update=update)


@dataclass(frozen=True)
class Place:
    """Where a feature set runs: its state and offline files, its sources, its online store.
    The local plane's is under its state directory; a Kubernetes pod's is a mounted volume
    and Redis (agent/runtimes/kubernetes/features_job.py), running this same code."""

    directory: Path
    """The feature set's run state and offline files."""
    data_dir: Path
    """Where relative source paths resolve."""
    online: featurestore.OnlineStore


def _run(
    name: str,
    spec: FeatureSetSpec,
    env: LocalEnv,
    before: schedule.State,
    *,
    at: datetime,
    now: datetime,
) -> schedule.State:
    directory = env.kind_dir(KIND, name)
    place = Place(directory, env.data_dir, featurestore.SqliteOnline(directory))
    return run(name, spec, place, before, at=at, now=now)


def run(
    name: str,
    spec: FeatureSetSpec,
    place: Place,
    before: schedule.State,
    *,
    at: datetime,
    now: datetime,
) -> schedule.State:
    """Run at batch time ``at``; the new state, persisted in ``place.directory``."""
    directory = place.directory
    try:
        spans = schedule.spans(spec, before, at)
    except errors.FeatureError as exc:
        started = schedule.start(before, at, [], now=now)
        return persist_state(directory, schedule.failed(started, spec, exc, now=now))
    started = _start(directory, spec, before, spans, at=at, now=now)
    try:
        batches = compute_batches(spec, place.data_dir, spans)
        store_batches(name, spec, place, batches, now)
    except errors.FeatureError as exc:
        return persist_state(directory, schedule.failed(started, spec, exc, now=now))
    newest = max((b.newest for b in batches if b.newest is not None), default=None)
    done = schedule.succeeded(started, spec, outcome(spec, batches), newest, now=now)
    return persist_state(directory, done)


def _start(
    directory: Path,
    spec: FeatureSetSpec,
    before: schedule.State,
    spans: list[schedule.Span],
    *,
    at: datetime,
    now: datetime,
) -> schedule.State:
    """Record the run as pending, first removing what an abandoned earlier run wrote."""
    offline = spec.stores.offline
    names = [featurestore.offline_name(s.upper, offline.format) for s in spans if offline.enabled]
    featurestore.remove_offline(directory, [n for n in before.uncommitted if n not in names])
    return persist_state(directory, schedule.start(before, at, names, now=now))


def compute_batches(
    spec: FeatureSetSpec, data_dir: Path, spans: list[schedule.Span]
) -> list[compute.Batch]:
    """Every batch of ``spans``, from the source loaded once, under ``spec.timeout``."""
    deadline = time.monotonic() + parse_duration(spec.timeout)
    with closing(loader.load(spec, data_dir)) as connection:
        return [compute.compute(connection, spec, span, deadline=deadline) for span in spans]


def store_batches(
    name: str, spec: FeatureSetSpec, place: Place, batches: list[compute.Batch], now: datetime
) -> None:
    """Offline files first, then the online upsert: a failure in between is retried at the
    same batch time, which rewrites the same files."""
    filled = [batch for batch in batches if batch.source_rows]
    if spec.stores.offline.enabled:
        for batch in filled:
            fmt = spec.stores.offline.format
            featurestore.write_offline(place.directory, batch.span.upper, batch.frame, fmt)
    if not spec.stores.online.enabled:
        place.online.drop(name)
        return
    table = featurestore.table_of(spec, name)
    place.online.upsert(table, [b.frame for b in filled], written_at=now)


def outcome(spec: FeatureSetSpec, batches: list[compute.Batch]) -> schedule.Outcome:
    frames = [batch.frame for batch in batches if batch.source_rows]
    written = loader.pandas().concat(frames) if frames else None

    def distinct(keys: list[str]) -> int:
        return 0 if written is None else len(written[keys].drop_duplicates())

    return schedule.Outcome(
        rows=sum(len(frame) for frame in frames),
        source_rows=sum(batch.source_rows for batch in batches),
        entities=distinct(compute.join_keys(spec)),
        by_entity={entity.name: distinct(entity.join_keys) for entity in spec.entities},
        chunks=sum(batch.span.backfill for batch in batches),
    )


def load_state(directory: Path) -> schedule.State:
    """The feature set's run state in ``directory`` (a fresh one when there is none)."""
    path = directory / STATE
    if not path.is_file():
        return schedule.State()
    try:
        return schedule.State.model_validate_json(path.read_bytes())
    except ValidationError as exc:
        raise errors.RunError(f"{path} is unreadable ({exc}); delete it to start over") from None


def persist_state(directory: Path, state: schedule.State) -> schedule.State:
    """Write ``state`` atomically; returned for chaining."""
    files.atomic_write(directory / STATE, state.model_dump_json(indent=1).encode())
    return state
