"""``gitplane audit``."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import click

from cli import options
from reconciler.audit import read as audit_read
from reconciler.audit import view as audit_view


@click.command("audit")
@click.argument("resource", metavar="KIND/NAME")
@options.spec_path
@options.root(required=True, what="every bundle and report is verified from it")
@options.plane_filter("Show only this plane's commands and status.")
@click.option("--since", help="Show only events from this date on (2026-11-24, or a UTC time).")
@click.option(
    "--rev",
    default="main",
    show_default=True,
    help="Read the history of this commit's first-parent line (the protected spec branch).",
)
@options.deprecated("--branch", "--rev", "old_branch")
@options.state_repo
@options.output("text", "json")
def audit(
    resource: str,
    path: Path,
    root: Path,
    only: str | None,
    since: str | None,
    rev: str,
    old_branch: str | None,
    state_repo: str | None,
    output: str,
) -> None:
    """The whole life of KIND/NAME, from git alone, every signature verified.

    Each spec commit that changed it (author, committer, the merge that brought it to
    the branch, its signed approvals with signer, key fingerprint and verified or not, and
    its Approved-by: trailers, shown as unverified), each command issued for it (plane,
    sequence, signing key), and each change of its phase or digest each plane reported
    (when, under which agent key). Unverified documents and gaps are shown, marked !.
    """
    branch = options.renamed("--rev", rev, old_branch)
    request = audit_read.AuditRequest(path, resource, root, branch, state_repo, only, _since(since))
    report = audit_read.load_audit(request)
    if output == "json":
        click.echo(json.dumps(audit_view.as_json(report), indent=2))
    else:
        click.echo(audit_view.text(report), nl=False)


def _since(value: str | None) -> datetime | None:
    if value is None:
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise click.BadParameter(f"{value!r} is not a date or time", param_hint="--since") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)
