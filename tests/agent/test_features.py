"""FeatureSets on the local runtime: real files, real SQLite, values checked against pandas."""

from __future__ import annotations

import json
import shutil
import sqlite3
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from agent.runtimes.base import ApplyContext
from agent.runtimes.local import LocalRuntime, features
from agent.runtimes.local.env import LocalEnv
from agent.runtimes.local.features import _errors as errors
from agent.runtimes.local.features import _schedule as schedule
from agent.runtimes.local.features import store as featurestore
from ledger import commands, gitrepo
from schemas import parse, signed
from schemas.common import Retry, Schedule
from schemas.featureset import FeatureSet
from tests.conftest import EXAMPLE_REPO, init_repo

NAME = "customer-activity"
EXAMPLE = EXAMPLE_REPO / "features" / f"{NAME}.yaml"
SAMPLE = EXAMPLE_REPO / "sample-data" / "events.csv"
APRIL = datetime(2026, 4, 10, 3, 0, tzinfo=UTC)
Body = dict[str, Any]


def _command(*changes: Callable[[Body], None]) -> signed.Command:
    """The example's command, changed by small modifier callbacks."""
    body = parse.load_mapping(EXAMPLE.read_bytes())
    for change in changes:
        change(body["spec"])
    text = json.dumps(body, sort_keys=True)
    return commands.new_command("FeatureSet", NAME, text)


def no_backfill(spec: Body) -> None:
    del spec["backfill"]


def no_schedule(spec: Body) -> None:
    del spec["schedule"]


def source(**fields: object) -> Callable[[Body], None]:
    return lambda spec: spec["source"].update(fields)


def sql(text: str) -> Callable[[Body], None]:
    return lambda spec: spec["transformation"].update(sql=text)


def setting(key: str, value: object) -> Callable[[Body], None]:
    return lambda spec: spec.update({key: value})


@pytest.fixture
def env(tmp_path: Path) -> LocalEnv:
    """A plane whose data directory holds the sample events as data/events.csv."""
    data = tmp_path / "plane"
    (data / "data").mkdir(parents=True)
    shutil.copy(SAMPLE, data / "data" / "events.csv")
    repo = gitrepo.GitRepo(init_repo(tmp_path / "specs"))
    return LocalEnv(repo, "", tmp_path / "state", data)


def _events(before: datetime | None = None) -> pd.DataFrame:
    events = pd.read_csv(SAMPLE)
    events["time"] = pd.to_datetime(events["event_time"], utc=True)
    return events if before is None else events[events["time"] < before]


def _expected(events: pd.DataFrame) -> pd.DataFrame:
    """The example's SQL, computed by pandas."""
    grouped = events.groupby("customer_id").agg(
        events_7d=("amount", "size"), spend_7d=("amount", "sum"), last_event_time=("time", "max")
    )
    return _normal(grouped.reset_index())


def _normal(frame: pd.DataFrame) -> pd.DataFrame:
    frame = frame[["customer_id", "events_7d", "spend_7d", "last_event_time"]].copy()
    frame["last_event_time"] = pd.to_datetime(frame["last_event_time"], utc=True).dt.as_unit("us")
    frame = frame.astype({"customer_id": "int64", "events_7d": "int64", "spend_7d": "float64"})
    return frame.sort_values("customer_id").reset_index(drop=True)


def _kind_dir(env: LocalEnv) -> Path:
    return env.kind_dir("FeatureSet", NAME)


def _offline(env: LocalEnv) -> list[pd.DataFrame]:
    read = {".parquet": pd.read_parquet, ".csv": pd.read_csv}
    return [read[path.suffix](path) for path in featurestore.offline_files(_kind_dir(env))]


def _online(env: LocalEnv) -> pd.DataFrame:
    with sqlite3.connect(_kind_dir(env) / featurestore.ONLINE) as database:
        return pd.read_sql_query('SELECT * FROM "customer-activity"', database)


def _stores(env: LocalEnv) -> dict[str, bytes]:
    """Every stored byte but the run state."""
    files = (p for p in _kind_dir(env).rglob("*") if p.is_file() and p.name != features.STATE)
    return {str(p.relative_to(_kind_dir(env))): p.read_bytes() for p in files}


def _assert_same(actual: pd.DataFrame, expected: pd.DataFrame) -> None:
    pd.testing.assert_frame_equal(_normal(actual), expected, check_exact=False, rtol=1e-9)


@pytest.mark.effect("FeatureSet", "spec.transformation.sql", "spec.entities[].name")
def test_the_example_materialises_what_pandas_computes(env: LocalEnv) -> None:
    result = features.materialise(_command(no_backfill), env, now=APRIL)
    assert result.phase == "Ready", result.message
    expected = _expected(_events())
    [offline] = _offline(env)
    _assert_same(offline, expected)
    _assert_same(_online(env), expected)
    assert [p.name for p in featurestore.offline_files(_kind_dir(env))] == [
        "20260410T030000Z.parquet"
    ]
    assert result.observed == {
        "rows": 50,
        "sourceRows": 2000,
        "entities": 50,
        "entities.customer": 50,  # the spec's entity, by its name
        "lastRun": "2026-04-10T03:00:00Z",
        "nextRun": "2026-04-10T04:00:00Z",
        "watermark": "2026-03-31T23:24:56Z",
        "onlineRows": 50,
        "offlineFiles": 1,
    }


def test_online_event_times_are_each_entitys_newest_event(env: LocalEnv) -> None:
    features.materialise(_command(no_backfill), env, now=APRIL)
    online = _online(env).set_index("customer_id")
    newest = _events().groupby("customer_id")["time"].max()
    assert (pd.to_datetime(online["_event_time"], utc=True) == newest).all()
    assert set(online["_written_at"]) == {"2026-04-10T03:00:00.000000Z"}


@pytest.mark.effect("FeatureSet", "spec.backfill.start", "spec.backfill.chunk")
def test_the_example_backfills_in_weekly_chunks(env: LocalEnv) -> None:
    result = features.materialise(_command(), env, now=APRIL)
    assert result.phase == "Ready", result.message
    events = _events()
    week = timedelta(days=7)
    files = featurestore.offline_files(_kind_dir(env))
    ends = [datetime.strptime(p.stem, "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC) for p in files]
    assert ends == [datetime(2026, 1, 1, tzinfo=UTC) + week * (i + 1) for i in range(13)]
    for end, offline in zip(ends, _offline(env), strict=True):
        chunk = events[(events["time"] >= end - week) & (events["time"] < end)]
        _assert_same(offline, _expected(chunk))
    last_chunk = events.assign(end=events["time"].map(lambda t: min(e for e in ends if e > t)))
    latest = last_chunk[
        last_chunk["end"] == last_chunk.groupby("customer_id")["end"].transform("max")
    ]
    _assert_same(_online(env), _expected(latest))
    assert result.observed["backfillChunks"] == 15  # 14 weeks and a part, two of them empty
    assert result.observed["offlineFiles"] == 13


@pytest.mark.effect("FeatureSet", "spec.backfill.end")
def test_a_backfill_with_an_end_is_followed_by_a_run_up_to_now() -> None:
    spec = FeatureSet.model_validate_json(
        _command(lambda s: s["backfill"].update(end="2026-01-15", chunk="7d")).spec
    ).spec
    spans = schedule.spans(spec, schedule.State(), APRIL)
    january = [datetime(2026, 1, day, tzinfo=UTC) for day in (1, 8, 15)]
    assert [(s.lower, s.upper, s.backfill) for s in spans] == [
        (january[0], january[1], True),
        (january[1], january[2], True),
        (january[2], APRIL, False),
    ]


def test_the_local_runtime_applies_the_example(env: LocalEnv, tmp_path: Path) -> None:
    runtime = LocalRuntime(env)
    result = runtime.apply(_command(), ApplyContext("0" * 40, tmp_path, now=APRIL))
    assert result.phase == "Ready", result.message
    assert result.observed["onlineRows"] == 50
    assert result.observed["sourceRows"] == 2000


@pytest.mark.effect("FeatureSet", "spec.source.path", "spec.stores.offline.format")
def test_a_parquet_source_with_timestamp_columns(env: LocalEnv) -> None:
    events = _events()[["customer_id", "time", "amount"]].rename(columns={"time": "event_time"})
    events.to_parquet(env.data_dir / "data" / "events.parquet", index=False)
    offline_csv = setting("stores", {"offline": {"format": "csv"}})
    command = _command(no_backfill, source(path="data/events.parquet", format=None), offline_csv)
    result = features.materialise(command, env, now=APRIL)
    assert result.phase == "Ready", result.message
    [offline] = _offline(env)
    _assert_same(offline, _expected(_events()))
    assert featurestore.offline_files(_kind_dir(env))[0].suffix == ".csv"


@pytest.mark.effect("FeatureSet", "spec.source.type", "spec.source.path")
@pytest.mark.parametrize("kind", ["sqlite", "table"])
def test_sqlite_and_warehouse_table_sources(env: LocalEnv, kind: str) -> None:
    database = {"sqlite": "data/shop.db", "table": "warehouse.db"}[kind]
    with sqlite3.connect(env.data_dir / database) as connection:
        pd.read_csv(SAMPLE).to_sql("purchases", connection, index=False)
    path = {"sqlite": "data/shop.db#purchases", "table": "purchases"}[kind]
    command = _command(no_backfill, source(type=kind, path=path, format=None))
    result = features.materialise(command, env, now=APRIL)
    assert result.phase == "Ready", result.message
    _assert_same(_offline(env)[0], _expected(_events()))


@pytest.mark.effect("FeatureSet", "spec.source.readPolicy", "spec.source.window")
def test_a_window_reads_the_last_window(env: LocalEnv) -> None:
    command = _command(no_backfill, source(readPolicy="window", window="7d"))
    end = datetime(2026, 3, 1, tzinfo=UTC)
    assert features.materialise(command, env, now=end).phase == "Ready"
    events = _events(before=end)
    _assert_same(_offline(env)[0], _expected(events[events["time"] >= end - timedelta(days=7)]))


@pytest.mark.effect("FeatureSet", "spec.source.readPolicy", "spec.schedule.cron")
def test_new_only_reads_only_new_rows_on_a_scheduled_run(env: LocalEnv) -> None:
    february, events = datetime(2026, 2, 1, tzinfo=UTC), _events()
    data = env.data_dir / "data" / "events.csv"
    events[events["time"] < february].drop(columns="time").to_csv(data, index=False)
    first = features.materialise(_command(no_backfill), env, now=february)
    assert first.observed["nextRun"] == "2026-02-01T04:00:00Z"
    events.drop(columns="time").to_csv(data, index=False)  # new rows arrive, up to March
    early = _observe(env, _command(no_backfill), first, february)
    assert early is first
    second = _observe(env, _command(no_backfill), first, february.replace(day=2))
    assert second.phase == "Ready", second.message
    day = events[(events["time"] >= february) & (events["time"] < february.replace(day=2))]
    assert second.observed["sourceRows"] == len(day)
    assert second.observed["nextRun"] == "2026-02-02T04:00:00Z"
    _assert_same(_offline(env)[1], _expected(day))


def _observe(
    env: LocalEnv, command: signed.Command, last: signed.ResourceStatus, now: datetime
) -> signed.ResourceStatus:
    return features.observe(command, last, ApplyContext("0" * 40, env.state_dir, now=now), env)


@pytest.mark.effect(
    "FeatureSet",
    "spec.transformation.sql",
    "spec.features[].name",
    "spec.features[].dtype",
    "spec.entities[].joinKeys[]",
    "spec.source.timestampField",
)
@pytest.mark.parametrize(
    ("change", "error"),
    [
        (sql("SELECT nope FROM source"), "the transformation failed: no such column: nope"),
        (
            sql("SELECT customer_id, COUNT(*) AS events_7d FROM source GROUP BY customer_id"),
            "the transformation's result has no column spend_7d, last_event_time",
        ),
        (sql("CREATE TABLE copy AS SELECT * FROM source"), "the transformation returned no result"),
        (
            sql(
                "SELECT NULL AS customer_id, 1 AS events_7d, 1.0 AS spend_7d, "
                "'x' AS last_event_time FROM source"
            ),
            "NULL join keys: customer_id",
        ),
        (
            sql(
                "SELECT customer_id, 'many' AS events_7d, 1.0 AS spend_7d, "
                "MAX(event_time) AS last_event_time FROM source GROUP BY customer_id"
            ),
            "column events_7d: cannot be read as int64",
        ),
        (source(timestampField="amount"), "timestampField amount: must be ISO-8601 text"),
        (sql("ATTACH DATABASE ':memory:' AS other"), "the transformation failed: not authorized"),
    ],
    ids=[
        "sql-error",
        "missing-column",
        "not-a-select",
        "null-key",
        "wrong-type",
        "bad-time",
        "attach",
    ],
)
def test_a_failed_computation_leaves_the_stores_untouched(
    env: LocalEnv, change: Callable[[Body], None], error: str
) -> None:
    full = source(readPolicy="full")  # every run reads rows, so every check has rows to check
    features.materialise(_command(no_backfill, full), env, now=APRIL)
    before = _stores(env)
    later = APRIL + timedelta(hours=1)
    result = features.materialise(_command(no_backfill, full, change), env, now=later)
    assert result.phase == "Failed"
    assert error in result.message
    assert result.observed["retryAt"] == "2026-04-10T04:00:30Z"
    assert result.observed["lastRun"] == "2026-04-10T03:00:00Z"
    assert _stores(env) == before


@pytest.mark.effect("FeatureSet", "spec.entities[].valueType")
@pytest.mark.parametrize(
    ("value_type", "offline", "online"),
    [("int64", "Int64", "integer"), ("string", "string", "text")],
    ids=["int64", "string"],
)
def test_join_keys_are_stored_as_their_value_type(
    env: LocalEnv, value_type: str, offline: str, online: str
) -> None:
    entity = {"name": "customer", "joinKeys": ["customer_id"], "valueType": value_type}
    command = _command(no_backfill, setting("entities", [entity]))
    assert features.materialise(command, env, now=APRIL).phase == "Ready"
    path = featurestore.offline_files(_kind_dir(env))[0]
    assert (
        str(pd.read_parquet(path, dtype_backend="numpy_nullable")["customer_id"].dtype) == offline
    )
    with sqlite3.connect(_kind_dir(env) / featurestore.ONLINE) as database:
        found = database.execute('SELECT DISTINCT typeof(customer_id) FROM "customer-activity"')
        assert found.fetchall() == [(online,)]


@pytest.mark.effect("FeatureSet", "spec.timeout")
def test_the_transformation_is_stopped_at_its_timeout(env: LocalEnv) -> None:
    forever = "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n) SELECT * FROM n"
    result = features.materialise(
        _command(no_backfill, sql(forever), setting("timeout", "200ms")), env, now=APRIL
    )
    assert result.phase == "Failed"
    assert result.message == "the transformation ran past spec.timeout"


def test_a_missing_source_fails_naming_its_path(env: LocalEnv) -> None:
    (env.data_dir / "data" / "events.csv").unlink()
    result = features.materialise(_command(), env, now=APRIL)
    assert result.phase == "Failed"
    resolved = (env.data_dir / "data" / "events.csv").resolve()
    assert result.message == f"source not found: {resolved}"
    assert _stores(env) == {}


@pytest.mark.parametrize("how", ["dot-dot", "absolute", "symlink"])
def test_a_source_outside_the_data_directory_is_refused(
    env: LocalEnv, tmp_path: Path, how: str
) -> None:
    outside = tmp_path / "secrets.csv"
    shutil.copy(SAMPLE, outside)
    (env.data_dir / "data" / "link.csv").symlink_to(outside)
    path = {"dot-dot": "../secrets.csv", "absolute": str(outside), "symlink": "data/link.csv"}
    result = features.materialise(_command(source(path=path[how])), env, now=APRIL)
    assert result.phase == "Failed"
    assert "outside the data directory" in result.message
    assert "retryAt" not in result.observed  # stalled: it needs a new commit
    assert _stores(env) == {}


@pytest.mark.effect("FeatureSet", "spec.ttl", "spec.entities[].joinKeys[]")
def test_online_lookup_ignores_values_older_than_the_ttl(env: LocalEnv) -> None:
    features.materialise(_command(no_backfill), env, now=APRIL)
    newest = _events().groupby("customer_id")["time"].max()
    customer, seen = int(newest.index[0]), newest.iloc[0].to_pydatetime()
    fresh = features.online_lookup(env, NAME, {"customer_id": customer}, seen + timedelta(days=2))
    assert fresh is not None
    assert set(fresh) == {"events_7d", "spend_7d", "last_event_time"}
    stale = seen + timedelta(days=2, seconds=1)
    assert features.online_lookup(env, NAME, {"customer_id": customer}, stale) is None
    assert features.online_lookup(env, NAME, {"customer_id": 999}, seen) is None
    with pytest.raises(errors.FeatureError, match="needs exactly its keys customer_id"):
        features.online_lookup(env, NAME, {"customer": customer}, seen)


@pytest.mark.parametrize("policy", ["new-only", "full"])
def test_reapplying_a_command_does_not_duplicate_history(env: LocalEnv, policy: str) -> None:
    command = _command(no_backfill, source(readPolicy=policy))
    first = features.materialise(command, env, now=APRIL)
    stored = _stores(env)
    again = features.materialise(command, env, now=APRIL + timedelta(hours=1))
    assert again == first
    assert _stores(env) == stored


@pytest.mark.effect("FeatureSet", "spec.retry.backoff")
def test_a_failed_run_is_retried_at_its_batch_time_with_backoff(env: LocalEnv) -> None:
    data = env.data_dir / "data" / "events.csv"
    data.rename(env.data_dir / "events.later")
    command = _command(no_backfill, no_schedule)
    failed = features.materialise(command, env, now=APRIL)
    assert failed.observed["retryAt"] == "2026-04-10T03:00:30Z"
    second = _observe(env, command, failed, APRIL + timedelta(seconds=30))
    assert second.observed["failures"] == 2
    assert second.observed["retryAt"] == "2026-04-10T03:01:30Z"  # 30s, then 60s
    (env.data_dir / "events.later").rename(data)
    assert _observe(env, command, second, APRIL + timedelta(seconds=89)) is second
    third = _observe(env, command, second, APRIL + timedelta(seconds=90))
    assert third.phase == "Ready", third.message
    assert third.observed["lastRun"] == "2026-04-10T03:00:00Z"  # the failed run's batch time
    assert [p.name for p in featurestore.offline_files(_kind_dir(env))] == [
        "20260410T030000Z.parquet"
    ]


@pytest.mark.effect("FeatureSet", "spec.retry.limit")
def test_retries_stop_at_the_limit(env: LocalEnv) -> None:
    (env.data_dir / "data" / "events.csv").unlink()
    command = _command(no_backfill, no_schedule)
    status = features.materialise(command, env, now=APRIL)
    for hours in (1, 2):
        status = _observe(env, command, status, APRIL + timedelta(hours=hours))
    assert status.observed["failures"] == 3
    assert "retryAt" not in status.observed
    assert _observe(env, command, status, APRIL + timedelta(days=9)) is status


@pytest.mark.effect("FeatureSet", "spec.retry.backoff", "spec.retry.maxBackoff")
@pytest.mark.parametrize(
    ("failures", "delay"),
    [(1, 10), (2, 20), (3, 30), (4, 30), (5, 30), (6, None)],
    ids=["first", "doubled", "capped", "still-capped", "last", "exhausted"],
)
def test_backoff_doubles_up_to_its_maximum(failures: int, delay: int | None) -> None:
    retry = Retry.model_validate({"limit": 5, "backoff": "10s", "maxBackoff": "30s"})
    found = schedule.retry_at(retry, failures, APRIL)
    assert found == (None if delay is None else APRIL + timedelta(seconds=delay))


@pytest.mark.effect("FeatureSet", "spec.schedule.cron", "spec.schedule.timezone")
@pytest.mark.parametrize(
    ("cron", "zone", "after", "expected"),
    [
        ("0 */4 * * *", "UTC", APRIL, APRIL.replace(hour=4)),
        ("0 2 * * *", "Europe/Berlin", datetime(2026, 1, 5, tzinfo=UTC), "2026-01-05T01:00:00"),
        ("0 2 * * *", "Europe/Berlin", datetime(2026, 7, 4, 12, tzinfo=UTC), "2026-07-05T00:00:00"),
        ("@daily", "UTC", APRIL, datetime(2026, 4, 11, tzinfo=UTC)),
    ],
    ids=["every-4h", "berlin-winter", "berlin-summer", "macro"],
)
def test_the_next_run_follows_cron_in_its_time_zone(
    cron: str, zone: str, after: datetime, expected: datetime | str
) -> None:
    found = schedule.next_run(Schedule(cron=cron, timezone=zone), after)
    if isinstance(expected, str):
        expected = datetime.fromisoformat(expected).replace(tzinfo=UTC)
    assert found == expected


@pytest.mark.effect("FeatureSet", "spec.schedule.suspend")
def test_a_suspended_schedule_runs_nothing(env: LocalEnv) -> None:
    suspend = setting("schedule", {"cron": "0 */4 * * *", "suspend": True})
    never = features.materialise(_command(no_backfill, suspend), env, now=APRIL)
    assert never.phase == "Pending"
    assert never.message == features.SUSPENDED
    assert _stores(env) == {}
    ready = features.materialise(_command(no_backfill), env, now=APRIL)
    stored = _stores(env)
    paused = features.materialise(_command(no_backfill, suspend), env, now=APRIL)
    assert paused.phase == "Ready"
    assert paused.observed["suspended"] is True
    assert "nextRun" not in paused.observed
    later = APRIL + timedelta(days=3)
    assert _observe(env, _command(no_backfill, suspend), paused, later) is paused
    assert _stores(env) == stored
    assert ready.observed["nextRun"] == "2026-04-10T04:00:00Z"


def test_a_stale_command_is_not_run_by_observe(env: LocalEnv) -> None:
    status = features.materialise(_command(no_backfill), env, now=APRIL)
    other = _command(no_backfill, sql("SELECT * FROM source"))
    later = APRIL + timedelta(days=1)
    assert _observe(env, other, status, later) is status


@pytest.mark.effect("FeatureSet", "spec.stores.online.enabled", "spec.stores.offline.enabled")
@pytest.mark.parametrize("store", ["online", "offline"])
def test_a_disabled_store_is_not_written(env: LocalEnv, store: str) -> None:
    disabled = setting("stores", {store: {"enabled": False}})
    result = features.materialise(_command(no_backfill, disabled), env, now=APRIL)
    assert result.phase == "Ready", result.message
    written = {path.split("/")[0] for path in _stores(env)}
    assert written == {"offline", "online.db"} - {f"{store}.db", store}
    assert f"{store}Rows" not in result.observed
    assert f"{store}Files" not in result.observed


def test_delete_removes_everything(env: LocalEnv) -> None:
    features.materialise(_command(), env, now=APRIL)
    assert _stores(env)
    features.delete(_command(), env)
    assert not (env.state_dir / "featuresets" / NAME).exists()


@pytest.mark.effect("FeatureSet", "spec.source.format", "spec.source.timestampField")
@pytest.mark.parametrize(
    ("change", "error"),
    [
        (source(format="parquet"), "cannot read the source"),
        (source(timestampField="ts"), "the source has no timestampField 'ts'"),
        (source(path="data/events.txt", format=None), "cannot tell the format"),
    ],
    ids=["not-parquet", "no-timestamp-column", "unknown-format"],
)
def test_an_unreadable_source_fails(
    env: LocalEnv, change: Callable[[Body], None], error: str
) -> None:
    shutil.copy(SAMPLE, env.data_dir / "data" / "events.txt")
    result = features.materialise(_command(change), env, now=APRIL)
    assert result.phase == "Failed"
    assert error in result.message
    assert _stores(env) == {}


@pytest.mark.parametrize(
    ("change", "error"),
    [
        (source(readPolicy="window"), "readPolicy window needs spec.source.window"),
        (setting("schedule", {"cron": "0 * * * *", "timezone": "Mars/Olympus"}), "schedule"),
        (lambda spec: spec.update(unknown=1), "not a valid FeatureSet"),
        (setting("backfill", {"start": "2026-01-01", "chunk": "0s"}), "longer than 0s"),
    ],
    ids=["window-without-window", "unknown-time-zone", "invalid-spec", "empty-chunk"],
)
def test_a_spec_that_cannot_run_is_not_retried(
    env: LocalEnv, change: Callable[[Body], None], error: str
) -> None:
    result = features.materialise(_command(no_backfill, change), env, now=APRIL)
    assert result.phase == "Failed"
    assert error in result.message
    assert "retryAt" not in result.observed
    assert "nextRun" not in result.observed
    assert _stores(env) == {}


def test_a_run_abandoned_after_writing_offline_leaves_no_history(env: LocalEnv) -> None:
    online = _kind_dir(env) / featurestore.ONLINE
    online.mkdir()  # the online store cannot be written: the run fails after the offline write
    command = _command(no_backfill, setting("retry", {"limit": 0}))
    failed = features.materialise(command, env, now=APRIL)
    assert "cannot write the online store" in failed.message
    assert [p.name for p in featurestore.offline_files(_kind_dir(env))] == [
        "20260410T030000Z.parquet"
    ]
    online.rmdir()
    later = APRIL + timedelta(hours=1)
    ready = _observe(env, command, failed, later)  # the next scheduled run, from the watermark
    assert ready.phase == "Ready", ready.message
    assert [p.name for p in featurestore.offline_files(_kind_dir(env))] == [
        "20260410T040000Z.parquet"
    ]
    _assert_same(_offline(env)[0], _expected(_events()))
