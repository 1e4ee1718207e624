"""Strict YAML: the only module that imports ruamel.yaml.

Invariants:

* Input is bytes that must be valid UTF-8 and at most ``limits.max_bytes`` long.
* Exactly one document, whose root is a mapping.
* No anchors, aliases, merge keys (``<<``), explicit tags or duplicate keys;
  nesting at most ``limits.max_depth`` deep. Every violation raises
  :class:`YamlError` with a 1-based line and column.
* Plain scalars resolve by the YAML 1.2 core schema (``no`` stays a string);
  quoted and block scalars are strings; mapping keys are always strings.

The hot path drives libyaml through ruamel.yaml.clib's C event parser and
builds plain dicts and lists itself, which is about three times faster than
ruamel's safe constructor and makes the strict checks free. Positions of
every value are recorded only when asked (``locate=True``), which callers do
to place an error after a fast parse failed validation: one parser, so the
positions are exactly those of the fast path.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any

import _ruamel_yaml  # type: ignore[import-not-found]  # ruamel.yaml.clib: libyaml in C
from ruamel.yaml import error as _ruamel_error

Path = tuple[str | int, ...]
Positions = dict[Path, tuple[int, int, int, int]]
"""Per path: line and column of its key (of the item, in a sequence), then of its value."""


@dataclass(frozen=True)
class Limits:
    """Caps applied before and during parsing."""

    max_bytes: int = 1 << 20  # 1 MiB per file: specs are ~1 KB
    max_depth: int = 64  # nesting levels of mappings and sequences


DEFAULT_LIMITS = Limits()


class YamlError(Exception):
    """A document that is not strict YAML; line and column are 1-based."""

    def __init__(self, message: str, line: int = 1, column: int = 1) -> None:
        super().__init__(message)
        self.message = message
        self.line = line
        self.column = column


_INT = re.compile(r"[-+]?[0-9]+|0o[0-7]+|0x[0-9a-fA-F]+")
_FLOAT = re.compile(r"[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?")
_SPECIAL: dict[str, Any] = {
    "": None,
    "~": None,
    "null": None,
    "Null": None,
    "NULL": None,
    "true": True,
    "True": True,
    "TRUE": True,
    "false": False,
    "False": False,
    "FALSE": False,
    ".inf": math.inf,
    ".Inf": math.inf,
    ".INF": math.inf,
    "+.inf": math.inf,
    "+.Inf": math.inf,
    "+.INF": math.inf,
    "-.inf": -math.inf,
    "-.Inf": -math.inf,
    "-.INF": -math.inf,
    ".nan": math.nan,
    ".NaN": math.nan,
    ".NAN": math.nan,
}


def resolve_plain(text: str) -> Any:
    """Resolve a plain (unquoted) scalar by the YAML 1.2 core schema."""
    if text in _SPECIAL:
        return _SPECIAL[text]
    first = text[0]
    if first.isdigit() or first in "-+.":
        if _INT.fullmatch(text):
            return int(text, 0) if text[:2] in ("0o", "0x") else int(text)
        if _FLOAT.fullmatch(text):
            return float(text)
    return text


def _mark(event: Any) -> tuple[int, int]:
    return event.start_mark.line + 1, event.start_mark.column + 1


def _reject_decorations(event: Any) -> None:
    if event.anchor is not None:
        raise YamlError(f"anchor &{event.anchor} is not allowed", *_mark(event))
    if event.tag is not None:
        raise YamlError(f"explicit tag {event.tag} is not allowed", *_mark(event))


class _Builder:
    """Turns the event stream of one document into plain Python values."""

    def __init__(self, parser: Any, limits: Limits, positions: Positions | None) -> None:
        self._next = parser.get_event
        self._limits = limits
        self._positions = positions

    def value(self, event: Any, path: Path, depth: int, key_event: Any = None) -> Any:
        if self._positions is not None:
            at = _mark(event)
            self._positions[path] = (*(_mark(key_event) if key_event else at), *at)
        kind = type(event)
        if kind is _ruamel_yaml.ScalarEvent:
            _reject_decorations(event)
            return resolve_plain(event.value) if event.implicit[0] else event.value
        if kind is _ruamel_yaml.AliasEvent:
            raise YamlError(f"alias *{event.anchor} is not allowed", *_mark(event))
        _reject_decorations(event)
        if depth >= self._limits.max_depth:
            raise YamlError(f"nesting deeper than {self._limits.max_depth} levels", *_mark(event))
        if kind is _ruamel_yaml.MappingStartEvent:
            return self.mapping(path, depth + 1)
        return self.sequence(path, depth + 1)

    def mapping(self, path: Path, depth: int) -> dict[str, Any]:
        result: dict[str, Any] = {}
        while (event := self._next()).__class__ is not _ruamel_yaml.MappingEndEvent:
            key = self.key(event, result)
            result[key] = self.value(self._next(), (*path, key), depth, event)
        return result

    def key(self, event: Any, seen: dict[str, Any]) -> str:
        return _checked_key(event, seen)

    def sequence(self, path: Path, depth: int) -> list[Any]:
        result: list[Any] = []
        while (event := self._next()).__class__ is not _ruamel_yaml.SequenceEndEvent:
            result.append(self.value(event, (*path, len(result)), depth))
        return result


def load(
    data: bytes, *, limits: Limits = DEFAULT_LIMITS, locate: bool = False
) -> tuple[dict[str, Any], Positions]:
    """Parse one strict YAML document whose root is a mapping.

    Returns the document and, when ``locate`` is true, the 1-based line and
    column of every key and value by path (see :data:`Positions`; empty otherwise).
    """
    if len(data) > limits.max_bytes:
        raise YamlError(f"file is {len(data)} bytes, above the {limits.max_bytes}-byte cap")
    _check_utf8(data)
    positions: Positions | None = {} if locate else None
    try:
        return _parse(data, limits, positions), positions or {}
    except _ruamel_error.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line, column = (mark.line + 1, mark.column + 1) if mark else (1, 1)
        raise YamlError(f"invalid YAML: {exc.problem or exc.context}", line, column) from None
    except _ruamel_error.YAMLError as exc:
        raise YamlError(f"invalid YAML: {exc}") from None


def _check_utf8(data: bytes) -> None:
    try:
        data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        column = exc.start - (data.rfind(b"\n", 0, exc.start) + 1) + 1
        raise YamlError(f"invalid UTF-8 at byte {exc.start}", line, column) from None


def _parse(data: bytes, limits: Limits, positions: Positions | None) -> dict[str, Any]:
    parser = _ruamel_yaml.CParser(data)
    parser.get_event()  # StreamStart
    start = parser.get_event()
    if start.__class__ is _ruamel_yaml.StreamEndEvent:
        raise YamlError("the file is empty: expected one Gitplane document")
    root_event = parser.get_event()
    if positions is None:
        root = _build_fast(parser.get_event, root_event, limits.max_depth)
    else:
        root = _Builder(parser, limits, positions).value(root_event, (), 0)
    if not isinstance(root, dict):
        raise YamlError(
            "the document must be a mapping (apiVersion, kind, ...)", *_mark(root_event)
        )
    parser.get_event()  # DocumentEnd
    extra = parser.get_event()
    if extra.__class__ is not _ruamel_yaml.StreamEndEvent:
        raise YamlError("only one document per file is allowed", *_mark(extra))
    return root


_SCALAR = _ruamel_yaml.ScalarEvent
_MAPPING_START = _ruamel_yaml.MappingStartEvent
_MAPPING_END = _ruamel_yaml.MappingEndEvent
_SEQUENCE_START = _ruamel_yaml.SequenceStartEvent
_SEQUENCE_END = _ruamel_yaml.SequenceEndEvent


_NUMERIC_START = frozenset("0123456789+-.")


def _build_fast(next_event: Any, event: Any, max_depth: int) -> Any:  # noqa: PLR0912
    """The hot path: one loop over events, no paths, no positions; same checks as _Builder.

    Inlines the common cases (a plain key, a plain word) and defers to the shared
    checks for everything else; ``ctag`` is read instead of the ``tag`` property.
    """
    stack: list[Any] = []  # open containers
    keys: list[Any] = []  # per open container: the key awaiting its value (mappings)
    while True:
        kind = event.__class__
        if kind is _SCALAR:
            if event.anchor is not None or event.ctag is not None:
                _reject_decorations(event)
            value = event.value
            if event.implicit[0]:
                first = value[:1]
                value = (
                    resolve_plain(value) if first in _NUMERIC_START else _SPECIAL.get(value, value)
                )
        elif kind is _MAPPING_START or kind is _SEQUENCE_START:
            if event.anchor is not None or event.ctag is not None:
                _reject_decorations(event)
            if len(stack) >= max_depth:
                raise YamlError(f"nesting deeper than {max_depth} levels", *_mark(event))
            container: Any = {} if kind is _MAPPING_START else []
            stack.append(container)
            keys.append(None)
            event = next_event()
            if kind is _MAPPING_START and event.__class__ is not _MAPPING_END:
                keys[-1] = _checked_key(event, container)
                event = next_event()
            continue
        elif kind is _MAPPING_END or kind is _SEQUENCE_END:
            keys.pop()
            value = stack.pop()
        else:
            raise YamlError(f"alias *{event.anchor} is not allowed", *_mark(event))
        if not stack:
            return value
        parent = stack[-1]
        event = next_event()
        if parent.__class__ is list:
            parent.append(value)
            continue
        parent[keys[-1]] = value
        if event.__class__ is _MAPPING_END:
            continue
        key = event.value if event.__class__ is _SCALAR else None
        if key is None or key in parent or key == "<<" or event.anchor is not None or event.ctag:
            key = _checked_key(event, parent)
        keys[-1] = key
        event = next_event()


def _checked_key(event: Any, seen: dict[str, Any]) -> str:
    if event.__class__ is not _SCALAR:
        if event.__class__ is _ruamel_yaml.AliasEvent:
            raise YamlError(f"alias *{event.anchor} is not allowed", *_mark(event))
        raise YamlError("mapping keys must be scalars, not mappings or sequences", *_mark(event))
    if event.anchor is not None or event.tag is not None:
        _reject_decorations(event)
    key: str = event.value
    if key in seen:
        raise YamlError(f"duplicate key {key!r}", *_mark(event))
    if key == "<<" and event.implicit[0]:
        raise YamlError("merge keys (<<) are not allowed", *_mark(event))
    return key
