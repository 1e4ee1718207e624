"""``gitplane status``."""

from __future__ import annotations

import json
from pathlib import Path

import click

from cli import clock, options
from reconciler import planning, status_view


@click.command("status")
@options.spec_path
@options.root(required=True, what="every log and report is verified from it")
@options.plane_filter("Show only this plane.")
@click.option("--rev", default="HEAD", show_default=True, help="The desired commit.")
@options.state_repo
@options.output("text", "json")
def status(
    path: Path, root: Path, only: str | None, rev: str, state_repo: str | None, output: str
) -> None:
    """What every data plane runs, against what PATH's commit wants.

    Per plane: when it last reported (signed) and how far it applied; flags for
    planes that stopped reporting, report attacks or run ahead of what was
    issued. Per resource: Synced / OutOfSync / Waiting / Blocked, the phase the
    plane reports, and its version, endpoint and replicas.
    """
    request = planning.PlanRequest(path, rev, None, root, state_repo)
    planes = planning.make_status(request, clock.now())
    if only is not None:
        planes = [p for p in planes if p.name == only]
        if not planes:
            raise click.UsageError(f"no DataPlane named {only!r} at {rev}")
    if output == "json":
        click.echo(json.dumps(status_view.as_json(planes), indent=2))
    else:
        click.echo(status_view.text(planes), nl=False)
