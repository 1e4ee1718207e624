"""The life of one resource, from git alone: spec changes, commands, status transitions.

Pure: :func:`build` takes what :mod:`reconciler.audit.read` read from git (the spec
commits that touched the resource's files, every version of each plane's bundle and
status files, the verified root chain, each plane's agent keys along the branch)
and returns the events in time order, with what each plane runs now (:class:`Live`).

Invariants:

* nothing that fails verification is dropped or trusted: a bundle or report that does
  not verify is an event with ``error`` set (a stable :mod:`ledger.errors` code), and
  nothing it claims feeds the transitions or the live state;
* a missing or deleted bundle and a hole in the status counters are ``gap`` events; a
  bundle rewritten after it was issued is an unverified ``command`` event;
* status events are transitions: a verified report yields one only when this resource's
  (phase, digest) differs from the previous verified report's.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

from ledger import approvals as approval_records
from reconciler.audit import _walk as walk
from reconciler.audit._events import (
    ABSENT,
    AgentKey,
    CommandEvent,
    EarlierKey,
    GapEvent,
    LogFile,
    StatusEvent,
    Verdict,
    has_error,
)
from schemas import signed

__all__ = [
    "ABSENT",
    "APPROVAL_TRAILER",
    "AgentKey",
    "Audit",
    "AuditInput",
    "CommandEvent",
    "EarlierKey",
    "Event",
    "GapEvent",
    "GitCommit",
    "Live",
    "LogFile",
    "Person",
    "PlaneLog",
    "SpecChange",
    "SpecEvent",
    "StatusEvent",
    "Verdict",
    "build",
    "has_problem",
]

APPROVAL_TRAILER = "Approved-by"
"""The trailer approvals are counted from (``Policy`` default; docs/adr/0006)."""


@dataclass(frozen=True)
class Person:
    """An author or committer as git records them."""

    name: str
    email: str


@dataclass(frozen=True)
class GitCommit:
    """A commit of the spec repository (not signed: it is the protected branch's history)."""

    commit: str
    author: Person
    authored_at: datetime
    committer: Person
    committed_at: datetime
    subject: str
    trailers: Mapping[str, frozenset[str]]


@dataclass(frozen=True)
class SpecChange:
    """A commit that touched one of the resource's spec files, and how it reached the branch."""

    commit: GitCommit
    path: str
    merge: GitCommit | None = None
    """The first-parent merge that brought it to the branch; None if committed on it."""
    approvals: tuple[approval_records.Verdict, ...] = ()
    """The signed approval records of :attr:`landed`, each verified (ADR 0018)."""

    @property
    def landed(self) -> GitCommit:
        """The commit of the branch's first-parent line that made this change desired."""
        return self.merge or self.commit

    @property
    def approved_by(self) -> tuple[str, ...]:
        """``Approved-by:`` trailers of the merge (or of the commit, if it was not merged):
        unverified, anyone who can push can write them."""
        return tuple(sorted(self.landed.trailers.get(APPROVAL_TRAILER, frozenset())))


@dataclass(frozen=True)
class PlaneLog:
    """What was read of one plane's logs, oldest version first."""

    name: str
    agent_key: AgentKey
    bundles: Sequence[LogFile]
    reports: Sequence[LogFile]
    earlier_keys: Sequence[EarlierKey] = ()
    """The plane's agent keys before ``agent_key``, oldest first: reports they signed
    before a newer key was in use verify under them."""
    timestamp: LogFile | None = None
    """The command log's current timestamp: what it says the reconciler saw of the status
    log bounds where that log may end (a branch rewound to an older report is a replay)."""
    gaps: Sequence[GapEvent] = ()
    """Logs that could not be read at all (objects git refused to fetch)."""


@dataclass(frozen=True)
class AuditInput:
    """Everything :func:`build` needs, read from git by the caller."""

    kind: str
    name: str
    branch: Sequence[str]
    """The spec branch's first-parent commits, oldest first."""
    changes: Sequence[SpecChange]
    chain: Sequence[signed.Root]
    """The verified root chain, oldest first: bundles are verified under the root they name."""
    planes: Sequence[PlaneLog]


@dataclass(frozen=True)
class SpecEvent:
    """A change of the resource's spec, dated when it reached the branch."""

    time: datetime
    change: SpecChange


Event = SpecEvent | CommandEvent | StatusEvent | GapEvent


@dataclass(frozen=True)
class Live:
    """What a plane's newest verified report says of the resource, traced back to git."""

    plane: str
    status: StatusEvent | None
    """The transition into the current state (None: never reported it)."""
    command: CommandEvent | None
    """The verified command that carried the digest the plane runs."""
    change: SpecEvent | None
    """The spec change that command was derived from."""


@dataclass(frozen=True)
class Audit:
    """The resource's history, oldest first, and what each plane runs now."""

    kind: str
    name: str
    events: tuple[Event, ...]
    live: tuple[Live, ...]

    @property
    def verified(self) -> bool:
        """Whether every signed document shown verified and no gap was found."""
        return not any(has_problem(e) for e in self.events)


def has_problem(event: Event) -> bool:
    """Whether ``event`` is a gap, or a document that failed verification."""
    return isinstance(event, GapEvent) or has_error(event)


def build(data: AuditInput, *, since: datetime | None = None) -> Audit:
    """Every event of the resource in time order (from ``since`` on), and the live state."""
    specs = [SpecEvent(c.landed.committed_at, c) for c in _unique(data.changes)]
    change_at = _change_finder(data.branch, specs)
    events: list[Event] = list(specs)
    for plane in data.planes:
        commands = walk.CommandWalk(plane.name, (data.kind, data.name), tuple(data.chain))
        events += commands.run(plane.bundles, change_at)
        reports = walk.StatusWalk(
            plane.name, commands.resource, plane.agent_key, commands.issued, plane.earlier_keys
        )
        events += reports.run(plane.reports)
        events += walk.rewound(plane.name, tuple(data.chain), plane.timestamp, reports.counter)
        events += plane.gaps
    events.sort(key=_order)
    live = tuple(_live(plane.name, events, specs) for plane in data.planes)
    shown = tuple(e for e in events if since is None or e.time >= since)
    return Audit(data.kind, data.name, shown, live)


def _unique(changes: Sequence[SpecChange]) -> list[SpecChange]:
    """One change per commit (a commit touching two of the resource's files counts once)."""
    seen: dict[str, SpecChange] = {}
    for change in changes:
        seen.setdefault(change.commit.commit, change)
    return list(seen.values())


def _change_finder(
    branch: Sequence[str], specs: Sequence[SpecEvent]
) -> Callable[[str], str | None]:
    """Finds the newest change of the resource already on the branch at a spec commit."""
    position = {commit: i for i, commit in enumerate(branch)}
    landed = sorted(
        (position[s.change.landed.commit], s.change.commit.committed_at, s.change.commit.commit)
        for s in specs
        if s.change.landed.commit in position
    )

    def change_at(spec_commit: str) -> str | None:
        at = position.get(spec_commit, -1)
        before = [commit for where, _, commit in landed if where <= at]
        return before[-1] if before else None

    return change_at


_RANK = {SpecEvent: 0, GapEvent: 1, CommandEvent: 2, StatusEvent: 3}


def _order(event: Event) -> tuple[datetime, int, str, int]:
    plane = "" if isinstance(event, SpecEvent) else event.plane
    number = event.sequence if isinstance(event, CommandEvent) else 0
    if isinstance(event, StatusEvent):
        number = event.counter or 0
    return (event.time, _RANK[type(event)], plane, number)


def _live(plane: str, events: Sequence[Event], specs: Sequence[SpecEvent]) -> Live:
    reports = [e for e in events if isinstance(e, StatusEvent) and e.plane == plane]
    status = next((e for e in reversed(reports) if e.error is None), None)
    if status is None:
        return Live(plane, None, None, None)
    command = next(
        (
            e
            for e in reversed(events)
            if isinstance(e, CommandEvent) and e.plane == plane and e.error is None
            if e.digest == status.digest and e.sequence <= (status.applied or 0)
        ),
        None,
    )
    change = next((s for s in specs if command and s.change.commit.commit == command.change), None)
    return Live(plane, status, command, change)
