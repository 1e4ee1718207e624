"""``gitplane approve``."""

from __future__ import annotations

from pathlib import Path

import click

from cli import clock, options
from reconciler import approving, planning


@click.command("approve")
@options.spec_path
@click.option("--rev", default="HEAD", show_default=True, help="The commit to approve.")
@click.option(
    "--base",
    help="The protected branch the change merges into: approvers are read at the merge base "
    "(default: the commit's first parent).",
)
@click.option(
    "--key",
    required=True,
    type=options.GivenPath(dir_okay=False, exists=True, path_type=Path),
    help="Your SSH ed25519 key: the private key file, or the .pub file of a key in ssh-agent.",
)
@options.root(required=True, what="plan against the recorded state in the logs (verified)")
@options.state_repo
def approve(
    path: Path, rev: str, base: str | None, key: Path, root: Path, state_repo: str | None
) -> None:
    """Sign an approval of a commit of PATH and push it to the approvals branch.

    The approval names the repository, the commit and its tree, and the plan digest of
    every protected plane the change touches (docs/adr/0019-plan-digest.md); it is signed
    with `ssh-keygen -Y sign -n gitplane-approval`. Your key must be an approver in the
    policy in force at the base.
    """
    request = approving.ApprovalRequest(planning.PlanRequest(path, rev, base, root, state_repo))
    done = approving.approve(request, key, clock.now())
    approval = done.approval
    planes = ", ".join(f"{p} {d[7:19]}" for p, d in sorted(approval.plans.items())) or "none"
    click.echo(f"approved {approval.commit[:12]} as {done.name} ({approval.key})")
    click.echo(f"  plans: {planes}")
