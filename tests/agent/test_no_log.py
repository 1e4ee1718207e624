"""An agent for a plane that has no command log: a plane the specs do not declare (a
mistyped ``plane``) is said, exit 1, and nothing is pushed; a declared plane the
reconciler has not served yet reports (the reconciler plans with its capabilities)."""

from __future__ import annotations

from pathlib import Path

import pytest

from cli import clock as cli_clock
from ledger import keys
from tests.cli import invoke
from tests.conftest import git
from tests.reconciler.conftest import NOW, World, world  # noqa: F401 - the fixture


def _config(world: World, plane: str) -> Path:  # noqa: F811
    key = world.root / "agent" / f"{plane}.key"
    world.agent_keys.get(plane, keys.FileSigner.generate()).save(key)
    config = world.root / "agent" / "agent.yaml"
    config.write_text(
        f"plane: {plane}\nrepo: {world.remote}\nrootFile: {world.keys_dir / 'root.json'}\n"
        f"keyFile: {key}\nstateDir: state\n"
    )
    return config


def _status_branches(world: World) -> str:  # noqa: F811
    bare = Path(world.remote.removeprefix("file://"))
    return git(bare, "for-each-ref", "--format=%(refname)", "refs/heads/gitplane/status/")


@pytest.mark.parametrize(
    ("plane", "code", "pushed"),
    [("no-such-plane", 1, ""), ("local-dev", 0, "refs/heads/gitplane/status/local-dev")],
    ids=["undeclared", "declared"],
)
def test_an_agent_for_a_plane_without_a_log(
    world: World,  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
    plane: str,
    code: int,
    pushed: str,
) -> None:
    monkeypatch.setattr(cli_clock, "now", lambda: NOW)
    done = invoke.gitplane(["agent", "run", "--config", str(_config(world, plane)), "--once"])
    assert done.code == code, done.stderr
    assert "Traceback" not in done.stderr
    said = f"no command log for plane {plane!r} and no DataPlane {plane!r} in the specs on main"
    assert (said in done.stderr) == (code == 1)
    assert _status_branches(world) == pushed
