"""The shapes of a plan: the desired state it starts from, and the actions it ends in.

Pure data, shared by the planner (:mod:`reconciler.decide`, :mod:`reconciler.plan`,
:mod:`reconciler.replan`), the gates and the views; it imports none of them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal

from reconciler.fielddiff import Change
from schemas import signed
from schemas.document import Document
from schemas.problems import Problem

if TYPE_CHECKING:
    from reconciler.approvals import Mode

Op = Literal["create", "update", "delete", "build", "wait", "blocked"]
ORDER = ("Model", "FeatureSet", "Deployment", "DAG")


@dataclass(frozen=True)
class Signed:
    """What the signed approval records of a commit came to (reconciler.approving)."""

    approvers: int
    """Distinct approver keys whose records verified and match every protected plane's
    plan digest at this commit."""
    plan_changed: str = ""
    """When a record was refused because a plan changed since: why, with both digests."""
    attested_by: tuple[str, ...] = ()
    """Forge attestors whose attestations made ``approvers`` (weaker: shown by name)."""


@dataclass(frozen=True)
class Desired:
    """Desired state: the documents of one commit of the protected branch."""

    commit: str
    documents: Sequence[Document]
    inputs: Mapping[str, str] = field(default_factory=dict)
    """Git tree id of every MLflow Project directory the documents build or run."""
    trailers: Mapping[str, frozenset[str]] = field(default_factory=dict)
    """Trailers of ``commit`` by key (``Approved-by`` -> the distinct approvers)."""
    merged: bool = False
    """Whether ``commit`` arrived through a merge (a merged pull request)."""
    signed: Signed | None = None
    """Its signed approvals; None when none were read (``mode: signed`` then blocks)."""


@dataclass(frozen=True)
class Action:
    """One step for one resource on one plane."""

    op: Op
    kind: str
    name: str
    reason: str
    command: signed.Command | None = None
    """What the plane will be sent; None for ``wait`` and ``blocked``."""
    source: str = ""
    """Digest of what git declares for the resource (before references are pinned)."""
    declared: str = ""
    """What git declares for it (JSON text, before references are pinned): the side a PR's
    plan diffs against its base's."""
    changes: tuple[Change, ...] = ()
    """The fields it changes from the spec last issued (an update, a rebuild)."""

    @property
    def ref(self) -> str:
        """``Kind/name``."""
        return f"{self.kind}/{self.name}"


@dataclass(frozen=True)
class PlanePlan:
    """The ordered actions for one plane."""

    plane: str
    runtime: str
    labels: Mapping[str, str]
    actions: tuple[Action, ...] = ()
    flag: str | None = None

    @property
    def commands(self) -> list[signed.Command]:
        """The commands to issue, in order."""
        return [a.command for a in self.actions if a.command is not None]


@dataclass(frozen=True)
class Plan:
    """Every plane's actions for one commit."""

    commit: str
    planes: tuple[PlanePlan, ...] = field(default_factory=tuple)
    warnings: tuple[Problem, ...] = ()
    """Fields the specs set that a runtime, or this release, does not enforce."""
    approvals: Mapping[str, Mode] = field(default_factory=dict)
    """How each plane's approvals are counted, by plane (``reconciler.approvals.Mode``):
    ``plan`` names the weaker trailer mode."""
    digests: Mapping[str, str] | None = field(default_factory=dict)
    """Plan digest (docs/adr/0019-plan-digest.md) of every protected plane with actions:
    what ``gitplane approve`` signs and the reconciler compares at merge. None: a plane is
    protected but the plan was made without the recorded state (no ``--root``), so no
    digest it could show is the one compared."""

    @property
    def has_changes(self) -> bool:
        """Whether any plane has any action (including waiting and blocked ones)."""
        return any(p.actions for p in self.planes)
