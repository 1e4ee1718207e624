"""Plan again after a change, deciding again only what the change can reach.

``plan()`` decides every resource on every plane: about 245,000 decisions for
10,000 specs on 100 planes, seconds of work for a commit that changed one
file. :class:`Planner` keeps each plane's decisions from its last plan and,
told which resources' declared state changed (``tracker.Snapshot.changed``),
decides again only:

* on each plane that selects a changed resource, before or after the change:
  that resource, and the deployments of a changed model (they pin it);
* on each plane whose recorded state changed: the resources whose record
  changed and those depending on them (a deployment on its model and feature
  sets);
* on each plane whose policy verdicts changed (approvals on the new commit,
  a change window opening or closing): everything.

A change to a DataPlane or a Policy, or an unknown change, plans everything
again. The result is always equal to ``plan(desired, recorded, now)``: the
tests check that on random sequences of commits and reports.
"""

from __future__ import annotations

import bisect
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime

from reconciler import _gc, decide
from reconciler.planned import ORDER, Action, Desired, Plan, PlanePlan
from reconciler.recorded import Key, RecordedPlane
from schemas.dag import DAG
from schemas.dataplane import DataPlane
from schemas.deployment import Deployment
from schemas.document import Document

WHOLE = ("DataPlane", "Policy")
"""Kinds whose change plans everything again."""


@dataclass
class _Plane:
    """One plane's decisions from the last plan."""

    plane: DataPlane
    recorded: RecordedPlane
    policies: decide.PlanePolicies
    verdicts: dict[str, str | None]
    targets: list[Document]
    """Resources the plane selects, in plan order."""
    refs: dict[str, Document]
    """The same by ``Kind/name``."""
    decisions: list[Action | None]
    """One per target, in the same order."""
    deletions: tuple[Action, ...]
    over: dict[str, decide.Over]
    """Deployments past the plane's capacity, with why (``decide.over_capacity``)."""
    used: Counter[str] | None = None
    """Models the plane's deployments use, with how many use each (built when needed)."""

    def result(self) -> PlanePlan:
        """The plane's plan."""
        actions = tuple(a for a in self.decisions if a is not None) + self.deletions
        labels = self.plane.metadata.labels
        return PlanePlan(
            self.plane.name, self.plane.spec.runtime, dict(labels), actions, self.recorded.summary
        )


class Planner:
    """``plan()`` that remembers; call :meth:`plan` once per commit or report."""

    def __init__(self) -> None:
        self._index: decide.Index | None = None
        self._docs: dict[Key, Document] = {}
        self._users: dict[str, set[Key]] = {}
        """Model name -> the deployments using it."""
        self._planes: dict[str, _Plane] = {}
        self._results: dict[str, PlanePlan] = {}

    def plan(
        self,
        desired: Desired,
        recorded: Mapping[str, RecordedPlane],
        now: datetime,
        changed: frozenset[Key] | None,
        documents: Mapping[Key, Document] | None = None,
    ) -> Plan:
        """The plan of ``desired``; ``changed``: the resources whose declared state may differ
        from the last call's (None: unknown, plan everything); ``documents``: those of
        ``desired`` by key, when the caller has them (``tracker.Snapshot.documents``)."""
        with _gc.paused():
            return self._plan(desired, recorded, now, changed, documents)

    def _plan(
        self,
        desired: Desired,
        recorded: Mapping[str, RecordedPlane],
        now: datetime,
        changed: frozenset[Key] | None,
        documents: Mapping[Key, Document] | None,
    ) -> Plan:
        if changed is None or self._index is None or any(k[0] in WHOLE for k in changed):
            return self._full(desired, recorded, now)
        index = self._index
        index.forget_verdicts()
        news = self._update(desired, changed, documents)
        planes = []
        for name, plane in self._planes.items():
            state = recorded.get(name) or _unrecorded(plane.recorded)
            if self._refresh(plane, desired, state, now, news) or name not in self._results:
                self._results[name] = plane.result()
            planes.append(self._results[name])
        return Plan(desired.commit, tuple(planes))

    # Everything ----------------------------------------------------------------------

    def _full(self, desired: Desired, recorded: Mapping[str, RecordedPlane], now: datetime) -> Plan:
        index = self._index = decide.Index.of(desired.documents)
        self._docs = {(d.KIND, d.name): d for d in desired.documents}
        self._users = {}
        for doc in desired.documents:
            if isinstance(doc, Deployment):
                self._users.setdefault(doc.spec.model.name, set()).add((doc.KIND, doc.name))
        planes = sorted((d for d in desired.documents if isinstance(d, DataPlane)), key=_name)
        self._planes = {}
        for plane in planes:
            state = recorded.get(plane.name) or RecordedPlane(plane.name)
            self._planes[plane.name] = self._decide_all(plane, desired, state, now, index)
        self._results = {name: p.result() for name, p in self._planes.items()}
        return Plan(desired.commit, tuple(self._results.values()))

    def _decide_all(
        self,
        plane: DataPlane,
        desired: Desired,
        state: RecordedPlane,
        now: datetime,
        index: decide.Index,
    ) -> _Plane:
        targets, context = decide.plane_context(plane, desired, state, now, index)
        decisions = [decide.action(doc, context) for doc in targets]
        deletions = tuple(decide.deletions(plane, targets, state))
        return _Plane(
            plane,
            state,
            context.policies,
            dict(context.verdicts),
            targets,
            context.targets,
            decisions,
            deletions,
            dict(context.over),
        )

    # A change ------------------------------------------------------------------------

    def _update(
        self, desired: Desired, changed: frozenset[Key], documents: Mapping[Key, Document] | None
    ) -> dict[Key, Document | None]:
        """Take in the changed documents; their new versions by key."""
        index = self._index
        assert index is not None  # noqa: S101 - plan() checked
        if documents is None:
            named = ((d, (d.KIND, d.metadata.name)) for d in desired.documents)
            documents = {key: d for d, key in named if key in changed}
        now_docs = {key: documents.get(key) for key in changed}
        for key, doc in now_docs.items():
            old = self._docs.get(key)
            for version in (old, doc):
                if version is not None:
                    index.forget(version)
                    if isinstance(version, Deployment):
                        users = self._users.setdefault(version.spec.model.name, set())
                        (users.add if version is doc else users.discard)(key)
            if doc is None:
                self._docs.pop(key, None)
            else:
                self._docs[key] = doc
        for key in [k for k in changed if k[0] == "Model"]:
            for user in self._users.get(key[1], ()):
                if (doc := self._docs.get(user)) is not None:
                    index.forget(doc)  # its pinned model changed
        return now_docs

    def _refresh(
        self,
        plane: _Plane,
        desired: Desired,
        state: RecordedPlane,
        now: datetime,
        news: dict[Key, Document | None],
    ) -> bool:
        """Bring one plane's decisions up to date; whether its plan may have changed."""
        index = self._index
        assert index is not None  # noqa: S101 - plan() checked
        again = self._retarget(plane, news)
        reported: set[Key] = set()
        flagged = False
        if state is not plane.recorded:
            reported = _record_changes(plane.recorded, state)
            flagged = state.summary != plane.recorded.summary
            if state.capabilities != plane.recorded.capabilities:  # what it may be sent
                reported |= {(d.KIND, d.name) for d in plane.targets}
            plane.recorded = state
        again |= reported
        verdicts = index.plane_verdicts(plane.policies, desired, now)
        if verdicts != plane.verdicts:
            plane.verdicts = verdicts
            again |= {(d.KIND, d.name) for d in plane.targets}
        if not again:
            return flagged
        again |= self._dependents(plane, again)
        again |= _admit(plane, again)
        context = decide.Context(
            plane.plane,
            desired,
            state,
            plane.policies,
            verdicts,
            now,
            plane.refs,
            index,
            over=plane.over,
        )
        for kind, name in again:
            doc = plane.refs.get(f"{kind}/{name}")
            if doc is not None:
                plane.decisions[_position(plane.targets, doc)] = decide.action(doc, context)
        if reported or any(k in state.issued for k in again):
            plane.deletions = tuple(decide.deletions(plane.plane, plane.targets, state))
        return True

    def _retarget(self, plane: _Plane, news: dict[Key, Document | None]) -> set[Key]:
        """Add and remove the changed documents this plane selects; the keys to decide again."""
        labels = plane.plane.metadata.labels
        moved: set[Key] = set()
        models = {name for kind, name in news if kind == "Model"}
        for key, doc in news.items():
            was = plane.refs.get(f"{key[0]}/{key[1]}")
            selected = doc is not None and _selects(doc, labels)
            if was is not None:
                self._drop(plane, was, models)
            if doc is not None and selected:
                self._add(plane, doc, models)
            if was is not None or selected:
                moved.add(key)
        for name in models:
            model = self._docs.get(("Model", name))
            if model is None or model.plane_selector is not None:
                continue
            held = plane.refs.get(f"Model/{name}")
            wanted = self._used(plane)[name] > 0
            if held is not None and (held is not model or not wanted):
                self._drop(plane, held, models)
                held = None
            if held is None and wanted:
                self._add(plane, model, models)
            moved.add(("Model", name))
        return moved

    def _add(self, plane: _Plane, doc: Document, models: set[str]) -> None:
        used = self._used(plane)  # counted before the targets change
        at = bisect.bisect_left(plane.targets, _order(doc), key=_order)
        plane.targets.insert(at, doc)
        plane.decisions.insert(at, None)
        plane.refs[doc.ref] = doc
        if isinstance(doc, Deployment):
            used[doc.spec.model.name] += 1
            models.add(doc.spec.model.name)

    def _drop(self, plane: _Plane, doc: Document, models: set[str]) -> None:
        used = self._used(plane)  # counted before the targets change
        at = _position(plane.targets, doc)
        del plane.targets[at], plane.decisions[at], plane.refs[doc.ref]
        if isinstance(doc, Deployment):
            used[doc.spec.model.name] -= 1
            models.add(doc.spec.model.name)

    def _used(self, plane: _Plane) -> Counter[str]:
        if plane.used is None:
            deployments = (d for d in plane.targets if isinstance(d, Deployment))
            plane.used = Counter(d.spec.model.name for d in deployments)
        return plane.used

    def _dependents(self, plane: _Plane, keys: set[Key]) -> set[Key]:
        """Targets whose decision reads the record or the document of one of ``keys``."""
        found: set[Key] = set()
        for kind, name in keys:
            if kind == "Model":
                found |= self._users.get(name, set())
            elif kind == "FeatureSet":
                found |= {
                    (d.KIND, d.name)
                    for d in plane.targets
                    if isinstance(d, Deployment | DAG) and name in d.spec.feature_sets
                }
        return {k for k in found if f"{k[0]}/{k[1]}" in plane.refs}


def _admit(plane: _Plane, again: set[Key]) -> set[Key]:
    """Count the plane's capacity again when a deployment is decided again (one added,
    removed, changed or newly issued can move the others in or out); the deployments
    whose admission changed."""
    capacity = plane.plane.spec.capacity
    limited = capacity.max_deployments is not None or capacity.max_replicas is not None
    if not limited or not any(kind == "Deployment" for kind, _ in again):
        return set()
    over = decide.over_capacity(plane.plane, plane.targets, plane.recorded)
    moved = {n for n in over.keys() | plane.over.keys() if over.get(n) != plane.over.get(n)}
    plane.over = over
    return {("Deployment", name) for name in moved}


def _name(document: Document) -> str:
    return document.name


def _selects(doc: Document, labels: dict[str, str]) -> bool:
    """Whether ``doc`` selects a plane with ``labels`` by its own selector."""
    selector = doc.plane_selector
    return doc.KIND in ORDER and selector is not None and selector.matches(labels)


def _order(doc: Document) -> tuple[int, str]:
    return (ORDER.index(doc.KIND), doc.metadata.name)


def _position(targets: list[Document], doc: Document) -> int:
    at = bisect.bisect_left(targets, _order(doc), key=_order)
    if at == len(targets) or targets[at] is not doc:
        raise RuntimeError(f"{doc.ref} is not where the planner put it")
    return at


def _record_changes(before: RecordedPlane, after: RecordedPlane) -> set[Key]:
    """Resources whose issued command or observed status differs."""
    changed: set[Key] = set()
    for old, new in ((before.issued, after.issued), (before.observed, after.observed)):
        if old is new:
            continue
        changed |= {k for k, v in new.items() if old.get(k) != v}
        changed |= {k for k in old if k not in new}
    return changed


def _unrecorded(last: RecordedPlane) -> RecordedPlane:
    """A plane with no recorded state: the last one when that was empty too (so nothing
    counts as reported)."""
    empty = RecordedPlane(last.name)
    return last if last == empty else empty
