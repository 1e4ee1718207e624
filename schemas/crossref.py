"""Checks that span documents: names, references, selectors, DAG edges, project paths.

Pure: takes the parsed documents of one tree and the set of paths in it, and
returns problems by file, not yet placed at a line (see ``parse.locate``).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Container, Iterator, Mapping
from dataclasses import dataclass, field

from schemas import mlproject
from schemas.common import LabelSelector, ProjectRef
from schemas.dag import DAG, PROVIDED_PARAMETERS
from schemas.dataplane import DataPlane
from schemas.deployment import Deployment
from schemas.document import Document
from schemas.hints import Found
from schemas.model import Model
from schemas.problems import did_you_mean
from schemas.tree import MLPROJECT

Located = tuple[str, Found]
Files = list[tuple[str, Document]]


@dataclass
class Context:
    """What checking one document needs to know of the others."""

    by_kind: dict[str, dict[str, Document]]
    planes: list[DataPlane]
    paths: Container[str]
    invalid: frozenset[tuple[str, str]]
    """(kind, name) of documents present but invalid: references to them are not errors."""
    projects: Mapping[str, mlproject.Project | str] = field(default_factory=dict)
    """Project directory -> its ``MLproject`` read, or why it cannot be read. A project not
    here is not checked against (a caller that did not read it)."""

    selected: dict[str, bool] = field(default_factory=dict)
    """Memo: selector (as JSON) -> whether it matches any plane. Selectors repeat a lot."""

    def exists(self, kind: str, name: str) -> bool:
        return name in self.by_kind[kind] or (kind, name) in self.invalid

    def selects(self, selector: LabelSelector) -> bool:
        key = selector.model_dump_json()
        if key not in self.selected:
            self.selected[key] = any(selector.matches(p.metadata.labels) for p in self.planes)
        return self.selected[key]


def check(
    files: Files,
    paths: frozenset[str],
    invalid: frozenset[tuple[str, str]] = frozenset(),
    projects: Mapping[str, mlproject.Project | str] | None = None,
) -> list[Located]:
    """Every cross-document problem of a tree; ``files`` pairs each file with its document.

    ``invalid`` names documents that failed validation: they are taken to exist,
    so one broken file does not cause a cascade of reference errors elsewhere.
    """
    by_kind: dict[str, dict[str, Document]] = defaultdict(dict)
    found = list(_duplicates(files, by_kind))
    planes = [d for d in by_kind["DataPlane"].values() if isinstance(d, DataPlane)]
    context = Context(by_kind, planes, paths, invalid, projects or {})
    for file, doc in files:
        found += [(file, f) for f in document_problems(doc, context)]
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


def document_problems(doc: Document, context: Context) -> Iterator[Found]:
    """The problems of one document against the rest of its tree."""
    planes_known = not any(kind == "DataPlane" for kind, _ in context.invalid)
    if doc.plane_selector is not None and planes_known and not context.selects(doc.plane_selector):
        known = ", ".join(f"{p.name} {p.metadata.labels}" for p in context.planes) or "none"
        yield Found(("spec", "planeSelector"), f"selects no DataPlane (planes: {known})")
    if isinstance(doc, Model) and doc.spec.source.project is not None:
        loc = ("spec", "source", "project")
        yield from _project((*loc, "path"), doc.spec.source.project.path, context.paths)
        yield from _parameters(loc, doc.spec.source.project, context)
    if isinstance(doc, Deployment):
        yield from _deployment(doc, context)
    if isinstance(doc, Deployment | DAG):
        yield from _feature_sets(doc.spec.feature_sets, context)
    if isinstance(doc, DAG):
        yield from _dag(doc, context.paths)
        yield from _dag_parameters(doc, context)


def _project(loc: tuple[str | int, ...], path: str, paths: Container[str]) -> Iterator[Found]:
    marker = f"{path}/{MLPROJECT}" if path else MLPROJECT
    if marker not in paths:
        yield Found(loc, f"no MLflow Project at {path!r}: {marker} is missing")


def _parameters(
    loc: tuple[str | int, ...],
    ref: ProjectRef,
    context: Context,
    provided: frozenset[str] = frozenset(),
) -> Iterator[Found]:
    project = context.projects.get(ref.path)
    if project is None:
        return
    if isinstance(project, str):
        yield Found((*loc, "path"), f"cannot read {ref.path or '.'}/{MLPROJECT}: {project}")
        return
    found = mlproject.problems(
        project, ref.path, ref.entry_point, ref.parameters, files=context.paths, provided=provided
    )
    for at, message, on_key in found:
        yield Found((*loc, *at), message, on_key=on_key)


def _dag_parameters(doc: DAG, context: Context) -> Iterator[Found]:
    shared = frozenset(doc.spec.parameters)
    for i, step in enumerate(doc.spec.steps):
        loc = ("spec", "steps", i, "project")
        yield from _parameters(loc, step.project, context, PROVIDED_PARAMETERS | shared)
    declared: set[str] = set()
    for step in doc.spec.steps:
        project = context.projects.get(step.project.path)
        point = (
            project.entry_points.get(step.project.entry_point)
            if isinstance(project, mlproject.Project)
            else None
        )
        if point is None:
            return  # a step whose declarations are unknown (or a script): it may take any
        declared |= set(point.parameters)
    for name in sorted(shared - declared):
        yield Found(
            ("spec", "parameters", name),
            f"no step's entry point declares {name!r}" + did_you_mean(name, declared),
            on_key=True,
        )


def _deployment(doc: Deployment, context: Context) -> Iterator[Found]:
    ref = doc.spec.model
    models = context.by_kind["Model"]
    model = models.get(ref.name)
    if not context.exists("Model", ref.name):
        hint = did_you_mean(ref.name, models)
        yield Found(("spec", "model", "name"), f"no Model named {ref.name!r}{hint}")
    elif isinstance(model, Model) and ref.version is not None and ref.version != model.spec.version:
        yield Found(
            ("spec", "model", "version"),
            f"Model {ref.name!r} has no version "
            f"{ref.version!r}; it declares {model.spec.version!r}",
        )


def _feature_sets(names: list[str], context: Context) -> Iterator[Found]:
    for index, name in enumerate(names):
        if not context.exists("FeatureSet", name):
            hint = did_you_mean(name, context.by_kind["FeatureSet"])
            yield Found(("spec", "featureSets", index), f"no FeatureSet named {name!r}{hint}")


def _dag(doc: DAG, paths: Container[str]) -> Iterator[Found]:
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
