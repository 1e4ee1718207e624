"""Signed approvals, the reconciler's half: plan digests and the rule in force.

Pure functions of desired state and plans (docs/adr/0018-signed-approvals.md,
docs/adr/0019-plan-digest.md). A plane is *protected* when a Policy with
``approvals.mode: signed`` selects it; its plan digest hashes what it will be told, with
the Policy gates lifted, so that the approval being checked never changes what it checks.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any, Literal

from ledger import approvals, envelope
from reconciler.plan import plan
from reconciler.planned import Desired, PlanePlan
from reconciler.recorded import RecordedPlane
from schemas import sshkey
from schemas.dataplane import DataPlane
from schemas.document import Document
from schemas.policy import Approver, Policy

DIGEST_TYPE = "gitplane.dev/plan-digest/v1"


def plan_digest(plane: PlanePlan) -> str:
    """``sha256:…`` of the canonical form of what ``plane`` will be told (ADR 0019)."""
    actions = [
        {
            "op": action.op,
            "ref": action.ref,
            "spec": action.command.digest if action.command else action.source,
        }
        for action in plane.actions
    ]
    body = {"_type": DIGEST_TYPE, "plane": plane.plane, "actions": actions}
    return envelope.digest(envelope.dumps(body))


def signed_policies(documents: Sequence[Document]) -> list[Policy]:
    """The Policies that demand signed approvals."""
    return [
        d
        for d in documents
        if isinstance(d, Policy) and d.spec.approvals and d.spec.approvals.mode == "signed"
    ]


def is_protected(labels: Mapping[str, str], policies: Sequence[Policy]) -> bool:
    """Whether a plane with ``labels`` is selected by one of the signed ``policies``."""
    return any(p.spec.plane_selector.matches(dict(labels)) for p in policies)


def lifted(desired: Desired) -> Desired:
    """``desired`` with every Policy's approval and change-window gates removed: the plan a
    protected plane gets once approved, whatever the time."""
    documents = [
        d.model_copy(
            update={"spec": d.spec.model_copy(update={"approvals": None, "change_windows": None})}
        )
        if isinstance(d, Policy)
        else d
        for d in desired.documents
    ]
    return replace(desired, documents=documents)


def plan_digests(
    desired: Desired, recorded: Mapping[str, RecordedPlane], now: datetime
) -> dict[str, str]:
    """Plan digest of every protected plane that has actions at ``desired``. Planned with
    the protected planes alone (each plane's plan depends on its own documents and record
    only), so the cost grows with what is protected, not with the fleet."""
    policies = signed_policies(desired.documents)
    if not policies:
        return {}
    documents = [
        d
        for d in lifted(desired).documents
        if not isinstance(d, DataPlane) or is_protected(d.metadata.labels, policies)
    ]
    planned = plan(replace(desired, documents=documents), dict(recorded), now)
    return {p.plane: plan_digest(p) for p in planned.planes if p.actions}


def approvers_in_force(base: Sequence[Document]) -> approvals.Approvers:
    """The approver set that approvals of a change are counted under: the one of the
    signed Policies at the change's base (the merge base with the protected branch), never
    the one the change itself writes (ADR 0018)."""
    rule = Rule.of(base)
    return approvals.Approvers.of(rule.approvers, attestors=rule.attestors, attested=rule.attested)


def minimum(documents: Sequence[Document], labels: Mapping[str, str]) -> int:
    """The most signed approvals any signed Policy selecting a plane with ``labels`` asks."""
    return max(
        (
            p.spec.approvals.minimum
            for p in signed_policies(documents)
            if p.spec.approvals and p.spec.plane_selector.matches(dict(labels))
        ),
        default=0,
    )


@dataclass(frozen=True)
class Rule:
    """The approval rule of a commit: who approves, how many, and on what (every Policy's
    selector, kinds and approvals block). A commit whose rule differs from the one in force
    takes effect only when approved under the one in force (ADR 0018)."""

    digest: str
    minimum: int
    """The highest ``minimum`` of any signed Policy (0: none asks for signed approvals)."""
    approvers: tuple[Approver, ...] = ()
    attestors: tuple[Approver, ...] = ()
    """Forge attestor keys of the signed Policies."""
    attested: int = 0
    """Forge approvers attestations may count for: the lowest of the signed Policies (one
    that allows none makes them count for nothing)."""
    former: tuple[str, ...] = ()
    """Fingerprints of keys an earlier rule in force listed and this one does not: their
    records are refused as ``removed-key``."""

    @classmethod
    def of(cls, documents: Sequence[Document]) -> Rule:
        """The rule ``documents`` set."""
        policies = sorted((d for d in documents if isinstance(d, Policy)), key=lambda p: p.name)
        gating = [
            {"name": p.name, "spec": p.spec.model_dump(mode="json", include=GATING)}
            for p in policies
        ]
        signed = signed_policies(policies)
        listed = tuple(a for p in signed if p.spec.approvals for a in p.spec.approvals.approvers)
        floor = max((p.spec.approvals.minimum for p in signed if p.spec.approvals), default=0)
        bots = tuple(a for p in signed if p.spec.approvals for a in p.spec.approvals.attestors)
        attested = min((p.spec.approvals.attested for p in signed if p.spec.approvals), default=0)
        return cls(envelope.digest(envelope.dumps(gating)), floor, listed, bots, attested)

    def succeeded_by(self, new: Rule) -> Rule:
        """``new`` in force after this one: with every key this one listed, or had removed,
        that ``new`` does not list, as removed."""
        listed = {sshkey.parse(a.key).fingerprint for a in new.approvers}
        mine = {sshkey.parse(a.key).fingerprint for a in self.approvers}
        return replace(new, former=tuple(sorted((mine | set(self.former)) - listed)))

    def in_force(self) -> approvals.Approvers:
        """The approver set this rule counts approvals under."""
        listed = approvals.Approvers.of(
            self.approvers, attestors=self.attestors, attested=self.attested
        )
        return replace(listed, former=frozenset(self.former) - listed.names.keys())

    def dumps(self) -> bytes:
        """The rule as JSON, for the reconciler's work directory."""
        approvers = [{"name": a.name, "key": a.key} for a in self.approvers]
        bots = [{"name": a.name, "key": a.key} for a in self.attestors]
        body = {"digest": self.digest, "minimum": self.minimum, "approvers": approvers}
        extra = {"attestors": bots, "attested": self.attested} if bots else {}
        removed = {"former": list(self.former)} if self.former else {}
        return envelope.dumps(body | extra | removed)

    @classmethod
    def loads(cls, data: bytes) -> Rule:
        """A rule written by :meth:`dumps` (``ValueError`` if it is not one)."""
        body = envelope.loads(data)
        approvers = tuple(Approver.model_validate(a) for a in body["approvers"])
        bots = tuple(Approver.model_validate(a) for a in body.get("attestors", []))
        attested = int(body.get("attested", 0))
        former = tuple(str(f) for f in body.get("former", ()))
        return cls(str(body["digest"]), int(body["minimum"]), approvers, bots, attested, former)


GATING = {"plane_selector", "kinds", "approvals"}
"""The fields of a Policy that say who must approve what."""


@dataclass(frozen=True)
class Mode:
    """How a plane's approvals are counted: ``signed`` (records signed by approvers' keys,
    verified) or ``trailers`` (the weaker mode: ``Approved-by:`` trailers, which anyone who
    can push can write), and by which Policies."""

    mode: Literal["signed", "trailers"]
    policies: tuple[str, ...]

    def describe(self) -> str:
        """One line for ``plan`` and ``status``."""
        names = ", ".join(f"Policy/{p}" for p in self.policies)
        if self.mode == "signed":
            return f"approvals signed by approvers' SSH keys, verified ({names})"
        return f"approvals in trailer mode (weaker: Approved-by: is not verified; {names})"

    def as_dict(self) -> dict[str, Any]:
        """The JSON form (``--output json``)."""
        return {
            "mode": self.mode,
            "verified": self.mode == "signed",
            "policies": list(self.policies),
        }


def modes(documents: Sequence[Document]) -> dict[str, Mode]:
    """How each plane that a Policy asks approvals for counts them (signed wins)."""
    asking = [
        d
        for d in documents
        if isinstance(d, Policy) and d.spec.approvals and d.spec.approvals.minimum
    ]
    found: dict[str, Mode] = {}
    for plane in (d for d in documents if isinstance(d, DataPlane)):
        labels = dict(plane.metadata.labels)
        selecting = [p for p in asking if p.spec.plane_selector.matches(labels)]
        for mode in ("signed", "trailers"):
            names = tuple(
                p.name for p in selecting if p.spec.approvals and p.spec.approvals.mode == mode
            )
            if names:
                found[plane.name] = Mode(mode, names)
                break
    return found
