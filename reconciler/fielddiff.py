"""Field diffs for ``plan``: what an update changes, field by field (``replicas: 1 → 2``).

Pure: two resolved specs (the JSON text of the command last issued and of the one about to
be) in, the changed leaves out, named by their path under ``spec`` as users wrote them
(``autoscaling.maxReplicas``, ``metricsGate[0].threshold``). Digests and tree ids that the
reconciler pins (``inputs``, a pinned model version) are fields like any other: a new commit of
a project's code shows as its tree id changing, which is the truth of the change.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass

MISSING: object = object()
"""A field one side does not set."""

WIDTH = 60
"""The longest value shown in text before it is cut (JSON keeps it whole)."""


@dataclass(frozen=True)
class Change:
    """One leaf that differs: ``before`` or ``after`` is :data:`MISSING` when added or
    removed."""

    field: str
    before: object
    after: object

    def as_dict(self) -> dict[str, object]:
        """The JSON form: an added field has no ``before``, a removed one no ``after``."""
        body: dict[str, object] = {"field": self.field}
        if self.before is not MISSING:
            body["before"] = self.before
        if self.after is not MISSING:
            body["after"] = self.after
        return body

    def text(self) -> str:
        """``replicas: 1 → 2``, ``+ shadow: true``, ``- canary (was 10)``."""
        if self.before is MISSING:
            return f"+ {self.field}: {_short(self.after)}"
        if self.after is MISSING:
            return f"- {self.field} (was {_short(self.before)})"
        return f"{self.field}: {_short(self.before)} → {_short(self.after)}"


def changes(before: str, after: str) -> tuple[Change, ...]:
    """The leaves of ``after`` that differ from ``before`` (both a resolved spec's JSON text),
    in path order; empty when either side is not a JSON object (nothing to compare)."""
    try:
        old, new = json.loads(before), json.loads(after)
    except ValueError:
        return ()
    if not isinstance(old, dict) or not isinstance(new, dict):
        return ()
    found = _walk(_body(old), _body(new), "")
    return tuple(sorted((_named(c) for c in found), key=lambda c: c.field))


def _body(document: dict[str, object]) -> dict[str, object]:
    """All but ``apiVersion`` and ``kind``, which an update cannot change."""
    return {k: v for k, v in document.items() if k not in ("apiVersion", "kind")}


def _named(change: Change) -> Change:
    """Fields under ``spec`` by the names users write (``replicas``, not ``spec.replicas``);
    ``metadata.labels.team`` and the pinned ``inputs`` keep their full path."""
    if change.field.startswith("spec."):
        return Change(change.field[len("spec.") :], change.before, change.after)
    return change


def _walk(old: object, new: object, path: str) -> Iterator[Change]:
    if type(old) is type(new) and not isinstance(old, dict | list) and old == new:
        return  # a leaf unchanged (``1`` and ``true`` or ``1.0`` are not the same value)
    if isinstance(old, dict) and isinstance(new, dict):
        for key in old.keys() | new.keys():
            where = f"{path}.{key}" if path else str(key)
            yield from _walk(old.get(key, MISSING), new.get(key, MISSING), where)
        return
    if isinstance(old, list) and isinstance(new, list) and len(old) == len(new):
        for i, (a, b) in enumerate(zip(old, new, strict=True)):
            yield from _walk(a, b, f"{path}[{i}]")
        return
    yield Change(path or "(document)", old, new)


def _short(value: object) -> str:
    text = json.dumps(value, sort_keys=True, ensure_ascii=False)
    if isinstance(value, str) and text.strip('"').replace(".", "").replace("-", "").isalnum():
        text = value  # 1.2.0, churn-api: no quotes needed to read them
    return text if len(text) <= WIDTH else text[: WIDTH - 1] + "…"
