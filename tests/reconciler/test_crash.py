"""A reconciler killed at any point and restarted never duplicates or forks a log."""

from __future__ import annotations

import random
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest

from reconciler import reconcile as reconciling
from tests import clock
from tests.reconciler.conftest import NOW, World

RUNS = 50


def _start(gitplane_bin: str, world: World) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [
            gitplane_bin,
            "reconcile",
            "--repo",
            world.remote,
            "--keys",
            str(world.keys_dir),
            "--work-dir",
            str(world.root / "killed"),
            "--once",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        env=clock.env_at(NOW),  # the world's keys were made at NOW: its clock, not today's
    )


@pytest.mark.slow
def test_killing_the_reconciler_at_random_points(gitplane_bin: str, world: World) -> None:
    rng = random.Random(7)  # reproducible kill points spread over a whole cycle
    cycle = _one_cycle_seconds(gitplane_bin, world)  # on this machine, under its current load
    finished = 0
    for _ in range(RUNS):
        process = _start(gitplane_bin, world)
        time.sleep(rng.uniform(0.0, 1.3 * cycle))
        killed = process.poll() is None
        if killed:
            process.send_signal(signal.SIGKILL)
        _, stderr = process.communicate(timeout=30)
        if not killed:
            finished += 1
            assert process.returncode == 0, stderr.decode()
    last = _start(gitplane_bin, world)
    _, stderr = last.communicate(timeout=120)
    assert last.returncode == 0, stderr.decode()
    view = reconciling.Reconciler(world.settings("inspector")).log.read("local-dev")
    assert [b.sequence for b in view.bundles] == [1]  # issued once, never again, never forked
    assert [c.name for c in view.bundles[0].commands] == ["churn", "customer-activity"]
    assert finished < RUNS, "kill points must fall inside a cycle"
    assert Path(world.root / "killed").is_dir()


def _one_cycle_seconds(gitplane_bin: str, world: World) -> float:
    """How long one whole cycle takes here, under the machine's current load: run against a
    copy of the remote, so the real log stays empty for the kills."""
    copy = world.root / "timing.git"
    shutil.copytree(Path(world.remote.removeprefix("file://")), copy)
    started = time.monotonic()
    process = subprocess.Popen(
        [gitplane_bin, "reconcile", "--repo", f"file://{copy}", "--keys", str(world.keys_dir),
         "--work-dir", str(world.root / "timing"), "--once"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        env=clock.env_at(NOW),  # the world's keys were made at NOW: its clock, not today's
    )  # fmt: skip
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == 0, stderr.decode()
    return time.monotonic() - started
