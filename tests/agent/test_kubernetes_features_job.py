"""A feature set's pod on a Kubernetes plane, for real: the job module computes with the local
runtime's code into a real redis-server and Parquet files on a folder standing in for the
volume; and every online store (SQLite, Redis) keeps the same contract."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd
import pytest

from agent.runtimes.kubernetes import features_job
from agent.runtimes.kubernetes.online import RedisOnline
from agent.runtimes.local import features
from agent.runtimes.local.features import store as featurestore
from tests.agent.test_features import APRIL, NAME, SAMPLE, _command
from tests.conftest import ROOT

MARCH = datetime(2026, 3, 1, tzinfo=UTC)
JANUARY_END = datetime(2026, 1, 31, tzinfo=UTC)


def backfill_two_chunks(spec: dict[str, object]) -> None:
    spec["backfill"] = {"start": "2026-01-01", "end": "2026-03-01", "chunk": "30d"}


@pytest.fixture
def volume(tmp_path: Path) -> Path:
    """The feature sets' volume: the sources at its root, the stores under ``features``."""
    root = tmp_path / "volume"
    (root / "data").mkdir(parents=True)
    shutil.copy(SAMPLE, root / "data" / "events.csv")
    return root


def _spec_file(tmp_path: Path) -> tuple[Path, str]:
    command = _command(backfill_two_chunks)
    path = tmp_path / "spec.json"
    path.write_text(command.spec)
    return path, command.digest


def _args(spec: Path, digest: str, volume: Path, log: Path, *extra: str) -> list[str]:
    args = ["--name", NAME, "--digest", digest, "--spec", str(spec), "--volume", str(volume)]
    args += ["--until", "2026-04-10T03:00:00Z", "--now", "2026-04-10T03:00:00Z"]
    return [*args, "--termination-log", str(log), *extra]


def _aggregate(events: pd.DataFrame) -> pd.DataFrame:
    grouped = events.groupby("customer_id").agg(events_7d=("amount", "size"))
    return grouped.reset_index()


def _expected_latest() -> dict[int, int]:
    """Per customer, ``events_7d`` of the last batch (of three) it has events in."""
    events = pd.read_csv(SAMPLE)
    times = pd.to_datetime(events["event_time"], utc=True)
    latest: dict[int, int] = {}
    for lower, upper in [(None, JANUARY_END), (JANUARY_END, MARCH), (MARCH, APRIL)]:
        inside = (times < upper) & (True if lower is None else times >= lower)
        for row in _aggregate(events[inside]).itertuples():
            latest[int(row.customer_id)] = int(row.events_7d)
    return latest


def test_backfill_chunks_then_a_scheduled_run_fill_redis_and_parquet(
    redis_url: str, volume: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    spec, digest = _spec_file(tmp_path)
    monkeypatch.setenv("REDIS_URL", redis_url)
    summaries = []
    for index in (1, 0):  # chunks are independent: any order, or in parallel
        monkeypatch.setenv("JOB_COMPLETION_INDEX", str(index))
        log = tmp_path / f"chunk-{index}.log"
        assert features_job.main(_args(spec, digest, volume, log, "--backfill")) == 0
        summaries.append(json.loads(log.read_text()))
    assert [s["chunks"] for s in summaries] == [1, 1]
    log = tmp_path / "scheduled.log"
    pod = [sys.executable, "-m", "agent.runtimes.kubernetes.features_job"]
    ran = subprocess.run(
        [*pod, *_args(spec, digest, volume, log)],
        cwd=ROOT,
        env={**os.environ, "REDIS_URL": redis_url},
        capture_output=True,
        text=True,
        check=False,
    )
    assert ran.returncode == 0, ran.stderr
    scheduled = json.loads(log.read_text())
    latest = _expected_latest()
    march = _aggregate(pd.read_csv(SAMPLE).loc[lambda e: e["event_time"] >= "2026-03-01"])
    assert scheduled["rows"] == len(march) and scheduled["byEntity"] == {"customer": len(march)}
    store = volume / "features" / NAME
    assert [p.name for p in featurestore.offline_files(store)] == [
        "20260131T000000Z.parquet",
        "20260301T000000Z.parquet",
        "20260410T030000Z.parquet",
    ]
    online = RedisOnline(redis_url)
    assert online.rows(NAME) == len(latest)
    for customer, count in latest.items():
        assert (online.get(NAME, [customer]) or {})["events_7d"] == count, customer
    assert features.load_state(store).last_run == APRIL


def test_a_spec_that_is_not_the_verified_one_runs_nothing(
    redis_url: str, volume: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    spec, digest = _spec_file(tmp_path)
    spec.write_text(spec.read_text().replace("COUNT(*)", "COUNT(*) * 2"))
    monkeypatch.setenv("REDIS_URL", redis_url)
    log = tmp_path / "termination.log"
    assert features_job.main(_args(spec, digest, volume, log)) == 2
    said = json.loads(log.read_text())["error"]
    assert said.endswith(f"not the verified {digest}: not run")
    assert not (volume / "features").exists()


def test_without_redis_url_a_feature_set_with_an_online_store_stalls(
    volume: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    spec, digest = _spec_file(tmp_path)
    monkeypatch.delenv("REDIS_URL", raising=False)
    log = tmp_path / "termination.log"
    assert features_job.main(_args(spec, digest, volume, log)) == 2
    assert "REDIS_URL is not set" in json.loads(log.read_text())["error"]


# The online store contract: every backend passes the same checks.


@pytest.fixture(params=["sqlite", "redis"])
def online(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[featurestore.OnlineStore]:
    if request.param == "sqlite":
        yield featurestore.SqliteOnline(tmp_path)
        return
    url = request.getfixturevalue("redis_url")
    store = RedisOnline(url)
    store.drop(NAME)
    yield store
    store.drop(NAME)
    store.close()


def _frame(rows: list[tuple[int, int, str]]) -> pd.DataFrame:
    frame = pd.DataFrame(rows, columns=["customer_id", "events_7d", "_event_time"])
    frame["spend_7d"] = 1.5
    frame["last_event_time"] = pd.to_datetime(frame["_event_time"], utc=True)
    frame["_event_time"] = pd.to_datetime(frame["_event_time"], utc=True)
    return frame


def test_an_online_store_keeps_the_newest_value_per_entity(
    online: featurestore.OnlineStore,
) -> None:
    table = featurestore.table_of(features.read_spec(_command()), NAME)
    first = _frame([(1, 10, "2026-01-02T00:00:00Z"), (2, 20, "2026-01-02T00:00:00Z")])
    online.upsert(table, [first], written_at=APRIL)
    later = _frame([(1, 11, "2026-01-03T00:00:00Z"), (2, 19, "2026-01-01T00:00:00Z")])
    online.upsert(table, [later], written_at=APRIL)
    assert online.rows(NAME) == 2
    one, two = online.get(NAME, [1]) or {}, online.get(NAME, [2]) or {}
    assert (one["events_7d"], two["events_7d"]) == (11, 20)  # 19 was older than 20
    assert one["_event_time"] == "2026-01-03T00:00:00.000000Z"
    assert online.get(NAME, [3]) is None
    online.drop(NAME)
    assert (online.rows(NAME), online.get(NAME, [1])) == (0, None)
