"""Whether the specs declare a plane: asked only when the plane has no command log, so
that an agent configured for a plane that does not exist says so and reports nothing.

An agent whose plane is declared reports before its first command (the reconciler plans
with the capabilities it reports); one whose plane is not would create
``gitplane/status/<plane>`` for nothing, and run as if all were well.
"""

from __future__ import annotations

from ledger import gitrepo
from schemas import parse

MAX_SPEC_BYTES = 1 << 20
"""A spec file larger than this (1 MiB) is not read: no DataPlane is that large."""


def is_declared(mirror: gitrepo.Mirror, commit: str, plane: str) -> bool:
    """Whether a YAML file at ``commit`` declares ``DataPlane/plane`` (valid or not)."""
    paths = [
        entry.path
        for entry in mirror.repo.list_tree(commit)
        if entry.path.endswith((".yaml", ".yml"))
        and entry.mode in ("100644", "100755")
        and entry.size <= MAX_SPEC_BYTES
    ]
    for path, data in mirror.read(commit, paths, max_bytes=MAX_SPEC_BYTES).items():
        if _declares(parse.parse_spec(path, data), plane):
            return True
    return False


def _declares(parsed: parse.Parsed, plane: str) -> bool:
    document = parsed.document
    if document is not None:
        return (document.KIND, document.metadata.name) == ("DataPlane", plane)
    return parsed.declared == ("DataPlane", plane)
