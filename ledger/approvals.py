"""Approval records: what an approver signs, how it is stored, and which ones count.

Pure: record files (bytes) and what they must match in, verdicts out; nothing here reads
git or the clock. docs/adr/0018-signed-approvals.md is the design. Invariants:

* a record counts only if its ``SSHSIG`` signature verifies in namespace
  :data:`NAMESPACE` under a key of the approver set in force, its ``key`` field names
  that same key, and it names this repository, this change and every protected plane's
  current plan digest;
* approvers are counted by key fingerprint: a second record of one key, under any name,
  counts for nothing (``duplicate``);
* every record gets a verdict; a refused one says why by a stable reason code.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from ledger import envelope, errors, sshsig
from schemas import sshkey
from schemas.policy import Approver

NAMESPACE = "gitplane-approval"
TYPE = "gitplane.dev/approval/v1"
ATTESTATION_NAMESPACE = "gitplane-forge-attestation"
"""Attestations are signed in their own namespace: a bot's signature is never an approval."""
ATTESTATION_TYPE = "gitplane.dev/forge-attestation/v1"
Login = Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")]
"""A forge user name (GitHub and GitLab logins fit)."""
MAX_FILE = 64 * 1024
"""Bytes: a record with a few hundred planes; anything larger is refused unread."""
Digest = Annotated[str, Field(pattern=r"^sha256:[0-9a-f]{64}$")]
Oid = Annotated[str, Field(pattern=r"^[0-9a-f]{40}([0-9a-f]{24})?$")]

TRAILERS = "trailers, unverified: anyone who can push can write one"
"""How trailer approvals (``mode: trailers``, the weaker mode of ADR 0006) are shown wherever
approvals are shown (plan and status reasons, audit): the one wording, kept here."""


def attested_by(bot: str) -> str:
    """How an approval a forge attestor vouches for is shown wherever approvals are shown
    (docs/adr/0018-signed-approvals.md): weaker, by the attestor's name."""
    return f"attested by forge bot {bot}, not signed by the approvers"


Reason = Literal[
    "",
    "malformed",
    "tampered",
    "unsupported-key",
    "unknown-key",
    "removed-key",
    "wrong-repo",
    "wrong-commit",
    "plan-changed",
    "duplicate",
]
"""Why a record does not count ("" : it counts). Stable: shown by ``approvals --output
json`` and kept in audit."""


class Approval(BaseModel):
    """One approval: the signed statement, before it is signed."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True, populate_by_name=True)

    type: Literal["gitplane.dev/approval/v1"] = Field("gitplane.dev/approval/v1", alias="_type")
    repository: Digest
    """The repository identity: sha256 of ``root/1.json`` on the root branch."""
    commit: Oid
    tree: Oid
    plans: Annotated[dict[str, Digest], Field(max_length=1000)]
    """Plan digest (ADR 0019) of every protected plane with actions, by plane name."""
    approver: Annotated[str, Field(max_length=256)]
    """The name the approver signs as; informative, never counted."""
    key: Annotated[str, Field(pattern=r"^SHA256:[A-Za-z0-9+/]{43}$")]
    time: Annotated[str, Field(pattern=r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")]
    """When it was signed (UTC); informative, never compared to a clock."""

    def payload(self) -> bytes:
        """The exact bytes the approver signs (strict canonical JSON)."""
        return envelope.dumps(self.model_dump(by_alias=True))


class Attestation(BaseModel):
    """A forge attestor's statement: "the forge reports approvals by these logins on pull
    request ``pr`` at head ``commit``", bound like an approval to the repository, the tree
    and the plan digests. Weaker than an approval: the bot, not the approvers, signs it."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True, populate_by_name=True)

    type: Literal["gitplane.dev/forge-attestation/v1"] = Field(
        "gitplane.dev/forge-attestation/v1", alias="_type"
    )
    repository: Digest
    commit: Oid
    tree: Oid
    plans: Annotated[dict[str, Digest], Field(max_length=1000)]
    pr: Annotated[int, Field(ge=1)]
    """The pull (merge) request number on the forge."""
    approved_by: Annotated[list[Login], Field(min_length=1, max_length=100, alias="approvedBy")]
    """The forge logins that approved, as the forge reports them at ``commit``."""
    attestor: Annotated[str, Field(max_length=256)]
    """The name the bot signs as; informative, never counted."""
    key: Annotated[str, Field(pattern=r"^SHA256:[A-Za-z0-9+/]{43}$")]
    time: Annotated[str, Field(pattern=r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")]

    def payload(self) -> bytes:
        """The exact bytes the attestor signs (strict canonical JSON)."""
        return envelope.dumps(self.model_dump(by_alias=True))


Record = Approval | Attestation


def stored(approval: Record, armor: str) -> bytes:
    """The file that holds ``approval`` and its signature on the approvals branch."""
    return envelope.dumps({"record": approval.payload().decode(), "signature": armor})


def path_of(commit: str, data: bytes) -> str:
    """Where a record file of ``commit`` lives: content addressed, so a copy is the same."""
    return f"approvals/{commit}/{hashlib.sha256(data).hexdigest()}.json"


def tree_path_of(tree: str, data: bytes) -> str:
    """The copy of a record file indexed by the tree it approves (squash merges, ADR 0018)."""
    return f"approvals/trees/{tree}/{hashlib.sha256(data).hexdigest()}.json"


@dataclass(frozen=True)
class Approvers:
    """The approver set in force: names by key fingerprint, and keys once listed."""

    names: Mapping[str, str]
    """Fingerprint -> the name the policy gives the key."""
    former: frozenset[str] = frozenset()
    """Fingerprints listed by an earlier policy and removed since."""
    bots: Mapping[str, str] = field(default_factory=dict)
    """Forge attestors: fingerprint -> the name the policy gives the bot key."""
    attested: int = 0
    """How many distinct forge approvers attestations may count for (0: none)."""

    @classmethod
    def of(
        cls,
        approvers: Sequence[Approver],
        former: Sequence[Approver] = (),
        *,
        attestors: Sequence[Approver] = (),
        attested: int = 0,
    ) -> Approvers:
        """The set of ``approvers``; ``former`` were listed before (removed unless still in);
        ``attestors`` are forge bots whose attestations count for up to ``attested``."""
        names = {sshkey.parse(a.key).fingerprint: a.name for a in approvers}
        gone = {sshkey.parse(a.key).fingerprint for a in former} - names.keys()
        bots = {sshkey.parse(a.key).fingerprint: a.name for a in attestors}
        return cls(names, frozenset(gone), bots, attested)


@dataclass(frozen=True)
class Target:
    """The change an approval must name to count for it."""

    repository: str
    commit: str
    trees: Mapping[str, str]
    """Tree of ``commit`` and of each of its parents, by commit: an approval of a pull
    request's head counts for the merge commit that has it as a parent."""
    plans: Mapping[str, str]
    """Plan digest of every protected plane with actions, computed at ``commit``."""


@dataclass(frozen=True)
class Verdict:
    """What one record file is, and whether it counts."""

    path: str
    reason: Reason
    detail: str = ""
    approval: Approval | None = None
    signer: str = ""
    """The fingerprint of the key that signed (empty when no signature verified)."""
    name: str = ""
    """The policy's name for the signer's key (empty when it lists none)."""
    attestation: Attestation | None = None
    """Set instead of ``approval`` when the record is a forge attestation."""

    @property
    def counted(self) -> bool:
        """Whether this record is one distinct, verified approval (or attestation) of the
        target."""
        return not self.reason

    @property
    def shown(self) -> str:
        """How the record is shown: an attestation always as weaker, by the bot's name."""
        if self.attestation is None:
            return ""
        logins = ", ".join(self.attestation.approved_by)
        return f"{logins} on PR {self.attestation.pr}, {attested_by(self.name or '?')}"


@dataclass(frozen=True)
class Tally:
    """Every record's verdict, and the distinct approvers that counted."""

    verdicts: tuple[Verdict, ...] = ()
    approvers: frozenset[str] = field(default_factory=frozenset)
    """Fingerprints of the counted approvals."""
    vouched: frozenset[str] = field(default_factory=frozenset)
    """Forge logins that counted attestations report as approving."""
    attested: int = 0
    """How many of ``vouched`` may count (the policy's ``attested``)."""

    @property
    def count(self) -> int:
        """Distinct approvers: signed ones, or else forge approvers attested by a bot, up to
        the policy's allowance. Never the two added up: a forge login cannot be matched to
        a key, so one person could otherwise count twice."""
        return max(len(self.approvers), min(len(self.vouched), self.attested))

    @property
    def attestors(self) -> tuple[str, ...]:
        """Names of the bots whose counted attestations vouch for forge approvers."""
        return tuple(sorted({v.name for v in self.verdicts if v.counted and v.attestation}))


def tally(files: Mapping[str, bytes], *, approvers: Approvers, target: Target) -> Tally:
    """Verify every record file against ``approvers`` and ``target``, in path order."""
    verdicts: list[Verdict] = []
    counted: set[str] = set()
    vouched: set[str] = set()
    for path in sorted(files):
        verdict = verify(path, files[path], approvers=approvers, target=target)
        if verdict.attestation is not None:
            if verdict.counted:
                vouched.update(verdict.attestation.approved_by)
            verdicts.append(verdict)
            continue
        if verdict.counted and verdict.signer in counted:
            verdict = _refuse(verdict, "duplicate", f"{verdict.signer} already approved")
        if verdict.counted:
            counted.add(verdict.signer)
        verdicts.append(verdict)
    return Tally(tuple(verdicts), frozenset(counted), frozenset(vouched), approvers.attested)


def verify(path: str, data: bytes, *, approvers: Approvers, target: Target) -> Verdict:
    """The verdict on one record file (never raises on bad data)."""
    try:
        record, key = _signed(data)
    except sshsig.SshSigError as error:
        reason: Reason = "unsupported-key" if error.reason == "unsupported-key" else "tampered"
        return Verdict(path, reason, str(error))
    except errors.VerificationError as error:
        return Verdict(path, "malformed", str(error))
    signer = key.fingerprint
    if isinstance(record, Attestation):
        bot = Verdict(path, "", signer=signer, name=approvers.bots.get(signer, ""))
        return _attested(replace(bot, attestation=record), record, approvers, target)
    verdict = Verdict(
        path, "", approval=record, signer=signer, name=approvers.names.get(signer, "")
    )
    return _match(verdict, record, approvers, target)


def _signed(data: bytes) -> tuple[Record, sshkey.SshPublicKey]:
    """The record of ``data`` and the key that signed it, each in its own namespace: a
    bot's attestation signature is never an approver's, nor the other way round."""
    if _is_attestation(data):
        attestation, armor = parse_attestation(data)
        return attestation, sshsig.check(
            armor, attestation.payload(), namespace=ATTESTATION_NAMESPACE
        )
    approval, armor = parse(data)
    return approval, sshsig.check(armor, approval.payload(), namespace=NAMESPACE)


def _is_attestation(data: bytes) -> bool:
    """Whether ``data`` claims to be an attestation (checked in full by its parser)."""
    try:
        record, _ = _outer(data)
        body = envelope.loads(record.encode())
    except errors.VerificationError:
        return False
    return isinstance(body, dict) and body.get("_type") == ATTESTATION_TYPE


def _attested(
    verdict: Verdict, attestation: Attestation, approvers: Approvers, target: Target
) -> Verdict:
    signer = verdict.signer
    if attestation.key != signer:
        return _refuse(verdict, "tampered", f"names key {attestation.key} but {signer} signed it")
    if signer not in approvers.bots:
        return _refuse(verdict, "unknown-key", f"{signer} is not a forge attestor in the policy")
    return _bound(verdict, attestation, target)


def _match(verdict: Verdict, approval: Approval, approvers: Approvers, target: Target) -> Verdict:
    signer = verdict.signer
    if approval.key != signer:
        return _refuse(verdict, "tampered", f"names key {approval.key} but {signer} signed it")
    if signer not in approvers.names:
        reason: Reason = "removed-key" if signer in approvers.former else "unknown-key"
        return _refuse(verdict, reason, f"{signer} is not an approver in the policy in force")
    return _bound(verdict, approval, target)


def _bound(verdict: Verdict, record: Record, target: Target) -> Verdict:
    """``verdict`` refused unless ``record`` names this repository, change and plans."""
    if record.repository != target.repository:
        return _refuse(verdict, "wrong-repo", f"approves repository {record.repository}")
    if record.tree != target.trees.get(record.commit, target.trees[target.commit]):
        return _refuse(verdict, "wrong-commit", f"approves {record.commit[:12]}, not this change")
    return _plans(verdict, record.plans, target.plans)


def _plans(verdict: Verdict, approved: Mapping[str, str], now: Mapping[str, str]) -> Verdict:
    for plane, digest in sorted(now.items()):
        was = approved.get(plane)
        if was != digest:
            seen = f"approved {_short(was)}" if was else "not in the approved plan"
            return _refuse(
                verdict,
                "plan-changed",
                f"plane {plane}: plan changed since approval ({seen}, now {_short(digest)})",
            )
    return verdict


def _short(digest: str) -> str:
    return digest.removeprefix("sha256:")[:8] + "…"


def _refuse(verdict: Verdict, reason: Reason, detail: str) -> Verdict:
    return replace(verdict, reason=reason, detail=detail)


def parse(data: bytes) -> tuple[Approval, str]:
    """The approval and signature armor of a record file; :class:`errors.MalformedError` or
    :class:`errors.OversizedError` when it is not one."""
    record, armor = _outer(data)
    approval = _approval(envelope.loads(record.encode()))
    if approval.payload() != record.encode():
        raise errors.MalformedError("the approval record is not in canonical form")
    return approval, armor


def parse_attestation(data: bytes) -> tuple[Attestation, str]:
    """The attestation and signature armor of a record file (errors as :func:`parse`)."""
    record, armor = _outer(data)
    try:
        attestation = Attestation.model_validate(envelope.loads(record.encode()))
    except ValidationError as error:
        raise errors.MalformedError(f"forge attestation: {_first(error)}") from None
    if attestation.payload() != record.encode():
        raise errors.MalformedError("the attestation record is not in canonical form")
    return attestation, armor


def _outer(data: bytes) -> tuple[str, str]:
    if len(data) > MAX_FILE:
        raise errors.OversizedError(f"approval record larger than {MAX_FILE} bytes")
    outer = envelope.loads(data)
    if not (isinstance(outer, dict) and set(outer) == {"record", "signature"}):
        raise errors.MalformedError("an approval file is {record, signature}")
    record, armor = outer["record"], outer["signature"]
    if not (isinstance(record, str) and isinstance(armor, str)):
        raise errors.MalformedError("an approval's record and signature are strings")
    return record, armor


def _approval(value: Any) -> Approval:
    try:
        return Approval.model_validate(value)
    except ValidationError as error:
        raise errors.MalformedError(f"approval record: {_first(error)}") from None


def _first(error: ValidationError) -> str:
    first = error.errors()[0]
    return ".".join(str(p) for p in first["loc"]) + f": {first['msg']}"
