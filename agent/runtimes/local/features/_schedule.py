"""When a feature set runs and which event times each run reads: pure functions of its
persisted state, its spec and a time passed in.

* A run has a batch time ``at`` and reads the rows whose event time is in ``[lower, at)``:
  every row (``full``), the rows newer than the watermark (``new-only``), or the last
  ``window`` (``window``).
* The first run of a feature set with ``backfill`` reads ``[start, end)`` in chunks of
  ``chunk`` (``end`` defaults to ``at``), each chunk a batch whose batch time is its end; a
  ``new-only`` chunk reads only its own interval. A batch up to ``at`` follows when ``end``
  is earlier.
* A failed run is retried at the same batch time after ``backoff``, doubling per failure up
  to ``maxBackoff``, at most ``limit`` times; an interrupted run (a crash) at once. A
  scheduled run falls due at the first cron time after the last attempt, and supersedes a
  pending one. A suspended schedule starts nothing, retries included. A stalled
  run (the spec must change) is neither retried nor scheduled again.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

from pydantic import BaseModel, ConfigDict

from agent.runtimes.local import cron
from agent.runtimes.local.features import _errors as errors
from schemas.common import Retry, Schedule, parse_duration
from schemas.featureset import Backfill, FeatureSetSpec, Source

MAX_CHUNKS = 100_000
"""More backfill chunks than this is a mistake in ``chunk``, refused rather than run."""


class Outcome(BaseModel):
    """What the last successful run computed."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    rows: int = 0
    """Feature rows written (one per entity and batch)."""
    source_rows: int = 0
    entities: int = 0
    """Distinct entity keys among the rows written."""
    by_entity: dict[str, int] = {}
    """Per entity, by its name in the spec: the distinct values of its join keys written."""
    chunks: int = 0
    """Backfill chunks computed."""


class State(BaseModel):
    """A feature set's run state, kept as ``state.json`` beside its stores."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    digest: str = ""
    """The command this state belongs to."""
    pending: datetime | None = None
    """Batch time of the run under way or failed; cleared when it succeeds."""
    uncommitted: tuple[str, ...] = ()
    """Offline files the pending run writes: removed if it is abandoned for a newer run."""
    watermark: datetime | None = None
    """The newest event time read so far."""
    backfilled: bool = False
    last_run: datetime | None = None
    """Batch time of the last successful run."""
    next_run: datetime | None = None
    failures: int = 0
    """Failed attempts of the pending run."""
    retry_at: datetime | None = None
    message: str = ""
    ttl_seconds: float | None = None
    outcome: Outcome = Outcome()


class Span(BaseModel):
    """The event times one batch reads: ``lower <= t < upper`` (no lower bound when None)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    lower: datetime | None
    upper: datetime
    backfill: bool = False


def check(spec: FeatureSetSpec) -> None:
    """Refuse a spec no run can follow (a StalledError): a window policy without a window,
    an empty backfill chunk, a cron expression or time zone that cannot be read."""
    if spec.source.read_policy == "window" and spec.source.window is None:
        raise errors.StalledError("readPolicy window needs spec.source.window")
    if spec.backfill is not None and parse_duration(spec.backfill.chunk) <= 0:
        raise errors.StalledError("backfill.chunk must be longer than 0s")
    next_run(spec.schedule, datetime(2000, 1, 1, tzinfo=UTC))


def spans(spec: FeatureSetSpec, state: State, at: datetime) -> list[Span]:
    """The batches of a run at ``at``, oldest first."""
    if spec.backfill is None or state.backfilled:
        since = None if state.watermark is None else state.watermark + timedelta(microseconds=1)
        return [_span(spec.source, at, since)]
    return _backfill(spec.source, spec.backfill, at)


def _span(source: Source, at: datetime, new_since: datetime | None) -> Span:
    match source.read_policy:
        case "full":
            return Span(lower=None, upper=at)
        case "window":
            window = parse_duration(source.window or "0s")  # check() refuses a missing window
            return Span(lower=at - timedelta(seconds=window), upper=at)
        case _:
            return Span(lower=new_since, upper=at)


def _backfill(source: Source, backfill: Backfill, at: datetime) -> list[Span]:
    start = _day(backfill.start)
    end = min(_day(backfill.end), at) if backfill.end else at
    step = timedelta(seconds=parse_duration(backfill.chunk))
    count = max(0, math.ceil((end - start) / step))
    if count > MAX_CHUNKS:
        raise errors.StalledError(f"backfill would take {count} chunks: make chunk larger")
    bounds = [(start + i * step, min(start + (i + 1) * step, end)) for i in range(count)]
    chunks = [
        _span(source, upper, lower).model_copy(update={"backfill": True}) for lower, upper in bounds
    ]
    tail = [_span(source, at, max(start, end))] if end < at or not chunks else []
    return chunks + tail


def _day(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def next_run(schedule: Schedule | None, after: datetime) -> datetime | None:
    """The first cron time after ``after`` in the schedule's time zone; None if none runs."""
    if schedule is None or schedule.suspend:
        return None
    try:
        return cron.slot(schedule, after, reverse=False)
    except cron.ScheduleError as exc:
        raise errors.StalledError(f"spec.schedule cannot be followed: {exc}") from None


def retry_at(retry: Retry, failures: int, failed_at: datetime) -> datetime | None:
    """When attempt ``failures + 1`` starts, or None once ``retry.limit`` retries failed."""
    if failures > retry.limit:
        return None
    return failed_at + timedelta(seconds=cron.backoff(retry, failures))


def due(state: State, schedule: Schedule | None, now: datetime) -> datetime | None:
    """The batch time of the run due at ``now``: a scheduled run reads up to ``now``, a retry
    repeats its failed batch; None when nothing is due."""
    if schedule is not None and schedule.suspend:
        return None
    if state.next_run is not None and state.next_run <= now:
        return now
    if state.retry_at is not None and state.retry_at <= now:
        return state.pending or now
    return None


def start(before: State, at: datetime, files: list[str], *, now: datetime) -> State:
    """The state while the run at ``at`` is under way: if it is interrupted, it is retried
    at once (``retry_at``), at the same batch time."""
    failures = before.failures if before.pending == at else 0
    update = {"pending": at, "uncommitted": tuple(files), "failures": failures, "retry_at": now}
    return before.model_copy(update=update)


def succeeded(
    started: State,
    spec: FeatureSetSpec,
    outcome: Outcome,
    newest: datetime | None,
    *,
    now: datetime,
) -> State:
    """The state after the pending run succeeded, having read events up to ``newest``."""
    watermarks = [t for t in (started.watermark, newest) if t is not None]
    return started.model_copy(
        update={
            "pending": None,
            "uncommitted": (),
            "watermark": max(watermarks, default=None),
            "backfilled": started.backfilled or spec.backfill is not None,
            "last_run": started.pending,
            "next_run": next_run(spec.schedule, now),
            "failures": 0,
            "retry_at": None,
            "message": "",
            "ttl_seconds": None if spec.ttl is None else parse_duration(spec.ttl),
            "outcome": outcome,
        }
    )


def failed(
    started: State, spec: FeatureSetSpec, error: errors.FeatureError, *, now: datetime
) -> State:
    """The state after the pending run failed at ``now``: retried per ``spec.retry`` unless
    stalled."""
    failures = started.failures + 1
    stalled = isinstance(error, errors.StalledError)
    return started.model_copy(
        update={
            "failures": failures,
            "retry_at": None if stalled else retry_at(spec.retry, failures, now),
            "next_run": None if stalled else next_run(spec.schedule, now),
            "message": str(error)[:4000],
        }
    )
