"""Shared fixtures: real git repositories built in tmp_path (pre-commit's make_repo)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import pytest

from tests import clock

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE_REPO = ROOT / "example-repo"
FIXTURES = Path(__file__).resolve().parent / "fixtures"
LOG_TIME = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z")
"""A log line's time (``cli.logs``): UTC with milliseconds, whatever the date."""


@pytest.fixture(autouse=True)
def _git_identity(monkeypatch: pytest.MonkeyPatch) -> None:
    for role in ("AUTHOR", "COMMITTER"):
        monkeypatch.setenv(f"GIT_{role}_NAME", "Test User")
        monkeypatch.setenv(f"GIT_{role}_EMAIL", "test@example.invalid")
    monkeypatch.setenv("GIT_CONFIG_NOSYSTEM", "1")


def record_git(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, ...]]:
    """From now on, the arguments of every git process Gitplane runs to completion
    (``GitRepo.execute``, which ``run`` goes through); the processes still run."""
    from ledger import gitrepo  # noqa: PLC0415 - only the tests that record need it

    ran: list[tuple[str, ...]] = []
    execute = gitrepo.GitRepo.execute

    def recording(self: gitrepo.GitRepo, *args: str, **kwargs: object) -> object:
        ran.append(args)
        return execute(self, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(gitrepo.GitRepo, "execute", recording)
    return ran


def git(cwd: Path, *args: str, at: datetime | None = None) -> str:
    """Run git in ``cwd`` and return its stdout; fail the test on error. ``at`` dates the
    commits it makes (else the real clock does)."""
    dated = {} if at is None else {f"GIT_{r}_DATE": at.isoformat() for r in ("AUTHOR", "COMMITTER")}
    done = subprocess.run(
        ["git", *args], cwd=cwd, capture_output=True, text=True, check=False,
        env={**os.environ, **dated},
    )  # fmt: skip
    assert done.returncode == 0, f"git {' '.join(args)}: {done.stderr}"
    return done.stdout.strip()


def commit_all(repo: Path, message: str = "change", *, at: datetime | None = None) -> str:
    """Stage everything and commit (dated ``at``, else now); return the commit id."""
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "--allow-empty", "-m", message, at=at)
    return git(repo, "rev-parse", "HEAD")


def init_repo(path: Path) -> Path:
    """An empty repository with branch ``main``."""
    path.mkdir(parents=True, exist_ok=True)
    git(path, "init", "-q", "-b", "main")
    return path


def write(root: Path, files: dict[str, str | bytes]) -> None:
    """Write text or bytes files below ``root``, creating directories."""
    for rel, content in files.items():
        target = root / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        data = content.encode() if isinstance(content, str) else content
        target.write_bytes(data)


@pytest.fixture
def example_repo(tmp_path: Path) -> Iterator[Path]:
    """A fresh git repository holding a copy of example-repo, committed."""
    repo = tmp_path / "specs"
    shutil.copytree(EXAMPLE_REPO, repo)
    init_repo(repo)
    commit_all(repo, "example repository")
    yield repo


@pytest.fixture
def running() -> clock.Running:
    """The clock of a test that runs real daemons: NOW as the test starts, then real time;
    ``running.env()`` gives a process the same clock."""
    return clock.Running(clock.NOW)


@pytest.fixture
def gitplane_bin() -> str:
    """The installed console script of this virtualenv."""
    path = Path(sys.executable).parent / "gitplane"
    assert path.exists(), f"the gitplane console script is not installed beside {sys.executable}"
    return str(path)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Tests marked ``cluster`` need a real cluster: without ``$KUBECONFIG`` they are
    deselected (reported as not run), never passed, whatever ``-m`` asked for."""
    if os.environ.get("KUBECONFIG"):
        return
    cluster = [item for item in items if item.get_closest_marker("cluster")]
    if cluster:
        config.hook.pytest_deselected(items=cluster)
        items[:] = [item for item in items if not item.get_closest_marker("cluster")]


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """Say that the ``cluster`` tests did not run: with several workers (``make test``'s
    pytest-xdist) the count of deselected tests is the workers' and is not shown."""
    if not os.environ.get("KUBECONFIG"):
        terminalreporter.write_line(
            "not run: the tests marked cluster ($KUBECONFIG is not set: tests/kubeapi/README.md)"
        )
