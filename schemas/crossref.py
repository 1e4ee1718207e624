"""Checks that span documents: names, references, selectors, DAG edges, project paths.

Pure: takes the parsed documents of one tree and the set of paths in it, and
returns problems by file, not yet placed at a line (see ``parse.locate``).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator

from schemas.common import LabelSelector
from schemas.dag import DAG
from schemas.dataplane import DataPlane
from schemas.deployment import Deployment
from schemas.document import Document
from schemas.hints import Found
from schemas.model import Model
from schemas.problems import did_you_mean
from schemas.tree import MLPROJECT

Located = tuple[str, Found]
Files = list[tuple[str, Document]]


def check(files: Files, paths: frozenset[str]) -> list[Located]:
    """Every cross-document problem of a tree; ``files`` pairs each file with its document."""
    by_kind: dict[str, dict[str, Document]] = defaultdict(dict)
    found = list(_duplicates(files, by_kind))
    planes = [d for d in by_kind["DataPlane"].values() if isinstance(d, DataPlane)]
    for file, doc in files:
        found += [(file, f) for f in _document_problems(doc, by_kind, planes, paths)]
    return found


def _duplicates(files: Files, by_kind: dict[str, dict[str, Document]]) -> Iterator[Located]:
    first: dict[tuple[str, str], str] = {}
    for file, doc in files:
        key = (doc.KIND, doc.name)
        if key in first:
            message = f"duplicate {doc.KIND} name {doc.name!r}: also defined in {first[key]}"
            yield file, Found(("metadata", "name"), message)
        else:
            first[key] = file
            by_kind[doc.KIND][doc.name] = doc


def _document_problems(
    doc: Document, by_kind: dict[str, dict[str, Document]], planes: list[DataPlane],
    paths: frozenset[str],
) -> Iterator[Found]:  # fmt: skip
    if doc.plane_selector is not None:
        yield from _selector(doc.plane_selector, planes)
    if isinstance(doc, Model) and doc.spec.source.project is not None:
        yield from _project(
            ("spec", "source", "project", "path"), doc.spec.source.project.path, paths
        )
    if isinstance(doc, Deployment):
        yield from _deployment(doc, by_kind["Model"])
    if isinstance(doc, Deployment | DAG):
        yield from _feature_sets(doc.spec.feature_sets, by_kind["FeatureSet"])
    if isinstance(doc, DAG):
        yield from _dag(doc, paths)


def _selector(selector: LabelSelector, planes: list[DataPlane]) -> Iterator[Found]:
    if not any(selector.matches(p.metadata.labels) for p in planes):
        known = ", ".join(f"{p.name} {p.metadata.labels}" for p in planes) or "none defined"
        yield Found(("spec", "planeSelector"), f"selects no DataPlane (planes: {known})")


def _project(loc: tuple[str | int, ...], path: str, paths: frozenset[str]) -> Iterator[Found]:
    marker = f"{path}/{MLPROJECT}" if path else MLPROJECT
    if marker not in paths:
        yield Found(loc, f"no MLflow Project at {path!r}: {marker} is missing")


def _deployment(doc: Deployment, models: dict[str, Document]) -> Iterator[Found]:
    ref = doc.spec.model
    model = models.get(ref.name)
    if model is None:
        hint = did_you_mean(ref.name, models)
        yield Found(("spec", "model", "name"), f"no Model named {ref.name!r}{hint}")
    elif isinstance(model, Model) and ref.version is not None and ref.version != model.spec.version:
        yield Found(
            ("spec", "model", "version"),
            f"Model {ref.name!r} has no version "
            f"{ref.version!r}; it declares {model.spec.version!r}",
        )


def _feature_sets(names: list[str], known: dict[str, Document]) -> Iterator[Found]:
    for index, name in enumerate(names):
        if name not in known:
            hint = did_you_mean(name, known)
            yield Found(("spec", "featureSets", index), f"no FeatureSet named {name!r}{hint}")


def _dag(doc: DAG, paths: frozenset[str]) -> Iterator[Found]:
    steps = doc.spec.steps
    names = {s.name for s in steps}
    for i, step in enumerate(steps):
        loc = ("spec", "steps", i)
        if [s.name for s in steps].index(step.name) != i:
            yield Found((*loc, "name"), f"duplicate step name {step.name!r}")
        yield from _project((*loc, "project", "path"), step.project.path, paths)
        for j, dep in enumerate(step.depends_on):
            if dep not in names:
                hint = did_you_mean(dep, names)
                yield Found((*loc, "dependsOn", j), f"unknown step {dep!r}{hint}")
        if step.partition and step.partition.from_ not in step.depends_on:
            yield Found(
                (*loc, "partition", "from"),
                f"partitions step {step.partition.from_!r}, which is not in dependsOn",
            )
    cycle = find_cycle({s.name: [d for d in s.depends_on if d in names] for s in steps})
    if cycle:
        index = [s.name for s in steps].index(cycle[0])
        yield Found(("spec", "steps", index, "dependsOn"), f"cycle: {' -> '.join(cycle)}")


def find_cycle(edges: dict[str, list[str]]) -> list[str]:
    """One cycle of a dependency graph as ``[a, b, ..., a]``, or ``[]`` when acyclic."""
    state: dict[str, int] = {}  # 1 = on the current path, 2 = done
    stack: list[str] = []

    def visit(node: str) -> list[str]:
        state[node] = 1
        stack.append(node)
        for nxt in edges.get(node, []):
            if state.get(nxt) == 1:
                return [*stack[stack.index(nxt) :], nxt]
            if nxt not in state and (found := visit(nxt)):
                return found
        stack.pop()
        state[node] = 2
        return []

    for node in sorted(edges):
        if node not in state and (found := visit(node)):
            return found
    return []
