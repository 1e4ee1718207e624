"""``gitplane status``."""

from __future__ import annotations

import json
from pathlib import Path

import click

from cli import clock, options
from reconciler import planning, status_view
from schemas.errors import ReportedError
from schemas.inert import inert


@click.command("status")
@options.spec_path
@options.root(required=True, what="every log and report is verified from it")
@options.plane_filter("Show only this plane.")
@click.option("--rev", default="HEAD", show_default=True, help="The desired commit.")
@options.state_repo
@options.output("text", "json")
@click.option(
    "--exit-code",
    is_flag=True,
    help="Exit 1 unless every plane shown is healthy: no flag (refused, attacked, stale, "
    "silent), every resource Synced and neither failed nor still progressing.",
)
def status(
    path: Path,
    root: Path,
    only: str | None,
    rev: str,
    state_repo: str | None,
    output: str,
    exit_code: bool,
) -> None:
    """What every data plane runs, against what PATH's commit wants.

    Per plane: when it last reported (signed) and how far it applied; flags for
    planes that stopped reporting, report attacks or run ahead of what was
    issued. Per resource: Synced (the plane applied what git wants) / Issued (sent, not
    applied yet) / OutOfSync / Waiting / Blocked, the phase the plane reports, and its
    version, endpoint and replicas. When the specs at REV do
    not validate, their problems are listed (exit 1) and each plane still shows what
    it last recorded. A plane shown whose command log or status was refused, or
    that reports an attack, makes the exit 1 too (its status is still printed).
    With --exit-code, exit 1 unless every plane shown is healthy (for scripts and
    CI gates, as `argocd app wait --health`). A plane whose approvals are counted from
    Approved-by: trailers (the weaker mode: unverified) is named, with its Policies.
    """
    request = planning.PlanRequest(path, rev, None, root, state_repo)
    result = planning.make_status(request, clock.now())
    planes = result.planes
    if only is not None:
        planes = [p for p in planes if p.name == only]
        if not planes:
            raise click.UsageError(f"no DataPlane named {only!r} at {rev}")
    for problem in result.problems:
        click.echo(str(problem), err=True)
    for warning in result.warnings:
        click.echo(f"warning: {warning}", err=True)
    if result.problems:
        count = len(result.problems)
        click.echo(
            f"error: {count} problem(s) in the specs at {rev}: the reconciler issues nothing "
            "from it; each plane shows what it last recorded, its sync Unknown",
            err=True,
        )
    weaker = {
        p.name: mode
        for p in planes
        if (mode := result.approvals.get(p.name)) and mode.mode == "trailers"
    }
    if output == "json":
        body = status_view.as_json(planes)
        body["approvals"] = {name: mode.as_dict() for name, mode in result.approvals.items()}
        body["specProblems"] = [problem.as_dict() for problem in result.problems]
        body["specWarnings"] = [warning.as_dict() for warning in result.warnings]
        click.echo(json.dumps(body, indent=2))
    else:
        click.echo(status_view.text(planes), nl=False)
        for name, mode in weaker.items():
            click.echo(f"! {name}: {mode.describe()}")
    if result.problems:
        raise ReportedError
    halted = [p for p in planes if p.halted]
    for plane in halted:  # signed data refused, or an attack reported: exit 1 (docs/cli.md)
        click.echo(f"error: {plane.name}: {inert(plane.halted or '')}", err=True)
    if halted:
        raise ReportedError
    if exit_code and (why := status_view.unhealthy(planes)):
        shown = "; ".join(why[:5]) + (f"; and {len(why) - 5} more" if len(why) > 5 else "")
        click.echo(f"not healthy: {shown}", err=True)
        raise ReportedError
