"""Server-side apply's field ownership, simplified but honest: a pure core over dicts.

Each field manager owns a set of *leaf paths* (``("spec", "replicas")``,
``("metadata", "labels", "app")``). Maps are merged key by key; a list or a scalar is one
leaf (the real server merges some lists by key, e.g. containers by ``name``; here every
list is atomic, which only makes conflicts on lists coarser). The rules are the real ones:

* An **apply** by manager M sets every leaf of its configuration and owns exactly those
  leaves afterwards; a leaf M owned before and no longer applies is removed from the object
  unless another manager owns it too.
* A leaf another manager owns with a *different* value is a **conflict** (409) unless the
  apply is forced, which moves ownership to M. Same value: both own it, no conflict.
* An **update** (create, PUT, merge patch) never conflicts: its manager takes ownership of
  every leaf it changed, away from the others.

Ownership is kept in ``metadata.managedFields`` in the real ``FieldsV1`` shape
(``{"f:spec": {"f:replicas": {}}}``), one entry per manager and operation.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from typing import Any

Path = tuple[str, ...]
Json = dict[str, Any]

UNTRACKED_METADATA = {
    "name",
    "namespace",
    "uid",
    "resourceVersion",
    "generation",
    "creationTimestamp",
    "managedFields",
    "selfLink",
    "deletionTimestamp",
}


def leaves(obj: Json, prefix: Path = ()) -> Iterator[Path]:
    """Every leaf path of a (possibly nested) map; an empty map is a leaf."""
    for key, value in obj.items():
        if isinstance(value, dict) and value:
            yield from leaves(value, (*prefix, key))
        else:
            yield (*prefix, key)


def tracked(obj: Json, *, status: bool = False) -> set[Path]:
    """The leaves a write of ``obj`` touches: status alone for a status write, else
    everything but status, type information and server-set metadata."""
    if status:
        return {("status", *p) for p in leaves(obj.get("status") or {})}
    paths = set()
    for path in leaves(obj):
        if path[0] in {"apiVersion", "kind", "status"}:
            continue
        if path[0] == "metadata" and (len(path) < 2 or path[1] in UNTRACKED_METADATA):
            continue
        paths.add(path)
    return paths


_MISSING = object()


def get(obj: Json, path: Path) -> Any:
    for key in path:
        if not isinstance(obj, dict) or key not in obj:
            return _MISSING
        obj = obj[key]
    return obj


def put(obj: Json, path: Path, value: Any) -> None:
    for key in path[:-1]:
        if not isinstance(obj.get(key), dict):
            obj[key] = {}
        obj = obj[key]
    obj[path[-1]] = copy.deepcopy(value)


def remove(obj: Json, path: Path) -> None:
    """Delete the leaf at ``path`` and any map it leaves empty."""
    parents = [obj]
    for key in path[:-1]:
        child = parents[-1].get(key)
        if not isinstance(child, dict):
            return
        parents.append(child)
    parents[-1].pop(path[-1], None)
    for depth in range(len(path) - 1, 0, -1):
        if parents[depth]:
            break
        parents[depth - 1].pop(path[depth - 1], None)


def to_fields_v1(paths: set[Path]) -> Json:
    """``{("spec", "replicas")}`` -> ``{"f:spec": {"f:replicas": {}}}``."""
    tree: Json = {}
    for path in sorted(paths):
        node = tree
        for key in path:
            node = node.setdefault(f"f:{key}", {})
    return tree


def from_fields_v1(tree: Json, prefix: Path = ()) -> set[Path]:
    paths: set[Path] = set()
    for key, child in tree.items():
        path = (*prefix, key.removeprefix("f:"))
        paths |= from_fields_v1(child, path) if child else {path}
    return paths


def dotted(path: Path) -> str:
    return "".join(f".{key}" for key in path)


def overlaps(a: Path, b: Path) -> bool:
    """One path is the other or lies inside it (an atomic list owned whole, say)."""
    shorter = min(len(a), len(b))
    return a[:shorter] == b[:shorter]


def owners(entries: list[Json]) -> list[tuple[Json, set[Path]]]:
    """Each managedFields entry with the leaves it owns."""
    return [(e, from_fields_v1(e.get("fieldsV1", {}))) for e in entries]


def conflicts(
    current: Json, applied: Json, mine: set[Path], entries: list[Json], manager: str
) -> list[tuple[str, Path]]:
    """``(other manager, path)`` for each leaf of ``mine`` that another manager owns with a
    value that differs from the applied one."""
    found = []
    for entry, owned in owners(entries):
        if entry["manager"] == manager or entry.get("subresource"):
            continue
        for theirs in owned:
            if any(overlaps(theirs, path) for path in mine):
                longer = max((theirs, *[p for p in mine if overlaps(theirs, p)]), key=len)
                if get(current, longer) != get(applied, longer):
                    found.append((entry["manager"], theirs))
    return sorted(set(found))


def entry(
    manager: str,
    operation: str,
    api_version: str,
    time: str,
    paths: set[Path],
    *,
    subresource: str | None = None,
) -> Json:
    made: Json = {
        "manager": manager,
        "operation": operation,
        "apiVersion": api_version,
        "time": time,
        "fieldsType": "FieldsV1",
        "fieldsV1": to_fields_v1(paths),
    }
    if subresource:
        made["subresource"] = subresource
    return made


def _same_slot(e: Json, manager: str, operation: str, subresource: str | None) -> bool:
    return (e["manager"], e["operation"], e.get("subresource")) == (manager, operation, subresource)


def disown(entries: list[Json], paths: set[Path]) -> list[Json]:
    """The entries with ``paths`` (and what lies inside them) taken from every one;
    entries left owning nothing are dropped, as the real server drops them."""
    kept = []
    for e, owned in owners(entries):
        left = {p for p in owned if not any(overlaps(p, q) and len(p) >= len(q) for q in paths)}
        if left:
            kept.append({**e, "fieldsV1": to_fields_v1(left)})
    return kept


def record(entries: list[Json], new: Json, paths: set[Path], *, take: bool) -> list[Json]:
    """``entries`` with ``new`` in its manager's slot (where it was, else last); ``take``
    moves ``paths`` from the other managers to it (an update, or a forced apply)."""
    slot = (new["manager"], new["operation"], new.get("subresource"))
    others = disown(entries, paths) if take else entries
    at = next((i for i, e in enumerate(others) if _same_slot(e, *slot)), len(others))
    kept = [e for e in others if not _same_slot(e, *slot)]
    return [*kept[:at], new, *kept[at:]] if paths else kept


def entry_is(e: Json, manager: str, operation: str) -> bool:
    """``e`` is the main-resource entry of ``manager`` for ``operation``."""
    return _same_slot(e, manager, operation, None)
