"""Turn the bytes of one file into a typed spec, or into placed problems.

Fast path: strict YAML into plain values, then pydantic. Only when something
is wrong is the file parsed again with positions recorded, so that every
problem names the line and column of the key or value at fault.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError

from schemas import _yaml, hints
from schemas.common import API_VERSION
from schemas.document import Document
from schemas.kinds import KINDS
from schemas.problems import Problem, did_you_mean, format_path

Limits = _yaml.Limits
DEFAULT_LIMITS = _yaml.DEFAULT_LIMITS


@dataclass
class Parsed:
    """The outcome for one file: a document, or the problems that prevented one."""

    file: str
    document: Document | None = None
    problems: list[Problem] = field(default_factory=list)
    declared: tuple[str, str] | None = None
    """Kind and name of a document that exists but failed validation (no reference fallout)."""


def parse_spec(file: str, data: bytes, *, limits: Limits = DEFAULT_LIMITS) -> Parsed:
    """Parse and validate one spec file; never raises for bad input."""
    try:
        raw, _ = _yaml.load(data, limits=limits)
    except _yaml.YamlError as exc:
        problem = Problem(file, exc.line, exc.column, "", exc.message)
        return Parsed(file, problems=[problem], declared=_declared_in_text(data))
    kind_error = _envelope_error(raw)
    if kind_error is not None:
        return Parsed(file, problems=_place(file, data, [kind_error]))
    cls = KINDS[raw["kind"]]
    try:
        return Parsed(file, document=cls.model_validate(raw))
    except ValidationError as exc:
        found = [hints.explain(cls, error) for error in exc.errors(include_url=False)]
        found = hints.without_typo_fallout(found)
        return Parsed(file, problems=_place(file, data, found), declared=_declared(raw))


def load_mapping(data: bytes, *, limits: Limits = DEFAULT_LIMITS) -> dict[str, Any]:
    """Strict YAML (no anchors, tags, duplicate keys...) for configuration files.

    Raises ValueError with ``line:column: message``.
    """
    try:
        return _yaml.load(data, limits=limits)[0]
    except _yaml.YamlError as exc:
        raise ValueError(f"{exc.line}:{exc.column}: {exc.message}") from None


def locate(file: str, data: bytes, found: list[hints.Found]) -> list[Problem]:
    """Place problems found on a parsed document (cross-reference checks)."""
    return _place(file, data, found)


def _declared(raw: dict[str, Any]) -> tuple[str, str] | None:
    name = raw.get("metadata", {}).get("name") if isinstance(raw.get("metadata"), dict) else None
    return (raw["kind"], name) if isinstance(name, str) else None


_KIND_LINE = re.compile(rb"^kind:[ \t]*([A-Za-z]+)[ \t]*(?:#.*)?$", re.MULTILINE)
_NAME_LINE = re.compile(
    rb"^metadata:[ \t]*(?:\{[ \t]*name:|\n[ \t]+name:)[ \t]*([a-z0-9-]+)", re.MULTILINE
)


def _declared_in_text(data: bytes) -> tuple[str, str] | None:
    """Best-effort kind and name of a file that is not even valid YAML."""
    kind, name = _KIND_LINE.search(data), _NAME_LINE.search(data)
    if kind is None or name is None:
        return None
    return kind.group(1).decode(), name.group(1).decode()


def _envelope_error(raw: dict[str, Any]) -> hints.Found | None:
    api_version, kind = raw.get("apiVersion"), raw.get("kind")
    if api_version is None:
        return hints.Found((), f"missing apiVersion (expected {API_VERSION})", on_key=True)
    if api_version != API_VERSION:
        return hints.Found(
            ("apiVersion",), f"unsupported apiVersion {api_version!r}; expected {API_VERSION!r}"
        )
    if kind is None:
        return hints.Found((), f"missing kind (one of {', '.join(KINDS)})", on_key=True)
    if not isinstance(kind, str) or kind not in KINDS:
        hint = did_you_mean(str(kind), KINDS)
        return hints.Found(("kind",), f"unknown kind {kind!r}{hint}; one of {', '.join(KINDS)}")
    return None


def _place(file: str, data: bytes, found: list[hints.Found]) -> list[Problem]:
    _, positions = _yaml.load(data, locate=True)
    problems = []
    for item in found:
        line, column = _position(positions, item)
        problems.append(Problem(file, line, column, format_path(item.path), item.message))
    return sorted(set(problems))


def _position(positions: _yaml.Positions, item: hints.Found) -> tuple[int, int]:
    path = item.path
    while path and path not in positions:
        path = path[:-1]  # a missing field: point at its parent
    if not path:
        return 1, 1
    key_line, key_column, value_line, value_column = positions[path]
    exact = path == item.path
    return (key_line, key_column) if item.on_key or not exact else (value_line, value_column)
