"""``gitplane approve`` and ``gitplane approvals``: draft, sign, append and list approvals.

The I/O driver around :mod:`ledger.approvals` (records) and :mod:`reconciler.approvals`
(plan digests): it loads the commit, plans it against the verified recorded state as
``plan --root`` does, and reads or appends the approvals branch of the state repository.
"""

from __future__ import annotations

import contextlib
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from ledger import approvallog, approvals, gitrepo, layout, sshkeygen
from reconciler import approvals as rules
from reconciler import planning
from schemas import sshkey
from schemas.dataplane import DataPlane
from schemas.errors import UsageError


@dataclass(frozen=True)
class ApprovalRequest:
    """Which change, planned against which recorded state, approved under which base."""

    plan: planning.PlanRequest
    """``path``, ``rev``, ``root`` (required: digests are of the plan against the logs),
    ``state_repo``; its ``base`` is where the approver set in force is read."""


@dataclass(frozen=True)
class Context:
    """The change an approval names, and the approver set it is counted under."""

    target: approvals.Target
    approvers: approvals.Approvers
    needs: dict[str, int]
    """Signed approvals each protected plane with actions needs (the stricter of the
    policies at the change and at its base)."""


@dataclass(frozen=True)
class Listing:
    """``gitplane approvals``: every record of a change, and what counted."""

    context: Context
    tally: approvals.Tally


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
        name = context.approvers.names.get(public.fingerprint)
        if name is None:
            raise UsageError(
                f"{public.fingerprint} is not an approver in the policy in force at the base: "
                "nothing was signed"
            )
        draft = _draft(context.target, name, public.fingerprint, now)
        armor = sshkeygen.sign(draft.payload(), key=key, namespace=approvals.NAMESPACE)
        data = approvals.stored(draft, armor)
        path = approvals.path_of(context.target.commit, data)
        verdict = approvals.verify(path, data, approvers=context.approvers, target=context.target)
        if not verdict.counted:  # ssh-keygen signed with another key than the one named
            raise UsageError(f"the signed approval does not verify: {verdict.detail}")
        who = gitrepo.Identity(name, f"{name}@gitplane.invalid")
        approvallog.append(mirror, path, data, who=who)
    return Approved(draft, name)


def listing(request: ApprovalRequest, now: datetime) -> Listing:
    """Every approval record of ``request``'s change, each verified."""
    with _state(request) as (mirror, snapshot):
        context = _context(request, mirror, snapshot, now)
        files = approvallog.read(
            mirror, snapshot.get(layout.APPROVALS_REF), list(context.target.trees)
        )
    return Listing(
        context, approvals.tally(files, approvers=context.approvers, target=context.target)
    )


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
        time=now.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
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
) -> Context:
    plan = request.plan
    repo, prefix = planning.spec_repo(plan.path)
    commit = _commit(repo, plan.rev)
    want = planning.desired_of(repo, commit, prefix, str(plan.path))
    base = _base(repo, commit, plan.base)
    before = planning.desired_of(repo, base, prefix, str(plan.path)).documents if base else []
    recorded = planning.recorded_of(plan, repo, want, now)
    target = approvals.Target(
        repository=approvallog.repository_id(mirror, snapshot),
        commit=commit,
        trees=_trees(repo, commit),
        plans=rules.plan_digests(want, recorded, now),
    )
    labels = {d.name: dict(d.metadata.labels) for d in want.documents if isinstance(d, DataPlane)}
    needs = {
        plane: max(rules.minimum(docs, labels[plane]) for docs in (want.documents, before))
        for plane in target.plans
    }
    return Context(target, rules.approvers_in_force(before or want.documents), needs)


def _commit(repo: gitrepo.GitRepo, rev: str) -> str:
    try:
        return repo.resolve(rev)
    except gitrepo.GitError as error:
        raise UsageError(f"cannot read {rev}: {error}") from None


def _base(repo: gitrepo.GitRepo, commit: str, base: str | None) -> str | None:
    """Where the approver set in force is read: the merge base with ``base``, else the
    commit's first parent (none for a root commit: its own policies, as an anchor would)."""
    if base is not None:
        found = repo.execute("merge-base", "--end-of-options", _commit(repo, base), commit)
        if found.returncode != 0:
            raise UsageError(f"{commit[:12]} has no merge base with {base}")
        return found.stdout.decode().strip()
    parents = repo.run("rev-list", "--parents", "-n", "1", commit).decode().split()[1:]
    return parents[0] if parents else None


def _trees(repo: gitrepo.GitRepo, commit: str) -> dict[str, str]:
    """Tree of ``commit`` and of each of its parents, by commit."""
    commits = repo.run("rev-list", "--parents", "-n", "1", commit).decode().split()
    return {c: repo.run("rev-parse", f"{c}^{{tree}}").decode().strip() for c in commits}


def _public_key(key: Path) -> sshkey.SshPublicKey:
    public = key if key.suffix == ".pub" else Path(f"{key}.pub")
    try:
        return sshkey.parse(public.read_text(encoding="utf-8"))
    except OSError as error:
        raise UsageError(f"cannot read the public key {public}: {error.strerror}") from None
    except sshkey.SshKeyError as error:
        raise UsageError(f"{public}: {error}") from None
