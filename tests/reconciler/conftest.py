"""A spec repository on a bare git remote, keys, and a test agent that reports status.

The test agent stands in for the data-plane agent (which applies commands for
real): it verifies and reads its plane's commands with the real ledger, and
reports each resource as the real agent would once applied, signed with the
plane's real key.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from ledger import gitrepo, keyring, keys, status
from ledger import reader as log_reader
from reconciler import reconcile as reconciling
from schemas import commands as typed
from schemas import signed
from schemas.observed import ModelObserved
from tests import clock, receiver
from tests.conftest import EXAMPLE_REPO, commit_all, git, init_repo

NOW = clock.NOW
PLANES = ("local-dev", "prod-eu")


@dataclass
class World:
    """Everything a reconcile test needs, all real."""

    root: Path
    work: Path
    remote: str
    keys_dir: Path
    agent_keys: dict[str, keys.FileSigner]

    def settings(self, name: str = "reconciler") -> reconciling.Settings:
        return reconciling.Settings(
            repo=self.remote, keys_dir=self.keys_dir, work_dir=self.root / name
        )

    def change(self, message: str, edit: Callable[[Path], None], *, at: datetime = NOW) -> str:
        """Commit an edit of the spec checkout, dated ``at``, and push it to main."""
        edit(self.work)
        commit = commit_all(self.work, message, at=at)
        git(self.work, "push", "-q", "origin", "main")
        return commit


def _register_agent_keys(work: Path, agent_keys: dict[str, keys.FileSigner]) -> None:
    for plane, path in (("local-dev", "planes/local-dev.yaml"), ("prod-eu", "planes/prod.yaml")):
        text = (work / path).read_text()
        key = agent_keys[plane].public_key.hex
        text = text.replace("spec:\n", f"spec:\n  agentKey: {{type: ed25519, public: {key}}}\n", 1)
        (work / path).write_text(text)


@pytest.fixture
def world(tmp_path: Path) -> World:
    keys_dir = tmp_path / "keys"
    keyring.init_keys(
        keys_dir,
        root_keys=3,
        threshold=2,
        now=NOW - timedelta(days=1),
        lifetime=timedelta(days=365),
    )
    agent_keys = {p: keys.FileSigner.generate() for p in PLANES}
    bare = tmp_path / "remote.git"
    git(tmp_path, "init", "-q", "--bare", "-b", "main", str(bare))
    work = tmp_path / "work"
    shutil.copytree(EXAMPLE_REPO, work)
    init_repo(work)
    _register_agent_keys(work, agent_keys)
    commit_all(work, "example specs", at=NOW - timedelta(days=1))  # with the keys
    git(work, "remote", "add", "origin", str(bare))
    git(work, "push", "-q", "origin", "main")
    return World(tmp_path, work, f"file://{bare}", keys_dir, agent_keys)


@pytest.fixture(name="receiver")
def _receiver() -> Iterator[receiver.Receiver]:
    """A real HTTP receiver on 127.0.0.1 recording every POST (tests/receiver.py)."""
    with receiver.serving() as found:
        yield found


class TestAgent:
    """Reads its plane's verified commands and reports every resource ready."""

    __test__ = False

    def __init__(self, world: World, plane: str) -> None:
        mirror = gitrepo.Mirror.open(world.root / f"agent-{plane}.git", world.remote)
        root = (world.keys_dir / keyring.ROOT_FILE).read_bytes()
        state = world.root / f"agent-{plane}" / "trust.json"
        self.reader = log_reader.CommandReader(mirror, plane, state, root)
        who = gitrepo.Identity(f"gitplane-agent {plane}", f"{plane}@gitplane.invalid")
        self.writer = status.StatusWriter(mirror, plane, world.agent_keys[plane], who, state, root)
        self.resources: dict[tuple[str, str], signed.ResourceStatus] = {}
        self.applied = signed.Head(sequence=0, digest="")

    def sync(self, now: datetime = NOW, phase: str = "Ready") -> list[signed.Command]:
        """Apply every new command (in the test's imagination) and report."""
        received = []
        for head, bundle in self.reader.update(now):
            for command in bundle.commands:
                key = (command.kind, command.name)
                if command.action == "delete":  # as the agent, it forgets what it deleted
                    self.resources.pop(key, None)
                else:
                    self.resources[key] = _report(command, phase)
                received.append(command)
            self.reader.mark_applied(head)
            self.applied = head
        stamp = self.reader.load().timestamp
        version = 1 if stamp is None else 0
        self.writer.write(
            applied=self.applied,
            timestamp_version=version,
            resources=sorted(self.resources.values(), key=lambda r: (r.kind, r.name)),
            error=None,
            now=now,
        )
        return received


def _report(command: signed.Command, phase: str) -> signed.ResourceStatus:
    observed: dict[str, str | int | bool] = {}
    if command.kind == "Model":
        model = typed.read(command, typed.ModelCommand)
        observed = ModelObserved(
            version=model.spec.version,
            scan="passed",
            registry_version=1,
            artifact_digest="sha256:" + "e" * 64,
            metrics_gate="passed" if model.spec.metrics_gate else None,  # as an agent holds it
        ).flat()
    return signed.ResourceStatus(
        kind=command.kind,
        name=command.name,
        phase=phase,  # type: ignore[arg-type]
        digest=command.digest,
        observed=observed,
    )
