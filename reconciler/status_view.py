"""``gitplane status``: per plane and resource, what git wants against what the plane reports.

Pure: built from the desired commit's plan, each plane's verified recorded
state and status report, and ``now``. The JSON form (``as_json``) is a
documented, stable interface (docs/status.md); the text form fits 100
columns.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from ledger import verify
from reconciler.plan import Action, Plan, PlanePlan
from reconciler.recorded import Issued, Key, RecordedPlane
from schemas import signed
from schemas.inert import inert

JSON_VERSION = 1
WIDTH = 100


@dataclass(frozen=True)
class Resource:
    """One resource on one plane."""

    kind: str
    name: str
    sync: str
    """``Synced`` (the plane applied what git wants), ``Issued`` (sent, not applied yet),
    ``OutOfSync`` (an action is due), ``Waiting`` or ``Blocked``; ``Unknown`` when the
    desired commit does not validate (nothing is compared). See :data:`SYNC_STATES`."""
    phase: str
    """What the plane reports (``Ready``, ``Failed``…), or ``Unknown``."""
    issued: str
    """Digest of the last command issued, with its sequence (``#3 sha256:…``)."""
    applied: str
    """Digest the plane reports having applied."""
    detail: str
    """Version, endpoint, replicas: the observed fields that matter for the kind."""
    message: str
    observed: Mapping[str, str | int | bool]


@dataclass(frozen=True)
class PlaneStatus:
    """One plane."""

    name: str
    runtime: str
    reported_at: str | None
    age_seconds: float | None
    issued: int
    applied: int
    flags: tuple[str, ...]
    resources: tuple[Resource, ...]
    halted: str | None = None
    """Why nothing the plane does can be trusted until a person acts (its command log or
    status refused, an attack reported), else None: a flag that waiting cannot clear."""


def build(
    plan: Plan,
    recorded: Mapping[str, RecordedPlane],
    reports: Mapping[str, signed.Status | None],
    now: datetime,
    *,
    compared: bool = True,
) -> list[PlaneStatus]:
    """Every plane of the plan, with what it reports; without ``compared`` (the desired
    commit is invalid, so nothing was planned), every resource's sync is ``Unknown``."""
    return [
        _plane(
            p, recorded.get(p.plane, RecordedPlane(p.plane)), reports.get(p.plane), now, compared
        )
        for p in plan.planes
    ]


def _plane(
    planned: PlanePlan,
    state: RecordedPlane,
    report: signed.Status | None,
    now: datetime,
    compared: bool,
) -> PlaneStatus:
    actions = {(a.kind, a.name): a for a in planned.actions}
    keys = sorted(set(actions) | set(state.issued) | set(state.observed))
    resources = tuple(
        _resource(k, actions.get(k), state, compared) for k in keys if _present(k, actions, state)
    )
    at = verify.parse_time(report.time) if report is not None else None
    flags = list(state.flags)
    if report is None and not state.flag:
        flags.append("no signed status report yet: is its agent running?")
    if state.applied > state.head:
        flags.append(f"reports #{state.applied} applied, but only #{state.head} was issued")
    return PlaneStatus(
        name=planned.plane,
        runtime=planned.runtime,
        reported_at=report.time if report is not None else None,
        age_seconds=(now - at).total_seconds() if at is not None else None,
        issued=state.head,
        applied=state.applied,
        flags=tuple(flags),
        resources=resources,
        halted=state.flag if state.log_refused or state.refused else None,
    )


def _present(key: Key, actions: Mapping[Key, Action], state: RecordedPlane) -> bool:
    """Due, issued, or deleted from git but not gone from the plane yet: a delete shows
    until the plane applied it and no longer reports the resource (one that failed to
    delete stays, as kustomize keeps it in the inventory)."""
    issued = state.issued.get(key)
    if key in actions:
        return True
    if issued is None:
        return False
    seen = state.observed.get(key)
    gone = seen is None or seen.phase == "Deleted"
    return issued.action != "delete" or not (gone and is_applied(state, issued, key))


def is_applied(state: RecordedPlane, issued: Issued, key: Key) -> bool:
    """Whether the plane applied ``issued``: its applied sequence covers the bundle, and it
    reports the resource from that command's digest, whatever the phase (a delete also
    when it no longer reports the resource, as the agent forgets what it deleted)."""
    if state.applied < issued.sequence:
        return False
    seen = state.observed.get(key)
    if seen is None:
        return issued.action == "delete"
    return seen.digest == issued.digest


def _resource(key: Key, action: Action | None, state: RecordedPlane, compared: bool) -> Resource:
    issued = state.issued.get(key)
    seen = state.observed.get(key)
    sync = _sync(action, state, key) if compared else "Unknown"
    return Resource(
        kind=key[0],
        name=key[1],
        sync=sync,
        phase=seen.phase if seen is not None else "Unknown",
        issued=f"#{issued.sequence} {issued.digest}" if issued else "",
        applied=seen.digest if seen is not None else "",
        detail=_detail(key[0], seen),
        message=_message(sync, action, issued, state, seen),
        observed=dict(seen.observed) if seen is not None else {},
    )


SYNC_STATES = ("Synced", "Issued", "OutOfSync", "Waiting", "Blocked", "Unknown")
"""Every sync state, in docs/status.md's order (its table maps each to Argo CD's)."""


def _sync(action: Action | None, state: RecordedPlane, key: Key) -> str:
    if action is not None:
        return {"wait": "Waiting", "blocked": "Blocked"}.get(action.op, "OutOfSync")
    issued = state.issued.get(key)
    return "Synced" if issued is not None and is_applied(state, issued, key) else "Issued"


def _message(
    sync: str,
    action: Action | None,
    issued: Issued | None,
    state: RecordedPlane,
    seen: signed.ResourceStatus | None,
) -> str:
    """The pending action's reason; for ``Issued``, how far the plane is; else what the plane
    says."""
    if action is not None and action.reason:
        return action.reason
    if sync == "Issued" and issued is not None:
        what = "delete issued" if issued.action == "delete" else "issued"
        if state.applied < issued.sequence:
            return f"{what} in #{issued.sequence}; the plane has applied #{state.applied}"
        return f"{what} in #{issued.sequence}; the plane does not report it applied yet"
    return seen.message if seen is not None else ""


def _detail(kind: str, seen: signed.ResourceStatus | None) -> str:
    if seen is None:
        return ""
    o = seen.observed
    if kind == "Model" and "version" in o:
        return f"{o['version']} (v{o.get('registryVersion', '?')}, scan {o.get('scan', '?')})"
    if kind == "Deployment" and "url" in o:
        ready = f"{o.get('readyReplicas', 0)}/{o.get('desiredReplicas', '?')}"
        return f"{o.get('servedVersion', '')} {ready} {o['url']}".strip()
    if kind in ("FeatureSet", "DAG"):
        return " ".join(f"{k}={o[k]}" for k in ("rows", "lastRunPhase", "nextRun") if k in o)
    return ""


def as_json(planes: list[PlaneStatus]) -> dict[str, Any]:
    """The stable JSON form (``apiVersion`` bumps on any incompatible change)."""
    return {
        "apiVersion": f"gitplane.dev/status/v{JSON_VERSION}",
        "planes": [
            {
                "name": p.name,
                "runtime": p.runtime,
                "reportedAt": p.reported_at,
                "ageSeconds": None if p.age_seconds is None else round(p.age_seconds, 1),
                "issuedSequence": p.issued,
                "appliedSequence": p.applied,
                "flags": list(p.flags),
                "resources": [_resource_json(r) for r in p.resources],
            }
            for p in planes
        ],
    }


def _resource_json(r: Resource) -> dict[str, Any]:
    return {
        "kind": r.kind,
        "name": r.name,
        "sync": r.sync,
        "phase": r.phase,
        "issued": r.issued,
        "applied": r.applied,
        "message": r.message,
        "observed": dict(r.observed),
    }


def text(planes: list[PlaneStatus]) -> str:
    """A screen per plane, 100 columns wide."""
    lines: list[str] = []
    for p in planes:
        age = "never reported" if p.age_seconds is None else f"reported {_ago(p.age_seconds)}"
        lines.append(f"{p.name} ({p.runtime}): {age}, applied #{p.applied} of #{p.issued}")
        lines += [f"  ! {inert(flag)}"[:WIDTH] for flag in p.flags]
        lines.append(f"  {'RESOURCE':<34} {'SYNC':<10} {'PHASE':<12} DETAIL")
        for r in p.resources:
            row = f"  {r.kind + '/' + r.name:<34} {r.sync:<10} {r.phase:<12} {inert(r.detail)}"
            lines.append(row[:WIDTH])
            if (r.message and r.sync not in ("Synced", "Unknown")) or r.phase in signed.FAILING:
                lines.append(f"      {inert(signed.cause_of(r.message))}"[:WIDTH])
        lines.append("")
    return "\n".join(lines).rstrip() + "\n"


def _ago(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f}s ago"
    if seconds < 7200:
        return f"{seconds / 60:.0f}m ago"
    if seconds < 2 * 86400:
        return f"{seconds / 3600:.0f}h ago"
    return f"{seconds / 86400:.0f}d ago"


NOT_READY = ("Progressing", "Pending", "Unknown")
"""Phases of a resource that is not (yet) what its command asked, without having failed."""


def unhealthy(planes: Sequence[PlaneStatus]) -> list[str]:
    """Why the planes shown are not all healthy (``status --exit-code``): a plane with a
    flag (refused log, attack report, stale, silent), a resource not ``Synced`` (one only
    ``Issued`` is not applied yet), failed
    (``signed.FAILING``) or not ready yet, made inert for a terminal (a flag quotes what a
    plane or git said). Empty when every one is healthy."""
    found = [f"{p.name}: {inert(p.flags[0])}" for p in planes if p.flags]
    found += [
        inert(f"{plane.name}: {r.kind}/{r.name} {r.sync} {r.phase}")
        for plane in planes
        for r in plane.resources
        if r.sync != "Synced" or r.phase in signed.FAILING or r.phase in NOT_READY
    ]
    return found
