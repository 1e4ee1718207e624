"""``gitplane agent run`` as a daemon: woken by a push, observing, metrics, SIGTERM."""

from __future__ import annotations

import base64
import json
import os
import shutil
import signal
import socket
import subprocess
import time
import urllib.request
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from agent.agent import Agent
from agent.config import load_config
from agent.runtimes.local import env, serving
from agent.runtimes.local.serving import replicas
from ledger import layout
from reconciler import reconcile as reconciling
from tests import clock
from tests.conftest import FIXTURES
from tests.reconciler.conftest import NOW, World, world  # noqa: F401 - the fixture


def _jobs_only(work: Path) -> None:
    """Keep the feature set and the DAG (no model build, no endpoint)."""
    shutil.rmtree(work / "models")
    shutil.rmtree(work / "deployments")


def _status_count(world: World) -> int:  # noqa: F811
    bare = Path(world.remote.removeprefix("file://"))
    done = subprocess.run(
        ["git", "-C", str(bare), "rev-list", "--count", layout.status_ref("local-dev")],
        capture_output=True,
        text=True,
        check=False,
    )
    return int(done.stdout) if done.returncode == 0 else 0


def _agent_config(world: World, settings: str) -> Path:  # noqa: F811
    """local-dev's agent configuration (its key saved beside it), with ``settings`` added."""
    key = world.root / "agent" / "local-dev.key"
    world.agent_keys["local-dev"].save(key)
    config = world.root / "agent" / "agent.yaml"
    config.write_text(
        f"plane: local-dev\nrepo: {world.remote}\nrootFile: {world.keys_dir / 'root.json'}\n"
        f"keyFile: {key}\nstateDir: state\n{settings}"
    )
    return config


def _daemon(
    gitplane_bin: str, config: Path, port: int, running: clock.Running
) -> subprocess.Popen[bytes]:
    """``gitplane agent run`` on the test's clock until SIGTERM, serving metrics on ``port``;
    stderr piped, one JSON object a line."""
    command = [gitplane_bin, "agent", "run", "--config", str(config), "--log-format", "json"]
    return subprocess.Popen(
        [*command, "--listen", f"127.0.0.1:{port}"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        env=running.env(),
    )


def test_the_daemon_wakes_on_a_push_serves_metrics_and_stops(
    gitplane_bin: str,
    world: World,  # noqa: F811
    running: clock.Running,
) -> None:
    world.change("jobs only", _jobs_only)
    config = _agent_config(world, "pollInterval: 10m\n")
    port = replicas.free_port()
    daemon = _daemon(gitplane_bin, config, port, running)
    try:
        _wait(lambda: _status_count(world) == 1, "the first report")
        reconciling.Reconciler(world.settings()).reconcile(running())
        pushed = time.monotonic()
        _wait(lambda: _status_count(world) == 2, "the report after the push")
        assert time.monotonic() - pushed < 60  # woken by the push, not the 10-minute poll
        # the DAG waits for its feature set, which has no source data here; the cycle is
        # counted once it returns, just after its status commit
        applied = b'gitplane_agent_commands_applied_total{kind="FeatureSet"} 1.0'
        _wait(lambda: applied in _metrics(port), "the cycle counted in the metrics")
        assert b"gitplane_agent_git_unreachable 0.0" in _metrics(port)
    finally:
        daemon.send_signal(signal.SIGTERM)
        _, stderr = daemon.communicate(timeout=60)
    assert daemon.returncode == 0, stderr[-2000:]
    assert b'"applied": ["FeatureSet/customer-activity"]' in stderr
    report = _newest_report(world)
    assert report is not None and report["capabilities"] == {
        "env_managers": sorted(env.detect_env_managers(os.environ)),  # found, not declared
        "enforces_resources": True,
    }  # what the reconciler may send this plane
    assert {"local", "uv"} <= set(report["capabilities"]["env_managers"])  # uv: installed
    failed = [
        json.loads(line)
        for line in stderr.decode().splitlines()
        if '"msg": "failed FeatureSet/customer-activity"' in line
    ]
    assert len(failed) == 1, stderr[-2000:]  # logged once, not on every observation
    assert failed[0]["cause"].startswith("source not found: ")
    assert b"Traceback" not in stderr


def _metrics(port: int) -> bytes:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as reply:
        body: bytes = reply.read()
    return body


def _wait(check: object, what: str, timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():  # type: ignore[operator]
            return
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def test_a_busy_listen_port_is_a_usage_error_not_a_crash(
    gitplane_bin: str,
    world: World,  # noqa: F811
) -> None:
    config = _agent_config(world, "")
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        for command in (
            ["agent", "run", "--config", str(config)],
            ["reconcile", "--repo", world.remote, "--keys", str(world.keys_dir), "--watch",
             "--work-dir", str(world.root / "r")],
        ):  # fmt: skip
            done = subprocess.run(
                [gitplane_bin, *command, "--listen", f"127.0.0.1:{port}"],
                capture_output=True,
                text=True,
                check=False,
                timeout=60,
            )
            assert done.returncode == 2, done.stderr
            assert f"--listen 127.0.0.1:{port}: Address already in use" in done.stderr
            assert "Traceback" not in done.stderr


def _newest_report(world: World) -> dict[str, Any] | None:  # noqa: F811
    """The plane's newest status report, decoded (unverified: a probe)."""
    bare = Path(world.remote.removeprefix("file://"))
    shown = subprocess.run(
        ["git", "-C", str(bare), "show", f"{layout.status_ref('local-dev')}:{layout.STATUS}"],
        capture_output=True,
        check=False,
    )
    if shown.returncode != 0:
        return None
    report: dict[str, Any] = json.loads(base64.b64decode(json.loads(shown.stdout)["payload"]))
    return report


def _reported(world: World, kind: str, name: str) -> str | None:  # noqa: F811
    """The phase the plane's newest status report gives ``kind/name``."""
    found = _reported_digest(world, kind, name)
    return found[0] if found else None


def _processes_under(path: Path) -> list[str]:
    """Command lines of live processes that name ``path`` (the agent's project runs do)."""
    found = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            text = cmdline.read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if str(path) in text:
            found.append(text)
    return found


@pytest.mark.slow
def test_the_daemon_reports_a_build_in_progress_and_a_stop_abandons_it(
    gitplane_bin: str,
    world: World,  # noqa: F811
    running: clock.Running,
) -> None:
    """A model build runs beside the loop: reported Progressing while it runs, a SIGTERM stops
    it at once (its project run killed), and the next start builds it, once."""
    reconciling.Reconciler(world.settings()).reconcile(running())  # the build comes first
    config = _agent_config(world, "runtime: {type: local, ports: 31600-31699}\n")
    state = config.parent / "state"
    port = replicas.free_port()
    daemon = _daemon(gitplane_bin, config, port, running)
    try:
        _wait(lambda: _reported(world, "Model", "churn") == "Progressing", "a Progressing report")
        _wait(lambda: b"gitplane_agent_apply_in_progress 1.0" in _metrics(port), "the gauge")
        _wait(lambda: _processes_under(state / "scratch"), "the project run")
    finally:
        daemon.send_signal(signal.SIGTERM)
        stopping = time.monotonic()
        _, stderr = daemon.communicate(timeout=60)
    assert time.monotonic() - stopping < 20  # not after the build
    assert daemon.returncode == 0, stderr[-2000:]
    assert b'"abandoned": "Model/churn"' in stderr
    assert b"Traceback" not in stderr
    assert _processes_under(state / "scratch") == []  # nothing left running behind it
    assert '"started"' in (state / "journal.json").read_text()
    once = subprocess.run(
        [gitplane_bin, "agent", "run", "--config", str(config), "--once"],
        capture_output=True,
        text=True,
        check=False,
        timeout=600,
        env=running.env(),
    )
    try:
        assert once.returncode == 0, once.stderr[-3000:]
        assert _reported(world, "Model", "churn") == "Ready"
    finally:
        serving.stop_all(state)


def _reported_digest(world: World, kind: str, name: str) -> tuple[str, str] | None:  # noqa: F811
    """(phase, digest) the newest status report gives ``kind/name`` (unverified: a probe)."""
    report = _newest_report(world)
    found = [
        (r["phase"], r.get("digest", ""))
        for r in (report or {}).get("resources", [])
        if (r["kind"], r["name"]) == (kind, name)
    ]
    return found[0] if found else None


@pytest.mark.slow
def test_a_newer_command_supersedes_a_build_in_progress(
    gitplane_bin: str,
    world: World,  # noqa: F811
    running: clock.Running,
) -> None:
    """A fix pushed while a build runs is built at once: the old build is cancelled and
    recorded failed, and only the new one is registered."""
    reconciler = reconciling.Reconciler(world.settings())
    reconciler.reconcile(running())
    config = _agent_config(world, "runtime: {type: local, ports: 31700-31799}\n")
    state = config.parent / "state"
    daemon = _daemon(gitplane_bin, config, replicas.free_port(), running)
    try:
        _wait(lambda: _processes_under(state / "scratch"), "the first build's project run")

        def retrain(work: Path) -> None:
            path = work / "models" / "churn.yaml"
            path.write_text(path.read_text().replace("seed: 7", "seed: 8"))

        world.change("retrain churn with another seed", retrain)
        reconciler.reconcile(running())
        bundles = reconciler.log.read("local-dev").bundles
        assert len(bundles) == 2
        rebuild = bundles[1].commands[0]
        assert (rebuild.kind, rebuild.name, rebuild.action) == ("Model", "churn", "build")
        _wait(
            lambda: _reported_digest(world, "Model", "churn") == ("Ready", rebuild.digest),
            "the newer build, Ready",
            timeout=300,
        )
    finally:
        daemon.send_signal(signal.SIGTERM)
        _, stderr = daemon.communicate(timeout=60)
        serving.stop_all(state)
    assert daemon.returncode == 0, stderr[-2000:]
    journal = json.loads((state / "journal.json").read_text())
    assert journal["steps"]["1:" + _first_build_id(reconciler, running())] == "failed"
    assert b"Traceback" not in stderr
    from mlflow import MlflowClient  # noqa: PLC0415 - the test reads the agent's real store

    client = MlflowClient(tracking_uri=f"sqlite:///{state / 'mlflow.db'}")
    versions = client.search_model_versions("name = 'churn'")
    assert [v.tags["gitplane.spec_digest"] for v in versions] == [rebuild.digest]


def _first_build_id(reconciler: reconciling.Reconciler, now: datetime) -> str:
    first = reconciler.log.read("local-dev").bundles[0].commands[0]
    assert (first.kind, first.name) == ("Model", "churn")
    return first.id


SLEEPY = """\
apiVersion: gitplane.dev/v1alpha1
kind: DAG
metadata: {name: sleepy}
spec:
  planeSelector: {matchLabels: {env: dev}}
  steps:
    - name: nap
      project: {path: projects/dag-sleep, parameters: {seconds: 20, pid_file: PID_FILE}}
  schedule: {cron: "0 0 * * *"}
"""


@pytest.mark.slow
def test_a_scheduled_run_goes_on_beside_the_loop(
    world: World,  # noqa: F811
    running: clock.Running,
) -> None:
    """A DAG run that fell due runs on the jobs thread: observing and cycling return at
    once while it runs, and its result is recorded when it ends."""
    pid_file = world.root / "nap.pid"

    def sleepy_dag(work: Path) -> None:
        _jobs_only(work)
        (work / "dags" / "churn-batch.yaml").unlink()  # only the nap runs
        shutil.copytree(FIXTURES / "projects" / "dag-sleep", work / "projects" / "dag-sleep")
        (work / "dags" / "sleepy.yaml").write_text(SLEEPY.replace("PID_FILE", str(pid_file)))

    world.change("a DAG that naps", sleepy_dag)
    reconciling.Reconciler(world.settings()).reconcile(running())
    worker = Agent(load_config(_agent_config(world, "")))
    now = running()
    try:
        assert worker.run_once(now).applied  # registered: nothing has run yet
        assert not pid_file.exists()
        due = now + timedelta(days=2)  # past a midnight: the nap is due
        started = time.monotonic()
        worker.observe_only(due)
        worker.run_once(due, wait=False)
        assert time.monotonic() - started < 15  # neither waited for the 20 s nap
        _wait(pid_file.exists, "the nap to start", timeout=120)
        _wait(lambda: _last_run(worker, due) == "Succeeded", "the nap recorded", timeout=180)
    finally:
        worker.abandon()


def _last_run(worker: Agent, now: datetime) -> object:
    worker.observe_only(now)
    return worker.journal.resources["DAG/sleepy"].observed.get("lastRunPhase")


def test_an_install_without_the_ml_extra_is_refused_at_start(
    gitplane_bin: str,
    world: World,  # noqa: F811
    tmp_path: Path,
) -> None:
    """It ran until its first feature set, then crashed with ``No module named 'pandas'``.
    The missing package is simulated (``sitecustomize`` puts None in ``sys.modules``, as
    Python does for a module that cannot be imported): this machine has the extra."""
    reconciling.Reconciler(world.settings()).reconcile(NOW)
    site = tmp_path / "site"
    site.mkdir()
    (site / "sitecustomize.py").write_text("import sys\nsys.modules['pandas'] = None\n")
    config = _agent_config(world, "")
    env = {**clock.env_at(NOW), "PYTHONPATH": str(site)}
    done = subprocess.run(
        [gitplane_bin, "agent", "run", "--config", str(config), "--once"],
        capture_output=True, text=True, check=False, env=env, timeout=120,
    )  # fmt: skip
    assert done.returncode == 2, done.stderr
    assert done.stderr.strip().splitlines() == [
        "error: the local runtime needs gitplane's ml extra (install gitplane from where you "
        "did, with [ml]: pip install '.[ml]' in a clone); missing: pandas"
    ]
    assert _status_count(world) == 0  # nothing was applied or reported
