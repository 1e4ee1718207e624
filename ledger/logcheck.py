"""The checks both sides of a command log run on what they fetched: the hash chain of
bundles between two heads, and which refs of a snapshot git refused to take."""

from __future__ import annotations

import itertools
from collections.abc import Mapping

from ledger import envelope, errors, gitrepo, layout, roots, verify
from schemas import signed


def verify_chain(
    mirror: gitrepo.Mirror,
    tip: str,
    *,
    chain: tuple[signed.Root, ...],
    start: signed.Head,
    head: signed.Head,
    plane: str,
    limits: verify.Limits,
    files: Mapping[str, bytes] | None = None,
    floor: int | None = None,
) -> tuple[list[tuple[signed.Head, signed.Bundle]], dict[int, str]]:
    """Verify bundles ``start.sequence + 1 .. head.sequence`` at ``tip`` (or in ``files``,
    by path, when given), in order. ``floor``: the root version the bundle at ``start``
    names (read from the log when not given: root versions only go up along it)."""
    if head.sequence == start.sequence:
        if head.digest != start.digest:
            raise errors.MixAndMatchError(f"the log was rewritten at bundle {head.sequence}")
        return [], {}
    if head.sequence < start.sequence:
        raise errors.RollbackError(f"log head {head.sequence} is behind {start.sequence}")
    paths = [layout.bundle_path(s) for s in range(start.sequence + 1, head.sequence + 1)]
    if files is None:
        files = roots.read_signed(mirror, tip, paths, limits.bundle_bytes)
    present = list(itertools.takewhile(files.__contains__, paths))
    if floor is None:
        floor = root_of(mirror, tip, start, limits)
    verified = verify.update_bundles(
        chain, start, head, [files[p] for p in present], plane=plane, limits=limits, floor=floor
    )
    if len(present) < len(paths):  # after the bundles before it, as one by one
        raise errors.MixAndMatchError(f"{paths[len(present)]} is missing from the log")
    return verified, {h.sequence: h.digest for h, _ in verified}


def root_of(mirror: gitrepo.Mirror, tip: str, start: signed.Head, limits: verify.Limits) -> int:
    """The root version the bundle at ``start`` names: its bytes are the ones verified before
    (their digest is ``start``'s), so they are parsed without checking signatures again."""
    if start.sequence == 0:
        return 1
    path = layout.bundle_path(start.sequence)
    data = roots.read_signed(mirror, tip, [path], limits.bundle_bytes).get(path)
    if data is None or envelope.digest(data) != start.digest:
        raise errors.MixAndMatchError(
            f"bundle {start.sequence}, verified before, is not in the log"
        )
    payload = envelope.peek(data, max_bytes=limits.bundle_bytes)
    return verify.parse_payload(payload, signed.Bundle).root_version


def check_fetched(refs: Mapping[str, str], *wanted: str) -> None:
    """MalformedError if git refused the objects of one of the ``wanted`` refs of a snapshot
    (:class:`gitrepo.Snapshot`): a hostile object fails its own branch, with a code."""
    broken = getattr(refs, "broken", {})
    for ref in wanted:
        if ref in broken:
            raise errors.MalformedError(f"git refused the objects of {ref}: {broken[ref]}")
