"""DAGs in the local runtime: real git, real MLflow (SQLite), real ``mlflow run`` processes.

Every ``mlflow run`` costs seconds, so the slow tests share few, busy DAGs: 15 step runs in all.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import shutil
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from agent.runtimes.base import ApplyContext
from agent.runtimes.local import LocalRuntime, dags
from agent.runtimes.local.dags import _plan as _dagplan
from agent.runtimes.local.env import LocalEnv
from ledger import envelope, gitrepo
from schemas import signed
from schemas.dag import DAG, Partition, Step
from schemas.errors import GitplaneError
from tests.conftest import FIXTURES, commit_all, init_repo

PROJECTS = ("dag-produce", "dag-consume", "dag-gather", "dag-fail", "dag-sleep")
FILES = ["apac-1.csv", "eu-1.csv", "eu-2.csv", "us-1.csv", "us-2.csv"]


@pytest.fixture
def plane(tmp_path: Path) -> tuple[LocalEnv, str]:
    """A spec repository holding the fixture projects, and the local runtime's places."""
    repo = init_repo(tmp_path / "specs")
    for project in PROJECTS:
        shutil.copytree(FIXTURES / "projects" / project, repo / "projects" / project)
    commit = commit_all(repo)
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    return LocalEnv(gitrepo.GitRepo(repo), uri, tmp_path / "state", tmp_path / "data"), commit


def _step(
    name: str, project: str, parameters: dict[str, Any] | None = None, **fields: Any
) -> dict[str, Any]:
    ref = {"path": f"projects/{project}", "parameters": parameters or {}}
    return {"name": name, "project": ref, **fields}


def _command(name: str, spec: dict[str, Any], reason: str = "new in git") -> signed.Command:
    body = {
        "apiVersion": "gitplane.dev/v1alpha1",
        "kind": "DAG",
        "metadata": {"name": name},
        "spec": {"planeSelector": {}, **spec},
        "inputs": {"projects/dag-produce": "0" * 40},
    }
    text = json.dumps(body, sort_keys=True)
    digest = envelope.digest(text.encode())
    return signed.Command(
        id=f"DAG/{name}@{digest[7:19]}",
        action="apply",
        kind="DAG",
        name=name,
        spec=text,
        digest=digest,
        reason=reason,
    )


def _context(env: LocalEnv, commit: str, now: str = "2024-01-10T00:00:00") -> ApplyContext:
    env.state_dir.mkdir(parents=True, exist_ok=True)
    return ApplyContext(commit, Path(tempfile.mkdtemp(dir=env.state_dir.parent)), now=_at(now))


def _runs(env: LocalEnv, experiment: str) -> list[Any]:
    """Every run of the experiment, oldest first."""
    from mlflow import MlflowClient  # noqa: PLC0415 - the test reads the runtime's real store

    client = MlflowClient(tracking_uri=env.tracking_uri)
    found = client.get_experiment_by_name(experiment)
    if found is None:
        return []
    runs = client.search_runs([found.experiment_id], order_by=["attributes.start_time ASC"])
    return list(runs)


def _artifact(env: LocalEnv, run_id: str, path: str) -> str:
    from mlflow import MlflowClient  # noqa: PLC0415

    client = MlflowClient(tracking_uri=env.tracking_uri)
    destination = Path(tempfile.mkdtemp(dir=env.state_dir.parent))
    try:
        return Path(client.download_artifacts(run_id, path, str(destination))).read_text()
    finally:
        shutil.rmtree(destination)


def _sha_mod(unit: str, instances: int) -> int:
    return int.from_bytes(hashlib.sha256(unit.encode()).digest()[:8], "big") % instances


def _children(runs: list[Any]) -> dict[str, Any]:
    return {r.info.run_name: r for r in runs if "mlflow.parentRunId" in r.data.tags}


# A busy DAG: steps declared out of order; two partitioned fan-outs; a fan-in that logs
# with MLflow itself; parameters at three levels.
PIPELINE: dict[str, Any] = {
    "parameters": {"greeting": "from-dag", "shards": 3, "unused": "x"},
    "steps": [
        _step("gather", "dag-gather", dependsOn=["consume-rr"]),
        _step(
            "consume-hash",
            "dag-consume",
            dependsOn=["produce"],
            partition={"from": "produce", "instances": 3, "by": "key", "assignment": "hash"},
        ),
        _step(
            "consume-rr",
            "dag-consume",
            {"greeting": "from-step"},
            dependsOn=["produce"],
            partition={"from": "produce", "instances": 3},
        ),
        _step("produce", "dag-produce", {"names": ",".join(FILES)}),
    ],
}


@pytest.mark.effect(
    "DAG",
    "spec.parameters.*",
    "spec.steps[].name",
    "spec.steps[].dependsOn[]",
    "spec.steps[].partition.from",
    "spec.steps[].partition.instances",
    "spec.steps[].partition.by",
    "spec.steps[].partition.assignment",
    "spec.steps[].project.path",
    "spec.steps[].project.parameters.*",
)
@pytest.mark.slow
def test_a_dag_runs_in_order_as_parent_and_child_runs_and_passes_partitioned_data(
    plane: tuple[LocalEnv, str],
) -> None:
    env, commit = plane
    runtime = LocalRuntime(env)
    command = _command("pipeline", PIPELINE)
    status = runtime.apply(command, _context(env, commit))

    assert status.phase == "Ready", status.message
    assert status.observed["lastRunPhase"] == "Succeeded"
    assert (status.observed["steps"], status.observed["stepsSucceeded"]) == (4, 4)
    runs = _runs(env, "pipeline")
    (parent,) = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    assert parent.info.run_id == status.observed["lastRun"]
    assert parent.info.status == "FINISHED"
    assert parent.data.tags["gitplane.dag"] == "pipeline"
    assert parent.data.tags["gitplane.spec_digest"] == command.digest
    assert parent.data.tags["gitplane.spec_commit"] == commit
    children = _children(runs)
    assert list(children) == [
        "produce",
        "consume-hash-part-0",
        "consume-hash-part-1",
        "consume-hash-part-2",
        "consume-rr-part-0",
        "consume-rr-part-1",
        "consume-rr-part-2",
        "gather",
    ]
    assert {r.data.tags["mlflow.parentRunId"] for r in children.values()} == {parent.info.run_id}
    assert {r.info.status for r in children.values()} == {"FINISHED"}

    def seen(name: str, index: int) -> list[str]:
        return _artifact(env, children[name].info.run_id, f"seen-{index}.txt").split()

    # round-robin over sorted names: file i goes to instance i mod 3
    assert [seen(f"consume-rr-part-{k}", k) for k in range(3)] == [
        ["produce/apac-1.csv", "produce/us-1.csv"],
        ["produce/eu-1.csv", "produce/us-2.csv"],
        ["produce/eu-2.csv"],
    ]
    # hash of the key (the name up to its first "-"): one key never splits; an instance
    # with an empty share (here instance 1) still runs, on an empty input
    home = {k: _sha_mod(k, 3) for k in ("apac", "eu", "us")}
    assert sorted(home.values()) == [0, 0, 2]
    for index in range(3):
        expected = [f"produce/{f}" for f in FILES if home[f.split("-")[0]] == index]
        assert seen(f"consume-hash-part-{index}", index) == expected
    # the fan-in sees every upstream instance's outputs under part-<k>/
    gathered = _artifact(env, children["gather"].info.run_id, "gathered.txt").split()
    assert gathered == [
        f"consume-rr/part-{k}/{f}-{k}.txt" for k in range(3) for f in ("seen", "whoami")
    ]

    # parameters: DAG defaults < step parameters < runtime's; only what the entry point declares
    assert children["produce"].data.params.keys() == {"names", "output_dir"}
    assert children["consume-rr-part-1"].data.params["greeting"] == "from-step"
    assert children["consume-rr-part-1"].data.params["partition_count"] == "3"
    assert children["consume-hash-part-0"].data.params["greeting"] == "from-dag"
    assert _artifact(env, children["gather"].info.run_id, "parameters.txt") == "from-dag 3\n"
    assert "unused" not in {k for r in children.values() for k in r.data.params}
    assert (
        _artifact(env, children["consume-rr-part-2"].info.run_id, "whoami-2.txt")
        == "2/3 from-step\n"
    )

    # the same command again: the stored outcome, no new run
    assert runtime.apply(command, _context(env, commit)) == status
    assert len(_runs(env, "pipeline")) == len(runs)


FAILING: dict[str, Any] = {
    "steps": [
        _step("bad", "dag-fail", retry={"limit": 1, "backoff": "10ms"}),
        _step("after", "dag-produce", dependsOn=["bad"]),
        _step("other", "dag-produce"),
    ],
}


@pytest.mark.effect(
    "DAG",
    "spec.steps[].retry.limit",
    "spec.steps[].dependsOn[]",
    "spec.failurePolicy",
)
@pytest.mark.slow
def test_a_failing_step_is_retried_then_fails_the_run_and_abort_stops_the_rest(
    plane: tuple[LocalEnv, str],
) -> None:
    env, commit = plane
    command = _command("failing", FAILING)
    status = dags.apply(command, _context(env, commit), env)

    assert status.phase == "Failed"
    assert "step bad failed (exit 1, attempt 2 of 2)" in status.message
    assert "boom: the input is corrupt" in status.message
    assert "step after not started: step bad failed" in status.message
    observed = status.observed
    assert (observed["stepsFailed"], observed["stepsSkipped"], observed["lastRunPhase"]) == (
        1,
        2,
        "Failed",
    )
    runs = _runs(env, "failing")
    assert [r.info.run_name for r in runs[1:]] == ["bad", "bad-attempt-2"]
    assert [r.info.status for r in runs] == ["FAILED", "FAILED", "FAILED"]
    assert runs[2].data.tags["gitplane.attempt"] == "2"

    # the reconciler's retry (another command, same spec) runs a failed DAG again; checked
    # without running: the decision reads the stored state
    kept = dags.load_state(env, "failing")
    assert kept is not None
    assert dags.is_settled(kept, command)
    assert not dags.is_settled(kept, _command("failing", FAILING, reason="retry 2 after failure"))


INDEPENDENT: dict[str, Any] = {
    "failurePolicy": "continue-independent",
    "steps": [
        _step("slow", "dag-sleep", timeout="15s"),
        _step("after-slow", "dag-produce", dependsOn=["slow"]),
        _step("flaky", "dag-fail", continueOnFailure=True),
        _step("after-flaky", "dag-produce", dependsOn=["flaky"]),
        _step("independent", "dag-produce"),
    ],
}


@pytest.mark.effect(
    "DAG",
    "spec.steps[].timeout",
    "spec.steps[].continueOnFailure",
    "spec.failurePolicy",
)
@pytest.mark.slow
def test_a_step_timeout_kills_it_and_continue_independent_runs_the_rest(
    plane: tuple[LocalEnv, str], tmp_path: Path
) -> None:
    env, commit = plane
    pid_file = tmp_path / "sleeper.pid"
    slow = _step("slow", "dag-sleep", {"pid_file": str(pid_file)}, timeout="15s")
    spec = {**INDEPENDENT, "steps": [slow, *INDEPENDENT["steps"][1:]]}
    started = time.monotonic()
    status = dags.apply(_command("independent", spec), _context(env, commit), env)

    assert status.phase == "Failed"
    assert "step slow failed (killed at its 15s timeout, attempt 1 of 1)" in status.message
    assert "step after-slow not started: step slow did not succeed" in status.message
    assert "boom: the input is corrupt" in status.message  # flaky failed, tolerated
    observed = status.observed
    assert (observed["stepsSucceeded"], observed["stepsFailed"], observed["stepsSkipped"]) == (
        2,
        2,
        1,
    )
    children = _children(_runs(env, "independent"))
    assert list(children) == ["slow", "flaky", "after-flaky", "independent"]
    flaky = children["flaky"]
    assert flaky.info.status == "FAILED"
    assert "boom: the input is corrupt" in _artifact(env, flaky.info.run_id, "logs/log.txt")
    assert children["slow"].info.status == "KILLED"
    assert time.monotonic() - started < 100  # the sleeper sleeps 120s
    if pid_file.exists():  # started before the timeout: it must be gone (or a zombie)
        _assert_dead(int(pid_file.read_text()))


def _assert_dead(pid: int) -> None:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return
    assert state in ("Z", "X"), f"process {pid} is still {state}"


SCHEDULED: dict[str, Any] = {
    "schedule": {"cron": "30 2 * * *", "timezone": "Europe/Paris"},
    "steps": [_step("produce", "dag-produce")],
}


def _at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


@pytest.mark.effect("DAG", "spec.schedule.cron", "spec.schedule.timezone")
@pytest.mark.slow
def test_a_scheduled_dag_runs_only_when_due_and_once_per_slot(plane: tuple[LocalEnv, str]) -> None:
    env, commit = plane
    command = _command("nightly", SCHEDULED)
    registered = dags.apply(command, _context(env, commit, "2024-01-10T00:00:00"), env)
    assert registered.phase == "Ready"
    assert registered.observed["nextRun"] == "2024-01-10T01:30:00Z"  # 02:30 in Paris, UTC+1
    assert "lastRun" not in registered.observed
    assert _runs(env, "nightly") == []

    def observe(now: str, last: signed.ResourceStatus) -> signed.ResourceStatus:
        return dags.observe(command, last, _context(env, commit, now), env)

    assert observe("2024-01-10T01:29:00", registered) is registered
    ran = observe("2024-01-12T05:00:00", registered)  # two slots missed: one run
    assert ran.phase == "Ready"
    assert ran.observed["lastRunPhase"] == "Succeeded"
    assert ran.observed["lastRunAt"] == "2024-01-12T01:30:00Z"
    assert ran.observed["nextRun"] == "2024-01-13T01:30:00Z"
    assert observe("2024-01-12T05:00:00", ran) is ran
    assert observe("2024-01-13T01:29:59", ran) is ran
    assert len(_runs(env, "nightly")) == 2  # parent and one child
    parent = _runs(env, "nightly")[0]
    assert parent.data.tags["gitplane.trigger"] == "schedule"
    later = _context(env, commit, "2024-01-20T00:00:00")  # slots are due: apply runs none
    assert dags.apply(command, later, env) == ran  # re-apply: no reset, no run


@pytest.mark.effect("DAG", "spec.schedule.suspend")
def test_a_suspended_schedule_registers_but_never_runs(plane: tuple[LocalEnv, str]) -> None:
    env, commit = plane
    spec = {**SCHEDULED, "schedule": {**SCHEDULED["schedule"], "suspend": True}}
    command = _command("paused", spec)
    status = dags.apply(command, _context(env, commit, "2024-01-10T00:00:00"), env)
    assert (status.phase, status.observed["suspended"], status.message) == (
        "Ready",
        True,
        "suspended",
    )
    assert "nextRun" not in status.observed
    assert (
        dags.observe(command, status, _context(env, commit, "2024-02-01T00:00:00"), env) is status
    )

    dags.delete(command, env)
    assert not (env.state_dir / "dags" / "paused").exists()
    assert dags.load_state(env, "paused") is None


@pytest.mark.effect("DAG", "spec.timeout")
def test_the_dag_timeout_stops_steps_from_starting(plane: tuple[LocalEnv, str]) -> None:
    env, commit = plane
    spec = {"timeout": "1ms", "steps": [_step("produce", "dag-produce")]}
    status = dags.apply(_command("hurried", spec), _context(env, commit), env)
    assert status.phase == "Failed"
    assert "step produce not started: the DAG's 1ms timeout passed" in status.message
    (parent,) = _runs(env, "hurried")
    assert parent.info.status == "FAILED"


def test_a_dag_that_cannot_run_is_refused_before_any_run(plane: tuple[LocalEnv, str]) -> None:
    env, commit = plane
    spec = {
        "steps": [
            _step("a", "dag-produce", dependsOn=["b"]),
            _step("b", "dag-produce", dependsOn=["a"]),
        ]
    }
    with pytest.raises(GitplaneError, match="a dependsOn cycle: a -> b -> a"):
        dags.apply(_command("looped", spec), _context(env, commit), env)
    with pytest.raises(GitplaneError, match=r"invalid at spec\.steps\.0\.retry\.limit"):
        dags.apply(
            _command("bad", {"steps": [_step("a", "dag-produce", retry={"limit": -1})]}),
            _context(env, commit),
            env,
        )
    assert _runs(env, "looped") == []


# The pure core, as tables.


def _steps(edges: dict[str, list[str]]) -> list[Step]:
    return [Step.model_validate(_step(name, "p", dependsOn=deps)) for name, deps in edges.items()]


@pytest.mark.effect("DAG", "spec.steps[].dependsOn[]")
@pytest.mark.parametrize(
    ("edges", "expected"),
    [
        ({"a": [], "b": [], "c": []}, "abc"),
        ({"c": ["b"], "b": ["a"], "a": []}, "abc"),
        ({"d": ["b", "c"], "c": ["a"], "b": ["a"], "a": []}, "acbd"),
        ({"x": [], "y": ["x"], "z": []}, "xyz"),
    ],
    ids=["independent-in-declared-order", "chain-declared-backwards", "diamond", "ready-first"],
)
def test_steps_run_in_dependency_then_declaration_order(
    edges: dict[str, list[str]], expected: str
) -> None:
    assert "".join(s.name for s in _dagplan.order(_steps(edges))) == expected


@pytest.mark.parametrize(
    ("steps", "message"),
    [
        (_steps({"a": ["ghost"]}), "unknown steps in dependsOn: ghost"),
        (_steps({"a": ["b"], "b": ["a"]}), "a dependsOn cycle: a -> b -> a"),
        ([*_steps({"a": []}), *_steps({"a": []})], "duplicate step names: a"),
        (
            [Step.model_validate({**_step("a", "p"), "partition": {"from": "z", "instances": 2}})],
            "steps partitioning a step they do not depend on: a",
        ),
    ],
    ids=["unknown", "cycle", "duplicate", "partition-not-upstream"],
)
def test_a_dag_that_cannot_run_says_why(steps: list[Step], message: str) -> None:
    with pytest.raises(_dagplan.DagError, match=message):
        _dagplan.order(steps)


@pytest.mark.effect("DAG", "spec.parameters.*", "spec.steps[].project.parameters.*")
def test_parameters_are_layered_and_filtered() -> None:
    declared = frozenset({"alpha", "beta", "flag", "input_dir"})
    chosen = _dagplan.parameters(
        declared,
        {"alpha": 1, "beta": "dag", "shards": 8},
        {"beta": "step", "flag": True},
        {"input_dir": "/in"},
    )
    assert chosen == {"alpha": "1", "beta": "step", "flag": "true", "input_dir": "/in"}


@pytest.mark.effect("DAG", "spec.steps[].partition.by")
@pytest.mark.parametrize(
    ("path", "by", "expected"),
    [
        ("shards/eu-0001.csv", "object", "shards/eu-0001.csv"),
        ("shards/eu-0001.csv", "directory", "shards"),
        ("top.csv", "directory", "top.csv"),
        ("shards/eu-0001.csv", "key", "eu"),
        ("patient42-scan-3.dcm", "key", "patient42"),
        ("us.csv", "key", "us"),
    ],
    ids=["object", "directory", "top-level-file", "key", "key-first-dash", "key-no-dash"],
)
def test_partition_units(path: str, by: str, expected: str) -> None:
    assert _dagplan.unit(path, by) == expected


def _partition(**fields: Any) -> Partition:
    return Partition.model_validate({"from": "up", **fields})


SHARE_CASES: list[tuple[str, Partition, list[list[str]]]] = [
    ("rr-object", _partition(instances=2), [["a/1", "b/1", "c/1"], ["a/2", "b/2"]]),
    (
        "rr-directory",
        _partition(instances=2, by="directory"),
        [["a/1", "a/2", "c/1"], ["b/1", "b/2"]],
    ),
    (
        "more-instances",
        _partition(instances=7, by="directory"),
        [["a/1", "a/2"], ["b/1", "b/2"], ["c/1"], [], [], [], []],
    ),
]


@pytest.mark.effect("DAG", "spec.steps[].partition.instances", "spec.steps[].partition.by")
@pytest.mark.parametrize(
    ("case", "partition", "expected"), SHARE_CASES, ids=[c[0] for c in SHARE_CASES]
)
def test_round_robin_shares(case: str, partition: Partition, expected: list[list[str]]) -> None:
    del case
    assert _dagplan.shares(["b/2", "a/1", "c/1", "b/1", "a/2"], partition) == expected


@pytest.mark.effect("DAG", "spec.steps[].partition.assignment")
@pytest.mark.parametrize("by", ["object", "directory", "key"])
def test_hash_shares_cover_every_file_once_and_never_move(by: str) -> None:
    files = [f"{d}/{k}-{n}.csv" for d in "xyz" for k in ("eu", "us", "apac") for n in range(4)]
    partition = _partition(instances=3, by=by, assignment="hash")
    shares = _dagplan.shares(files, partition)
    assert sorted(f for share in shares for f in share) == sorted(files)
    assert _dagplan.shares(list(reversed(files)), partition) == shares
    with_more = _dagplan.shares([*files, "w/new-1.csv"], partition)
    assert [[f for f in s if f != "w/new-1.csv"] for s in with_more] == shares
    for share in shares:
        units = {_dagplan.unit(f, by) for f in share}
        assert all(
            _dagplan.unit(f, by) not in units
            for other in shares
            if other is not share
            for f in other
        )


def _schedule(**fields: Any) -> Any:
    return DAG.model_validate(
        {
            "apiVersion": "gitplane.dev/v1alpha1",
            "kind": "DAG",
            "metadata": {"name": "d"},
            "spec": {"planeSelector": {}, "steps": [_step("a", "p")], "schedule": fields},
        }
    ).spec.schedule


@pytest.mark.effect("DAG", "spec.schedule.cron", "spec.schedule.timezone")
@pytest.mark.parametrize(
    ("fields", "after", "now", "expected"),
    [
        ({"cron": "30 2 * * *"}, "2024-01-10T00:00", "2024-01-10T02:29", None),
        ({"cron": "30 2 * * *"}, "2024-01-10T00:00", "2024-01-10T02:30", "2024-01-10T02:30:00Z"),
        ({"cron": "30 2 * * *"}, "2024-01-10T02:30", "2024-01-11T02:29", None),
        ({"cron": "30 2 * * *"}, "2024-01-01T00:00", "2024-01-10T09:00", "2024-01-10T02:30:00Z"),
        ({"cron": "@hourly"}, "2024-01-10T00:00", "2024-01-10T03:10", "2024-01-10T03:00:00Z"),
        (
            {"cron": "0 9 * * *", "timezone": "America/New_York"},
            "2024-07-01T00:00",
            "2024-07-01T13:00",
            "2024-07-01T13:00:00Z",
        ),
    ],
    ids=[
        "not-yet",
        "exactly-due",
        "same-slot-not-twice",
        "missed-slots-run-once",
        "alias",
        "timezone-dst",
    ],
)
def test_due_slots(fields: dict[str, Any], after: str, now: str, expected: str | None) -> None:
    slot = _dagplan.due(_schedule(**fields), _at(after), _at(now))
    assert (_dagplan.stamp(slot) if slot else None) == expected


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"cron": "30 2 * * *", "timezone": "Mars/Olympus"}, "unknown time zone"),
        ({"cron": "61 2 * * *"}, "cannot be scheduled"),
    ],
    ids=["timezone", "cron"],
)
def test_bad_schedules_are_dag_errors(fields: dict[str, Any], message: str) -> None:
    with pytest.raises(_dagplan.DagError, match=message):
        _dagplan.next_slot(_schedule(**fields), _at("2024-01-10T00:00"))


@pytest.mark.effect("DAG", "spec.steps[].retry.backoff", "spec.steps[].retry.maxBackoff")
def test_backoff_doubles_up_to_its_cap() -> None:
    retry = Step.model_validate(
        _step("a", "p", retry={"limit": 5, "backoff": "1s", "maxBackoff": "5s"})
    ).retry
    assert [_dagplan.backoff(retry, n) for n in range(1, 5)] == [1.0, 2.0, 4.0, 5.0]


@pytest.mark.effect("DAG", "spec.steps[].project.parameters.*")
def test_a_step_parameter_its_entry_point_does_not_declare_fails_the_step(
    plane: tuple[LocalEnv, str],
) -> None:
    """``validate`` refuses it; a command that carries one anyway fails the step with the
    name, never runs the project without it (MLflow would pass it on, unread)."""
    env, commit = plane
    spec = {"steps": [_step("produce", "dag-produce", {"nmaes": "a.txt"})]}
    status = dags.apply(_command("typo", spec), _context(env, commit), env)
    assert status.phase == "Failed"
    assert "step produce: entry point 'main' declares no 'nmaes'" in status.message
    children = _children(_runs(env, "typo"))
    assert children == {}  # no project ran


@pytest.mark.effect("DAG", "spec.steps[].project.envManager")
def test_a_step_whose_env_manager_the_plane_lacks_blocks_the_dag(
    plane: tuple[LocalEnv, str],
) -> None:
    env, commit = plane
    env = dataclasses.replace(env, env_managers=frozenset({"local", "uv"}))  # no conda found
    produce = _step("produce", "dag-produce")
    produce["project"]["envManager"] = "conda"
    status = dags.apply(_command("pinned", {"steps": [produce]}), _context(env, commit), env)
    assert status.phase == "Blocked"
    assert status.message == (
        "projects/dag-produce: envManager 'conda' is not available on this plane (it has: "
        "local, uv); no conda executable was found (MLFLOW_CONDA_HOME, CONDA_EXE or conda on PATH)"
    )
    assert _runs(env, "pinned") == []  # no parent run, no step


@pytest.mark.effect("DAG", "spec.tracking.experiment")
def test_runs_are_logged_in_the_tracking_experiment(plane: tuple[LocalEnv, str]) -> None:
    env, commit = plane
    spec = {
        "timeout": "1ms",  # the parent run is enough: no step needs to start
        "tracking": {"experiment": "shared/batch"},
        "steps": [_step("produce", "dag-produce")],
    }
    status = dags.apply(_command("logged", spec), _context(env, commit), env)
    assert status.observed["experiment"] == "shared/batch"
    (parent,) = _runs(env, "shared/batch")
    assert parent.info.run_id == status.observed["lastRun"]
    assert _runs(env, "logged") == []


@pytest.mark.effect(
    "DAG",
    "spec.steps[].project.entryPoint",
    "spec.steps[].resources.memory",
    "spec.steps[].resources.cpu",
)
@pytest.mark.slow
def test_a_step_runs_its_entry_point_within_its_resources(plane: tuple[LocalEnv, str]) -> None:
    env, commit = plane
    probe = _step("probe", "dag-produce", resources={"memory": "2Gi", "cpu": "1"})
    probe["project"]["entryPoint"] = "limits"  # writes limits.txt; main writes one.txt
    status = dags.apply(_command("held", {"steps": [probe]}), _context(env, commit), env)
    assert status.phase == "Ready", status.message
    run = _children(_runs(env, "held"))["probe"]
    assert _artifact(env, run.info.run_id, "limits.txt") == f"{2 * 1024**3} 1\n"


@pytest.mark.effect("DAG", "spec.steps[].resources.gpu")
def test_a_step_asking_for_a_gpu_blocks_the_dag_and_nothing_runs(
    plane: tuple[LocalEnv, str],
) -> None:
    env, commit = plane
    steps = [_step("produce", "dag-produce"), _step("train", "dag-produce", resources={"gpu": 1})]
    status = dags.apply(_command("gpu", {"steps": steps}), _context(env, commit), env)
    assert status.phase == "Blocked"
    assert "DAG/gpu step train: resources.gpu 1: the local runtime schedules no GPUs" in (
        status.message
    )
    assert _runs(env, "gpu") == []  # no parent run, no step
