"""``gitplane validate``: choose what to read (a commit or the working tree) and load it."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ledger import gitrepo
from reconciler import desired
from schemas.errors import UsageError


@dataclass
class Validation:
    """The loaded state, plus notes for the person who asked."""

    state: desired.DesiredState
    notes: list[str]


def validate(path: Path, *, rev: str | None = None, worktree: bool = False) -> Validation:
    """Validate the spec tree at ``path``: at ``rev`` (default HEAD) or in the working tree."""
    if not path.is_dir():
        raise UsageError(f"{path}: not a directory")
    display = str(path)
    if worktree:
        return Validation(desired.load_worktree(path, display=display), [])
    found = gitrepo.find_repo(path)
    if found is None:
        if rev is not None:
            raise UsageError(f"{path}: not in a git repository, so --rev cannot be used")
        note = f"{path} is not in a git repository: validated the files on disk"
        return Validation(desired.load_worktree(path, display=display), [note])
    repo, prefix = found
    name = rev or "HEAD"
    commit = resolve(repo, name)
    try:
        state = desired.load_commit(repo, commit, prefix=prefix, display=display)
    except gitrepo.GitError as exc:
        if prefix and not _in_commit(repo, commit, prefix):
            raise UsageError(
                f"{display} is not in {name} ({commit[:12]}): commit it, or validate the "
                "files on disk with --worktree"
            ) from None
        raise UsageError(f"cannot read {name} of {repo.path}: {exc}") from None
    notes = []
    if rev is None and not repo.is_bare() and repo.has_changes(prefix):
        notes.append(
            f"validated HEAD ({state.commit and state.commit[:12]}); uncommitted "
            f"changes under {display} are not included: use --worktree to check them"
        )
    return Validation(state, notes)


def resolve(repo: gitrepo.GitRepo, rev: str) -> str:
    """The commit ``rev`` names, or why not in the user's words (not git's bare "Needed a
    single revision"): a repository with no commits, or a name it does not have."""
    try:
        return repo.resolve(rev)
    except gitrepo.GitError:
        if rev == "HEAD":
            raise UsageError(
                f"{repo.path} has no commits yet: commit the specs "
                "(validate --worktree reads the files on disk)"
            ) from None
        raise UsageError(
            f"{repo.path} has no commit {rev!r} (give a branch, tag or commit id)"
        ) from None


def _in_commit(repo: gitrepo.GitRepo, commit: str, prefix: str) -> bool:
    try:
        repo.run("cat-file", "-e", f"{commit}:{prefix.rstrip('/')}")
    except gitrepo.GitError:
        return False
    return True
