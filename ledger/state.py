"""The agent's trust state: what it has verified and applied, persisted atomically.

Written with :func:`schemas.files.atomic_write`, so a crash at any point leaves
either the old state or the new one on disk, never a mix. Deleting this file resets rollback
protection to the pinned root: keep it readable and writable by the agent only.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass, replace
from pathlib import Path

from ledger import envelope, errors
from schemas import files, signed

EMPTY = signed.Head(sequence=0, digest="")


@dataclass(frozen=True)
class TrustState:
    """Everything the agent trusts, as the bytes it verified."""

    root: bytes
    """Envelope of the newest trusted root."""
    timestamp: bytes | None = None
    """Envelope of the newest trusted timestamp (None before the first update)."""
    verified: signed.Head = EMPTY
    """The newest bundle verified (and chained) so far."""
    applied: signed.Head = EMPTY
    """The newest bundle fully applied; never ahead of ``verified``."""
    status_counter: int = 0
    """Counter of the last status report written."""
    latest_signed: str = ""
    """The newest ``issued_at`` of a bundle verified: the agent's clock must not be earlier."""

    def with_applied(self, head: signed.Head) -> TrustState:
        """This state with ``head`` applied."""
        if head.sequence > self.verified.sequence:
            raise RuntimeError("cannot apply a bundle that was not verified")
        return replace(self, applied=head)


def _encode(value: bytes | None) -> str | None:
    return None if value is None else base64.b64encode(value).decode()


def persist_state(path: Path, state: TrustState) -> None:
    """Write ``state`` to ``path`` atomically (mode 0600)."""
    body = {
        "root": _encode(state.root),
        "timestamp": _encode(state.timestamp),
        "verified": state.verified.model_dump(),
        "applied": state.applied.model_dump(),
        "status_counter": state.status_counter,
        "latest_signed": state.latest_signed,
    }
    files.atomic_write(path, envelope.dumps(body))


def load_state(path: Path, *, pinned_root: bytes) -> TrustState:
    """The persisted state, or a fresh one trusting only ``pinned_root``."""
    if not path.exists():
        return TrustState(root=pinned_root)
    body = envelope.loads(path.read_bytes())
    if not isinstance(body, dict):
        raise errors.MalformedError(f"{path}: not a trust state")
    try:
        return TrustState(
            root=base64.b64decode(body["root"]),
            timestamp=base64.b64decode(body["timestamp"]) if body["timestamp"] else None,
            verified=signed.Head.model_validate(body["verified"]),
            applied=signed.Head.model_validate(body["applied"]),
            status_counter=int(body["status_counter"]),
            latest_signed=str(body.get("latest_signed", "")),  # absent before it was kept
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise errors.MalformedError(f"{path}: damaged trust state ({exc})") from None
