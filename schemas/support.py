"""Fields a spec may set that a runtime, or this release, does not enforce.

A field that is accepted and silently ignored is a promise broken. Each one listed here is
reported as a warning by ``validate`` and ``plan`` wherever a spec sets it (file, line and
column, as problems are), naming the planes it would be ignored on; the checks stay
warnings (the spec is valid, and the next runtime may enforce them). Pure: the parsed
documents in, warnings by file out (placed at lines by ``parse.locate``).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

from schemas.common import Resources
from schemas.crossref import Files, Located
from schemas.dag import DAG
from schemas.dataplane import DataPlane
from schemas.deployment import Deployment
from schemas.document import Document
from schemas.featureset import FeatureSet
from schemas.hints import Found
from schemas.model import Model

UNENFORCED_RESOURCES = frozenset({"local"})
"""Runtimes that do not apply ``resources`` (cpu, memory, gpu) as limits."""
NO_AUTO_ROLLBACK_OFF = frozenset({"local"})
"""Runtimes whose old replicas keep serving when a new version fails, whatever
``rollout.autoRollback`` says."""


@dataclass
class _Planes:
    planes: list[DataPlane]
    memo: dict[str, list[DataPlane]] = field(default_factory=dict)
    """Selector (as JSON) -> the planes it selects: selectors repeat across thousands of
    specs."""

    def of(self, doc: Document) -> list[DataPlane]:
        """The planes ``doc`` lands on (every plane for a model built where it is deployed)."""
        selector = doc.plane_selector
        if selector is None:
            return self.planes
        key = selector.model_dump_json()
        if key not in self.memo:
            self.memo[key] = [p for p in self.planes if selector.matches(p.metadata.labels)]
        return self.memo[key]


def warnings(files: Files) -> list[Located]:
    """Every warning of a tree, by file (not yet placed at a line)."""
    planes = _Planes([doc for _, doc in files if isinstance(doc, DataPlane)])
    return [(file, found) for file, doc in files for found in _document(doc, planes)]


def _document(doc: Document, planes: _Planes) -> Iterator[Found]:
    if isinstance(doc, DataPlane):
        return
    limited = [loc for loc, resources in _resources(doc) if _sets(resources)]
    no_rollback = isinstance(doc, Deployment) and not doc.spec.rollout.auto_rollback
    if not limited and not no_rollback:
        return  # most specs: nothing to look up
    on = planes.of(doc)
    ignoring = sorted(p.name for p in on if p.spec.runtime in UNENFORCED_RESOURCES)
    for loc in limited:
        if ignoring:
            yield Found(
                loc,
                "not enforced by the local runtime (planes: "
                f"{', '.join(ignoring)}): processes there are not limited to it",
                on_key=True,
            )
    if no_rollback:
        kept = sorted(p.name for p in on if p.spec.runtime in NO_AUTO_ROLLBACK_OFF)
        if kept:
            yield Found(
                ("spec", "rollout", "autoRollback"),
                "has no effect on the local runtime (planes: "
                f"{', '.join(kept)}): the old replicas keep serving when a new version fails",
            )


def _resources(doc: Document) -> Iterator[tuple[tuple[str | int, ...], Resources]]:
    if isinstance(doc, Model | Deployment | FeatureSet):
        yield ("spec", "resources"), doc.spec.resources
    if isinstance(doc, DAG):
        for i, step in enumerate(doc.spec.steps):
            yield ("spec", "steps", i, "resources"), step.resources


def _sets(resources: Resources) -> bool:
    return resources.cpu is not None or resources.memory is not None or resources.gpu > 0
