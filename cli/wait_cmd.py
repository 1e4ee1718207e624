"""``gitplane wait``."""

from __future__ import annotations

from pathlib import Path

import click

from cli import clock, options
from reconciler import planning
from reconciler import wait as waiting
from reconciler.audit import read as audit_read
from schemas.errors import GitplaneError


@click.command("wait")
@click.argument("resource", metavar="KIND/NAME")
@options.spec_path
@options.root(required=True, what="every log and report is verified from it")
@options.plane_filter("Wait on this plane only (default: every plane the resource is on).")
@click.option(
    "--for",
    "condition",
    type=click.Choice(["synced", "ready"]),
    default="ready",
    show_default=True,
    help="synced: the plane applied what git wants; ready: that, and its phase is Ready.",
)
@click.option(
    "--timeout",
    type=options.Duration(zero_ok=True),
    default="5m",
    show_default=True,
    help="Give up after this long (0s: look once).",
)
@click.option(
    "--interval",
    type=options.Duration(zero_ok=False),
    default="2s",
    show_default=True,
    help="How often the logs are fetched again.",
)
@click.option("--rev", default="HEAD", show_default=True, help="The desired commit.")
@options.state_repo
def wait(
    resource: str,
    path: Path,
    root: Path,
    only: str | None,
    condition: waiting.Condition,
    timeout: options.Span,
    interval: options.Span,
    rev: str,
    state_repo: str | None,
) -> None:
    """Wait until KIND/NAME is synced (or ready) on every plane it is on.

    Reads what `gitplane status` reads, again every --interval, and prints a line when
    the resource's state changes. Exit 0 once the condition holds; 1 at once when it
    cannot hold until a person acts (Blocked; Failed or Stalled on its plane; a refused
    log or status, an attack report; the resource on no plane), or at --timeout, with
    the reason; 2 for a KIND/NAME or plane no spec at REV defines. As `argocd app wait`.
    """
    kind, name = audit_read.parse_resource(resource)
    target = waiting.Target(kind, name, condition, only)
    request = planning.PlanRequest(path, rev, None, root, state_repo)
    try:
        verdict = waiting.wait(
            target,
            request,
            timeout=timeout.seconds,
            interval=interval.seconds,
            clock=waiting.Clock(now=clock.now, sleep=clock.sleep),
            say=click.echo,
        )
    except planning.InvalidSpecsError as exc:
        for problem in exc.problems:
            click.echo(str(problem), err=True)
        raise
    if verdict.outcome == "failed":
        raise GitplaneError(f"{target.ref} cannot become {condition}: {verdict.line}")
    if verdict.outcome == "pending":
        raise GitplaneError(f"timed out after {timeout.text}: {verdict.line}")
    click.echo(verdict.line)
