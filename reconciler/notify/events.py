"""What changed since the last cycle, as notification events: a pure function.

A cycle's *view* is, per plane, each resource's reported phase and digest, the
actions the plan blocks, and the plane's alarming flag (a refused log or status,
or an attack the agent reports). :func:`changes` compares the view of the last
notified cycle with this one's and returns only what changed, so nothing is
sent twice for a state that stays; commands issued are events of the cycle
itself. With no previous view (the first run), the current state counts as
already known and only the commands issued now are events.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field

from reconciler.plan import Plan
from reconciler.recorded import IssuedLog, RecordedPlane
from schemas import signed

ALARMS = ("command log refused", "status refused", "agent reports")
"""Flags that mean a plane's log or report is under attack or broken, not merely late."""
PHASE_EVENTS = {"Failed": "failed", "Stalled": "stalled", "Blocked": "blocked"}
DONE = ("Ready", "Deleted")
"""Phases in which a resource whose digest is the one issued counts as applied."""
STATE_VERSION = 1


@dataclass(frozen=True)
class Event:
    """One state change on one plane, about the spec commit it concerns."""

    event: str
    """One of ``issued``, ``applied``, ``failed``, ``stalled``, ``blocked``, ``attack``."""
    plane: str
    commit: str
    resource: str = ""
    """``Kind/name``, empty for an event of the whole plane."""
    detail: str = ""
    sequence: int = 0
    """The bundle it concerns, when one does."""

    def as_dict(self) -> dict[str, object]:
        """The JSON body of a generic webhook (without its delivery id)."""
        return asdict(self)


@dataclass(frozen=True)
class ResourceView:
    """What a plane reports of one resource, and the command it was last issued."""

    phase: str
    digest: str
    applied: bool = False
    """Whether the digest it reports is the one last issued."""
    commit: str = ""
    """The spec commit of the bundle that issued what it reports (empty: not known, as
    when it reports an older command)."""
    message: str = ""


@dataclass(frozen=True)
class PlaneView:
    """One plane as the notifier last saw it."""

    resources: Mapping[str, ResourceView] = field(default_factory=dict)
    blocked: Mapping[str, str] = field(default_factory=dict)
    """``Kind/name`` -> why the plan blocks it."""
    flag: str | None = None


View = Mapping[str, PlaneView]


def view_of(
    plan: Plan | None, recorded: Mapping[str, RecordedPlane], folded: Mapping[str, IssuedLog]
) -> dict[str, PlaneView]:
    """The view of one cycle: its plan, each plane's recorded state and its folded log."""
    blocked: dict[str, dict[str, str]] = {}
    for planned in plan.planes if plan else ():
        actions = planned.actions
        blocked[planned.plane] = {a.ref: a.reason for a in actions if a.op == "blocked"}
    return {
        name: PlaneView(
            _resources(state, folded.get(name, IssuedLog()).bundles),
            blocked.get(name, {}),
            state.flag if state.flag and state.flag.startswith(ALARMS) else None,
        )
        for name, state in recorded.items()
    }


def _resources(state: RecordedPlane, bundles: Sequence[signed.Bundle]) -> dict[str, ResourceView]:
    views = {}
    for key, status in state.observed.items():
        issued = state.issued.get(key)
        current = issued is not None and issued.digest == status.digest
        commit = _commit_at(bundles, issued.sequence) if issued and current else ""
        views["/".join(key)] = ResourceView(
            status.phase, status.digest, current, commit, status.cause
        )
    return views


def _commit_at(bundles: Sequence[signed.Bundle], sequence: int) -> str:
    """The spec commit of bundle ``sequence`` (a verified log holds 1, 2, 3… in order)."""
    found = bundles[sequence - 1] if 0 < sequence <= len(bundles) else None
    return found.spec_commit if found is not None and found.sequence == sequence else ""


def changes(
    before: View | None, after: View, issued: Mapping[str, signed.Head], *, commit: str
) -> list[Event]:
    """The events from ``before`` to ``after``: ``issued`` (plane -> the head appended this
    cycle, from spec ``commit``) always; the rest only when ``before`` is known."""
    found = [
        Event("issued", plane, commit, detail=f"bundle {head.sequence}", sequence=head.sequence)
        for plane, head in sorted(issued.items())
    ]
    if before is not None:
        for plane, view in sorted(after.items()):
            found += _plane_changes(plane, before.get(plane, PlaneView()), view, commit)
    return _distinct(found)


def _plane_changes(plane: str, before: PlaneView, after: PlaneView, commit: str) -> list[Event]:
    found = []
    if after.flag and after.flag != before.flag:
        found.append(Event("attack", plane, commit, detail=after.flag))
    for ref, now in sorted(after.resources.items()):
        was = before.resources.get(ref)
        if was is not None and (was.phase, was.digest) == (now.phase, now.digest):
            continue
        kind = _resource_event(now)
        if kind is not None:
            found.append(Event(kind, plane, now.commit or commit, ref, now.message))
    for ref, reason in sorted(after.blocked.items()):
        if before.blocked.get(ref) != reason:
            found.append(Event("blocked", plane, commit, ref, reason))
    return found


def _resource_event(resource: ResourceView) -> str | None:
    if resource.phase in DONE:
        return "applied" if resource.applied else None
    return PHASE_EVENTS.get(resource.phase)


def _distinct(found: list[Event]) -> list[Event]:
    """One event per (event, plane, resource) and cycle: a resource the plane reports
    ``Blocked`` is also an action the plan blocks."""
    seen: set[tuple[str, str, str]] = set()
    kept = []
    for event in found:
        key = (event.event, event.plane, event.resource)
        if key not in seen:
            seen.add(key)
            kept.append(event)
    return kept


def dumps(view: View) -> str:
    """The view as the notifier keeps it between runs: what changes are compared on only."""
    planes = {
        name: {
            "resources": {ref: [r.phase, r.digest] for ref, r in sorted(p.resources.items())},
            "blocked": dict(sorted(p.blocked.items())),
            "flag": p.flag,
        }
        for name, p in sorted(view.items())
    }
    return json.dumps({"version": STATE_VERSION, "planes": planes}, indent=1)


def loads(text: str) -> dict[str, PlaneView]:
    """:func:`dumps` read back; ValueError if it is not what :func:`dumps` writes."""
    try:
        data = json.loads(text)
        if data["version"] != STATE_VERSION:
            raise ValueError(f"version {data['version']!r}, expected {STATE_VERSION}")
        return {
            name: PlaneView(
                {ref: ResourceView(str(p), str(d)) for ref, (p, d) in plane["resources"].items()},
                {str(ref): str(why) for ref, why in plane["blocked"].items()},
                plane["flag"],
            )
            for name, plane in data["planes"].items()
        }
    except (KeyError, TypeError, AttributeError) as exc:
        raise ValueError(f"not a notifier state: {exc!r}") from None
