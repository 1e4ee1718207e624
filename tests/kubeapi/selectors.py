"""Label and field selectors as the API server reads them from ``?labelSelector=``.

Label selectors: ``k=v``, ``k==v``, ``k!=v``, ``k in (a,b)``, ``k notin (a,b)``, ``k``
(exists) and ``!k``, joined by commas (AND). Field selectors: ``metadata.name`` and
``metadata.namespace`` with ``=``/``==``/``!=``, which is what a runtime uses; any other
field is refused as the real server refuses a field it does not index.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

_KEY = r"[A-Za-z0-9][-A-Za-z0-9_./]*"
_SET = re.compile(rf"^({_KEY})\s+(in|notin)\s+\(([^)]*)\)$")
_EQUALITY = re.compile(rf"^({_KEY})\s*(==|=|!=)\s*([-A-Za-z0-9_.]*)$")
_EXISTS = re.compile(rf"^(!?)\s*({_KEY})$")
FIELDS = ("metadata.name", "metadata.namespace")


@dataclass(frozen=True)
class Requirement:
    """One comma-separated term: ``key``, an operator and the values it names."""

    key: str
    operator: str
    """``in``, ``notin``, ``exists`` or ``!``: ``=`` reads as ``in``, ``!=`` as ``notin``."""
    values: frozenset[str] = frozenset()

    def matches(self, labels: Mapping[str, str]) -> bool:
        present = self.key in labels
        if self.operator == "exists":
            return present
        if self.operator == "!":
            return not present
        if self.operator == "in":
            return present and labels[self.key] in self.values
        return not present or labels[self.key] not in self.values


def _terms(text: str) -> list[str]:
    """Split on the commas outside parentheses."""
    terms, depth, start = [], 0, 0
    for i, char in enumerate(text):
        depth += {"(": 1, ")": -1}.get(char, 0)
        if char == "," and depth == 0:
            terms.append(text[start:i])
            start = i + 1
    terms.append(text[start:])
    return [t.strip() for t in terms if t.strip()]


def _requirement(term: str) -> Requirement:
    if found := _SET.match(term):
        values = frozenset(v.strip() for v in found[3].split(",") if v.strip())
        return Requirement(found[1], found[2], values)
    if found := _EQUALITY.match(term):
        return Requirement(found[1], "notin" if found[2] == "!=" else "in", frozenset([found[3]]))
    if found := _EXISTS.match(term):
        return Requirement(found[2], "!" if found[1] else "exists")
    raise ValueError(f"unable to parse requirement: {term!r}")


def parse_labels(text: str) -> list[Requirement]:
    """The requirements of a label selector; ValueError names the term it cannot read."""
    return [_requirement(term) for term in _terms(text)]


def parse_fields(text: str) -> list[Requirement]:
    """A field selector as requirements on the object's ``metadata.*`` values."""
    requirements = []
    for term in _terms(text):
        found = _EQUALITY.match(term)
        if found is None:
            raise ValueError(f"invalid selector: {term!r}; can't understand it")
        if found[1] not in FIELDS:
            raise ValueError(f'field label not supported: "{found[1]}"')
        requirements.append(_requirement(term))
    return requirements


def labels_match(requirements: list[Requirement], obj: Mapping[str, Any]) -> bool:
    labels = obj.get("metadata", {}).get("labels") or {}
    return all(r.matches(labels) for r in requirements)


def fields_match(requirements: list[Requirement], obj: Mapping[str, Any]) -> bool:
    metadata = obj.get("metadata", {})
    values = {f"metadata.{k}": metadata.get(k, "") for k in ("name", "namespace")}
    return all(r.matches(values) for r in requirements)
