"""An agent for a plane that has no command log: a plane the specs do not declare (a
mistyped ``plane``) is said, exit 1, and nothing is pushed; a declared plane the
reconciler has not served yet reports (the reconciler plans with its capabilities). A
``branch`` the repository does not have is said too."""

from __future__ import annotations

from pathlib import Path

import pytest

from cli import clock as cli_clock
from ledger import keys
from reconciler import reconcile as reconciling
from tests.cli import invoke
from tests.conftest import git
from tests.reconciler.conftest import NOW, World, world  # noqa: F401 - the fixture


def _config(world: World, plane: str, extra: str) -> Path:  # noqa: F811
    key = world.root / "agent" / f"{plane}.key"
    world.agent_keys.get(plane, keys.FileSigner.generate()).save(key)
    config = world.root / "agent" / "agent.yaml"
    config.write_text(
        f"plane: {plane}\nrepo: {world.remote}\nrootFile: {world.keys_dir / 'root.json'}\n"
        f"keyFile: {key}\nstateDir: state\n{extra}"
    )
    return config


def _status_branches(world: World) -> str:  # noqa: F811
    bare = Path(world.remote.removeprefix("file://"))
    return git(bare, "for-each-ref", "--format=%(refname)", "refs/heads/gitplane/status/")


NO_LOG = "no command log for plane 'no-such-plane' and no DataPlane 'no-such-plane' in the specs"


@pytest.mark.parametrize(
    "case",
    [
        ("no-such-plane", "", 1, NO_LOG, ""),
        ("local-dev", "", 0, "", "refs/heads/gitplane/status/local-dev"),
        ("local-dev", "branch: nope\n", 1, "has no branch nope: check the agent", ""),
    ],
    ids=["undeclared", "declared", "no-such-branch"],
)
def test_an_agent_for_a_plane_without_a_log(
    world: World,  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
    case: tuple[str, str, int, str, str],
) -> None:
    plane, extra, code, says, pushed = case  # the agent's plane and more config; what it does
    monkeypatch.setattr(cli_clock, "now", lambda: NOW)
    config = _config(world, plane, extra)
    done = invoke.gitplane(["agent", "run", "--config", str(config), "--once"])
    assert done.code == code, done.stderr
    assert "Traceback" not in done.stderr
    assert says in done.stderr and (says != "") == (code == 1)
    assert _status_branches(world) == pushed


def test_an_agent_signs_its_status_through_a_key_uri(
    world: World,  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """``keyUri`` (a key service; here securesystemslib's ``file2:``, which works offline)
    with the key's ``publicKey``: the status it signs verifies under the DataPlane's
    agentKey. A URI whose key is not that public key is refused at start, nothing pushed."""
    monkeypatch.setattr(cli_clock, "now", lambda: NOW)
    reconciling.Reconciler(world.settings()).reconcile(NOW)
    held = world.root / "kms" / "local-dev.pem"
    held.parent.mkdir()
    world.agent_keys["local-dev"].save(held)
    public = world.agent_keys["local-dev"].public_key.hex
    other = keys.FileSigner.generate().public_key.hex
    config = world.root / "agent.yaml"
    base = f"plane: local-dev\nrepo: {world.remote}\nrootFile: {world.keys_dir / 'root.json'}\n"
    config.write_text(f"{base}keyUri: file2:{held}\npublicKey: {other}\nstateDir: s1\n")
    refused = invoke.gitplane(["agent", "run", "--config", str(config), "--once"])
    assert refused.code == 2, refused.stderr
    assert "cannot sign status through keyUri file2:...: " in refused.stderr
    assert _status_branches(world) == ""
    config.write_text(f"{base}keyUri: file2:{held}\npublicKey: {public}\nstateDir: s2\n")
    done = invoke.gitplane(["agent", "run", "--config", str(config), "--once"])
    assert done.code == 0, done.stderr
    cycle = reconciling.Reconciler(world.settings("again")).reconcile(NOW)
    assert "local-dev" not in cycle.flags, cycle.flags  # its status verified


@pytest.mark.parametrize(
    ("keys_given", "says"),
    [
        ("", "give keyFile, or keyUri with publicKey (one of them)"),
        ("keyFile: k.pem\nkeyUri: file2:k.pem\npublicKey: " + "a" * 64 + "\n",
         "give keyFile, or keyUri with publicKey (one of them)"),
        ("keyUri: file2:k.pem\n", "keyUri and publicKey go together"),
    ],
    ids=["neither", "both", "no-public-key"],
)  # fmt: skip
def test_an_agent_has_one_way_to_sign(tmp_path: Path, keys_given: str, says: str) -> None:
    config = tmp_path / "agent.yaml"
    config.write_text(f"plane: dev\nrepo: x\nrootFile: r.json\nstateDir: s\n{keys_given}")
    done = invoke.gitplane(["agent", "run", "--config", str(config), "--once"])
    assert done.code == 2 and says in done.stderr, done.stderr
