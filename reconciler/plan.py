"""``plan(desired, recorded, now) -> Plan``: what each plane must be told, and why.

Pure and deterministic: no git, no clock (``now`` is passed in), no I/O. Per
plane, resources are chosen by their plane selectors and ordered by
dependency across kinds (models, then feature sets, then deployments, then
DAGs; deletions in reverse). A resource is in sync when the digest of its
resolved spec equals the digest last issued for it: only fields a spec
declares are part of that spec, so defaults never cause a diff. Gates turn an
action into ``wait`` (a dependency is not ready yet) or ``blocked`` (a person
must act: a failed scan, a missing approval, a closed change window,
pruning disabled).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime

from reconciler import _gc
from reconciler.decide import Index, plan_inputs, plan_plane_with
from reconciler.planned import ORDER, Action, Desired, Op, Plan, PlanePlan
from reconciler.recorded import RecordedPlane
from schemas.dataplane import DataPlane
from schemas.document import Document
from schemas.kinds import projects_of

__all__ = [
    "ORDER",
    "Action",
    "Desired",
    "Op",
    "Plan",
    "PlanePlan",
    "plan",
    "plan_inputs",
    "plan_plane",
    "projects_of",
]


def plan(desired: Desired, recorded: Mapping[str, RecordedPlane], now: datetime) -> Plan:
    """The plan that brings every plane from ``recorded`` to ``desired``."""
    with _gc.paused():
        index = Index.of(desired.documents)
        planes = sorted((d for d in desired.documents if isinstance(d, DataPlane)), key=_name)
        results = []
        for plane in planes:
            state = recorded.get(plane.name) or RecordedPlane(plane.name)
            results.append(plan_plane_with(plane, desired, state, now, index))
        return Plan(desired.commit, tuple(results))


def plan_plane(
    plane: DataPlane, desired: Desired, recorded: RecordedPlane, now: datetime
) -> PlanePlan:
    """The actions for one plane (what :func:`plan` computes for each)."""
    return plan_plane_with(plane, desired, recorded, now, Index.of(desired.documents))


def _name(document: Document) -> str:
    return document.name
