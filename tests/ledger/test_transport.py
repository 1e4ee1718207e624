"""The same logs over `git daemon` on loopback: a real network git server."""

from __future__ import annotations

import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from ledger import commands, gitrepo, keys, roots, status
from ledger import reader as log_reader
from schemas import signed
from tests.ledger.conftest import AGENT, NOW, PLANE, RECONCILER, KeySet, command, issue


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def daemon_url(tmp_path: Path) -> Iterator[str]:
    base = tmp_path / "served"
    base.mkdir()
    gitrepo.GitRepo(base).run("init", "--quiet", "--bare", "specs.git")
    port = _free_port()
    process = subprocess.Popen(
        [
            "git",
            "daemon",
            "--reuseaddr",
            "--export-all",
            "--enable=receive-pack",
            f"--base-path={base}",
            "--listen=127.0.0.1",
            f"--port={port}",
            str(base),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        _wait_for(port)
        yield f"git://127.0.0.1:{port}/specs.git"
    finally:
        process.terminate()
        process.wait(timeout=10)


def _wait_for(port: int) -> None:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise RuntimeError("git daemon did not start")


def test_append_follow_and_report_over_git_daemon(
    daemon_url: str, keyset: KeySet, tmp_path: Path
) -> None:
    writer_mirror = gitrepo.Mirror.open(tmp_path / "reconciler.git", daemon_url)
    roots.publish(writer_mirror, keyset.root_bytes(), who=RECONCILER)
    log = commands.CommandLog(
        writer_mirror, keyset.root_bytes(), [keyset.commands], [keyset.timestamp], RECONCILER
    )
    head = issue(log, command("a"))
    assert head is not None
    reader = log_reader.CommandReader(
        gitrepo.Mirror.open(tmp_path / "agent.git", daemon_url),
        PLANE,
        tmp_path / "trust.json",
        keyset.root_bytes(),
    )
    ((verified, bundle),) = reader.update(NOW)
    assert verified == head and bundle.commands[0].name == "a"
    agent_key = keys.FileSigner.generate()
    writer = status.StatusWriter(
        reader.mirror, PLANE, agent_key, AGENT, tmp_path / "trust.json", keyset.root_bytes()
    )
    assert writer.write(applied=head, timestamp_version=1, resources=[], error=None, now=NOW)
    view = log.read(PLANE)
    read = status.read_status(
        writer_mirror, PLANE, key=agent_key.public_key, seen=0, head=view.head, issued=view.issued
    )
    assert read.status is not None and read.status.applied == head


def test_two_writers_over_git_daemon_never_fork(
    daemon_url: str, keyset: KeySet, tmp_path: Path
) -> None:
    mirrors = [gitrepo.Mirror.open(tmp_path / f"w{i}.git", daemon_url) for i in range(2)]
    roots.publish(mirrors[0], keyset.root_bytes(), who=RECONCILER)
    logs = [
        commands.CommandLog(
            m, keyset.root_bytes(), [keyset.commands], [keyset.timestamp], RECONCILER
        )
        for m in mirrors
    ]
    heads: list[signed.Head | None] = []
    for i in range(3):  # interleaved: each writer's mirror is stale before every append
        heads += [issue(logs[0], command(f"a{i}")), issue(logs[1], command(f"b{i}"))]
    assert [h.sequence for h in heads if h] == list(range(1, 7))
