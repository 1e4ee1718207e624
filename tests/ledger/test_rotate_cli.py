"""``gitplane keys rotate`` end to end: agents follow the new root from the one they pinned."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from ledger import layout
from reconciler import reconcile as reconciling
from tests import clock
from tests.conftest import git
from tests.reconciler.conftest import NOW, TestAgent, World, world  # noqa: F401 - the fixture


def _rotate(gitplane_bin: str, keys_dir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [gitplane_bin, "keys", "rotate", "--dir", str(keys_dir), *args],
        capture_output=True,
        text=True,
        check=False,
        env=clock.env_at(NOW),  # the clock the world's keys and logs were signed at
    )


def test_rotated_keys_are_followed_by_agents_pinned_to_the_old_root(
    gitplane_bin: str,
    world: World,  # noqa: F811
) -> None:
    reconciling.Reconciler(world.settings()).reconcile(NOW)
    agent = TestAgent(world, "local-dev")  # pins root v1 now
    assert len(agent.sync()) == 2

    done = _rotate(
        gitplane_bin, world.keys_dir, "--role", "commands", "--role", "root",
        "--root-keys", "2", "--threshold", "1",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "(version 2); new keys for: commands, root" in done.stdout
    retired = world.keys_dir / "reconciler" / "commands.key.retired-v1"
    assert retired.exists() and (world.keys_dir / "roots" / "root-v1.json").exists()
    assert len(list((world.keys_dir / "root" / "v2").glob("*.key"))) == 2

    world.change(
        "more replicas",
        lambda w: (w / "deployments/churn-dev.yaml").write_text(
            (w / "deployments/churn-dev.yaml")
            .read_text()
            .replace("maxReplicas: 4", "maxReplicas: 5")
        ),
    )
    cycle = reconciling.Reconciler(world.settings("restarted")).reconcile(NOW)  # new keys
    assert "local-dev" in cycle.issued
    received = agent.sync()
    assert "churn-dev" in [c.name for c in received]  # accepted under the new commands key
    bare = Path(world.remote.removeprefix("file://"))
    published = git(bare, "ls-tree", "-r", "--name-only", layout.ROOT_REF).split()
    assert layout.root_path(2) in published


def test_a_rotation_without_enough_root_keys_changes_nothing(
    gitplane_bin: str,
    world: World,  # noqa: F811
) -> None:
    before = (world.keys_dir / "root.json").read_bytes()
    shutil.rmtree(world.keys_dir / "root")  # offline, as they should be
    done = _rotate(gitplane_bin, world.keys_dir, "--role", "timestamp")
    assert done.returncode == 2
    assert "root v1 needs 2 of its root keys to sign its successor; found 0" in done.stderr
    assert (world.keys_dir / "root.json").read_bytes() == before
    assert (world.keys_dir / "reconciler" / "timestamp.key").exists()
