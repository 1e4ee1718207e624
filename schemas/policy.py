"""``Policy``: approval and security gates and change windows, per environment."""

from __future__ import annotations

from typing import Annotated, ClassVar, Literal, Self

from pydantic import AfterValidator, Field, model_validator

from schemas import sshkey
from schemas.common import LabelSelector, Name, Strict
from schemas.document import Document
from schemas.model import Severity

Kind = Literal["Model", "Deployment", "FeatureSet", "DAG"]
Day = Literal["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"]
Clock = Annotated[str, Field(pattern=r"^([01][0-9]|2[0-3]):[0-5][0-9]$")]


def _an_approver_key(value: str) -> str:
    """An ed25519 key the approval verifier accepts (``schemas.sshkey``)."""
    try:
        sshkey.parse(value)
    except sshkey.SshKeyError as error:
        raise ValueError(str(error)) from None
    return value


SshKey = Annotated[
    str, Field(max_length=1024, title="SSH public key"), AfterValidator(_an_approver_key)
]


class Approver(Strict):
    """A person who may approve, by the public key they sign approvals with."""

    name: Name
    """Shown in ``approvals``, ``plan`` and ``audit``; never counted (the key is)."""
    key: SshKey
    """``ssh-ed25519 AAAA… comment``, as in ``~/.ssh/id_ed25519.pub``."""


class Approvals(Strict):
    """Approvals a change needs: signed approval records (``mode: signed``) or trailers of the
    commit that made it (``mode: trailers``, the weaker mode: anyone who can push can write
    one). docs/adr/0018-signed-approvals.md."""

    mode: Literal["trailers", "signed"] = "trailers"
    """``signed``: distinct ``approvers`` keys must sign the change and its plan digests."""
    minimum: Annotated[int, Field(ge=0, le=20)] = 1
    approvers: Annotated[list[Approver], Field(max_length=100)] = Field(default_factory=list)
    """Who may approve in ``signed`` mode; a key counts once, whatever its names."""
    attestors: Annotated[list[Approver], Field(max_length=20)] = Field(default_factory=list)
    """Forge bots (``mode: signed``) whose key signs "the forge reports approvals by these
    logins on pull request N at head H" (``gitplane attest``). Weaker than an approver's
    own signature, and shown so by the bot's name."""
    attested: Annotated[int, Field(ge=0, le=20)] = 0
    """How many distinct forge approvers the attestors may vouch for: a change counts as
    many approvers as its signed approvals, or else as the forge logins attested, up to
    this (never the two added up). 0: attestations are listed and count for nothing."""
    trailer: str = "Approved-by"
    """Commit trailer naming one approver each, written by the merge (one per person)."""
    require_merge_commit: bool = False
    """Only changes that arrived through a merge commit (a merged pull request) count."""

    @model_validator(mode="after")
    def _approvers_fit_mode(self) -> Self:
        if self.mode == "trailers" and (self.approvers or self.attestors):
            raise ValueError("approvers and attestors are read only with mode: signed")
        if self.attested and not self.attestors:
            raise ValueError("attested counts forge approvers, but no attestors are listed")
        if self.mode == "signed":
            _distinct([*self.approvers, *self.attestors])
            if len(self.approvers) < self.minimum:
                raise ValueError(
                    f"minimum is {self.minimum} but only {len(self.approvers)} approver(s) "
                    "are listed: no change could ever be approved"
                )
        return self


def _distinct(approvers: list[Approver]) -> None:
    """Refuse a name or a key listed twice (one key under two names would count once)."""
    names: set[str] = set()
    keys: dict[str, str] = {}
    for approver in approvers:
        fingerprint = sshkey.parse(approver.key).fingerprint
        if approver.name in names:
            raise ValueError(f"approver {approver.name!r} is listed twice")
        if fingerprint in keys:
            raise ValueError(
                f"approvers {keys[fingerprint]!r} and {approver.name!r} have the same key "
                f"({fingerprint})"
            )
        names.add(approver.name)
        keys[fingerprint] = approver.name


class SecurityGate(Strict):
    """What a model must pass before it is served."""

    require_scan: bool = True
    """The version's scan ran and passed its policy."""
    max_severity: Severity | None = None
    """Also block findings at or above this severity, whatever the model's own policy says."""


class Window(Strict):
    """A weekly time window."""

    days: list[Day] = Field(min_length=1)
    start: Clock
    end: Clock
    timezone: str = "UTC"


class ChangeWindows(Strict):
    """When changes may be applied; deny wins over allow."""

    allow: list[Window] = Field(default_factory=list)
    """If any are set, changes apply only inside one of them."""
    deny: list[Window] = Field(default_factory=list)
    """Freezes: changes never apply inside these."""


class PolicySpec(Strict):
    """Gates applied to resources of ``kinds`` on the selected planes."""

    plane_selector: LabelSelector
    kinds: list[Kind] = Field(
        default_factory=lambda: list[Kind](["Model", "Deployment", "FeatureSet", "DAG"])
    )
    approvals: Approvals | None = None
    security: SecurityGate | None = None
    change_windows: ChangeWindows | None = None


class Policy(Document):
    """A gate on changes to an environment."""

    KIND: ClassVar[str] = "Policy"
    api_version: Literal["gitplane.dev/v1alpha1"]
    kind: Literal["Policy"]
    spec: PolicySpec
