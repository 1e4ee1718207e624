"""Which files of a repository tree are specs, and which entries are refused.

Pure: works on a listing (path, mode, size) that a git commit or a working
tree provides, before any file is read. Symlinks and submodules are refused
and never read; oversized files are refused by their recorded size.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from schemas.problems import Problem

SYMLINK = "120000"
SUBMODULE = "160000"
MLPROJECT = "MLproject"
SPEC_SUFFIXES = (".yaml", ".yml")


@dataclass(frozen=True)
class TreeEntry:
    """One file of a tree; ``path`` is relative to the validated root, '/'-separated."""

    path: str
    mode: str
    size: int
    oid: str | None = None
    """Git blob id when read from a commit; None in a working tree."""


@dataclass
class Selection:
    """Spec files to read, every path present, and entries refused outright."""

    specs: list[TreeEntry]
    paths: frozenset[str]
    problems: list[Problem]


def is_ignored(path: str) -> bool:
    """Dot-files and dot-directories (.github, .gitlab-ci.yml) are not specs."""
    return any(part.startswith(".") for part in path.split("/"))


def project_dirs(paths: Iterable[str]) -> frozenset[str]:
    """Directories holding an ``MLproject`` file; their YAML is project files, not specs."""
    return frozenset(p.rpartition("/")[0] for p in paths if p.rpartition("/")[2] == MLPROJECT)


def _in_project(path: str, projects: frozenset[str]) -> bool:
    parent = path.rpartition("/")[0]
    while True:
        if parent in projects:
            return True
        if not parent:
            return False
        parent = parent.rpartition("/")[0]


def select(
    entries: Iterable[TreeEntry],
    *,
    max_bytes: int,
    prefix: str = "",
    projects: frozenset[str] | None = None,
) -> Selection:
    """Split a listing into spec files and refusals; ``prefix`` is prepended to reported paths.

    ``projects`` are the tree's MLflow Project directories when ``entries`` is only part
    of the tree (default: found in ``entries``)."""
    kept = [e for e in entries if not is_ignored(e.path)]
    if projects is None:
        projects = project_dirs(e.path for e in kept)
    specs, problems = [], []
    for entry in kept:
        refusal = _refusal(entry, max_bytes)
        if refusal:
            problems.append(Problem(prefix + entry.path, 0, 0, "", refusal))
        elif entry.path.endswith(SPEC_SUFFIXES) and not _in_project(entry.path, projects):
            specs.append(entry)
    specs.sort(key=lambda e: e.path)
    return Selection(specs, frozenset(e.path for e in kept), problems)


def _refusal(entry: TreeEntry, max_bytes: int) -> str | None:
    if entry.mode == SYMLINK:
        return "symlinks are not allowed in a spec repository (not followed, not read)"
    if entry.mode == SUBMODULE:
        return "submodules are not allowed in a spec repository (not fetched, not read)"
    if entry.path.endswith(SPEC_SUFFIXES) and entry.size > max_bytes:
        return f"file is {entry.size} bytes, above the {max_bytes}-byte cap (not read)"
    return None
