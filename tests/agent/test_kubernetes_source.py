"""The init container of builds and DAG steps: what runs is the tree the command signed.

Run against real repositories over ``file://``: the remote is a bare repository that the
test (playing a compromised git server) can rewrite between the signing and the fetch.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from agent.runtimes.kubernetes import source
from tests.conftest import commit_all, git, init_repo


@pytest.fixture
def remote(tmp_path: Path) -> tuple[Path, str, str]:
    """A bare remote holding a project; (its path, the commit, the project's tree id)."""
    work = tmp_path / "work"
    (work / "projects/churn").mkdir(parents=True)
    (work / "projects/churn/MLproject").write_text("name: churn\n")
    (work / "projects/churn/train.py").write_text("print('trained')\n")
    init_repo(work)
    commit = commit_all(work, "churn")
    bare = tmp_path / "remote.git"
    git(tmp_path, "clone", "-q", "--bare", str(work), str(bare))
    return bare, commit, git(work, "rev-parse", f"{commit}:projects/churn")


def test_the_signed_tree_is_written_out(remote: tuple[Path, str, str], tmp_path: Path) -> None:
    bare, commit, tree = remote
    into = tmp_path / "ws"
    project = source.fetch(f"file://{bare}", commit, "projects/churn", tree, into)
    assert (project / "train.py").read_text() == "print('trained')\n"
    assert sorted(p.name for p in project.iterdir()) == ["MLproject", "train.py"]


def test_a_tree_other_than_the_signed_one_runs_nothing(
    remote: tuple[Path, str, str], tmp_path: Path
) -> None:
    """A server that serves other code under the commit, or a command for another tree."""
    bare, commit, _ = remote
    other = "0" * 40
    with pytest.raises(source.SourceError, match="signed command names 000000000000"):
        source.fetch(f"file://{bare}", commit, "projects/churn", other, tmp_path / "ws")
    assert not (tmp_path / "ws" / "project").exists()


def test_a_commit_the_remote_lacks_is_refused(
    remote: tuple[Path, str, str], tmp_path: Path
) -> None:
    bare, _, tree = remote
    with pytest.raises(source.SourceError, match="cannot fetch"):
        source.fetch(f"file://{bare}", "1" * 40, "projects/churn", tree, tmp_path / "ws")


def test_links_out_of_the_workspace_are_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A project holding a symlink to /etc/passwd is not written out to run."""
    work = tmp_path / "work"
    (work / "p").mkdir(parents=True)
    (work / "p" / "secrets").symlink_to("/etc/passwd")
    init_repo(work)
    commit = commit_all(work, "hostile")
    tree = git(work, "rev-parse", f"{commit}:p")
    assert (
        source.main(
            [
                "--repo",
                f"file://{work}",
                "--commit",
                commit,
                "--path",
                "p",
                "--tree",
                tree,
                "--into",
                str(tmp_path / "ws"),
            ]
        )
        == 1
    )
    assert "'secrets' is a link to an absolute path" in capsys.readouterr().err
    assert not (tmp_path / "ws" / "project" / "secrets").exists()


def test_the_entry_point_says_why_in_one_line(
    remote: tuple[Path, str, str], tmp_path: Path
) -> None:
    bare, commit, _ = remote
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "agent.runtimes.kubernetes.source",
            "--repo",
            f"file://{bare}",
            "--commit",
            commit,
            "--path",
            "projects/churn",
            "--tree",
            "not-a-tree",
            "--into",
            str(tmp_path / "ws"),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 1
    assert done.stderr == "source: --tree 'not-a-tree': expected a full git object id\n"
