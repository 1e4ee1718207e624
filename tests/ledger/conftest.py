"""Keys, a root of trust, a bare remote and mirrors for ledger tests."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from ledger import commands, gitrepo, keys, roots, state
from ledger import reader as log_reader
from schemas import signed

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
PLANE = "local-dev"
RECONCILER = gitrepo.Identity("gitplane-reconciler", "reconciler@gitplane.invalid")
AGENT = gitrepo.Identity("gitplane-agent", "agent@gitplane.invalid")


@dataclass
class KeySet:
    """Three root keys (threshold 2) and one online key per role."""

    root: list[keys.FileSigner]
    commands: keys.FileSigner
    timestamp: keys.FileSigner

    def root_payload(self, version: int = 1, **changes: object) -> dict[str, object]:
        payload = roots.root_payload(
            version=version,
            expires=NOW + timedelta(days=365),
            root=[s.public_key for s in self.root],
            root_threshold=2,
            commands=[self.commands.public_key],
            timestamp=[self.timestamp.public_key],
        )
        payload.update(changes)
        return payload

    def rotation(
        self,
        new_root: list[keys.FileSigner],
        *,
        timestamp: keys.FileSigner | None = None,
        version: int = 2,
        days: int = 365,
    ) -> dict[str, object]:
        """The payload of a root that hands the root role to ``new_root``."""
        return roots.root_payload(
            version=version,
            expires=NOW + timedelta(days=days),
            root=[k.public_key for k in new_root],
            root_threshold=2,
            commands=[self.commands.public_key],
            timestamp=[(timestamp or self.timestamp).public_key],
        )

    def root_bytes(self, version: int = 1) -> bytes:
        return roots.sign_root(self.root_payload(version), self.root[:2])


@pytest.fixture(scope="session")
def keyset() -> KeySet:
    return KeySet(
        [keys.FileSigner.generate() for _ in range(3)],
        keys.FileSigner.generate(),
        keys.FileSigner.generate(),
    )


@pytest.fixture
def remote(tmp_path: Path) -> str:
    """A bare repository reached over file://, as a real remote is."""
    path = tmp_path / "remote.git"
    gitrepo.GitRepo(tmp_path).run("init", "--quiet", "--bare", str(path))
    return f"file://{path}"


@pytest.fixture
def make_mirror(tmp_path: Path, remote: str) -> Callable[[str], gitrepo.Mirror]:
    def make(name: str) -> gitrepo.Mirror:
        return gitrepo.Mirror.open(tmp_path / "mirrors" / name, remote)

    return make


@pytest.fixture
def log(keyset: KeySet, make_mirror: Callable[[str], gitrepo.Mirror]) -> commands.CommandLog:
    """The reconciler's writer, with root version 1 published."""
    mirror = make_mirror("reconciler")
    roots.publish(mirror, keyset.root_bytes(), who=RECONCILER)
    return commands.CommandLog(
        mirror,
        keyset.root_bytes(),
        [keyset.commands],
        [keyset.timestamp],
        RECONCILER,
        sleep=lambda _: None,
    )


@pytest.fixture
def reader(
    keyset: KeySet, make_mirror: Callable[[str], gitrepo.Mirror], tmp_path: Path
) -> log_reader.CommandReader:
    """The agent's reader, with the root pinned out of band."""
    return log_reader.CommandReader(
        make_mirror("agent"), PLANE, tmp_path / "agent" / "trust.json", keyset.root_bytes()
    )


def command(name: str = "churn-dev", spec: str = '{"replicas":2}') -> signed.Command:
    return commands.new_command("Deployment", name, spec, command_id=f"{name}-1")


def issue(
    log: commands.CommandLog, *cmds: signed.Command, plane: str = PLANE, now: datetime = NOW
) -> signed.Head | None:
    return log.append(plane, lambda _: list(cmds or [command()]), spec_commit="a" * 40, now=now)


def snapshot(reader: log_reader.CommandReader) -> bytes | None:
    """The persisted trust state's bytes, to assert a refusal changed nothing."""
    path = reader.state_path
    return path.read_bytes() if path.exists() else None


__all__ = ["AGENT", "NOW", "PLANE", "RECONCILER", "KeySet", "command", "issue", "snapshot", "state"]
