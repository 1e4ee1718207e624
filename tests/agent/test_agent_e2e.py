"""The agent end to end: real reconciler, real git remote, real MLflow, real process."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest

from agent.runtimes.local import serving
from ledger import errors, layout
from ledger import reader as log_reader
from reconciler import reconcile as reconciling
from reconciler.plan import PlanePlan
from reconciler.recorded import RecordedPlane
from tests import clock
from tests.agent.serving_world import predict
from tests.conftest import EXAMPLE_REPO, LOG_TIME, git
from tests.reconciler.conftest import World, world  # noqa: F401 - the fixture


def _configure(world: World, plane: str = "local-dev", ports: str = "31400-31499") -> Path:  # noqa: F811
    key = world.root / "agent" / f"{plane}.key"
    world.agent_keys[plane].save(key)
    config = world.root / "agent" / "agent.yaml"
    config.write_text(
        f"plane: {plane}\nrepo: {world.remote}\nrootFile: {world.keys_dir / 'root.json'}\n"
        f"keyFile: {key}\nstateDir: state\nruntime: {{type: local, ports: {ports}}}\n"
    )
    return config


def _agent(
    gitplane_bin: str, config: Path, running: clock.Running
) -> subprocess.CompletedProcess[str]:
    """One cycle of the agent, on the test's clock; it logs JSON."""
    return subprocess.run(
        [gitplane_bin, "agent", "run", "--config", str(config), "--once", "--log-format", "json"],
        capture_output=True,
        text=True,
        check=False,
        timeout=600,
        env=running.env(),
    )


def _logged(done: subprocess.CompletedProcess[str]) -> list[dict[str, object]]:
    """Every stderr line of an agent run: each a JSON log record with its time."""
    lines = [json.loads(line) for line in done.stderr.splitlines()]
    assert all(LOG_TIME.fullmatch(str(line["time"])) for line in lines), done.stderr[-3000:]
    return lines


def _registry(state: Path) -> list[object]:
    from mlflow import MlflowClient  # noqa: PLC0415 - the test reads the agent's real store

    client = MlflowClient(tracking_uri=f"sqlite:///{state / 'mlflow.db'}")
    return list(client.search_model_versions("name = 'churn'"))


@pytest.mark.slow
def test_the_local_plane_converges_end_to_end(
    gitplane_bin: str,
    world: World,  # noqa: F811
    running: clock.Running,
) -> None:
    """Reconcile and run the agent until the plan is empty: the model built, scanned and
    registered, the features computed, the endpoint serving, the DAG scheduled."""
    config = _configure(world, ports="31500-31599")
    state = config.parent / "state"
    (state / "data" / "data").mkdir(parents=True)
    shutil.copy(EXAMPLE_REPO / "sample-data" / "events.csv", state / "data" / "data")
    reconciler = reconciling.Reconciler(world.settings())
    logged: list[dict[str, object]] = []
    try:
        local = _converge(reconciler, gitplane_bin, config, running, logged)
        assert local.actions == ()
        build = [line for line in logged if str(line["msg"]).endswith(" Model/churn")]
        assert build[0]["msg"] == "applying Model/churn"  # on stderr of `agent run --once`
        assert (build[-1]["msg"], build[-1]["phase"]) == ("finished applying Model/churn", "Ready")

        (version,) = _registry(state)
        tags = version.tags  # type: ignore[attr-defined]
        assert tags["gitplane.source_commit"] == git(world.work, "rev-parse", "HEAD")
        assert tags["gitplane.scan"] == "passed"
        assert tags["gitplane.artifact_digest"].startswith("sha256:")
        build = reconciler.log.read("local-dev").bundles[0].commands[0]
        assert (build.kind, tags["gitplane.spec_digest"]) == ("Model", build.digest)

        recorded = _recorded(reconciler, running)
        model = recorded.observed[("Model", "churn")]
        assert (model.phase, model.observed["registryVersion"]) == ("Ready", 1)
        assert model.observed["artifactDigest"] == tags["gitplane.artifact_digest"]
        assert recorded.observed[("FeatureSet", "customer-activity")].phase == "Ready"
        assert recorded.observed[("DAG", "churn-batch")].observed["nextRun"]
        endpoint = recorded.observed[("Deployment", "churn-dev")]
        assert (endpoint.phase, endpoint.observed["servedVersion"]) == ("Ready", "1.2.0")
        assert len(predict(str(endpoint.observed["url"]), [ROW])) == 1

        reports = _status_commits(world)
        assert _agent(gitplane_bin, config, running).returncode == 0
        assert len(_registry(state)) == 1  # nothing built or registered twice
        assert _status_commits(world) == reports  # idle: no status commit
    finally:
        serving.stop_all(state)


ROW = {
    "tenure_months": 3.0,
    "monthly_spend": 80.0,
    "support_tickets": 4.0,
    "events_7d": 2.0,
    "spend_7d": 5.0,
}


def _converge(
    reconciler: reconciling.Reconciler,
    gitplane_bin: str,
    config: Path,
    running: clock.Running,
    logged: list[dict[str, object]],
) -> PlanePlan:
    """Alternate reconcile and agent cycles until local-dev's plan is empty (or give up);
    what the agent runs logged is added to ``logged``."""
    for _ in range(6):
        cycle = reconciler.reconcile(running())
        assert cycle.plan is not None
        local = next(p for p in cycle.plan.planes if p.plane == "local-dev")
        if not local.actions:
            return local
        done = _agent(gitplane_bin, config, running)
        assert done.returncode == 0, done.stderr[-3000:]
        logged += _logged(done)
    return local


def _recorded(reconciler: reconciling.Reconciler, running: clock.Running) -> RecordedPlane:
    plane = next(d for d in reconciler.specs_documents() if d.name == "local-dev")
    recorded, read = reconciler.recorded.read(plane, running())  # type: ignore[arg-type]
    assert read.error is None
    return recorded


def _status_commits(world: World) -> str:  # noqa: F811
    bare = Path(world.remote.removeprefix("file://"))
    return git(bare, "rev-list", "--count", layout.status_ref("local-dev"))


def test_a_rolled_back_log_is_refused_and_reported(
    gitplane_bin: str,
    world: World,  # noqa: F811
    running: clock.Running,
) -> None:
    reconciler = reconciling.Reconciler(world.settings())
    reconciler.reconcile(running())
    bare = Path(world.remote.removeprefix("file://"))
    old = git(bare, "rev-parse", layout.commands_ref("local-dev"))
    # a second append, then a force-push back to the first: a rollback after the agent saw it
    config = _configure(world)
    (config.parent / "state").mkdir(parents=True)
    world.change(
        "ttl",
        lambda w: (w / "features/customer-activity.yaml").write_text(
            (w / "features/customer-activity.yaml").read_text().replace("ttl: 2d", "ttl: 3d")
        ),
    )
    reconciler.reconcile(running())
    assert _agent_verifies_only(config, world, running)
    git(bare, "update-ref", layout.commands_ref("local-dev"), old)
    done = _agent(gitplane_bin, config, running)
    assert done.returncode == 1
    plane = next(d for d in reconciler.specs_documents() if d.name == "local-dev")
    with pytest.raises(errors.RollbackError):  # the reconciler that issued #2 refuses too
        reconciler.recorded.read(plane, running())  # type: ignore[arg-type]
    fresh = reconciling.Reconciler(world.settings("fresh"))  # one that never saw #2
    recorded, read = fresh.recorded.read(plane, running())  # type: ignore[arg-type]
    assert read.status is not None and read.status.error is not None
    assert read.status.error.code == "rollback"  # the agent's signed alarm
    assert recorded.flag is not None and "rollback" in recorded.flag


def _agent_verifies_only(config: Path, world: World, running: clock.Running) -> bool:  # noqa: F811
    """Let the agent see bundle 2 without building (the model build is bundle 1)."""
    from ledger import gitrepo  # noqa: PLC0415

    mirror = gitrepo.Mirror.open(config.parent / "state" / "mirror.git", world.remote)
    reader = log_reader.CommandReader(
        mirror,
        "local-dev",
        config.parent / "state" / "trust.json",
        (world.keys_dir / "root.json").read_bytes(),
    )
    return len(reader.update(running())) == 2


def test_an_unreachable_git_server_changes_nothing(
    gitplane_bin: str,
    world: World,  # noqa: F811
    running: clock.Running,
) -> None:
    config = _configure(world)
    text = config.read_text().replace(world.remote, "git://127.0.0.1:9/nothing.git")
    config.write_text(text)
    done = _agent(gitplane_bin, config, running)
    assert done.returncode == 1
    (line,) = [json.loads(line) for line in done.stderr.splitlines()]  # the cycle's, as JSON
    assert LOG_TIME.fullmatch(line["time"])
    assert (line["level"], line["logger"], line["msg"]) == (
        "warning",
        "gitplane.agent",
        "cycle done",
    )
    assert line["unreachable"].startswith("git ls-remote")


@pytest.mark.slow
def test_killing_the_agent_mid_build_never_registers_twice(
    gitplane_bin: str,
    world: World,  # noqa: F811
    running: clock.Running,
) -> None:
    reconciling.Reconciler(world.settings()).reconcile(running())
    config = _configure(world)
    state = config.parent / "state"
    process = subprocess.Popen(
        [gitplane_bin, "agent", "run", "--config", str(config), "--once"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
        env=running.env(),
    )
    deadline = time.monotonic() + 120
    while not (state / "journal.json").exists() and time.monotonic() < deadline:
        time.sleep(0.05)  # the journal appears when the build command is marked started
    time.sleep(2.0)  # well inside the MLflow run
    os.killpg(process.pid, signal.SIGKILL)
    process.wait(timeout=30)
    assert '"started"' in (state / "journal.json").read_text()
    assert _agent(gitplane_bin, config, running).returncode == 0
    assert len(_registry(state)) == 1
    assert '"applied"' in (state / "journal.json").read_text()
