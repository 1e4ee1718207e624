"""Read a feature set's source into an in-memory SQLite database.

Invariants:

* Nothing here writes anywhere but memory. Files are read; SQLite sources are opened
  read-only (``mode=ro``).
* A source path resolves inside the data directory after following links, or is refused.
* The source is loaded once per run into the table ``_gitplane_rows``, each row with its
  event time in microseconds since the epoch (``_gitplane_event_us``).
* Every failure is an ``_featureerrors.FeatureError``: sqlite3, pandas and pyarrow
  exceptions never escape.
"""

from __future__ import annotations

import sqlite3
from contextlib import closing
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from agent.runtimes.local.features import _errors as errors
from schemas.featureset import FeatureSetSpec, Source

ROWS = "_gitplane_rows"
EVENT = "_gitplane_event_us"
WAREHOUSE = "warehouse.db"
"""The plane's own SQLite warehouse, in the data directory; read by ``type: table`` sources."""
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_SUFFIXES = {".csv": "csv", ".parquet": "parquet", ".pq": "parquet"}


def pandas() -> Any:
    """pandas, imported on first use: an agent without feature sets never loads it."""
    import pandas as pd  # type: ignore[import-untyped]  # noqa: PLC0415

    return pd


def quote(identifier: str) -> str:
    """``identifier`` as a quoted SQLite identifier."""
    return '"' + identifier.replace('"', '""') + '"'


def micros(moment: datetime) -> int:
    """Microseconds since the epoch."""
    return (moment - EPOCH) // timedelta(microseconds=1)


def resolve(source: Source, data_dir: Path) -> tuple[Path, str | None]:
    """The file a source reads and, for databases, its table; refused outside ``data_dir``.

    ``file``: a CSV or Parquet file. ``sqlite``: a database file, reading the table named
    like the file's stem, or the one after ``#`` (``data/shop.db#orders``). ``table``: a
    table of the plane's warehouse, ``<data_dir>/warehouse.db``."""
    if source.type == "table":
        return _inside(WAREHOUSE, data_dir), source.path
    if source.type == "sqlite":
        file, _, table = source.path.partition("#")
        path = _inside(file, data_dir)
        return path, table or path.stem
    return _inside(source.path, data_dir), None


def _inside(relative: str, data_dir: Path) -> Path:
    root = data_dir.resolve()
    path = (root / relative).resolve()
    if not path.is_relative_to(root):
        raise errors.StalledError(
            f"source path {relative!r} resolves to {path}, outside the data directory {root}"
        )
    if not path.is_file():
        raise errors.RunError(f"source not found: {path}")
    return path


def load(spec: FeatureSetSpec, data_dir: Path) -> sqlite3.Connection:
    """An in-memory database holding every source row with its event time; close it after."""
    path, table = resolve(spec.source, data_dir)
    frame = _read(spec.source, path, table)
    events = _event_micros(frame, spec.source.timestamp_field)
    connection = sqlite3.connect(":memory:")
    try:
        _times_as_text(frame).assign(**{EVENT: events}).to_sql(ROWS, connection, index=False)
    except (sqlite3.Error, ValueError, TypeError) as exc:
        connection.close()
        raise errors.RunError(f"cannot load the source {path}: {exc}") from None
    connection.execute(f"CREATE INDEX _gitplane_by_event ON {ROWS} ({EVENT})")
    return connection


def _read(source: Source, path: Path, table: str | None) -> Any:
    pd = pandas()
    try:
        if table is not None:
            return _read_table(path, table)
        if _format(source, path) == "parquet":
            return pd.read_parquet(path)
        return pd.read_csv(path)
    except (OSError, ValueError, sqlite3.Error) as exc:
        raise errors.RunError(f"cannot read the source {path}: {exc}") from None


def _format(source: Source, path: Path) -> str:
    found = source.format or _SUFFIXES.get(path.suffix.lower())
    if found is None:
        raise errors.StalledError(f"cannot tell the format of {path}: set spec.source.format")
    return found


def _read_table(path: Path, table: str) -> Any:
    with closing(sqlite3.connect(f"{path.as_uri()}?mode=ro", uri=True)) as database:
        return frame_of(database.execute(f"SELECT * FROM {quote(table)}"))  # noqa: S608 - quoted


def frame_of(cursor: sqlite3.Cursor) -> Any:
    """A cursor's remaining rows as a DataFrame."""
    columns = [column[0] for column in cursor.description]
    return pandas().DataFrame.from_records(cursor.fetchall(), columns=columns)


def _event_micros(frame: Any, field: str) -> Any:
    pd = pandas()
    if field not in frame.columns:
        found = ", ".join(map(str, frame.columns))
        raise errors.RunError(f"the source has no timestampField {field!r} (it has: {found})")
    if pd.api.types.is_numeric_dtype(frame[field]):
        raise errors.RunError(f"timestampField {field}: must be ISO-8601 text or a timestamp")
    times = timestamps(frame[field], field)
    if times.isna().any():
        raise errors.RunError(f"timestampField {field}: {int(times.isna().sum())} rows have none")
    return times.dt.as_unit("us").astype("int64")


def timestamps(column: Any, name: str) -> Any:
    """A column as UTC timestamps (microseconds); unreadable values are a ``RunError``."""
    try:
        return pandas().to_datetime(column, utc=True, format="ISO8601").dt.as_unit("us")
    except (ValueError, TypeError) as exc:
        raise errors.RunError(f"column {name}: not a timestamp: {exc}") from None


def _times_as_text(frame: Any) -> Any:
    """Timestamp columns as fixed-width UTC text, which SQLite compares and sorts correctly."""
    pd = pandas()
    stamps = [c for c in frame.columns if pd.api.types.is_datetime64_any_dtype(frame[c])]
    return frame.assign(**{str(c): _stamp_text(timestamps(frame[c], str(c))) for c in stamps})


def _stamp_text(times: Any) -> Any:
    """UTC timestamps as ``2026-01-05T10:00:00.000000Z`` text."""
    return times.dt.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
