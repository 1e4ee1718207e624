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
from dataclasses import dataclass, field
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from ledger import envelope, errors, sshsig
from schemas import sshkey
from schemas.policy import Approver

NAMESPACE = "gitplane-approval"
TYPE = "gitplane.dev/approval/v1"
MAX_FILE = 64 * 1024
"""Bytes: a record with a few hundred planes; anything larger is refused unread."""
Digest = Annotated[str, Field(pattern=r"^sha256:[0-9a-f]{64}$")]
Oid = Annotated[str, Field(pattern=r"^[0-9a-f]{40}([0-9a-f]{24})?$")]

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


def stored(approval: Approval, armor: str) -> bytes:
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

    @classmethod
    def of(cls, approvers: Sequence[Approver], former: Sequence[Approver] = ()) -> Approvers:
        """The set of ``approvers``; ``former`` were listed before (removed unless still in)."""
        names = {sshkey.parse(a.key).fingerprint: a.name for a in approvers}
        gone = {sshkey.parse(a.key).fingerprint for a in former} - names.keys()
        return cls(names, frozenset(gone))


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

    @property
    def counted(self) -> bool:
        """Whether this record is one distinct, verified approval of the target."""
        return not self.reason


@dataclass(frozen=True)
class Tally:
    """Every record's verdict, and the distinct approvers that counted."""

    verdicts: tuple[Verdict, ...] = ()
    approvers: frozenset[str] = field(default_factory=frozenset)
    """Fingerprints of the counted approvals."""


def tally(files: Mapping[str, bytes], *, approvers: Approvers, target: Target) -> Tally:
    """Verify every record file against ``approvers`` and ``target``, in path order."""
    verdicts: list[Verdict] = []
    counted: set[str] = set()
    for path in sorted(files):
        verdict = verify(path, files[path], approvers=approvers, target=target)
        if verdict.counted and verdict.signer in counted:
            verdict = _refuse(verdict, "duplicate", f"{verdict.signer} already approved")
        if verdict.counted:
            counted.add(verdict.signer)
        verdicts.append(verdict)
    return Tally(tuple(verdicts), frozenset(counted))


def verify(path: str, data: bytes, *, approvers: Approvers, target: Target) -> Verdict:
    """The verdict on one record file (never raises on bad data)."""
    try:
        approval, armor = parse(data)
        key = sshsig.check(armor, approval.payload(), namespace=NAMESPACE)
    except sshsig.SshSigError as error:
        reason: Reason = "unsupported-key" if error.reason == "unsupported-key" else "tampered"
        return Verdict(path, reason, str(error))
    except errors.VerificationError as error:
        return Verdict(path, "malformed", str(error))
    verdict = Verdict(
        path,
        "",
        approval=approval,
        signer=key.fingerprint,
        name=approvers.names.get(key.fingerprint, ""),
    )
    return _match(verdict, approval, approvers, target)


def _match(verdict: Verdict, approval: Approval, approvers: Approvers, target: Target) -> Verdict:
    signer = verdict.signer
    if approval.key != signer:
        return _refuse(verdict, "tampered", f"names key {approval.key} but {signer} signed it")
    if signer not in approvers.names:
        reason: Reason = "removed-key" if signer in approvers.former else "unknown-key"
        return _refuse(verdict, reason, f"{signer} is not an approver in the policy in force")
    if approval.repository != target.repository:
        return _refuse(verdict, "wrong-repo", f"approves repository {approval.repository}")
    if approval.tree != target.trees.get(approval.commit, target.trees[target.commit]):
        return _refuse(verdict, "wrong-commit", f"approves {approval.commit[:12]}, not this change")
    return _plans(verdict, approval.plans, target.plans)


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
    return Verdict(verdict.path, reason, detail, verdict.approval, verdict.signer, verdict.name)


def parse(data: bytes) -> tuple[Approval, str]:
    """The approval and signature armor of a record file; :class:`errors.MalformedError` or
    :class:`errors.OversizedError` when it is not one."""
    if len(data) > MAX_FILE:
        raise errors.OversizedError(f"approval record larger than {MAX_FILE} bytes")
    outer = envelope.loads(data)
    if not (isinstance(outer, dict) and set(outer) == {"record", "signature"}):
        raise errors.MalformedError("an approval file is {record, signature}")
    record, armor = outer["record"], outer["signature"]
    if not (isinstance(record, str) and isinstance(armor, str)):
        raise errors.MalformedError("an approval's record and signature are strings")
    approval = _approval(envelope.loads(record.encode()))
    if approval.payload() != record.encode():
        raise errors.MalformedError("the approval record is not in canonical form")
    return approval, armor


def _approval(value: Any) -> Approval:
    try:
        return Approval.model_validate(value)
    except ValidationError as error:
        first = error.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise errors.MalformedError(f"approval record: {where}: {first['msg']}") from None
