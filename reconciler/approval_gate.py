"""The signed-approval gate's inputs: which records a commit has, and what they come to.

I/O around :mod:`ledger.approvals` (records) and :mod:`reconciler.approvals` (plan
digests and the rule in force), shared by the reconciler (:func:`signed`, each cycle) and
``gitplane approve``/``approvals`` (:mod:`reconciler.approving`). Reads the spec
repository and the state repository's root and approvals branches; writes nothing.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime

from ledger import approvallog, approvals, gitrepo, layout
from reconciler import approvals as rules
from reconciler import desired
from reconciler.planned import Desired, Signed
from reconciler.recorded import RecordedPlane
from schemas.dataplane import DataPlane
from schemas.document import Document
from schemas.errors import UsageError


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


def listed(context: Context, mirror: gitrepo.Mirror, snapshot: gitrepo.Snapshot) -> Listing:
    """Every record of the context's change, each verified."""
    tip = snapshot.get(layout.APPROVALS_REF)
    files = approvallog.read(mirror, tip, list(context.target.trees))
    tally = approvals.tally(files, approvers=context.approvers, target=context.target)
    return Listing(context, tally)


@dataclass(frozen=True)
class Change:
    """A commit of the protected branch, as the reconciler holds it."""

    specs: gitrepo.GitRepo
    prefix: str
    want: Desired
    recorded: Mapping[str, RecordedPlane]


def signed(change: Change, state: gitrepo.Mirror, refs: gitrepo.Snapshot, now: datetime) -> Desired:
    """``change.want`` with what its signed approval records come to (the reconciler's
    gate); unchanged when no Policy asks for signed approvals. Approvers are read at the
    commit's first parent: the policy in force before the change."""
    if not rules.signed_policies(change.want.documents):
        return change.want
    base = base_of(change.specs, change.want.commit, None)
    try:
        context = context_of(change, base, state, refs, now)
        tally = listed(context, state, refs).tally
    except (gitrepo.GitError, approvallog.ApprovalLogError):
        return change.want  # unreadable records count for nothing: the gate blocks
    changed = next((v.detail for v in tally.verdicts if v.reason == "plan-changed"), "")
    return replace(change.want, signed=Signed(len(tally.approvers), changed))


def context_of(
    change: Change,
    base: str | None,
    state: gitrepo.Mirror,
    refs: gitrepo.Snapshot,
    now: datetime,
) -> Context:
    """The target and the approvers in force at ``base`` (none without a base: the first
    approver set needs an anchor signed by root, ADR 0018, not built yet)."""
    want = change.want
    before = _documents(change.specs, base, change.prefix) if base else []
    target = approvals.Target(
        repository=approvallog.repository_id(state, refs),
        commit=want.commit,
        trees=trees_of(change.specs, want.commit, base),
        plans=rules.plan_digests(want, change.recorded, now),
    )
    labels = {d.name: dict(d.metadata.labels) for d in want.documents if isinstance(d, DataPlane)}
    needs = {
        plane: max(rules.minimum(docs, labels[plane]) for docs in (want.documents, before))
        for plane in target.plans
    }
    return Context(target, rules.approvers_in_force(before), needs)


def base_of(repo: gitrepo.GitRepo, commit: str, base: str | None) -> str | None:
    """Where the approver set in force is read: the merge base with the commit ``base``,
    else ``commit``'s first parent (none for a root commit)."""
    if base is not None:
        found = repo.execute("merge-base", base, commit)
        if found.returncode != 0:
            raise UsageError(f"{commit[:12]} has no merge base with {base[:12]}")
        return found.stdout.decode().strip()
    parents = repo.run("rev-list", "--parents", "-n", "1", commit).decode().split()[1:]
    return parents[0] if parents else None


MAX_COMMITS = 100
"""Commits of one change whose approvals are read (the newest): a longer pull request is
approved at one of its last commits."""


def trees_of(repo: gitrepo.GitRepo, commit: str, base: str | None) -> dict[str, str]:
    """Tree of ``commit``, of its parents and of every commit it brings over ``base``, by
    commit: an approval of any of them counts if the plans it approved are the ones now."""
    parents = repo.run("rev-list", "--parents", "-n", "1", commit).decode().split()
    brought = [commit, f"^{base}"] if base else [commit]
    listed = repo.run("rev-list", f"--max-count={MAX_COMMITS}", *brought).decode().split()
    commits = dict.fromkeys([*parents, *listed])
    out = repo.run("rev-parse", *(f"{c}^{{tree}}" for c in commits)).decode().split()
    return dict(zip(commits, out, strict=True))


def _documents(specs: gitrepo.GitRepo, commit: str, prefix: str) -> Sequence[Document]:
    """The documents of ``commit``; none when it does not validate (no approvers then)."""
    state = desired.load_commit(specs, commit, prefix=prefix)
    return [doc for _, doc in state.documents] if state.valid else []
