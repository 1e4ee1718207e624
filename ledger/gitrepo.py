"""The one module that runs git: plumbing reads of trees and blobs at a commit.

Hot reads use git plumbing directly (``ls-tree`` then a single
``cat-file --batch`` for every blob), which is several times faster than
reading objects one by one through GitPython (reference/performance.md B5).
Every invocation runs with hooks, fsmonitor and external protocols disabled,
whatever the repository's own configuration says, and with a timeout. All
failures surface as :class:`GitError`.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from schemas import errors
from schemas.tree import TreeEntry

TIMEOUT_SECONDS = 120.0

_HARDENING = (
    "-c", "core.hooksPath=/dev/null",
    "-c", "core.fsmonitor=false",
    "-c", "protocol.ext.allow=never",
    "-c", "submodule.recurse=false",
    "-c", "core.quotePath=false",
)  # fmt: skip
_ENV = {
    "GIT_TERMINAL_PROMPT": "0",
    "GIT_CONFIG_NOSYSTEM": "1",
    "GIT_HTTP_LOW_SPEED_LIMIT": "1000",
    "GIT_HTTP_LOW_SPEED_TIME": "30",
    "LC_ALL": "C",
}


class GitError(errors.GitplaneError):
    """A git command failed, timed out, or git returned data we cannot use."""


@dataclass(frozen=True)
class GitRepo:
    """A repository on disk, working or bare."""

    path: Path

    def run(self, *args: str, stdin: bytes | None = None) -> bytes:
        """Run ``git args`` hardened; return stdout or raise :class:`GitError`."""
        command = ["git", *_HARDENING, *args]
        try:
            done = subprocess.run(
                command, cwd=self.path, input=stdin, capture_output=True,
                timeout=TIMEOUT_SECONDS, env={**os.environ, **_ENV}, check=False,
            )  # fmt: skip
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise GitError(f"git {args[0]}: {exc}") from None
        if done.returncode != 0:
            message = done.stderr.decode(errors="replace").strip().splitlines()
            raise GitError(f"git {args[0]}: {message[-1] if message else 'failed'}")
        return done.stdout

    def resolve(self, rev: str) -> str:
        """The full commit id ``rev`` names."""
        if rev.startswith("-"):
            raise GitError(f"invalid revision {rev!r}")
        return (
            self.run("rev-parse", "--verify", "--end-of-options", f"{rev}^{{commit}}")
            .decode()
            .strip()
        )

    def list_tree(self, commit: str, prefix: str = "") -> list[TreeEntry]:
        """Every entry below ``prefix`` at ``commit``, paths relative to ``prefix``."""
        treeish = f"{commit}:{prefix}" if prefix else commit
        out = self.run("ls-tree", "-r", "-z", "--long", treeish)
        return [_tree_entry(record) for record in out.split(b"\0") if record]

    def has_changes(self, prefix: str = "") -> bool:
        """Whether the working tree differs from HEAD under ``prefix`` (untracked included)."""
        return bool(self.run("status", "--porcelain", "--", prefix or ".").strip())

    def read_blobs(self, oids: Sequence[str]) -> dict[str, bytes]:
        """The contents of blobs by id, in one ``cat-file --batch`` process."""
        if not oids:
            return {}
        out = self.run("cat-file", "--batch", stdin="\n".join(oids).encode() + b"\n")
        return _parse_batch(out, len(oids))


def _tree_entry(record: bytes) -> TreeEntry:
    meta, _, path = record.partition(b"\t")
    mode, kind, oid, size = meta.split()
    return TreeEntry(
        path.decode("utf-8", "surrogateescape"),
        mode.decode(),
        0 if size == b"-" else int(size),
        oid.decode() if kind == b"blob" else None,
    )


def _parse_batch(out: bytes, count: int) -> dict[str, bytes]:
    blobs: dict[str, bytes] = {}
    at = 0
    for _ in range(count):
        end = out.index(b"\n", at)
        header = out[at:end].split()
        if len(header) != 3 or header[1] != b"blob":
            raise GitError(f"git cat-file: unexpected object {out[at:end]!r}")
        size = int(header[2])
        blobs[header[0].decode()] = out[end + 1 : end + 1 + size]
        at = end + 2 + size
    return blobs


def find_repo(path: Path) -> tuple[GitRepo, str] | None:
    """The repository containing ``path`` and ``path``'s prefix inside it, or None."""
    probe = GitRepo(path if path.is_dir() else path.parent)
    try:
        top = probe.run("rev-parse", "--show-toplevel").decode().strip()
    except GitError:
        return None
    prefix = path.resolve().relative_to(Path(top).resolve()).as_posix()
    return GitRepo(Path(top)), "" if prefix == "." else prefix
