"""The approval rule in force, anchored by root: read it, and pin a new one.

The reconciler counts signed approvals only under a rule it trusts (ADR 0018). The first
is the root-signed anchor on the root branch (:mod:`ledger.anchor`); from there, the rule
moves only by commits approved under the rule before them (:mod:`reconciler.approval_gate`)
or by a newer anchor. The reconciler keeps both in its work directory: the rule in force
(``approval-rule.json``) and the anchor version it was taken from (``approvers-anchor``).
A rule file without an anchor version (one trusted on first use by an older build) is not
trusted.

``gitplane keys approvers`` (:func:`reconciler.approving.pin`) signs the rule of one spec
commit with the root keys and publishes it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ledger import anchor, approvallog, envelope, errors, gitrepo, layout, verify
from reconciler import approvals
from schemas import files

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
    return Trust(kept.succeeded_by(rule) if kept else rule, adopt=found.version)


def keep(work_dir: Path, rule: approvals.Rule, trust: Trust) -> None:
    """Record ``rule`` as the one in force (and the anchor taken this cycle, if one was)."""
    if rule != trust.rule or trust.adopt:
        files.atomic_write(work_dir / RULE, rule.dumps())
    if trust.adopt:
        files.atomic_write(work_dir / VERSION, f"{trust.adopt}\n".encode())
