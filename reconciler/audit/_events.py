"""The audit's data: what was read of a log, and the events found in it.

Plain frozen data and small pure helpers shared by :mod:`reconciler.audit._walk` and
:mod:`reconciler.audit` (which re-exports the public names).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from ledger import envelope, errors, keys, verify

ABSENT = "Absent"
"""The phase of a resource a verified report no longer lists (deleted, or pruned)."""
GAP = "gap"
"""The code of a gap event: a bundle or report that should be in the history is not."""

Key = tuple[str, str]
AgentKey = keys.PublicKey | errors.VerificationError
"""The plane's registered agent key, or why it has none that can verify anything."""


@dataclass(frozen=True)
class EarlierKey:
    """An agent key registered for a plane before its current one, on the branch."""

    key: keys.PublicKey
    replaced: str
    """The branch commit (first-parent line) that registered the next key."""


@dataclass(frozen=True)
class LogFile:
    """One version of a file in a log branch's history, as read: nothing is verified yet."""

    commit: str
    committed_at: datetime
    path: str
    data: bytes | None
    """None when the commit deleted the file, or when it could not be read (``problem``)."""
    problem: errors.VerificationError | None = None


@dataclass(frozen=True)
class Verdict:
    """Why signed data is not trusted, or what is missing: a stable code and a message."""

    code: str
    message: str


@dataclass(frozen=True)
class CommandEvent:
    """A command issued for the resource (or a bundle that failed verification)."""

    time: datetime
    """The signed issue time; the log commit's time when unverified."""
    plane: str
    sequence: int
    commit: str
    """The command-log commit that added the bundle."""
    spec_commit: str
    change: str | None
    """The resource's spec change in effect at ``spec_commit``."""
    action: str
    digest: str
    keyids: tuple[str, ...]
    """The ``commands`` keys whose signatures verified."""
    error: Verdict | None = None


@dataclass(frozen=True)
class StatusEvent:
    """A transition of the resource on a plane (or a report that failed verification)."""

    time: datetime
    """The signed report time; the status commit's time when unverified."""
    plane: str
    counter: int | None
    commit: str
    phase: str
    digest: str
    applied: int | None
    """The bundle sequence the plane reports applied."""
    message: str
    keyids: tuple[str, ...]
    """The agent key whose signature verified."""
    error: Verdict | None = None
    key_replaced: str | None = None
    """When an earlier agent key signed the report: the branch commit that replaced it."""


@dataclass(frozen=True)
class GapEvent:
    """Something the history should hold and does not."""

    time: datetime
    plane: str
    log: Literal["commands", "status"]
    commit: str
    """The log commit where the gap shows."""
    error: Verdict


def has_error(event: object) -> bool:
    """Whether ``event`` is a command or status event that failed verification."""
    return isinstance(event, CommandEvent | StatusEvent) and event.error is not None


def verdict(exc: errors.VerificationError) -> Verdict:
    """The stable code and message of a verification error."""
    return Verdict(exc.code, str(exc))


def signed_by(data: bytes, role: str, trusted: Mapping[str, keys.PublicKey]) -> tuple[str, ...]:
    """Ids of the ``trusted`` keys whose signatures on a verified envelope are valid."""
    value = envelope.loads(data)
    message = envelope.pae(verify.PAYLOAD_TYPES[role], envelope.decode_b64(value["payload"]))
    valid = {
        key.keyid
        for sig in value["signatures"]
        if (key := trusted.get(sig["keyid"])) is not None
        and key.verify(envelope.decode_b64(sig["sig"]), message)
    }
    return tuple(sorted(valid))


def claimed(data: bytes | None, cap: int) -> dict[str, Any]:
    """The payload an unverified envelope claims, if it parses at all (else empty)."""
    try:
        value = envelope.loads(envelope.peek(data or b"", max_bytes=cap))
    except errors.VerificationError:
        return {}
    return value if isinstance(value, dict) else {}


def dicts(value: object) -> list[dict[str, Any]]:
    """The objects of a claimed JSON list (anything else is ignored)."""
    return [item for item in value if isinstance(item, dict)] if isinstance(value, list) else []


def is_resource(claim: Mapping[str, Any], resource: Key) -> bool:
    """Whether a claimed command or resource status is about ``resource``."""
    return (claim.get("kind"), claim.get("name")) == resource
