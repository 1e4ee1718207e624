"""Load desired state: every spec of a tree, at a commit or in a working tree.

Reading a commit goes through the git object store only (``ls-tree`` for the
listing with modes and sizes, one ``cat-file --batch`` for the blobs), so
symlinks, submodules and oversized files are refused before anything is read,
and what is validated is exactly what was committed.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from ledger import gitrepo
from reconciler import _gc, _parallel
from schemas import crossref, hints, kinds, mlproject, parse, support, tree
from schemas.document import Document
from schemas.problems import Problem


@dataclass
class DesiredState:
    """The documents of a tree, or the problems that make it invalid."""

    root: str
    """How files are named in problems: the validated path as the user gave it."""
    commit: str | None
    documents: list[tuple[str, Document]] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)
    warnings: list[Problem] = field(default_factory=list)
    """Fields set that a runtime, or this release, does not enforce (``schemas.support``):
    reported, never silently dropped; they do not make the tree invalid."""

    @property
    def valid(self) -> bool:
        """No problem was found."""
        return not self.problems


Reader = Callable[[list[tree.TreeEntry]], list[bytes]]


def load_commit(
    repo: gitrepo.GitRepo,
    rev: str,
    *,
    prefix: str = "",
    display: str = "",
    limits: parse.Limits = parse.DEFAULT_LIMITS,
) -> DesiredState:
    """Every spec under ``prefix`` at ``rev``, read from the object store (a reconciler
    following a branch uses ``tracker.Tracker``, which reads only what each commit changed)."""
    commit = repo.resolve(rev)

    def read(specs: list[tree.TreeEntry]) -> list[bytes]:
        blobs = repo.read_blobs([e.oid for e in specs if e.oid])
        return [blobs[e.oid] for e in specs if e.oid]

    with _gc.paused():
        entries = repo.list_tree(commit, prefix)
        return _load(entries, read, display=display, commit=commit, limits=limits)


def load_worktree(
    root: Path, *, display: str = "", limits: parse.Limits = parse.DEFAULT_LIMITS
) -> DesiredState:
    """Every spec in a directory as it is on disk (pre-commit); never follows symlinks."""

    def read(specs: list[tree.TreeEntry]) -> list[bytes]:
        return [_read_nofollow(root / e.path) for e in specs]

    with _gc.paused():
        return _load(list(_walk(root)), read, display=display, commit=None, limits=limits)


def _load(
    entries: list[tree.TreeEntry],
    read: Reader,
    *,
    display: str,
    commit: str | None,
    limits: parse.Limits,
) -> DesiredState:
    prefix = f"{display.rstrip('/')}/" if display and display != "." else ""
    selection = tree.select(entries, max_bytes=limits.max_bytes, prefix=prefix)
    state = DesiredState(display or ".", commit, problems=list(selection.problems))
    by_file = {prefix + e.path: e for e in selection.specs}
    contents = dict(zip(by_file, read(selection.specs), strict=True))
    results = _parallel.parse_all(list(contents.items()), limits=limits)
    invalid: set[tuple[str, str]] = set()
    for result in results:
        file = result.file
        state.problems += result.problems
        if result.document is not None:
            state.documents.append((file, result.document))
        elif result.declared is not None:
            invalid.add(result.declared)
    projects = read_projects(entries, read, state.documents, limits)
    located = crossref.check(state.documents, selection.paths, frozenset(invalid), projects)
    for file, found in group(located):
        state.problems += parse.locate(file, contents[file], found)
    state.problems.sort()
    for file, found in group(support.warnings(state.documents)):
        state.warnings += parse.locate(file, contents[file], found)
    state.warnings.sort()
    return state


def read_projects(
    entries: list[tree.TreeEntry],
    read: Reader,
    documents: list[tuple[str, Document]],
    limits: parse.Limits,
) -> dict[str, mlproject.Project | str]:
    """The ``MLproject`` of every project ``documents`` build or run, read, or why it cannot
    be (so that parameters are checked against what the entry point declares)."""
    wanted = {path for _, doc in documents for path in kinds.projects_of(doc)}
    by_path = {entry.path: entry for entry in entries}
    projects: dict[str, mlproject.Project | str] = {}
    readable: dict[str, tree.TreeEntry] = {}
    for path in sorted(wanted):
        entry = by_path.get(f"{path}/{tree.MLPROJECT}" if path else tree.MLPROJECT)
        if entry is None:
            continue  # reported as a missing project
        if entry.mode in (tree.SYMLINK, tree.SUBMODULE):
            projects[path] = "a link or submodule, not a file: it is not followed"
        elif entry.size > limits.max_bytes:
            projects[path] = f"{entry.size} bytes, over the {limits.max_bytes}-byte limit"
        else:
            readable[path] = entry
    for (path, _), data in zip(readable.items(), read(list(readable.values())), strict=True):
        try:
            projects[path] = mlproject.read(data)
        except ValueError as exc:
            projects[path] = str(exc)
    return projects


def group(located: list[crossref.Located]) -> list[tuple[str, list[hints.Found]]]:
    grouped: dict[str, list[hints.Found]] = {}
    for file, found in located:
        grouped.setdefault(file, []).append(found)
    return sorted(grouped.items())


def _walk(root: Path) -> list[tree.TreeEntry]:
    entries = []
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        base = Path(dirpath)
        special = [d for d in dirnames if (base / d).is_symlink() or (base / d / ".git").exists()]
        dirnames[:] = [d for d in dirnames if d != ".git" and d not in special]
        entries += [_entry(root, base / name) for name in [*filenames, *special]]
    return entries


def _entry(root: Path, path: Path) -> tree.TreeEntry:
    info = path.lstat()
    if stat.S_ISLNK(info.st_mode):
        mode = tree.SYMLINK
    elif stat.S_ISDIR(info.st_mode):
        mode = tree.SUBMODULE  # a directory with its own .git: a submodule checkout
    else:
        mode = "100644"
    return tree.TreeEntry(path.relative_to(root).as_posix(), mode, info.st_size)


def _read_nofollow(path: Path) -> bytes:
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    with os.fdopen(fd, "rb") as handle:
        return handle.read()
