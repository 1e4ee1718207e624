"""The approvals branch (``refs/heads/gitplane/approvals``): read records, append one.

I/O only; what a record means is :mod:`ledger.approvals`. Appending never forces: a
record is a new commit on the previous tip, pushed as a fast-forward, retried on a race.
"""

from __future__ import annotations

from collections.abc import Sequence

from ledger import envelope, gitrepo, layout
from schemas.errors import GitplaneError

MAX_RECORDS = 1000
"""Record files read per approved commit; more is an attack on the reader, refused."""
MAX_FILE = 64 * 1024
"""Bytes per record file (as :data:`ledger.approvals.MAX_FILE`)."""
ATTEMPTS = 5
"""Pushes tried when others append at the same time."""


class ApprovalLogError(GitplaneError):
    """The approvals branch or the root it is bound to cannot be read or written."""


def repository_id(mirror: gitrepo.Mirror, snapshot: gitrepo.Snapshot) -> str:
    """The repository identity: ``sha256:`` of ``root/1.json`` on the root branch."""
    tip = snapshot.get(layout.ROOT_REF)
    if tip is None:
        raise ApprovalLogError(
            f"{mirror.url} has no {layout.ROOT_REF}: the reconciler publishes it on its first run"
        )
    found = mirror.read(tip, [layout.root_path(1)], max_bytes=MAX_FILE)
    if layout.root_path(1) not in found:
        raise ApprovalLogError(f"{layout.ROOT_REF} has no {layout.root_path(1)}")
    return envelope.digest(found[layout.root_path(1)])


def read(mirror: gitrepo.Mirror, tip: str | None, commits: Sequence[str]) -> dict[str, bytes]:
    """Every record file of ``commits`` at ``tip`` of the approvals branch, by path."""
    if tip is None:
        return {}
    paths = [
        entry.path
        for commit in commits
        for entry in mirror.repo.list_tree(tip, paths=[f"approvals/{commit}/"])
    ]
    if len(paths) > MAX_RECORDS * max(len(commits), 1):
        raise ApprovalLogError(f"more than {MAX_RECORDS} approval records for one commit")
    return mirror.read(tip, paths, max_bytes=MAX_FILE)


def tree_dir(tree: str) -> str:
    """The directory, as :func:`read` takes it, indexing the records of commits with
    ``tree`` (a squash or rebase merge of the approved commit has the same tree)."""
    return f"trees/{tree}"


def append(
    mirror: gitrepo.Mirror,
    path: str,
    data: bytes,
    *,
    who: gitrepo.Identity,
    also: Sequence[str] = (),
) -> str:
    """Add one record file (and the same bytes at the paths ``also``, its indexes) and push
    it; the new tip. Retries when another append won."""
    files = dict.fromkeys([path, *also], data)
    for _ in range(ATTEMPTS):
        tip = mirror.fetch([layout.APPROVALS_REF]).get(layout.APPROVALS_REF)
        commit = mirror.commit(tip, files, message=f"approve {path}", who=who)
        try:
            mirror.push(commit, layout.APPROVALS_REF)
        except gitrepo.PushRejectedError:
            continue
        return commit
    raise ApprovalLogError(f"{layout.APPROVALS_REF} kept moving: {ATTEMPTS} pushes refused")
