"""`gitplane keys init` and `gitplane keys agent`, as an operator runs them."""

from __future__ import annotations

import subprocess
from pathlib import Path

from ledger import keyring, keys, verify
from schemas import _yaml
from schemas.dataplane import AgentKey


def run(gitplane_bin: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([gitplane_bin, *args], capture_output=True, text=True, check=False)


def test_init_creates_a_k_of_n_root_and_online_keys(gitplane_bin: str, tmp_path: Path) -> None:
    done = run(
        gitplane_bin, "keys", "init", "--dir", str(tmp_path), "--root-keys", "5", "--threshold", "3"
    )
    assert done.returncode == 0, done.stderr
    root = verify.load_trusted_root((tmp_path / "root.json").read_bytes())
    assert (len(root.roles.root.keyids), root.roles.root.threshold) == (5, 3)
    private = sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*.key"))
    assert private == [
        "reconciler/commands.key",
        "reconciler/timestamp.key",
        *(f"root/root-{i}.key" for i in range(1, 6)),
    ]
    assert all(p.stat().st_mode & 0o777 == 0o600 for p in tmp_path.rglob("*.key"))
    assert (tmp_path / "root").stat().st_mode & 0o777 == 0o700
    commands_key, timestamp_key = keyring.load_reconciler_signers(tmp_path)
    assert root.roles.commands.keyids == [commands_key.public_key.keyid]
    assert root.roles.timestamp.keyids == [timestamp_key.public_key.keyid]


def test_init_refuses_bad_thresholds_and_existing_roots(gitplane_bin: str, tmp_path: Path) -> None:
    assert (
        run(
            gitplane_bin,
            "keys",
            "init",
            "--dir",
            str(tmp_path),
            "--root-keys",
            "2",
            "--threshold",
            "3",
        ).returncode
        == 2
    )
    assert run(gitplane_bin, "keys", "init", "--dir", str(tmp_path)).returncode == 0
    before = (tmp_path / "root.json").read_bytes()
    again = run(gitplane_bin, "keys", "init", "--dir", str(tmp_path))
    assert again.returncode == 2
    assert "already holds a root" in again.stderr
    assert (tmp_path / "root.json").read_bytes() == before


def test_agent_prints_the_snippet_for_the_dataplane_spec(gitplane_bin: str, tmp_path: Path) -> None:
    done = run(gitplane_bin, "keys", "agent", "--dir", str(tmp_path), "--plane", "local-dev")
    assert done.returncode == 0
    snippet = "\n".join(line for line in done.stdout.splitlines() if not line.startswith("#"))
    parsed, _ = _yaml.load(snippet.encode())
    agent_key = AgentKey.model_validate(parsed["agentKey"])
    saved = keys.FileSigner.load(tmp_path / "agents" / "local-dev.key")
    assert agent_key.public == saved.public_key.hex
    assert (
        run(
            gitplane_bin, "keys", "agent", "--dir", str(tmp_path), "--plane", "local-dev"
        ).returncode
        == 2
    )


def test_a_plane_name_is_a_name_never_a_path(gitplane_bin: str, tmp_path: Path) -> None:
    """``--plane ../../escaped`` wrote the private key outside ``--dir``; ``/abs/path``
    anywhere on disk. Every name that is not a DataPlane name is refused; nothing written."""
    keys_dir = tmp_path / "keys"
    for plane in ("../../escaped", str(tmp_path / "abs"), "", "Prod", "pläne", "a" * 64):
        done = run(gitplane_bin, "keys", "agent", "--dir", str(keys_dir), "--plane", plane)
        assert done.returncode == 2, (plane, done.stdout, done.stderr)
        assert "is not a DataPlane name" in done.stderr and "Traceback" not in done.stderr
    assert list(tmp_path.rglob("*.key")) == []
    ok = run(gitplane_bin, "keys", "agent", "--dir", str(keys_dir), "--plane", "edge-01")
    assert ok.returncode == 0, ok.stderr
    assert [p.name for p in tmp_path.rglob("*.key")] == ["edge-01.key"]


def test_a_root_that_has_expired_or_outlives_any_key_is_refused(
    gitplane_bin: str, tmp_path: Path
) -> None:
    """``--expires-days -5`` wrote a root that had already expired; 10**12 crashed."""
    for days in ("-5", "0", "3651", str(10**12), "soon"):
        done = run(
            gitplane_bin, "keys", "init", "--dir", str(tmp_path / days), "--expires-days", days
        )
        assert done.returncode == 2, (days, done.stderr)
        assert "--expires-days" in done.stderr and "Traceback" not in done.stderr
        assert not (tmp_path / days).exists()
    assert run(gitplane_bin, "keys", "init", "--dir", str(tmp_path / "ok")).returncode == 0
    again = run(gitplane_bin, "keys", "rotate", "--dir", str(tmp_path / "ok"), "--role",
                "commands", "--expires-days", "-1")  # fmt: skip
    assert again.returncode == 2 and "--expires-days" in again.stderr
    assert sorted(p.name for p in (tmp_path / "ok" / "reconciler").iterdir()) == [
        "commands.key",
        "timestamp.key",
    ]  # nothing left behind for a corrected retry to trip on
