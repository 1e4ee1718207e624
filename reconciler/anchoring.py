"""The approval rule in force, anchored by root: read it, and pin a new one.

The reconciler counts signed approvals only under a rule it trusts (ADR 0018). The first
is the root-signed anchor on the root branch (:mod:`ledger.anchor`); from there, the rule
moves only by commits approved under the rule before them (:mod:`reconciler.approval_gate`)
or by a newer anchor. The reconciler keeps both in its work directory: the rule in force
(``approval-rule.json``) and the anchor version it was taken from (``approvers-anchor``).
A rule file without an anchor version (one trusted on first use by an older build) is not
trusted.

``gitplane keys approvers`` (:func:`pin`) signs the rule of one spec commit with the root
keys and publishes it.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path

from ledger import anchor, approvallog, envelope, errors, gitrepo, keyring, keys, layout, verify
from reconciler import approvals, planning
from schemas import files, signed
from schemas.errors import UsageError

RULE = "approval-rule.json"
"""In the work directory: the approval rule in force."""
VERSION = "approvers-anchor"
"""In the work directory: the version of the anchor the rule in force descends from."""


@dataclass(frozen=True)
class Trust:
    """The rule approvals are counted under this cycle."""

    rule: approvals.Rule | None
    """None: no anchor was ever taken (signed mode refuses everything)."""
    adopt: int = 0
    """A newer anchor's version, taken this cycle: record it with :func:`keep`."""
    trouble: str = ""
    """An anchor on the branch that was not taken, and why (an alarm)."""


def trusted(work_dir: Path, state: gitrepo.Mirror, refs: gitrepo.Snapshot, root: bytes) -> Trust:
    """The rule in force: the one kept in ``work_dir``, or a newer anchor's, verified under
    ``root`` (the newest root the reconciler holds). An anchor that does not verify, or is
    older than the one taken, is never taken: the kept rule stays (reported)."""
    version_file, rule_file = work_dir / VERSION, work_dir / RULE
    taken = int(version_file.read_text()) if version_file.exists() else 0
    kept = approvals.Rule.loads(rule_file.read_bytes()) if taken and rule_file.exists() else None
    try:
        data = anchor.read(state, refs.get(layout.ROOT_REF))
        if data is None:
            return Trust(kept)
        repository = approvallog.repository_id(state, refs)
        found = anchor.check(data, verify.load_trusted_root(root), repository=repository)
        rule = approvals.Rule.loads(envelope.dumps(found.rule))
    except (errors.VerificationError, approvallog.ApprovalLogError, gitrepo.GitError) as exc:
        return Trust(
            kept, trouble=f"the approvers anchor on {layout.ROOT_REF} was not taken: {exc}"
        )
    except (ValueError, KeyError, TypeError) as exc:
        return Trust(kept, trouble=f"the approvers anchor holds no approval rule: {exc}")
    if found.version < taken:
        why = f"it is version {found.version}, older than version {taken} in force"
        return Trust(kept, trouble=f"the approvers anchor was not taken: {why}")
    if found.version == taken and kept is not None:
        return Trust(kept)
    return Trust(rule, adopt=found.version)


def keep(work_dir: Path, rule: approvals.Rule, trust: Trust) -> None:
    """Record ``rule`` as the one in force (and the anchor taken this cycle, if one was)."""
    if rule != trust.rule or trust.adopt:
        files.atomic_write(work_dir / RULE, rule.dumps())
    if trust.adopt:
        files.atomic_write(work_dir / VERSION, f"{trust.adopt}\n".encode())


@dataclass(frozen=True)
class Pinned:
    """What ``gitplane keys approvers`` signed and published."""

    version: int
    commit: str
    rule: approvals.Rule


def pin(keys_dir: Path, request: planning.PlanRequest, who: gitrepo.Identity) -> Pinned:
    """Sign the approval rule of ``request.rev`` with the root keys in ``keys_dir`` (at least
    the threshold of its newest root) and publish it as the next anchor version."""
    root_bytes = keyring.read_root(keys_dir / keyring.ROOT_FILE)
    root = verify.load_trusted_root(root_bytes)
    signers = _root_signers(keys_dir, root_bytes)
    repo, prefix = planning.spec_repo(request.path)
    try:
        commit = repo.resolve(request.rev)
    except gitrepo.GitError as error:
        raise UsageError(f"cannot read {request.rev}: {error}") from None
    want = planning.desired_of(repo, commit, prefix, str(request.path))
    rule = approvals.Rule.of(want.documents)
    if rule.minimum == 0:
        raise UsageError(
            f"no Policy at {commit[:12]} asks for signed approvals: there is no rule to pin"
        )
    url = request.state_repo or repo.logs_url()
    with tempfile.TemporaryDirectory(prefix="gitplane-anchor-") as scratch:
        mirror = gitrepo.Mirror.open(Path(scratch), url)
        try:
            refs = mirror.fetch([layout.ROOT_REF])
            repository = approvallog.repository_id(mirror, refs)
            previous = anchor.read(mirror, refs.get(layout.ROOT_REF))
            version = 1 if previous is None else _version(previous, root, repository) + 1
            data = anchor.sign(
                version=version,
                repository=repository,
                rule=envelope.loads(rule.dumps()),
                signers=signers,
            )
            anchor.publish(mirror, data, who=who)
        except (gitrepo.GitError, approvallog.ApprovalLogError) as error:
            raise UsageError(f"cannot publish to the state repository {url}: {error}") from None
    return Pinned(version, commit, rule)


def _version(data: bytes, root: signed.Root, repository: str) -> int:
    """The version of the anchor on the branch. One that does not verify is replaced, after
    the version its payload claims, so that versions only grow."""
    try:
        return anchor.check(data, root, repository=repository).version
    except errors.VerificationError:
        pass
    try:
        body = envelope.loads(envelope.decode_b64(envelope.loads(data)["payload"]))
        return int(body["version"])
    except (errors.VerificationError, ValueError, KeyError, TypeError):
        return 0


def _root_signers(keys_dir: Path, root_bytes: bytes) -> list[keys.Signer]:
    """The root keys in ``keys_dir/root/`` that the newest root names, at least its threshold."""
    root = verify.load_trusted_root(root_bytes)
    named, threshold = verify.role_keys(root, "root")
    signers: list[keys.Signer] = []
    for path in sorted((keys_dir / "root").glob("*.key")):
        signer = keys.FileSigner.load(path)
        if signer.public_key.keyid in named:
            signers.append(signer)
    if len(signers) < threshold:
        raise UsageError(
            f"{keys_dir / 'root'} holds {len(signers)} of the {threshold} root key(s) of root "
            f"version {root.version} needed to sign the approvers anchor"
        )
    return signers
