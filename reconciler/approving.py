"""``gitplane approve``, ``approvals`` and ``keys approvers``: draft, sign, append and list
approvals, and pin the approvers anchor.

The I/O driver around :mod:`ledger.approvals` (records) and :mod:`reconciler.approvals`
(plan digests): it loads the commit, plans it against the verified recorded state as
``plan --root`` does, and reads or appends the approvals branch of the state repository.
"""

from __future__ import annotations

import contextlib
import tempfile
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from pydantic import ValidationError

from ledger import (
    anchor,
    approvallog,
    approvals,
    envelope,
    errors,
    gitrepo,
    keyring,
    keys,
    layout,
    sshkeygen,
    verify,
)
from reconciler import approval_gate, planning
from reconciler import approvals as rules
from schemas import signed, sshkey
from schemas.errors import UsageError


@dataclass(frozen=True)
class ApprovalRequest:
    """Which change, planned against which recorded state, approved under which base."""

    plan: planning.PlanRequest
    """``path``, ``rev``, ``root`` (required: digests are of the plan against the logs),
    ``state_repo``; its ``base`` is where the approver set in force is read."""


@dataclass(frozen=True)
class Approved:
    """An approval signed, verified as ``approvals`` lists it, and pushed."""

    approval: approvals.Approval
    name: str
    """The policy's name for the key."""


def approve(request: ApprovalRequest, key: Path, now: datetime) -> Approved:
    """Sign an approval of ``request``'s change with ``key``, check that it counts, and
    append it to the approvals branch."""
    public = _public_key(key)
    with _state(request) as (mirror, snapshot):
        context = _context(request, mirror, snapshot, now)
        name = _listed(context.approvers.names, public, "an approver")
        draft = _draft(context.target, name, public.fingerprint, now)
        armor = sshkeygen.sign(draft.payload(), key=key, namespace=approvals.NAMESPACE)
        data = approvals.stored(draft, armor)
        path = approvals.path_of(context.target.commit, data)
        verdict = approvals.verify(path, data, approvers=context.approvers, target=context.target)
        if not verdict.counted:  # ssh-keygen signed with another key than the one named
            raise UsageError(f"the signed approval does not verify: {verdict.detail}")
        who = gitrepo.Identity(name, f"{name}@gitplane.invalid")
        index = approvals.tree_path_of(draft.tree, data)  # a squash merge finds it there
        approvallog.append(mirror, path, data, who=who, also=[index])
    return Approved(draft, name)


@dataclass(frozen=True)
class Attested:
    """A forge attestation signed by a bot key of the policy, verified, and pushed."""

    attestation: approvals.Attestation
    name: str
    """The policy's name for the bot's key."""


def attest(
    request: ApprovalRequest, key: Path, pr: int, logins: list[str], now: datetime
) -> Attested:
    """Sign, with the forge attestor ``key``, that the forge reports approvals by ``logins``
    on pull request ``pr`` at ``request``'s commit; check that it verifies; append it."""
    public = _public_key(key)
    with _state(request) as (mirror, snapshot):
        context = _context(request, mirror, snapshot, now)
        name = _listed(context.approvers.bots, public, "a forge attestor")
        target = context.target
        try:
            draft = approvals.Attestation(
                repository=target.repository,
                commit=target.commit,
                tree=target.trees[target.commit],
                plans=dict(target.plans),
                pr=pr,
                approved_by=sorted(set(logins)),
                attestor=name,
                key=public.fingerprint,
                time=_stamp(now),
            )
        except ValidationError as error:
            raise UsageError(f"cannot attest: {error.errors()[0]['msg']}") from None
        armor = sshkeygen.sign(draft.payload(), key=key, namespace=approvals.ATTESTATION_NAMESPACE)
        data = approvals.stored(draft, armor)
        path = approvals.path_of(target.commit, data)
        verdict = approvals.verify(path, data, approvers=context.approvers, target=target)
        if not verdict.counted:
            raise UsageError(f"the signed attestation does not verify: {verdict.detail}")
        approvallog.append(
            mirror, path, data, who=gitrepo.Identity(name, f"{name}@gitplane.invalid")
        )
    return Attested(draft, name)


def _listed(names: Mapping[str, str], public: sshkey.SshPublicKey, what: str) -> str:
    """The policy's name for ``public``, or a usage error before anything is signed."""
    name = names.get(public.fingerprint)
    if name is None:
        raise UsageError(
            f"{public.fingerprint} is not {what} in the policy in force at the base: "
            "nothing was signed"
        )
    return name


def _stamp(now: datetime) -> str:
    return now.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def listing(request: ApprovalRequest, now: datetime) -> approval_gate.Listing:
    """Every approval record of ``request``'s change, each verified."""
    with _state(request) as (mirror, snapshot):
        context = _context(request, mirror, snapshot, now)
        return approval_gate.listed(context, mirror, snapshot)


def _draft(
    target: approvals.Target, name: str, fingerprint: str, now: datetime
) -> approvals.Approval:
    return approvals.Approval(
        repository=target.repository,
        commit=target.commit,
        tree=target.trees[target.commit],
        plans=dict(target.plans),
        approver=name,
        key=fingerprint,
        time=_stamp(now),
    )


@contextlib.contextmanager
def _state(request: ApprovalRequest) -> Iterator[tuple[gitrepo.Mirror, gitrepo.Snapshot]]:
    """A scratch mirror of the state repository's root and approvals branches, fetched once."""
    repo, _ = planning.spec_repo(request.plan.path)
    url = request.plan.state_repo or repo.logs_url()
    with tempfile.TemporaryDirectory(prefix="gitplane-approve-") as scratch:
        mirror = gitrepo.Mirror.open(Path(scratch), url)
        try:
            snapshot = mirror.fetch([layout.ROOT_REF, layout.APPROVALS_REF])
        except gitrepo.GitError as error:
            raise UsageError(f"cannot read the state repository {url}: {error}") from None
        yield mirror, snapshot


def _context(
    request: ApprovalRequest, mirror: gitrepo.Mirror, snapshot: gitrepo.Snapshot, now: datetime
) -> approval_gate.Context:
    plan = request.plan
    repo, prefix = planning.spec_repo(plan.path)
    commit = _commit(repo, plan.rev)
    want = planning.desired_of(repo, commit, prefix, str(plan.path))
    change = approval_gate.Change(repo, prefix, want, planning.recorded_of(plan, repo, want, now))
    into = _commit(repo, plan.base) if plan.base is not None else None
    base = approval_gate.base_of(repo, commit, into)
    return approval_gate.context_of(change, base, mirror, snapshot, now)


def _commit(repo: gitrepo.GitRepo, rev: str) -> str:
    try:
        return repo.resolve(rev)
    except gitrepo.GitError as error:
        raise UsageError(f"cannot read {rev}: {error}") from None


def _public_key(key: Path) -> sshkey.SshPublicKey:
    public = key if key.suffix == ".pub" else Path(f"{key}.pub")
    try:
        return sshkey.parse(public.read_text(encoding="utf-8"))
    except OSError as error:
        raise UsageError(f"cannot read the public key {public}: {error.strerror}") from None
    except sshkey.SshKeyError as error:
        raise UsageError(f"{public}: {error}") from None


@dataclass(frozen=True)
class Pinned:
    """What ``gitplane keys approvers`` signed and published."""

    version: int
    commit: str
    rule: rules.Rule


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
    rule = rules.Rule.of(want.documents)
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
