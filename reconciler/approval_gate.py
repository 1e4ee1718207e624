"""The signed-approval gate's inputs: which records a commit has, and what they come to.

I/O around :mod:`ledger.approvals` (records) and :mod:`reconciler.approvals` (plan
digests and the rule in force), shared by the reconciler (:func:`signed`, each cycle) and
``gitplane approve``/``approvals`` (:mod:`reconciler.approving`). Reads the spec
repository and the state repository's root and approvals branches; writes nothing.
"""

from __future__ import annotations

import hashlib
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
    target = context.target
    tip = snapshot.get(layout.APPROVALS_REF)
    tree = approvallog.tree_dir(target.trees[target.commit])
    files = approvallog.read(mirror, tip, [*target.trees, tree])
    tally = approvals.tally(_distinct(files), approvers=context.approvers, target=target)
    return Listing(context, tally)


def _distinct(files: Mapping[str, bytes]) -> dict[str, bytes]:
    """``files`` without second copies of the same bytes (a record and its tree index);
    the copy under a commit's directory is kept."""
    kept: dict[bytes, str] = {}
    for path in sorted(files, key=lambda p: (p.startswith("approvals/trees/"), p)):
        kept.setdefault(hashlib.sha256(files[path]).digest(), path)
    return {path: files[path] for path in kept.values()}


@dataclass(frozen=True)
class Change:
    """A commit of the protected branch, as the reconciler holds it."""

    specs: gitrepo.GitRepo
    prefix: str
    want: Desired
    recorded: Mapping[str, RecordedPlane]


@dataclass(frozen=True)
class Gated:
    """What the reconciler plans from, and the approval rule in force after it."""

    want: Desired
    rule: rules.Rule
    refused: str = ""
    """Why nothing of the commit may be reconciled: it changes the approval rule without
    the approvals the rule in force asks for."""
    verdicts: tuple[approvals.Verdict, ...] = ()
    """Every signed approval record of the commit, verified under the rule in force."""


def signed(
    change: Change,
    state: gitrepo.Mirror,
    refs: gitrepo.Snapshot,
    now: datetime,
    trusted: rules.Rule | None,
) -> Gated:
    """``change.want`` with what its signed approval records come to, counted under the
    ``trusted`` rule: the one in force, anchored by root (ADR 0018; None: no anchor yet). A
    commit that changes the rule must itself be approved under the trusted one, or it is
    refused whole; without a trusted rule, a commit that asks for signed approvals is
    refused whole (never trusted on first use)."""
    base = base_of(change.specs, change.want.commit, None)
    current = rules.Rule.of(change.want.documents)
    if trusted is None:
        return Gated(change.want, current, NO_ANCHOR if current.minimum else "")
    if current.minimum == 0 and trusted.minimum == 0:
        return Gated(change.want, current)
    try:
        context = context_of(change, base, state, refs, now, approvers=trusted.in_force())
        tally = listed(context, state, refs).tally
    except (gitrepo.GitError, approvallog.ApprovalLogError):
        return Gated(change.want, trusted)  # unreadable records count for nothing
    count = tally.count
    if current.digest != trusted.digest and trusted.minimum and count < trusted.minimum:
        why = _unapproved_rule(change.want.commit, trusted, count)
        return Gated(change.want, trusted, why, tally.verdicts)
    changed = next((v.detail for v in tally.verdicts if v.reason == "plan-changed"), "")
    signed = Signed(count, changed, tally.attestors if count > len(tally.approvers) else ())
    after = trusted if current.digest == trusted.digest else trusted.succeeded_by(current)
    return Gated(replace(change.want, signed=signed), after, "", tally.verdicts)


NO_ANCHOR = (
    "signed approvals are asked for, but no approvers anchor signed by root is in force: "
    "nothing is reconciled until the root key holders pin one (`gitplane keys approvers`, "
    "docs/security.md)"
)


def audited(
    specs: gitrepo.GitRepo,
    prefix: str,
    commit: str,
    mirror: gitrepo.Mirror,
    snapshot: gitrepo.Snapshot,
) -> tuple[approvals.Verdict, ...]:
    """Every record of ``commit`` as ``audit`` shows it: its signature, its signer in the
    Policies at the commit's first parent, its repository, commit and tree. The plan
    digests are shown as signed, not computed again: the recorded state they were planned
    against is gone (the reconciler compared them when it issued)."""
    base = base_of(specs, commit, None)
    before = _documents(specs, base, prefix) if base else []
    try:
        target = approvals.Target(
            approvallog.repository_id(mirror, snapshot), commit, trees_of(specs, commit, base), {}
        )
        context = Context(target, rules.approvers_in_force(before), {})
        return listed(context, mirror, snapshot).tally.verdicts
    except (gitrepo.GitError, approvallog.ApprovalLogError):
        return ()


def _unapproved_rule(commit: str, trusted: rules.Rule, count: int) -> str:
    return (
        f"{commit[:12]} changes who approves or what needs approval, and has {count} of the "
        f"{trusted.minimum} signed approval(s) the rule in force asks for: nothing of it is "
        "reconciled"
    )


def context_of(
    change: Change,
    base: str | None,
    state: gitrepo.Mirror,
    refs: gitrepo.Snapshot,
    now: datetime,
    *,
    approvers: approvals.Approvers | None = None,
) -> Context:
    """The target, and ``approvers`` or else those in force at ``base`` (none without a
    base). The reconciler gives the rule in force, anchored by root (ADR 0018); ``approve``
    and ``approvals`` read the policy at the base."""
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
    in_force = approvers if approvers is not None else rules.approvers_in_force(before)
    return Context(target, in_force, needs)


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
    """Tree of ``commit`` and of every commit it brings over ``base`` (a merge commit: its
    branch), by commit: the commits whose approvals count for it if the plans they approved
    are the ones now. Never the first parent's own: that is the state before the change."""
    brought = [commit, f"^{base}"] if base else [commit]
    listed = repo.run("rev-list", f"--max-count={MAX_COMMITS}", *brought).decode().split()
    commits = list(dict.fromkeys([commit, *listed]))
    out = repo.run("rev-parse", *(f"{c}^{{tree}}" for c in commits)).decode().split()
    return dict(zip(commits, out, strict=True))


def _documents(specs: gitrepo.GitRepo, commit: str, prefix: str) -> Sequence[Document]:
    """The documents of ``commit``; none when it does not validate (no approvers then)."""
    state = desired.load_commit(specs, commit, prefix=prefix)
    return [doc for _, doc in state.documents] if state.valid else []
