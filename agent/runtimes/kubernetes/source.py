"""Fetch a project's source inside a build or step pod, as the signed command names it.

``python -m agent.runtimes.kubernetes.source --repo URL --commit SHA --path P --tree T
--into DIR`` runs as the init container of every build and DAG-step Job. It fetches the
spec commit, checks that the project directory at that commit is the git tree the signed
command carries, and writes out *that tree* (by its id, so what runs is exactly what was
signed, whatever the remote serves under the commit's name). Nothing runs when any check
fails: the exit code is 1 and the one line on stderr says why, which the agent reports as
the build's cause.
"""

from __future__ import annotations

import argparse
import io
import re
import subprocess
import sys
import tarfile
from pathlib import Path

HEX = re.compile(r"^[0-9a-f]{40}([0-9a-f]{24})?$")
TIMEOUT = 600.0


class SourceError(Exception):
    """The source cannot be fetched as signed: nothing may run."""


def fetch(repo: str, commit: str, path: str, tree: str, into: Path) -> Path:
    """The project's files under ``into``, after checking ``commit:path`` is ``tree``."""
    for name, value in (("commit", commit), ("tree", tree)):
        if not HEX.match(value):
            raise SourceError(f"--{name} {value!r}: expected a full git object id")
    git_dir = into / ".git-source"
    _git("init", "--quiet", "--bare", str(git_dir))
    if _fetch(git_dir, repo, commit) != 0:
        raise SourceError(f"cannot fetch {commit[:12]} from {repo}: not there, or unreachable")
    found = _git("--git-dir", str(git_dir), "rev-parse", "--verify", "--quiet", f"{commit}:{path}")
    if found.strip() != tree:
        raise SourceError(
            f"{path} at {commit[:12]} is tree {found.strip()[:12] or '(none)'}, "
            f"but the signed command names {tree[:12]}: refusing to run it"
        )
    archive = subprocess.run(
        ["git", "--git-dir", str(git_dir), "archive", "--format=tar", tree],
        capture_output=True,
        check=False,
        timeout=TIMEOUT,
    )
    if archive.returncode != 0:
        raise SourceError(f"cannot read tree {tree[:12]}: {archive.stderr.decode()[:300]}")
    project = into / "project"
    project.mkdir(parents=True, exist_ok=True)
    with tarfile.open(fileobj=io.BytesIO(archive.stdout)) as tar:
        tar.extractall(project, filter="data")  # no links out, no devices, no absolute paths
    return project


def _fetch(git_dir: Path, repo: str, commit: str) -> int:
    """The commit alone when the server allows it (GitHub, GitLab), else every branch."""
    shallow = ["fetch", "--quiet", "--no-tags", "--depth", "1", repo, commit]
    if _run(["--git-dir", str(git_dir), *shallow]) == 0:
        return 0
    everything = ["fetch", "--quiet", "--no-tags", repo, "+refs/heads/*:refs/heads/*"]
    if _run(["--git-dir", str(git_dir), *everything]) != 0:
        return 1
    return _run(["--git-dir", str(git_dir), "cat-file", "-e", f"{commit}^{{commit}}"])


def _run(args: list[str]) -> int:
    done = subprocess.run(["git", *args], capture_output=True, check=False, timeout=TIMEOUT)
    return done.returncode


def _git(*args: str) -> str:
    done = subprocess.run(
        ["git", *args], capture_output=True, text=True, check=False, timeout=TIMEOUT
    )
    return done.stdout if done.returncode == 0 else ""


def main(argv: list[str] | None = None) -> int:
    """The init container's entry point: 0 with the source in place, 1 with why not."""
    parser = argparse.ArgumentParser(prog="gitplane-source", description=__doc__)
    parser.add_argument("--repo", required=True)
    parser.add_argument("--commit", required=True)
    parser.add_argument("--path", required=True)
    parser.add_argument("--tree", required=True)
    parser.add_argument("--into", required=True, type=Path)
    args = parser.parse_args(argv)
    try:
        project = fetch(args.repo, args.commit, args.path, args.tree, args.into)
    except (SourceError, OSError, subprocess.SubprocessError, tarfile.TarError) as exc:
        print(f"source: {exc}", file=sys.stderr)
        return 1
    print(f"source: {args.path} at {args.commit[:12]} (tree {args.tree[:12]}) in {project}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
