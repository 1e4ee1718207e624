"""``gitplane approve``."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from cli import clock, options
from ledger.approvals import attested_by
from reconciler import approving, planning

F = TypeVar("F", bound=Callable[..., Any])


def _change(whose: str) -> Callable[[F], F]:
    """The options naming the change, the signing key and the state repository."""

    def decorate(command: F) -> F:
        for option in reversed(
            [
                options.spec_path,
                click.option(
                    "--rev", default="HEAD", show_default=True, help="The commit to approve."
                ),
                click.option(
                    "--base",
                    help="The protected branch the change merges into: approvers are read at "
                    "the merge base (default: the commit's first parent).",
                ),
                click.option(
                    "--key",
                    required=True,
                    type=options.GivenPath(dir_okay=False, exists=True, path_type=Path),
                    help=f"{whose} SSH ed25519 key: the private key file, or the .pub file of "
                    "a key in ssh-agent.",
                ),
                options.root(
                    required=True, what="plan against the recorded state in the logs (verified)"
                ),
                options.state_repo,
            ]
        ):
            command = option(command)
        return command

    return decorate


@click.command("approve")
@_change("Your")
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


@click.command("attest")
@_change("The forge attestor's (bot)")
@click.option("--pr", type=click.IntRange(min=1), required=True, help="The pull request number.")
@click.option(
    "--approved-by",
    required=True,
    help="The forge logins the forge reports as approving at --rev, comma separated.",
)
def attest(
    path: Path,
    rev: str,
    base: str | None,
    key: Path,
    root: Path,
    state_repo: str | None,
    pr: int,
    approved_by: str,
) -> None:
    """Sign, as a forge bot, the approvals the forge reports on a pull request.

    The attestation says "the forge reports approvals by these logins on PR N at head
    --rev" and names the repository, the commit's tree and the plan digests, like an
    approval; it is signed with `ssh-keygen -Y sign -n gitplane-forge-attestation` by a
    key listed in the policy's `attestors`. It is weaker than approvers' own signatures and
    always shown so; it counts only as far as the policy's `attested` allows. Run by the
    CI job on pull request reviews (example-repo/.github/workflows/gitplane-attest.yml).
    """
    logins = [login.strip() for login in approved_by.split(",") if login.strip()]
    if not logins:
        raise click.BadParameter("name at least one login", param_hint="--approved-by")
    request = approving.ApprovalRequest(planning.PlanRequest(path, rev, base, root, state_repo))
    done = approving.attest(request, key, pr, logins, clock.now())
    record = done.attestation
    click.echo(
        f"attested {record.commit[:12]} (PR {record.pr}): approved by "
        f"{', '.join(record.approved_by)}, {attested_by(done.name)} ({record.key})"
    )
