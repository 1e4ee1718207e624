"""Follow a branch commit by commit, reading only what each commit changed.

The first commit is loaded whole, as ``desired.load_commit`` does. After that,
``git diff-tree`` between the last commit and the new one names the paths that
changed; only those blobs are checked (mode, size), read and parsed, the
cross-document checks run again only where a change can reach
(``schemas.crossindex``), and the project tree ids a plan pins come from the
same diff. The result is always what a full load of the new commit gives, and
the snapshot also says which resources' declared state may have changed, so
the planner can re-plan only those. A change too large to be worth following
(more than ``MAX_CHANGES`` paths) is loaded whole.
"""

from __future__ import annotations

import bisect
from collections.abc import Mapping
from dataclasses import dataclass, field

from ledger import gitrepo
from reconciler import _gc, _parallel, desired
from reconciler.plan import Desired, plan_inputs, projects_of
from reconciler.recorded import Key
from schemas import crossindex, parse, tree
from schemas.document import Document
from schemas.problems import Problem

MAX_CHANGES = 500
"""Above this many changed paths a commit is loaded whole (one ``ls-tree``, parse in bulk)."""
TREE = "040000"
DELETED = "D"


@dataclass(frozen=True)
class Snapshot:
    """One commit of the branch, loaded."""

    state: desired.DesiredState
    want: Desired | None
    """The desired state to plan; None when the commit does not validate."""
    changed: frozenset[Key] | None
    """Resources whose declared state may differ from the previous snapshot (None: any)."""
    documents: Mapping[Key, Document]
    """The valid documents by (kind, name); current until the tracker loads another commit."""


@dataclass
class _Tree:
    """What the tracker holds of the last commit it loaded."""

    commit: str
    projects: frozenset[str]
    parsed: dict[str, parse.Parsed]
    """Spec file (as displayed) -> its parse."""
    oids: dict[str, str]
    documents: list[tuple[str, Document]]
    """The valid documents by file, sorted: ``DesiredState.documents``."""
    flawed: set[str]
    """Spec files with problems of their own."""
    refused: dict[str, Problem]
    index: crossindex.CrossIndex
    inputs: dict[str, str] = field(default_factory=dict)


class Tracker:
    """Loads successive commits of one repository path; see the module docstring."""

    def __init__(
        self,
        repo: gitrepo.GitRepo,
        *,
        prefix: str = "",
        display: str = "",
        limits: parse.Limits = parse.DEFAULT_LIMITS,
    ) -> None:
        self.repo = repo
        self.prefix = prefix.strip("/")
        self.display = f"{display.rstrip('/')}/" if display and display != "." else ""
        self.root = display or "."
        self.limits = limits
        self._tree: _Tree | None = None

    def load(self, commit: str) -> Snapshot:
        """The snapshot of ``commit`` (a full commit id)."""
        changed: frozenset[Key] | None = None
        info = self.repo.start_commit_info(commit)  # runs beside the diff and the reads
        with _gc.paused():
            held = self._tree
            if held is not None and held.commit == commit:
                changed = frozenset()
            elif held is not None:
                changes = self.repo.diff_tree(held.commit, commit, self.prefix)
                changed = self._follow(held, commit, changes)
            if held is None or changed is None:
                held = self._tree = self._full(commit)
            return self._snapshot(held, changed, info())

    # Whole commit --------------------------------------------------------------------

    def _full(self, commit: str) -> _Tree:
        entries = self.repo.list_tree(commit, self.prefix)
        selection = tree.select(entries, max_bytes=self.limits.max_bytes, prefix=self.display)
        known = self._tree.parsed if self._tree else {}
        oids = self._tree.oids if self._tree else {}
        specs = {self.display + e.path: e for e in selection.specs}
        parsed = self._parse([f for f, e in specs.items() if oids.get(f) != e.oid], specs)
        parsed = {f: parsed.get(f) or known[f] for f in specs}
        found = [(f, p.document) for f, p in sorted(parsed.items()) if p.document is not None]
        flawed = {f for f, p in parsed.items() if p.problems or p.document is None}
        projects = desired.read_projects(entries, self._read_entries, found, self.limits)
        index = crossindex.CrossIndex(found, selection.paths, _invalid(parsed, flawed), projects)
        state = _Tree(
            commit,
            tree.project_dirs(selection.paths),
            parsed,
            {f: e.oid or "" for f, e in specs.items()},
            found,
            flawed,
            {p.file: p for p in selection.problems},
            index,
        )
        state.inputs = self._tree_ids(commit, plan_inputs([d for _, d in found]))
        return state

    def _read_entries(self, entries: list[tree.TreeEntry]) -> list[bytes]:
        blobs = self.repo.read_blobs([e.oid or "" for e in entries])
        return [blobs[e.oid or ""] for e in entries]

    def _parse(self, files: list[str], specs: dict[str, tree.TreeEntry]) -> dict[str, parse.Parsed]:
        oids = [specs[f].oid or "" for f in files]
        blobs = self.repo.read_blobs(oids)
        items = [(f, blobs[oid]) for f, oid in zip(files, oids, strict=True)]
        return {p.file: p for p in _parallel.parse_all(items, limits=self.limits)}

    def _tree_ids(self, commit: str, projects: list[str]) -> dict[str, str]:
        names = {p: f"{commit}:{'/'.join(filter(None, (self.prefix, p)))}" for p in projects}
        info = self.repo.object_info(list(names.values()))
        trees = {n: oid for n, (oid, kind, _) in info.items() if kind == "tree"}
        return {p: trees.get(n, "") for p, n in names.items()}

    # One change ----------------------------------------------------------------------

    def _follow(
        self, held: _Tree, commit: str, changes: list[gitrepo.Change]
    ) -> frozenset[Key] | None:
        """Apply ``changes`` to the held tree; None when the commit must be loaded whole."""
        blobs = [c for c in changes if TREE not in (c.old_mode, c.new_mode)]
        if len(changes) > MAX_CHANGES or any(_moves_project(c) for c in blobs):
            return None
        entries = self._entries([c for c in blobs if c.status != DELETED])
        selection = tree.select(
            entries, max_bytes=self.limits.max_bytes, prefix=self.display, projects=held.projects
        )
        specs = {self.display + e.path: e for e in selection.specs}
        parsed = self._parse(list(specs), specs)
        files = [self.display + c.path for c in blobs]
        before = {f: _document(held.parsed.get(f)) for f in files}
        for change in blobs:
            self._forget(held, change.path)
        for file, result in parsed.items():
            held.parsed[file] = result
            held.oids[file] = specs[file].oid or ""
            if result.document is not None:
                bisect.insort(held.documents, (file, result.document), key=_file)
            if result.problems or result.document is None:
                held.flawed.add(file)
        held.refused.update({p.file: p for p in selection.problems})
        after = {f: _document(held.parsed.get(f)) for f in {*before, *parsed}}
        added = {c.path for c in blobs if c.status == "A" and not tree.is_ignored(c.path)}
        removed = {c.path for c in blobs if c.status == DELETED and not tree.is_ignored(c.path)}
        if not held.index.update(after, added, removed, _invalid(held.parsed, held.flawed)):
            return None  # held stays a consistent cache for the full load
        held.commit = commit
        return self._changed(held, changes, [*before.values(), *after.values()])

    def _entries(self, changes: list[gitrepo.Change]) -> list[tree.TreeEntry]:
        """The changed paths as a listing, with sizes for the blobs that may be specs."""
        sized = [
            c.new_oid
            for c in changes
            if c.path.endswith(tree.SPEC_SUFFIXES) and c.new_mode != tree.SUBMODULE
        ]
        info = self.repo.object_info(sized)
        return [
            tree.TreeEntry(
                c.path,
                c.new_mode,
                info[c.new_oid][2] if c.new_oid in info else 0,
                None if c.new_mode == tree.SUBMODULE else c.new_oid,
            )
            for c in changes
        ]

    def _forget(self, held: _Tree, path: str) -> None:
        file = self.display + path
        result = held.parsed.pop(file, None)
        if result is not None and result.document is not None:
            del held.documents[bisect.bisect_left(held.documents, file, key=_file)]
        held.oids.pop(file, None)
        held.flawed.discard(file)
        held.refused.pop(file, None)

    def _changed(
        self, held: _Tree, changes: list[gitrepo.Change], docs: list[Document | None]
    ) -> frozenset[Key]:
        """Resources of the changed files, and those building or running a changed project."""
        keys = {(d.KIND, d.name) for d in docs if d is not None}
        trees = {c.path: c for c in changes if TREE in (c.old_mode, c.new_mode)}
        moved = set(trees) & set(held.inputs)
        for path in moved:
            held.inputs[path] = "" if trees[path].status == DELETED else trees[path].new_oid
        new = {p for d in docs if d is not None for p in projects_of(d) if p not in held.inputs}
        if "" in held.inputs and changes:  # a project at the root: its tree is the root's
            moved.add("")
            new.add("")
        held.inputs.update(self._tree_ids(held.commit, sorted(new)))
        if moved:
            users = (d for _, d in held.documents)
            keys |= {(d.KIND, d.name) for d in users if moved & set(projects_of(d))}
        return frozenset(keys)

    # Result --------------------------------------------------------------------------

    def _snapshot(
        self, held: _Tree, changed: frozenset[Key] | None, info: gitrepo.CommitInfo
    ) -> Snapshot:
        state = desired.DesiredState(self.root, held.commit, list(held.documents))
        state.problems = list(held.refused.values())
        for file in held.flawed:
            state.problems += held.parsed[file].problems
        located = held.index.located()
        if located:
            files = {file for file, _ in located}
            blobs = self.repo.read_blobs([held.oids[f] for f in files])
            for file, found in desired.group(located):
                state.problems += parse.locate(file, blobs[held.oids[file]], found)
        state.problems.sort()
        if not state.valid:
            return Snapshot(state, None, changed, held.index.named)
        documents = [doc for _, doc in state.documents]
        want = Desired(held.commit, documents, dict(held.inputs), info.trailers, info.parents > 1)
        return Snapshot(state, want, changed, held.index.named)


def _moves_project(change: gitrepo.Change) -> bool:
    """An MLproject file added, removed or edited: which YAML files are specs changes, or
    what the specs' parameters are checked against."""
    return change.path.rpartition("/")[2] == tree.MLPROJECT


def _document(result: parse.Parsed | None) -> Document | None:
    return result.document if result is not None else None


def _file(item: tuple[str, Document]) -> str:
    return item[0]


def _invalid(parsed: dict[str, parse.Parsed], flawed: set[str]) -> frozenset[Key]:
    """Documents present but invalid (references to them are not errors)."""
    found = (parsed[f] for f in flawed)
    return frozenset(p.declared for p in found if p.document is None and p.declared)
