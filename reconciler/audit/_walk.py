"""The audit's walks of one plane's logs: every bundle and every report, verified or not.

Pure: takes the versions of the log files as read from git and the trust to check them
under; returns events. Verification reuses :mod:`ledger.verify` (the same functions the
agent and the reconciler use), except that freshness (timestamp expiry) is not checked:
an audit reads history, and an old bundle stays valid for it.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace

from ledger import envelope, errors, keys, verify
from reconciler.audit._events import (
    ABSENT,
    GAP,
    AgentKey,
    CommandEvent,
    EarlierKey,
    GapEvent,
    Key,
    LogFile,
    StatusEvent,
    Verdict,
    claimed,
    dicts,
    is_resource,
    signed_by,
    verdict,
)
from schemas import signed

_BUNDLE = re.compile(r"bundles/(\d{10})\.json")
_ANY_HEAD = signed.Head.model_construct(sequence=2**53, digest="")
"""Audits check the hash chain, not freshness: no timestamp bounds the log's head."""


@dataclass
class CommandWalk:
    """Verifies a plane's bundles in sequence order along their hash chain."""

    plane: str
    resource: Key
    chain: tuple[signed.Root, ...]
    issued: dict[int, str] = field(default_factory=dict)
    """Sequence -> digest of every bundle that verified."""

    def __post_init__(self) -> None:
        self._known = verify.commands_keys_of(self.chain)
        self._previous = _head(0, "")
        self._floor = 1
        """The root the last bundle that verified named: root versions only go up."""

    def run(
        self, files: Sequence[LogFile], change_at: Callable[[str], str | None]
    ) -> list[CommandEvent | GapEvent]:
        """The resource's commands, every bundle that fails, and every missing bundle."""
        latest, events = self._latest(files)
        for sequence in range(1, max(latest, default=0) + 1):
            file = latest.get(sequence)
            if file is None:
                after = next(latest[s] for s in sorted(latest) if s > sequence)
                events.append(self._missing(sequence, after, "missing from the log"))
            elif file.data is None and file.problem is None:
                gone = f"deleted in commit {file.commit[:12]}"
                events.append(self._missing(sequence, file, gone))
            else:
                events += self._bundle(sequence, file, change_at)
        return events

    def _latest(
        self, files: Sequence[LogFile]
    ) -> tuple[dict[int, LogFile], list[CommandEvent | GapEvent]]:
        latest: dict[int, LogFile] = {}
        odd: list[CommandEvent | GapEvent] = []
        for file in files:
            match = _BUNDLE.fullmatch(file.path)
            if match is None:
                why = Verdict("malformed", f"unexpected file {file.path} in the command log")
                odd.append(GapEvent(file.committed_at, self.plane, "commands", file.commit, why))
            elif int(match[1]) in latest and file.data is not None:
                latest[int(match[1])] = _rewritten(file)
            else:
                latest[int(match[1])] = file
        return latest, odd

    def _missing(self, sequence: int, file: LogFile, what: str) -> GapEvent:
        """A hole in the chain: the next bundle will not chain to it, and says so too."""
        self._previous = _head(sequence, "")
        why = Verdict(GAP, f"bundle {sequence} is {what}")
        return GapEvent(file.committed_at, self.plane, "commands", file.commit, why)

    def _bundle(
        self, sequence: int, file: LogFile, change_at: Callable[[str], str | None]
    ) -> list[CommandEvent | GapEvent]:
        data = file.data or b""
        bundle, error = self._verify(data, file.problem)
        self._previous = _head(sequence, envelope.digest(data))
        if bundle is None:
            return list(self._refused(sequence, file, error))
        self.issued[sequence] = self._previous.digest
        signers = signed_by(data, "commands", self._known[bundle.root_version][0])
        return [
            CommandEvent(
                time=verify.parse_time(bundle.issued_at),
                plane=self.plane,
                sequence=sequence,
                commit=file.commit,
                spec_commit=bundle.spec_commit,
                change=change_at(bundle.spec_commit),
                action=c.action,
                digest=c.digest,
                keyids=signers,
            )
            for c in bundle.commands
            if (c.kind, c.name) == self.resource
        ]

    def _verify(
        self, data: bytes, problem: errors.VerificationError | None
    ) -> tuple[signed.Bundle | None, Verdict | None]:
        if problem is not None:
            return None, verdict(problem)
        try:
            ((_, bundle),) = verify.update_bundles(
                self.chain,
                self._previous,
                _ANY_HEAD,
                [data],
                plane=self.plane,
                commands_keys=self._known,
                floor=self._floor,
            )
        except errors.VerificationError as exc:
            return None, verdict(exc)
        self._floor = bundle.root_version
        return bundle, None

    def _refused(self, sequence: int, file: LogFile, error: Verdict | None) -> list[CommandEvent]:
        """Shown whatever it claims to be about; its claims are shown, never used."""
        claim = claimed(file.data, verify.DEFAULT_LIMITS.bundle_bytes)
        mine = [c for c in dicts(claim.get("commands")) if is_resource(c, self.resource)] or [{}]
        spec_commit = str(claim.get("spec_commit", ""))
        return [
            CommandEvent(
                time=file.committed_at,
                plane=self.plane,
                sequence=sequence,
                commit=file.commit,
                spec_commit=spec_commit,
                change=None,
                action=str(c.get("action", "")),
                digest=str(c.get("digest", "")),
                keyids=(),
                error=error,
            )
            for c in mine
        ]


@dataclass
class StatusWalk:
    """Verifies every report of a plane in history order; keeps this resource's transitions."""

    plane: str
    resource: Key
    key: AgentKey
    issued: dict[int, str]
    """Sequence -> digest of every bundle of the plane's log that verified."""
    earlier: Sequence[EarlierKey] = ()
    """The plane's agent keys before ``key``, oldest first."""
    _counter: int = 0
    _state: tuple[str, str] | None = None
    _rank: int = 0
    """The newest key a report verified under so far (its index, ``key`` last): a key
    once replaced never signs for the plane again after its successor has."""

    @property
    def counter(self) -> int:
        """The counter of the newest report that verified so far."""
        return self._counter

    def run(self, files: Sequence[LogFile]) -> list[StatusEvent | GapEvent]:
        """Transitions of the resource, every refused report, and holes in the counters."""
        events: list[StatusEvent | GapEvent] = []
        for file in files:
            events += self._report(file)
        return events

    def _report(self, file: LogFile) -> list[StatusEvent | GapEvent]:
        if file.data is None and file.problem is None:
            why = Verdict(GAP, f"status.json was deleted in commit {file.commit[:12]}")
            return [GapEvent(file.committed_at, self.plane, "status", file.commit, why)]
        try:
            status, key, replaced = self._verify(file)
        except errors.VerificationError as exc:
            return [self._refused(file, verdict(exc))]
        events: list[StatusEvent | GapEvent] = []
        if self._counter and status.counter > self._counter + 1:
            missing = f"#{self._counter + 1}..#{status.counter - 1}"
            why = Verdict(GAP, f"status reports {missing} are not in the history")
            events.append(GapEvent(file.committed_at, self.plane, "status", file.commit, why))
        self._counter = status.counter
        return events + self._transition(file, status, key, replaced)

    def _verify(self, file: LogFile) -> tuple[signed.Status, keys.PublicKey, str | None]:
        """The report, the key it verified under, and when that key was replaced (if it was).

        The current key is tried first, then earlier ones from newest to oldest; a report
        signed by a key that was replaced is refused once a report under a newer key came
        before it in the log (the old key may have been replaced because it leaked).
        """
        if file.problem is not None:
            raise file.problem
        if isinstance(self.key, errors.VerificationError):
            raise self.key
        ranked: list[tuple[int, keys.PublicKey, str | None]] = [(len(self.earlier), self.key, None)]
        ranked += [(i, e.key, e.replaced) for i, e in reversed(list(enumerate(self.earlier)))]
        top = max(self.issued, default=0)
        head = signed.Head.model_construct(sequence=top, digest=self.issued.get(top, ""))
        refused: errors.SignatureError | None = None
        for rank, key, replaced in ranked:
            try:
                status = verify.verify_status(
                    file.data or b"",
                    plane=self.plane,
                    key=key,
                    seen=self._counter + 1,
                    head=head,
                    issued=self.issued,
                )
            except errors.SignatureError as exc:
                refused = refused or exc
                continue
            if rank < self._rank:
                raise errors.SignatureError(
                    f"signed by agent key {key.keyid[:12]}, replaced in commit"
                    f" {(replaced or '')[:12]}, after a report under a newer key"
                )
            self._rank = rank
            return status, key, replaced
        raise refused or errors.SignatureError("no agent key verifies the report")

    def _transition(
        self, file: LogFile, status: signed.Status, key: keys.PublicKey, replaced: str | None
    ) -> list[StatusEvent | GapEvent]:
        found = next((r for r in status.resources if (r.kind, r.name) == self.resource), None)
        state = (found.phase, found.digest) if found else None
        if state == self._state:
            return []
        self._state = state
        return [
            StatusEvent(
                time=verify.parse_time(status.time),
                plane=self.plane,
                counter=status.counter,
                commit=file.commit,
                phase=found.phase if found else ABSENT,
                digest=found.digest if found else "",
                applied=status.applied.sequence,
                message=found.message if found else "",
                keyids=signed_by(file.data or b"", "status", {key.keyid: key}),
                key_replaced=replaced,
            )
        ]

    def _refused(self, file: LogFile, error: Verdict) -> StatusEvent:
        """Shown whatever it claims; what it claims is shown, never used."""
        claim = claimed(file.data, verify.DEFAULT_LIMITS.status_bytes)
        mine = next((r for r in dicts(claim.get("resources")) if is_resource(r, self.resource)), {})
        counter = claim.get("counter")
        return StatusEvent(
            time=file.committed_at,
            plane=self.plane,
            counter=counter if isinstance(counter, int) else None,
            commit=file.commit,
            phase=str(mine.get("phase", "")),
            digest=str(mine.get("digest", "")),
            applied=None,
            message="",
            keyids=(),
            error=error,
        )


def rewound(
    plane: str, chain: tuple[signed.Root, ...], stamp: LogFile | None, counter: int
) -> list[GapEvent]:
    """A gap when the status log ends before the newest report the reconciler signed (in
    the command log's timestamp) that it had seen: the status branch was rewound, as
    ``gitplane status`` finds too (``replay``)."""
    if stamp is None or (stamp.data is None and stamp.problem is None):
        return []
    try:
        if stamp.problem is not None:
            raise stamp.problem
        seen = verify.read_timestamp_under(chain, stamp.data or b"", plane=plane).status_seen
    except errors.VerificationError as exc:
        return [GapEvent(stamp.committed_at, plane, "commands", stamp.commit, verdict(exc))]
    if seen <= counter:
        return []
    why = Verdict(
        "replay",
        f"the status log ends at report #{counter}, but the reconciler signed that it saw "
        f"#{seen}: the branch was rewound",
    )
    return [GapEvent(stamp.committed_at, plane, "status", stamp.commit, why)]


def _head(sequence: int, digest: str) -> signed.Head:
    """A point in the chain computed here (its digest may be empty: a hole)."""
    return signed.Head.model_construct(sequence=sequence, digest=digest)


def _rewritten(file: LogFile) -> LogFile:
    why = f"{file.path} was rewritten in commit {file.commit[:12]} after it was issued"
    return replace(file, problem=errors.MixAndMatchError(why))
