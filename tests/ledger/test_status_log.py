"""Status logs in real git: written on change only, verified under the registered key."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

import pytest

from ledger import commands, errors, gitrepo, keys, layout, status
from schemas import signed
from tests.ledger.conftest import AGENT, NOW, PLANE, KeySet, issue

READY = signed.ResourceStatus(
    kind="Deployment",
    name="churn-dev",
    phase="Ready",
    observed={"replicas": 2, "url": "http://127.0.0.1:20001"},
)


@pytest.fixture
def agent_key() -> keys.FileSigner:
    return keys.FileSigner.generate()


@pytest.fixture
def writer(
    make_mirror: Callable[[str], gitrepo.Mirror],
    agent_key: keys.FileSigner,
    keyset: KeySet,
    tmp_path: Path,
) -> status.StatusWriter:
    return status.StatusWriter(
        make_mirror("agent-status"),
        PLANE,
        agent_key,
        AGENT,
        tmp_path / "agent" / "trust.json",
        keyset.root_bytes(),
    )


def _write(
    writer: status.StatusWriter,
    head: signed.Head,
    resources: list[signed.ResourceStatus],
    error: signed.StatusError | None = None,
    *,
    later: int = 0,
) -> bool:
    return writer.write(
        applied=head,
        timestamp_version=1,
        resources=resources,
        error=error,
        now=NOW + timedelta(seconds=later),
    )


def _read(log: commands.CommandLog, key: keys.PublicKey | None, seen: int = 0) -> status.StatusRead:
    view = log.read(PLANE)
    return status.read_status(
        log.mirror, PLANE, key=key, seen=seen, head=view.head, issued=view.issued
    )


def _commits(writer: status.StatusWriter) -> int:
    tip = writer.mirror.remote_heads().get(layout.status_ref(PLANE))
    if tip is None:
        return 0
    writer.mirror.fetch([layout.status_ref(PLANE)])
    return int(writer.mirror.repo.run("rev-list", "--count", tip).decode())


def test_status_is_written_on_change_only(
    log: commands.CommandLog, writer: status.StatusWriter, agent_key: keys.FileSigner
) -> None:
    head = issue(log)
    assert head is not None
    assert _write(writer, head, [READY])
    assert not _write(writer, head, [READY], later=60)  # only the time changed: no commit
    assert _commits(writer) == 1
    assert _write(writer, head, [READY.model_copy(update={"phase": "Progressing"})], later=120)
    assert _commits(writer) == 2
    read = _read(log, agent_key.public_key)
    assert read.error is None and read.status is not None
    assert read.status.counter == 2
    assert read.status.resources[0].phase == "Progressing"


def test_a_report_under_another_key_is_refused(
    log: commands.CommandLog, writer: status.StatusWriter
) -> None:
    head = issue(log)
    assert head is not None
    _write(writer, head, [READY])
    other_plane_key = keys.FileSigner.generate().public_key
    read = _read(log, other_plane_key)
    assert read.status is None
    assert isinstance(read.error, errors.SignatureError)


def test_no_registered_key_means_no_trusted_status(
    log: commands.CommandLog, writer: status.StatusWriter
) -> None:
    head = issue(log)
    assert head is not None
    _write(writer, head, [READY])
    read = _read(log, None)
    assert read.status is None and isinstance(read.error, errors.SignatureError)


def test_a_replayed_report_is_refused(
    log: commands.CommandLog, writer: status.StatusWriter, agent_key: keys.FileSigner
) -> None:
    head = issue(log)
    assert head is not None
    _write(writer, head, [READY])
    old = writer.mirror.remote_heads()[layout.status_ref(PLANE)]
    _write(writer, head, [], later=60)
    writer.mirror.repo.run(
        "push", "--force", writer.mirror.url, f"{old}:{layout.status_ref(PLANE)}"
    )
    read = _read(log, agent_key.public_key, seen=2)
    assert isinstance(read.error, errors.ReplayError)


def test_a_report_claiming_unissued_commands_is_refused(
    log: commands.CommandLog, writer: status.StatusWriter, agent_key: keys.FileSigner
) -> None:
    issue(log)
    claimed = signed.Head(sequence=7, digest="sha256:" + "7" * 64)
    _write(writer, claimed, [READY])
    read = _read(log, agent_key.public_key)
    assert isinstance(read.error, errors.UnknownCommandError)


def test_a_report_with_an_attack_code_is_published(
    log: commands.CommandLog, writer: status.StatusWriter, agent_key: keys.FileSigner
) -> None:
    issue(log)
    failure = signed.StatusError(code=errors.RollbackError.code, message="timestamp 3 < 5")
    _write(writer, signed.Head(sequence=0, digest=""), [], failure)
    read = _read(log, agent_key.public_key)
    assert read.status is not None and read.status.error == failure


def test_no_status_yet(log: commands.CommandLog, agent_key: keys.FileSigner) -> None:
    read = _read(log, agent_key.public_key)
    assert (read.commit, read.status, read.error) == (None, None, None)


def _hostile_status_branch(writer: status.StatusWriter, tmp_path: Path, kind: str) -> None:
    """What a pusher leaves on the plane's status branch instead of a report."""
    repo = gitrepo.GitRepo(tmp_path / "mallory")
    repo.path.mkdir()
    repo.run("init", "--quiet")
    ref = layout.status_ref(PLANE)
    content = b" " * (9 << 20) if kind == "oversized" else b"/etc/passwd"
    (repo.path / "content").write_bytes(content)
    blob = repo.run("hash-object", "-w", "content").decode().strip()
    mode = "120000" if kind == "symlink" else "100644"
    entry = f"{mode} {layout.STATUS}\0".encode() + bytes.fromhex(blob)
    (repo.path / "tree").write_bytes(entry * (2 if kind == "fsck" else 1))
    tree = repo.run("hash-object", "-t", "tree", "-w", "--literally", "tree").decode().strip()
    commit = repo.run("commit-tree", tree, "-m", "hostile").decode().strip()
    repo.run("push", "--quiet", "--force", writer.mirror.url, f"{commit}:{ref}")


@pytest.mark.parametrize("kind", ["symlink", "oversized", "fsck"])
def test_a_hostile_status_branch_is_replaced_and_reported_not_silently_stuck(
    log: commands.CommandLog,
    writer: status.StatusWriter,
    agent_key: keys.FileSigner,
    tmp_path: Path,
    kind: str,
) -> None:
    head = issue(log)
    assert head is not None
    _hostile_status_branch(writer, tmp_path, kind)
    assert _write(writer, head, [READY])  # written: the agent is not silenced
    read = _read(log, agent_key.public_key)
    assert read.error is None and read.status is not None and read.status.error is not None
    assert read.status.error.code == "malformed"
    assert read.status.error.message.startswith("the status branch held what is not a report")
    assert list(read.status.resources) == [READY]
