"""The reconciler's rollback protection: per plane, the newest head it has seen in the log.

The agent keeps a trust state (``ledger.state``) so that a log pushed back to an
older commit is refused. The reconciler, which appends to those logs, keeps the
same kind of memory: the newest head it has issued or verified for each plane.
A log whose head is older than that, or whose history no longer holds it (a
rewrite), or that disappeared, is an attack: nothing is appended to it until
its real history is pushed back (from a backup, or the reconciler's own mirror).

Persisted like the agent's state (temporary file, fsync, rename). Deleting the
file resets this protection to what the planes' signed status reports prove
(:mod:`reconciler.reconcile` checks those too): keep it with the reconciler.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from ledger import envelope, errors
from schemas import files, signed


@dataclass
class Watermarks:
    """The newest verified head of each plane's command log (in memory when ``path`` is None)."""

    path: Path | None = None
    heads: dict[str, signed.Head] = field(default_factory=dict)
    _dirty: bool = field(default=False, repr=False)

    @classmethod
    def load(cls, path: Path | None) -> Watermarks:
        """The watermarks persisted at ``path`` (none yet: empty)."""
        if path is None or not path.exists():
            return cls(path)
        try:
            body = envelope.loads(path.read_bytes())
            heads = {p: signed.Head.model_validate(h) for p, h in body["heads"].items()}
        except (OSError, KeyError, TypeError, AttributeError, ValueError) as exc:
            raise errors.MalformedError(f"{path}: unreadable watermarks: {exc}") from None
        return cls(path, heads)

    def check(self, plane: str, head: signed.Head, issued: Mapping[int, str]) -> None:
        """Refuse a log of ``plane`` (its ``head`` and every bundle's digest by sequence) that
        does not hold the newest head seen before."""
        mark = self.heads.get(plane)
        if mark is None or mark.sequence == 0:
            return
        if head.sequence < mark.sequence:
            raise errors.RollbackError(
                f"the command log of {plane} moved back to #{head.sequence}: "
                f"#{mark.sequence} was issued before"
            )
        if issued.get(mark.sequence) != mark.digest:
            raise errors.RollbackError(
                f"the command log of {plane} was rewritten: it no longer holds "
                f"#{mark.sequence} {mark.digest[:19]}, issued before"
            )

    def check_present(self, plane: str) -> None:
        """Refuse a log of ``plane`` that disappeared after it was seen."""
        mark = self.heads.get(plane)
        if mark is not None and mark.sequence > 0:
            raise errors.RollbackError(
                f"the command log of {plane} disappeared: #{mark.sequence} was issued before"
            )

    def raise_to(self, plane: str, head: signed.Head) -> None:
        """Remember ``head`` as ``plane``'s newest, if it is newer (persisted by :meth:`flush`:
        once per push and per cycle, not once per plane)."""
        mark = self.heads.get(plane)
        if mark is not None and mark.sequence >= head.sequence:
            return
        self.heads[plane] = head
        self._dirty = True

    def flush(self) -> None:
        """Persist what changed since the last flush (temporary file, fsync, rename)."""
        if self._dirty and self.path is not None:
            body = {"heads": {p: h.model_dump() for p, h in sorted(self.heads.items())}}
            files.atomic_write(self.path, envelope.dumps(body))
        self._dirty = False
