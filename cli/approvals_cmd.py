"""``gitplane approvals``."""

from __future__ import annotations

import json
from pathlib import Path

import click

from cli import clock, options
from ledger import approvals as records
from reconciler import approval_gate, approving, planning
from schemas.inert import inert


@click.command("approvals")
@options.spec_path
@click.option(
    "--rev", default="HEAD", show_default=True, help="The commit whose approvals to list."
)
@click.option(
    "--base",
    help="The protected branch the change merges into: approvers are read at the merge base "
    "(default: the commit's first parent).",
)
@options.output("text", "json")
@options.root(required=True, what="plan against the recorded state in the logs (verified)")
@options.state_repo
def approvals(
    path: Path, rev: str, base: str | None, output: str, root: Path, state_repo: str | None
) -> None:
    """List the signed approvals of a commit of PATH, each verified.

    Each record shows its signer's name in the policy, key fingerprint, and either
    `verified` or why it does not count (unknown-key, wrong-commit, plan-changed, …).
    """
    request = approving.ApprovalRequest(planning.PlanRequest(path, rev, base, root, state_repo))
    found = approving.listing(request, clock.now())
    if output == "json":
        click.echo(json.dumps(_json(found), indent=2))
        return
    target = found.context.target
    click.echo(f"approvals of {target.commit[:12]}")
    for plane, need in sorted(found.context.needs.items()):
        click.echo(f"  {plane}: needs {need}, has {found.tally.count}")
    for verdict in found.tally.verdicts:
        click.echo("  " + _line(verdict))
    if not found.tally.verdicts:
        click.echo("  (no approval records)")


def _line(verdict: records.Verdict) -> str:
    who = inert(verdict.name or (verdict.approval.approver if verdict.approval else "?"))
    state = "verified" if verdict.counted else f"{verdict.reason}: {inert(verdict.detail)}"
    if verdict.attestation is not None:
        who = inert(verdict.name or verdict.attestation.attestor)
        state = f"{state}: {inert(verdict.shown)}"
    return f"{who:<16} {verdict.signer or '-':<51} {state}"


def _json(found: approval_gate.Listing) -> dict[str, object]:
    target = found.context.target
    return {
        "commit": target.commit,
        "repository": target.repository,
        "plans": dict(target.plans),
        "needs": found.context.needs,
        "approvers": found.tally.count,
        "signed": len(found.tally.approvers),
        "attested": sorted(found.tally.vouched),
        "records": [
            {
                "path": v.path,
                "name": v.name,
                "approver": v.approval.approver if v.approval else None,
                "key": v.signer or None,
                "verified": v.counted,
                "reason": v.reason or None,
                "detail": v.detail or None,
                "time": v.approval.time if v.approval else None,
                **_attestation(v),
            }
            for v in found.tally.verdicts
        ],
    }


def _attestation(verdict: records.Verdict) -> dict[str, object]:
    """A forge attestation's fields, and the weaker wording it is always shown with."""
    record = verdict.attestation
    if record is None:
        return {}
    return {
        "attestation": {"pr": record.pr, "approvedBy": list(record.approved_by)},
        "approver": None,
        "time": record.time,
        "weaker": records.attested_by(verdict.name or record.attestor),
    }
