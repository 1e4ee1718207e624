"""``gitplane schema export``: the JSON Schema files editors use."""

from __future__ import annotations

from pathlib import Path

import click

from cli import options
from schemas import jsonschema_export, reference
from schemas.errors import ReportedError


@click.group()
def schema() -> None:
    """JSON Schema of every spec kind, for editors and other tools."""


@schema.command()
@click.option(
    "--dir",
    "directory",
    type=click.Path(file_okay=False, path_type=Path),
    default=jsonschema_export.DEFAULT_DIR,
    show_default=True,
    help="Where to write one <kind>.json per kind.",
)
@options.check("any file")
def export(directory: Path, check: bool) -> None:
    """Write the JSON Schema (draft 2020-12) of every kind, generated from the models."""
    stale = jsonschema_export.export(directory, check=check)
    for path in stale:
        click.echo(f"{'stale' if check else 'wrote'} {path}")
    if check and stale:
        raise ReportedError


@schema.command()
@click.option(
    "--out",
    type=click.Path(dir_okay=False, path_type=Path),
    default=Path("docs/reference/specs.md"),
    show_default=True,
    help="Where to write the Markdown reference.",
)
@options.check("the file")
def docs(out: Path, check: bool) -> None:
    """Write the spec reference (every kind, field, type and default) as Markdown."""
    text = reference.render()
    current = out.read_text(encoding="utf-8") if out.is_file() else None
    if check:
        if current != text:
            click.echo(f"stale {out}")
            raise ReportedError
        return
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text, encoding="utf-8")
    click.echo(f"wrote {out}")
