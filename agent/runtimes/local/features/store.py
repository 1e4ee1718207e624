"""The feature stores: latest values online (an :class:`OnlineStore`: SQLite here, Redis on a
Kubernetes plane), full history offline (files).

Layout, in the feature set's directory (``<stateDir>/featuresets/<name>/``)::

    online.db                 a table named after the feature set: its join keys (the
                              primary key), its features, _event_time and _written_at
    offline/<batch>.<format>  one Parquet or CSV file per batch, named by its batch time
                              (UTC, e.g. 20260105T040000Z.parquet): keys, features,
                              _event_time

Invariants:

* An offline file is written whole or not at all, and a batch computed again (a retry, a
  run after a crash) replaces its own file: history never holds a batch twice.
* One run's online upsert is one transaction, and never replaces a value with an older one
  (by ``_event_time``).
* Timestamps are stored as fixed-width UTC text (``2026-01-05T10:00:00.000000Z``), which
  SQLite compares correctly.
* sqlite3, pandas and file errors surface as ``_featureerrors`` errors.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import closing, contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Protocol

from agent.runtimes.local.features import _errors as errors
from agent.runtimes.local.features import _source as loader
from schemas import files
from schemas.featureset import FeatureSetSpec

ONLINE = "online.db"
OFFLINE = "offline"
EVENT_TIME = "_event_time"
WRITTEN_AT = "_written_at"
_AFFINITY = {
    "int64": "INTEGER",
    "float64": "REAL",
    "string": "TEXT",
    "bool": "INTEGER",
    "timestamp": "TEXT",
}


@dataclass(frozen=True)
class OnlineTable:
    """The online table of one feature set."""

    name: str
    keys: tuple[str, ...]
    columns: tuple[tuple[str, str], ...]
    """Name and SQLite type: keys, features, ``_event_time``, ``_written_at``."""


def table_of(spec: FeatureSetSpec, name: str) -> OnlineTable:
    """The online table a feature set named ``name`` writes."""
    keys = [(key, _AFFINITY[e.value_type]) for e in spec.entities for key in e.join_keys]
    features = [(feature.name, _AFFINITY[feature.dtype]) for feature in spec.features]
    times = [(EVENT_TIME, "TEXT"), (WRITTEN_AT, "TEXT")]
    return OnlineTable(name, tuple(k for k, _ in keys), (*keys, *features, *times))


def text(moment: datetime) -> str:
    """A time as the fixed-width UTC text the stores hold."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def offline_name(batch_time: datetime, fmt: str) -> str:
    """The offline file of the batch at ``batch_time``: ``20260105T040000Z.parquet``."""
    return f"{batch_time.astimezone(UTC):%Y%m%dT%H%M%SZ}.{fmt}"


def write_offline(directory: Path, batch_time: datetime, frame: Any, fmt: str) -> Path:
    """Write one batch's rows as ``offline/<batch time>.<fmt>``, replacing an earlier copy."""
    path = directory / OFFLINE / offline_name(batch_time, fmt)
    try:
        data = frame.to_parquet(index=False) if fmt == "parquet" else frame.to_csv(index=False)
        files.atomic_write(path, data if isinstance(data, bytes) else data.encode())
    except (OSError, ValueError, TypeError) as exc:
        raise errors.RunError(f"cannot write the offline store {path}: {exc}") from None
    return path


def remove_offline(directory: Path, names: Iterable[str]) -> None:
    """Remove offline files by name (those of a run that was abandoned)."""
    try:
        for name in names:
            (directory / OFFLINE / name).unlink(missing_ok=True)
    except OSError as exc:
        raise errors.RunError(f"cannot clean the offline store: {exc}") from None


def offline_files(directory: Path) -> list[Path]:
    """The offline store's files, oldest batch first."""
    folder = directory / OFFLINE
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.iterdir() if p.is_file() and not p.name.startswith("."))


class OnlineStore(Protocol):
    """Where a feature set's latest value per entity lives. Every backend keeps the same
    invariants: one run's upsert is all or nothing, and never replaces a value with an older
    one (by ``_event_time``)."""

    def upsert(self, table: OnlineTable, frames: Iterable[Any], *, written_at: datetime) -> None:
        """Upsert every row of ``frames`` (oldest first); a ``RunError`` when it cannot."""

    def rows(self, name: str) -> int:
        """How many entities feature set ``name`` holds."""

    def get(self, name: str, keys: Sequence[object]) -> dict[str, object] | None:
        """One entity's stored values (features, ``_event_time``, ``_written_at``) by its join
        key values in declaration order; None when it is unknown."""

    def drop(self, name: str) -> None:
        """Remove feature set ``name``'s values (its online store was disabled)."""


class SqliteOnline:
    """The local plane's online store: ``online.db`` in the feature set's directory."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def upsert(self, table: OnlineTable, frames: Iterable[Any], *, written_at: datetime) -> None:
        """Upsert in one transaction (:func:`upsert_online`)."""
        upsert_online(self.directory, table, frames, written_at=written_at)

    def rows(self, name: str) -> int:
        """How many entities ``online.db`` holds."""
        return online_rows(self.directory, name)

    def get(self, name: str, keys: Sequence[object]) -> dict[str, object] | None:
        """One entity's row in ``online.db``, its join keys left out."""
        sql = "SELECT name FROM pragma_table_info(?) WHERE pk > 0 ORDER BY pk"
        primary = _query(self.directory, sql, (name,))
        if primary is None or not primary[1]:
            return None
        names = [row[0] for row in primary[1]]
        where = " AND ".join(f"{loader.quote(key)} = ?" for key in names)
        select = f"SELECT * FROM {loader.quote(name)} WHERE {where}"  # noqa: S608 - quoted
        found = _query(self.directory, select, tuple(keys))
        if found is None or not found[1]:
            return None
        record = dict(zip(found[0], found[1][0], strict=True))
        return {column: value for column, value in record.items() if column not in names}

    def drop(self, name: str) -> None:
        """Remove ``online.db``."""
        drop_online(self.directory)


def records(
    table: OnlineTable, frames: Iterable[Any], written_at: datetime
) -> list[tuple[Any, ...]]:
    """Every row of ``frames`` as the values of ``table.columns`` (``_written_at`` last)."""
    names = [name for name, _ in table.columns][:-1]
    return [
        (*map(cell, row), text(written_at))
        for frame in frames
        for row in frame[names].itertuples(index=False, name=None)
    ]


def upsert_online(
    directory: Path, table: OnlineTable, frames: Iterable[Any], *, written_at: datetime
) -> None:
    """Upsert every row of ``frames`` (oldest first) in one transaction."""
    rows = records(table, frames, written_at)
    path = directory / ONLINE
    try:
        with _transaction(path) as database:
            _ensure_table(database, table)
            database.executemany(_upsert_sql(table), rows)
    except sqlite3.Error as exc:
        raise errors.RunError(f"cannot write the online store {path}: {exc}") from None


@contextmanager
def _transaction(path: Path) -> Iterator[sqlite3.Connection]:
    with closing(sqlite3.connect(path, isolation_level=None)) as database:
        database.execute("BEGIN IMMEDIATE")
        try:
            yield database
        except BaseException:
            database.execute("ROLLBACK")
            raise
        database.execute("COMMIT")


def _ensure_table(database: sqlite3.Connection, table: OnlineTable) -> None:
    """Create the table, or recreate it when its columns changed (its values with them)."""
    quoted = loader.quote(table.name)
    found = [(r[1], r[2], r[5] > 0) for r in database.execute(f"PRAGMA table_info({quoted})")]
    if found == [(name, kind, name in table.keys) for name, kind in table.columns]:
        return
    columns = ", ".join(f"{loader.quote(name)} {kind}" for name, kind in table.columns)
    keys = ", ".join(map(loader.quote, table.keys))
    database.execute(f"DROP TABLE IF EXISTS {quoted}")
    database.execute(f"CREATE TABLE {quoted} ({columns}, PRIMARY KEY ({keys}))")


def _upsert_sql(table: OnlineTable) -> str:
    """Insert or update by key, unless the stored value is newer (every name quoted)."""
    quoted = loader.quote(table.name)
    names = [loader.quote(name) for name, _ in table.columns]
    keys = [loader.quote(key) for key in table.keys]
    updates = ", ".join(f"{n} = excluded.{n}" for n in names if n not in keys)
    newer = f"excluded.{EVENT_TIME} >= {quoted}.{EVENT_TIME}"
    marks = ", ".join("?" * len(names))
    insert = f"INSERT INTO {quoted} ({', '.join(names)}) VALUES ({marks})"  # noqa: S608 - quoted
    return f"{insert} ON CONFLICT ({', '.join(keys)}) DO UPDATE SET {updates} WHERE {newer}"


def cell(value: Any) -> Any:
    """A pandas cell as a value sqlite3 binds: None, int, float, str or time text."""
    if loader.pandas().isna(value):
        return None
    if isinstance(value, datetime):
        return text(value)
    return value.item() if hasattr(value, "item") else value


def online_rows(directory: Path, name: str) -> int:
    """How many entities the online store holds."""
    found = _query(directory, f"SELECT COUNT(*) FROM {loader.quote(name)}", ())  # noqa: S608
    return 0 if found is None else int(found[1][0][0])


def lookup(
    directory: Path, name: str, keys: Mapping[str, object], *, now: datetime, ttl: float | None
) -> dict[str, object] | None:
    """One entity's features by its join keys (all of them), or None when unknown or when
    older than ``ttl`` seconds at ``now``."""
    table = loader.quote(name)
    primary = _query(directory, "SELECT name FROM pragma_table_info(?) WHERE pk > 0", (name,))
    if primary is None:
        return None
    if {row[0] for row in primary[1]} != set(keys):
        wanted = ", ".join(row[0] for row in primary[1])
        raise errors.FeatureError(f"an online lookup in {name} needs exactly its keys {wanted}")
    where = " AND ".join(f"{loader.quote(key)} = ?" for key in keys)
    found = _query(directory, f"SELECT * FROM {table} WHERE {where}", tuple(keys.values()))  # noqa: S608
    if found is None or not found[1]:
        return None
    record = dict(zip(found[0], found[1][0], strict=True))
    return None if _is_expired(record[EVENT_TIME], now, ttl) else _features(record, keys)


def _is_expired(event_time: str, now: datetime, ttl: float | None) -> bool:
    return ttl is not None and now - datetime.fromisoformat(event_time) > timedelta(seconds=ttl)


def _features(record: dict[str, Any], keys: Mapping[str, object]) -> dict[str, object]:
    hidden = {*keys, EVENT_TIME, WRITTEN_AT}
    return {column: value for column, value in record.items() if column not in hidden}


def _query(
    directory: Path, sql: str, parameters: tuple[object, ...]
) -> tuple[list[str], list[Any]] | None:
    """Column names and rows of a read-only query; None without an online store."""
    path = directory / ONLINE
    if not path.is_file():
        return None
    try:
        with closing(sqlite3.connect(f"{path.as_uri()}?mode=ro", uri=True)) as database:
            cursor = database.execute(sql, parameters)
            return [column[0] for column in cursor.description], cursor.fetchall()
    except sqlite3.Error as exc:
        raise errors.FeatureError(f"cannot read the online store {path}: {exc}") from None


def drop_online(directory: Path) -> None:
    """Remove the online store (a feature set whose online store is disabled serves nothing)."""
    for name in (ONLINE, f"{ONLINE}-journal"):
        (directory / name).unlink(missing_ok=True)
