"""Reading history for the audit: every version of a file along a branch, size-checked.

The audit reads old versions of files that no one verified yet (a log branch may hold
anything a pusher wrote), so each blob's mode and size are checked with
``git cat-file --batch-check`` before it is read, as ``Mirror.read`` does at one commit.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import NamedTuple

from ledger import errors, gitrepo
from reconciler.audit import model as audit

REGULAR = ("100644", "100755")


class Raw(NamedTuple):
    """One file changed by one commit, from ``git log --raw``."""

    commit: str
    time: str
    mode: str
    old: str
    new: str
    status: str
    path: str


def history(repo: gitrepo.GitRepo, tip: str | None, pathspec: str, cap: int) -> list[audit.LogFile]:
    """Every version of the files under ``pathspec`` on ``tip``'s first-parent line."""
    if tip is None:
        return []
    walk = ("--reverse", "--first-parent", "--root", "--no-renames", "--raw", "--no-abbrev")
    out = repo.run("log", *walk, "--format=%x00%H %cI", tip, "--", pathspec).decode(
        errors="replace"
    )
    changes = [
        change
        for chunk in out.split("\0")[1:]
        for change in raw_changes(chunk, *chunk.split("\n", 1)[0].split(" "))
    ]
    wanted = sorted({c.new for c in changes if c.status != "D" and c.mode in REGULAR})
    blobs = read_capped(repo, wanted, cap)
    return [_log_file(c, blobs, cap) for c in changes]


def raw_changes(text: str, commit: str, time: str) -> list[Raw]:
    """``:old-mode new-mode old-oid new-oid status<TAB>path`` lines of ``git log --raw``."""
    found = []
    for line in text.splitlines():
        if line.startswith(":"):
            meta, _, path = line.partition("\t")
            _, mode, old, new, status = meta.split()
            found.append(Raw(commit, time, mode, old, new, status[:1], path))
    return found


def _log_file(change: Raw, blobs: dict[str, bytes], cap: int) -> audit.LogFile:
    when = datetime.fromisoformat(change.time)
    if change.status == "D":
        return audit.LogFile(change.commit, when, change.path, None)
    problem: errors.VerificationError | None = None
    if change.mode not in REGULAR:
        problem = errors.MalformedError(f"{change.path}: mode {change.mode} is not a regular file")
    elif change.new not in blobs:
        problem = errors.OversizedError(f"{change.path}: above the {cap}-byte cap")
    return audit.LogFile(change.commit, when, change.path, blobs.get(change.new), problem)


def read_capped(repo: gitrepo.GitRepo, oids: Sequence[str], cap: int) -> dict[str, bytes]:
    """The blobs of at most ``cap`` bytes among ``oids``, sizes checked before reading."""
    if not oids:
        return {}
    out = repo.run("cat-file", "--batch-check", stdin="\n".join(oids).encode() + b"\n")
    checked = [line.split() for line in out.decode().splitlines()]
    small = [f[0] for f in checked if len(f) == 3 and f[1] == "blob" and int(f[2]) <= cap]
    return repo.read_blobs(small)
