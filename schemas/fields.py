"""Every leaf field of a kind, by its JSON Schema: what a spec can set, as dotted paths.

``spec.steps[].timeout`` is a field of every item of a list; ``spec.tags.*`` is every value
of a map. The support rule (``tests/schemas/test_support_rule.py``) holds each one to a
test showing its effect or a row of ``schemas.support.TABLE``.
"""

from __future__ import annotations

from typing import Any

from schemas.jsonschema_export import schema_of

Schema = dict[str, Any]


def leaves(kind: str) -> list[str]:
    """The leaf fields of ``kind``, sorted."""
    schema = schema_of(kind)
    return sorted(set(_leaves(schema, schema, "")))


def _leaves(root: Schema, node: Schema, path: str) -> list[str]:
    if "$ref" in node:
        node = root["$defs"][node["$ref"].rsplit("/", 1)[-1]]
    for union in ("anyOf", "oneOf", "allOf"):
        if union in node:
            return [leaf for branch in node[union] for leaf in _leaves(root, branch, path)]
    if node.get("type") == "null":
        return []
    if node.get("type") == "array":
        return _leaves(root, node.get("items", {}), f"{path}[]")
    properties = node.get("properties", {})
    values = node.get("additionalProperties")
    if not properties and not isinstance(values, dict):
        return [path]
    found = [
        leaf
        for name, child in properties.items()
        for leaf in _leaves(root, child, f"{path}.{name}" if path else name)
    ]
    if isinstance(values, dict):
        found += _leaves(root, values, f"{path}.*")
    return found
