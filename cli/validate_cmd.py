"""``gitplane validate``."""

from __future__ import annotations

import json
from pathlib import Path

import click

from cli import options
from reconciler import desired
from reconciler import validate as validation
from schemas.errors import ReportedError


@click.command()
@options.spec_path
@click.option("--rev", help="Validate this commit (branch, tag or id). Default: HEAD.")
@click.option("--worktree", is_flag=True, help="Validate the files on disk (for pre-commit).")
@options.output("text", "json")
def validate(path: Path, rev: str | None, worktree: bool, output: str) -> None:
    """Check every spec under PATH: syntax, fields, and references between specs.

    Reads the tree at a commit from git's object store (default HEAD), or the
    working tree with --worktree. Exits 0 when valid, 1 when not (or when PATH
    holds no spec at all: a CI job pointed at the wrong path must not pass), 2 on
    a usage error. Every problem is reported, sorted, as FILE:LINE:COLUMN: FIELD:
    MESSAGE.
    """
    if rev is not None and worktree:
        raise click.UsageError("use --rev or --worktree, not both")
    if rev is not None and not rev.strip():
        raise click.BadParameter(
            "an empty revision: give a branch, tag or commit id", param_hint="--rev"
        )
    result = validation.validate(path, rev=rev, worktree=worktree)
    state = result.state
    empty = state.valid and not state.documents
    for note in result.notes:
        click.echo(f"note: {note}", err=True)
    if output == "json":
        errors = [p.as_dict() for p in state.problems]
        body = {
            "valid": state.valid and not empty,
            "commit": state.commit,
            "specs": len(state.documents),
            "errors": errors,
            "warnings": [w.as_dict() for w in state.warnings],
            **({"reason": _EMPTY} if empty else {}),
        }
        click.echo(json.dumps(body, indent=2))
    else:
        for warning in state.warnings:
            click.echo(f"warning: {warning}", err=True)
        _print_text(state)
    if not state.valid or empty:
        raise ReportedError


_EMPTY = "no specs found (every *.yaml or *.yml file outside dot-paths and MLflow Projects is one)"


def _print_text(state: desired.DesiredState) -> None:
    at = f" at {state.commit[:12]}" if state.commit else " (working tree)"
    for problem in state.problems:
        click.echo(str(problem))
    if state.valid and not state.documents:
        click.secho(f"✗ {_EMPTY} under {state.root}{at}", fg="red")
        return
    if state.valid:
        click.secho(f"✓ {len(state.documents)} specs valid in {state.root}{at}", fg="green")
        return
    files = len({p.file for p in state.problems})
    noun = "problem" if len(state.problems) == 1 else "problems"
    click.secho(
        f"✗ {len(state.problems)} {noun} in {files} file(s) under {state.root}{at}",
        fg="red",
        err=False,
    )
