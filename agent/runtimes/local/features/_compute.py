"""Compute one batch of a feature set: the transformation over the batch's source rows.

Invariants:

* Each batch is the view ``source`` over the loaded rows whose event time is in the batch's
  ``[lower, upper)``; the transformation runs against it in memory, under a deadline, and
  may not ``ATTACH`` another database.
* A result is accepted only with every join key (never NULL) and every declared feature,
  each cast to its declared type; anything else is a ``RunError`` with the reason.
"""

from __future__ import annotations

import sqlite3
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from agent.runtimes.local.features import _errors as errors
from agent.runtimes.local.features import _schedule as schedule
from agent.runtimes.local.features import _source as loader
from schemas.featureset import FeatureSetSpec

_CASTS = {"int64": "Int64", "float64": "float64", "string": "string", "bool": "boolean"}
_PROGRESS_STEPS = 1000  # SQLite virtual-machine steps between deadline checks
_ROWS, _EVENT = loader.ROWS, loader.EVENT


@dataclass(frozen=True)
class Batch:
    """One batch's features: join keys, features and ``_event_time``, typed as declared."""

    span: schedule.Span
    frame: Any
    """A pandas DataFrame; empty when the batch read no source rows."""
    source_rows: int
    newest: datetime | None
    """The newest event time the batch read."""


def compute(
    connection: sqlite3.Connection, spec: FeatureSetSpec, span: schedule.Span, *, deadline: float
) -> Batch:
    """Run the transformation over the rows in ``span``: checked, typed, with event times."""
    where = _where(span)
    _select(connection, where)
    result = _transform(connection, spec.transformation.sql, deadline)
    _check_columns(result, spec)
    extent = f"SELECT COUNT(*), MAX({_EVENT}) FROM {_ROWS} WHERE {where}"  # noqa: S608 - numbers
    count, newest = connection.execute(extent).fetchone()
    result = result if count else result.iloc[0:0]
    _check_keys(result, spec)
    result = _with_event_time(connection, result, spec, where, newest)
    newest_time = None if newest is None else loader.EPOCH + timedelta(microseconds=newest)
    return Batch(span, _typed(result, spec), count, newest_time)


def _where(span: schedule.Span) -> str:
    clause = f"{_EVENT} < {loader.micros(span.upper)}"
    if span.lower is None:
        return clause
    return f"{clause} AND {_EVENT} >= {loader.micros(span.lower)}"


def _source_columns(connection: sqlite3.Connection) -> list[str]:
    columns = [row[1] for row in connection.execute(f"PRAGMA table_info({_ROWS})")]
    return [column for column in columns if column != _EVENT]


def _select(connection: sqlite3.Connection, where: str) -> None:
    listed = ", ".join(loader.quote(column) for column in _source_columns(connection))
    connection.execute("DROP VIEW IF EXISTS temp.source")
    view = f"CREATE TEMP VIEW source AS SELECT {listed} FROM {_ROWS} WHERE {where}"  # noqa: S608
    connection.execute(view)


def _transform(connection: sqlite3.Connection, sql: str, deadline: float) -> Any:
    connection.set_progress_handler(lambda: time.monotonic() > deadline, _PROGRESS_STEPS)
    connection.set_authorizer(_no_attach)
    try:
        cursor = connection.execute(sql)
        if cursor.description is None:
            raise errors.RunError("the transformation returned no result: it must be a SELECT")
        return loader.frame_of(cursor)
    except sqlite3.Error as exc:
        if time.monotonic() > deadline:
            raise errors.RunError("the transformation ran past spec.timeout") from None
        raise errors.RunError(f"the transformation failed: {exc}") from None
    finally:
        connection.set_progress_handler(None, 0)
        connection.set_authorizer(None)


def _no_attach(action: int, *_: object) -> int:
    """SQLite authorizer: the transformation may not open other databases."""
    refused = action in (sqlite3.SQLITE_ATTACH, sqlite3.SQLITE_DETACH)
    return sqlite3.SQLITE_DENY if refused else sqlite3.SQLITE_OK


def join_keys(spec: FeatureSetSpec) -> list[str]:
    """Every entity's join keys, in declaration order."""
    return [key for entity in spec.entities for key in entity.join_keys]


def _check_columns(result: Any, spec: FeatureSetSpec) -> None:
    wanted = [*join_keys(spec), *(feature.name for feature in spec.features)]
    missing = [column for column in wanted if column not in result.columns]
    if missing:
        found = ", ".join(map(str, result.columns))
        raise errors.RunError(
            f"the transformation's result has no column {', '.join(missing)} (it has: {found})"
        )


def _check_keys(result: Any, spec: FeatureSetSpec) -> None:
    nulls = [key for key in join_keys(spec) if result[key].isna().any()]
    if nulls:
        raise errors.RunError(f"the transformation's result has NULL join keys: {', '.join(nulls)}")


def _with_event_time(
    connection: sqlite3.Connection, result: Any, spec: FeatureSetSpec, where: str, newest: Any
) -> Any:
    """Each row's ``_event_time``: the result's own timestampField column, else the newest
    event of its entity in the batch, else the newest event of the batch."""
    pd, field = loader.pandas(), spec.source.timestamp_field
    if field in result.columns:
        return result.assign(_event_time=loader.timestamps(result[field], field))
    events = pd.Series(newest, index=result.index, dtype="Int64")
    by_entity = _entity_events(connection, result, join_keys(spec), where)
    if by_entity is not None:
        events = by_entity.fillna(events)
    return result.assign(_event_time=pd.to_datetime(events, unit="us", utc=True))


def _entity_events(
    connection: sqlite3.Connection, result: Any, keys: list[str], where: str
) -> Any | None:
    """Per result row, the newest event of its entity (None when the source lacks a key)."""
    if not set(keys) <= set(_source_columns(connection)):
        return None
    listed = ", ".join(loader.quote(key) for key in keys)
    select = f"SELECT {listed}, MAX({_EVENT}) AS _us FROM {_ROWS} WHERE {where}"  # noqa: S608
    latest = loader.frame_of(connection.execute(f"{select} GROUP BY {listed}"))
    try:
        merged = result[keys].merge(latest, on=keys, how="left")
    except (ValueError, TypeError):  # the result changed a key's type: no per-entity times
        return None
    return merged["_us"].astype("Int64").set_axis(result.index)


def _typed(result: Any, spec: FeatureSetSpec) -> Any:
    """Join keys, features and ``_event_time`` only, each cast to its declared type."""
    types = {key: entity.value_type for entity in spec.entities for key in entity.join_keys}
    types.update({feature.name: feature.dtype for feature in spec.features})
    typed = {name: _cast(result[name], name, dtype) for name, dtype in types.items()}
    return loader.pandas().DataFrame({**typed, "_event_time": result["_event_time"]})


def _cast(column: Any, name: str, dtype: str) -> Any:
    if dtype == "timestamp":
        return loader.timestamps(column, name)
    try:
        return column.astype(_CASTS[dtype])
    except (ValueError, TypeError) as exc:
        raise errors.RunError(f"column {name}: cannot be read as {dtype}: {exc}") from None
