"""``gitplane plan``."""

from __future__ import annotations

import json
from pathlib import Path

import click

from cli import clock, options
from reconciler import planning, render
from schemas.errors import ChangesPendingError, ReportedError, UsageError
from schemas.inert import inert


@click.command("plan")
@options.spec_path
@click.option("--rev", default="HEAD", show_default=True, help="The commit to plan.")
@click.option("--base", help="Show only what changes relative to this commit's plan (a PR).")
@options.output("text", "markdown", "json")
@options.root(required=False, what="plan against the recorded state in the logs (verified)")
@options.state_repo
@click.option(
    "--detailed-exitcode",
    is_flag=True,
    help="Exit 0 with no changes, 2 with changes, 1 on error (as terraform plan).",
)
def plan(
    path: Path,
    rev: str,
    base: str | None,
    output: str,
    root: Path | None,
    state_repo: str | None,
    detailed_exitcode: bool,
) -> None:
    """Show what each data plane will be told to do for a commit of PATH.

    The plan is grouped by plane: + create/build, ~ update, - delete,
    ! blocked (a person must act), … waiting for a dependency. With --root,
    planes are planned against what their verified logs and status record;
    without it, as if every plane were empty. A plane whose approvals are counted from
    Approved-by: trailers (the weaker mode: unverified) is named, with its Policies.
    """
    if state_repo is not None and root is None:
        if not options.from_environment(click.get_current_context(), "state_repo"):
            raise click.UsageError("--state-repo applies only with --root (the logs are read)")
        state_repo = None  # GITPLANE_STATE_REPO, set for status and audit, has nothing to do
    request = planning.PlanRequest(path, rev, base, root, state_repo)
    try:
        result = planning.make_plan(request, clock.now())
    except planning.InvalidSpecsError as exc:
        for problem in exc.problems:
            click.echo(str(problem), err=True)
        raise
    except UsageError as exc:
        if not detailed_exitcode:
            raise
        click.echo(f"error: {inert(str(exc))}", err=True)  # 2 means "changes" here: errors are 1
        raise ReportedError from None
    title = f"Gitplane plan for {path}" + (f" (changes since {base})" if base else "")
    if output == "json":
        click.echo(json.dumps(render.as_json(result), indent=2))
    elif output == "markdown":
        click.echo(render.markdown(result, title=title), nl=False)
    else:
        click.echo(render.text(result, title=title))
    if detailed_exitcode and result.has_changes:
        raise ChangesPendingError
