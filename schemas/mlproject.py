"""An MLflow Project's ``MLproject`` file, as far as a spec's parameters depend on it.

Read with the same strict YAML as everything else (no anchors, tags or duplicate
keys), never imported from MLflow: ``validate`` and ``plan`` run without MLflow.
The rules are MLflow's (``mlflow.projects._project_spec``): a parameter is declared
as a type (``alpha: float``) or a mapping with ``type`` (default ``string``) and an
optional ``default``; an entry point not in the file may name a ``.py`` or ``.sh``
script of the project, which then takes any parameter.

MLflow passes a parameter the entry point does not declare on as an extra
``--name value`` argument; the script usually ignores it (or positional
``sys.argv`` scripts read the wrong one) and the default is used silently. Gitplane
refuses it instead: a spec's parameter must be one its entry point declares.
"""

from __future__ import annotations

import math
from collections.abc import Container, Iterator, Mapping
from dataclasses import dataclass, field

from schemas import parse
from schemas.common import ParamValue
from schemas.problems import did_you_mean

TYPES = ("string", "float", "path", "uri")


class MLprojectError(ValueError):
    """An ``MLproject`` file Gitplane cannot read."""


SCRIPTS = (".py", ".sh")


@dataclass(frozen=True)
class Parameter:
    """One declared parameter."""

    type: str
    required: bool
    """Declared without a default: a run must be given it."""


@dataclass(frozen=True)
class EntryPoint:
    """One entry point's declared parameters."""

    parameters: Mapping[str, Parameter]


@dataclass(frozen=True)
class Project:
    """The entry points of one ``MLproject`` file."""

    entry_points: Mapping[str, EntryPoint] = field(default_factory=dict)


def read(data: bytes) -> Project:
    """Parse an ``MLproject`` file; ValueError with ``line:column: message`` or what is wrong
    (:class:`MLprojectError`)."""
    raw = parse.load_mapping(data)
    points = raw.get("entry_points", {})
    if not isinstance(points, dict):
        raise MLprojectError("entry_points: expected a mapping")
    return Project({str(name): _entry_point(str(name), body) for name, body in points.items()})


def _entry_point(name: str, body: object) -> EntryPoint:
    if not isinstance(body, dict):
        raise MLprojectError(f"entry_points.{name}: expected a mapping")
    declared = body.get("parameters") or {}
    if not isinstance(declared, dict):
        raise MLprojectError(f"entry_points.{name}.parameters: expected a mapping")
    return EntryPoint({str(k): _parameter(name, str(k), v) for k, v in declared.items()})


def _parameter(entry: str, name: str, body: object) -> Parameter:
    if isinstance(body, str):
        return Parameter(body, required=True)
    if not isinstance(body, dict):
        raise MLprojectError(
            f"entry_points.{entry}.parameters.{name}: expected a type or a mapping"
        )
    kind = body.get("type", "string")
    return Parameter(str(kind), required="default" not in body or body["default"] is None)


def problems(
    project: Project,
    path: str,
    entry_point: str,
    given: Mapping[str, ParamValue],
    *,
    files: Container[str],
    provided: frozenset[str] = frozenset(),
) -> Iterator[tuple[tuple[str, ...], str, bool]]:
    """What is wrong with running ``entry_point`` of the project at ``path`` with ``given``:
    (the field path under the project reference, the message, whether it points at the key).

    ``files`` are the paths in the repository (for a script entry point); ``provided`` are
    parameters the runtime sets itself (a DAG step's ``input_dir``)."""
    point = project.entry_points.get(entry_point)
    if point is None:
        script = f"{path}/{entry_point}" if path else entry_point
        if entry_point.endswith(SCRIPTS) and script in files:
            return  # a script entry point: MLflow passes it any parameter
        known = ", ".join(sorted(project.entry_points)) or "none"
        yield (
            ("entryPoint",),
            f"no entry point {entry_point!r} in {path or '.'}/MLproject (it has: {known})"
            + did_you_mean(entry_point, project.entry_points),
            False,
        )
        return
    declared = point.parameters
    for name, value in given.items():
        parameter = declared.get(name)
        if parameter is None:
            hint = did_you_mean(name, declared)
            yield (
                ("parameters", name),
                f"entry point {entry_point!r} of {path or '.'} declares no parameter {name!r}"
                + (hint or f" (it declares: {', '.join(sorted(declared)) or 'none'})"),
                True,
            )
        elif parameter.type == "float" and not _is_float(value):
            yield (
                ("parameters", name),
                f"{name!r} is declared float in {path or '.'}/MLproject; {value!r} is not a number",
                False,
            )
    missing = sorted(
        name
        for name, p in declared.items()
        if p.required and name not in given and name not in provided
    )
    if missing:
        yield (
            ("parameters",),
            f"entry point {entry_point!r} of {path or '.'} requires "
            + ", ".join(repr(m) for m in missing)
            + " (declared without a default)",
            True,
        )


def _is_float(value: ParamValue) -> bool:
    if isinstance(value, bool):
        return False
    if isinstance(value, int | float):
        return math.isfinite(value)
    try:
        return math.isfinite(float(value))
    except ValueError:
        return False
