"""``crossref.check`` kept current across commits of one tree.

A reconciler sees one commit after another, each changing a few files of
thousands. :class:`CrossIndex` remembers every file's cross-document problems
and, after a change, checks again only the documents the change can affect:
the changed files, the files declaring a name a changed file declared (for
duplicates), and the files referring to such a name (for references). Its
problems are always those ``crossref.check`` finds on the whole tree; a change
it cannot follow cheaply (a DataPlane, a project added or removed, the set of
invalid documents) makes :meth:`CrossIndex.update` answer False, and the caller
builds a new index.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Iterator, Mapping

from schemas import crossref, kinds, mlproject
from schemas.dag import DAG
from schemas.dataplane import DataPlane
from schemas.deployment import Deployment
from schemas.document import Document
from schemas.hints import Found
from schemas.tree import MLPROJECT

Key = tuple[str, str]


class CrossIndex:
    """The cross-document problems of one tree, by file."""

    def __init__(
        self,
        files: crossref.Files,
        paths: frozenset[str],
        invalid: frozenset[Key] = frozenset(),
        projects: Mapping[str, mlproject.Project | str] | None = None,
    ) -> None:
        self.docs: dict[str, Document] = dict(files)
        self.paths = set(paths)
        self.invalid = invalid
        self.owners: dict[Key, list[str]] = defaultdict(list)
        self.referrers: dict[Key, set[str]] = defaultdict(set)
        for file, doc in files:
            self._add(file, doc)
        for owners in self.owners.values():
            owners.sort()
        planes = [d for d in self.docs.values() if isinstance(d, DataPlane)]
        self.context = crossref.Context(
            defaultdict(dict), planes, self.paths, invalid, dict(projects or {})
        )
        for key in self.owners:
            self._elect(key)
        self.found: dict[str, list[Found]] = {}
        self._refresh(self.docs)

    @property
    def named(self) -> Mapping[Key, Document]:
        """Each declared (kind, name) and the document references resolve to (the first file
        declaring it); a live view."""
        return _Named(self.context.by_kind)

    def located(self) -> list[crossref.Located]:
        """Every problem, as ``crossref.check`` returns them (order aside)."""
        return [(file, f) for file, found in self.found.items() for f in found]

    def update(
        self,
        changed: Mapping[str, Document | None],
        paths_added: Iterable[str] = (),
        paths_removed: Iterable[str] = (),
        invalid: frozenset[Key] | None = None,
    ) -> bool:
        """Apply a change (None: the file holds no valid document now); False when the change
        is one this index cannot follow and nothing was applied: build a new one."""
        added, removed = set(paths_added), set(paths_removed)
        before = [d for f in changed if (d := self.docs.get(f)) is not None]
        after = [d for d in changed.values() if d is not None]
        if (
            (invalid is not None and invalid != self.invalid)
            or any(isinstance(d, DataPlane) for d in (*before, *after))
            or any(p.rpartition("/")[2] == MLPROJECT for p in added | removed)
            or not self._knows_projects(after)
        ):
            return False
        self.paths |= added
        self.paths -= removed
        touched: set[Key] = set()
        for file, doc in changed.items():
            old = self.docs.pop(file, None)
            if old is not None:
                touched.add(_key(old))
                self._remove(file, old)
            if doc is not None:
                self.docs[file] = doc
                touched.add(_key(doc))
                self._add(file, doc, ordered=True)
        for key in touched:
            self._elect(key)
        again = set(changed) | {f for k in touched for f in (*self.owners.get(k, ()),)}
        again |= {f for k in touched for f in self.referrers.get(k, ())}
        for file in set(changed) - set(self.docs):
            self.found.pop(file, None)
        self._refresh({f: self.docs[f] for f in again if f in self.docs})
        return True

    def _knows_projects(self, docs: Iterable[Document]) -> bool:
        """Whether every project ``docs`` build or run was read when the index was built (a
        new reference needs its ``MLproject``: a new index reads it)."""
        if not self.context.projects:
            return True  # built without projects: nothing is checked against them
        return all(
            p in self.context.projects or f"{p}/{MLPROJECT}".lstrip("/") not in self.paths
            for d in docs
            for p in kinds.projects_of(d)
        )

    def _add(self, file: str, doc: Document, *, ordered: bool = False) -> None:
        owners = self.owners[_key(doc)]
        owners.append(file)
        if ordered:
            owners.sort()
        for ref in _references(doc):
            self.referrers[ref].add(file)

    def _remove(self, file: str, doc: Document) -> None:
        key = _key(doc)
        self.owners[key].remove(file)
        if not self.owners[key]:
            del self.owners[key]
        for ref in _references(doc):
            self.referrers[ref].discard(file)

    def _elect(self, key: Key) -> None:
        """The first file declaring ``key`` is the one references resolve to."""
        names = self.context.by_kind[key[0]]
        owners = self.owners.get(key)
        if owners:
            names[key[1]] = self.docs[owners[0]]
        else:
            names.pop(key[1], None)

    def _refresh(self, docs: Mapping[str, Document]) -> None:
        for file, doc in docs.items():
            owners = self.owners[_key(doc)]
            found = [] if owners[0] == file else [_duplicate(doc, owners[0])]
            self.found[file] = found + list(crossref.document_problems(doc, self.context))
            if not self.found[file]:
                del self.found[file]


class _Named(Mapping[Key, Document]):
    def __init__(self, by_kind: dict[str, dict[str, Document]]) -> None:
        self._by_kind = by_kind

    def __getitem__(self, key: Key) -> Document:
        return self._by_kind[key[0]][key[1]]

    def __iter__(self) -> Iterator[Key]:
        return ((kind, name) for kind, names in self._by_kind.items() for name in names)

    def __len__(self) -> int:
        return sum(len(names) for names in self._by_kind.values())


def _key(doc: Document) -> Key:
    return (doc.KIND, doc.name)


def _duplicate(doc: Document, first: str) -> Found:
    message = f"duplicate {doc.KIND} name {doc.name!r}: also defined in {first}"
    return Found(("metadata", "name"), message)


def _references(doc: Document) -> Iterator[Key]:
    """The names ``doc``'s own problems depend on."""
    if isinstance(doc, Deployment):
        yield ("Model", doc.spec.model.name)
    if isinstance(doc, Deployment | DAG):
        for name in doc.spec.feature_sets:
            yield ("FeatureSet", name)
