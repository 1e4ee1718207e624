"""Notifications from real reconcile cycles over a real bare repository, to a real HTTP
receiver; and ``gitplane reconcile --notifications`` as a process."""

from __future__ import annotations

import os
import subprocess
import threading
from datetime import timedelta
from pathlib import Path

import pytest

from reconciler import notify
from reconciler import reconcile as reconciling
from reconciler import watch as watching
from reconciler.notify import config
from tests import clock
from tests.conftest import git
from tests.receiver import Receiver
from tests.reconciler.conftest import NOW, TestAgent, World

CONFIG = """\
apiVersion: gitplane.dev/v1alpha1
kind: Notifications
spec:
  targets:
    - type: webhook
      url: {url}/hook
      secretEnv: HOOK_SECRET
    - type: github
      apiUrl: {url}
      repository: acme/specs
      tokenEnv: GITHUB_TOKEN
      events: [issued, applied]
"""
SECRETS = {"HOOK_SECRET": "s3cret", "GITHUB_TOKEN": "ghp_token"}


def _notifier(
    world: World, receiver: Receiver, sender: notify.Sender | None = None
) -> notify.Notifier:
    path = world.root / "notify.yaml"
    path.write_text(CONFIG.format(url=receiver.url))
    destinations = config.resolve(config.load(path), path, SECRETS)
    return notify.Notifier(destinations, world.root / "reconciler", sender or notify.Sender())


def _cycle(
    reconciler: reconciling.Reconciler, notifier: notify.Notifier, at: timedelta
) -> list[tuple[str, str, str, str]]:
    cycle = reconciler.reconcile(NOW + at)
    found = notifier.observe(cycle, reconciler.recorded.folded)
    return [(e.event, e.plane, e.resource, e.commit) for e in found]


def test_cycles_tell_what_they_issued_and_what_planes_applied(
    world: World, receiver: Receiver
) -> None:
    reconciler = reconciling.Reconciler(world.settings())
    notifier = _notifier(world, receiver)
    spec = git(world.work, "rev-parse", "HEAD")
    assert _cycle(reconciler, notifier, timedelta()) == [("issued", "local-dev", "", spec)]
    assert notifier.close(timeout=10) == 0
    (hook,) = receiver.at("/hook")
    assert hook.json()["commit"] == spec and hook.json()["sequence"] == 1
    (status,) = receiver.at(f"/repos/acme/specs/statuses/{spec}")
    assert status.json()["state"] == "pending"
    assert status.json()["context"] == "gitplane/local-dev"

    TestAgent(world, "local-dev").sync()
    notifier = _notifier(world, receiver)  # a restart: what was told is not told again
    assert _cycle(reconciler, notifier, timedelta(minutes=1)) == [
        ("issued", "local-dev", "", spec),
        ("applied", "local-dev", "FeatureSet/customer-activity", spec),
        ("applied", "local-dev", "Model/churn", spec),
    ]  # prod-eu's blocked build was known from the first cycle
    assert _cycle(reconciler, notifier, timedelta(minutes=2)) == []
    assert notifier.close(timeout=10) == 0
    states = [r.json()["state"] for r in receiver.at(f"/repos/acme/specs/statuses/{spec}")]
    assert states == ["pending", "pending", "success", "success"]


def test_a_receiver_that_hangs_does_not_hold_up_the_cycle(world: World, receiver: Receiver) -> None:
    receiver.hold = threading.Event()
    outcomes: list[str] = []
    sender = notify.Sender(outcome=lambda _t, o: outcomes.append(o))  # 10 s per attempt
    notifier = _notifier(world, receiver, sender)
    reconciler = reconciling.Reconciler(world.settings())
    assert [e[0] for e in _cycle(reconciler, notifier, timedelta())] == ["issued"]
    assert receiver.arrived.wait(timeout=10)
    assert outcomes == []  # the cycle is over while the receiver holds the first request
    receiver.hold.set()
    assert notifier.close(timeout=30) == 0
    assert outcomes == ["delivered", "delivered"]


@pytest.mark.slow
def test_reconcile_once_delivers_before_it_exits(
    gitplane_bin: str, world: World, receiver: Receiver
) -> None:
    path = world.root / "notify.yaml"
    path.write_text(CONFIG.format(url=receiver.url))
    done = subprocess.run(
        [gitplane_bin, "reconcile", "--repo", world.remote, "--keys", str(world.keys_dir),
         "--work-dir", str(world.root / "cli"), "--once", "--notifications", str(path)],
        capture_output=True, text=True, check=False, timeout=120,
        env=clock.env_at(NOW, {**os.environ, **SECRETS}),
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert [r.json()["event"] for r in receiver.at("/hook")] == ["issued"]
    assert (world.root / "cli" / "notified.json").exists()


@pytest.mark.parametrize(
    ("edit", "env", "says"),
    [
        (("", ""), {"HOOK_SECRET": "x"}, "notify.yaml: spec.targets[1].tokenEnv: environment "
            "variable GITHUB_TOKEN is not set (or empty); export it before starting"),
        (("secretEnv", "secret"), SECRETS, "notify.yaml:7:7: spec.targets[0].secret: unknown "
            "field 'secret' (did you mean 'secretEnv'?)"),
    ],
    ids=["missing-secret", "bad-field"],
)  # fmt: skip
def test_reconcile_refuses_a_bad_notifications_setup_at_start(
    gitplane_bin: str, tmp_path: Path, edit: tuple[str, str], env: dict[str, str], says: str
) -> None:
    (tmp_path / "keys").mkdir()
    path = tmp_path / "notify.yaml"
    path.write_text(CONFIG.format(url="http://127.0.0.1:9").replace(*edit))
    clean = {k: v for k, v in os.environ.items() if k not in SECRETS}
    done = subprocess.run(
        [gitplane_bin, "reconcile", "--repo", f"file://{tmp_path}/none.git", "--keys",
         str(tmp_path / "keys"), "--work-dir", str(tmp_path / "work"), "--notifications",
         str(path)],
        capture_output=True, text=True, check=False, timeout=60, env={**clean, **env},
    )  # fmt: skip
    assert done.returncode == 2, done.stdout + done.stderr
    assert done.stderr == f"error: {tmp_path}/{says}\n"


def test_the_watch_loop_notifies_and_counts_deliveries(world: World, receiver: Receiver) -> None:
    path = world.root / "notify.yaml"
    path.write_text(CONFIG.format(url=receiver.url))
    destinations = config.resolve(config.load(path), path, SECRETS)
    reconciler = reconciling.Reconciler(world.settings())
    watcher = watching.Watcher(
        reconciler, watching.WatchSettings(), clock=lambda: NOW, destinations=destinations
    )
    loop = threading.Thread(target=watcher.run)
    loop.start()
    assert receiver.arrived.wait(timeout=30)
    watcher.stop.set()
    watcher.wake.set()
    loop.join(timeout=30)  # stopping drains what the cycle queued
    sample = watcher.metrics.registry.get_sample_value
    for target in ("webhook[0]", "github[1]"):
        labels = {"target": target, "outcome": "delivered"}
        assert sample("gitplane_notifications_total", labels) == 1.0
    assert len(receiver.requests) == 2
