"""``gitplane schema export``: the JSON Schema files editors use."""

from __future__ import annotations

from pathlib import Path

import click

from cli import options
from schemas import jsonschema_export, reference, support
from schemas.errors import ReportedError


@click.group()
def schema() -> None:
    """JSON Schema of every spec kind, for editors and other tools."""


@schema.command()
@click.option(
    "--dir",
    "directory",
    type=options.GivenPath(file_okay=False, path_type=Path),
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
    type=options.GivenPath(dir_okay=False, path_type=Path),
    default=Path("docs/reference/specs.md"),
    show_default=True,
    help="Where to write the Markdown reference.",
)
@click.option(
    "--support-out",
    type=options.GivenPath(dir_okay=False, path_type=Path),
    default=Path("docs/reference/support.md"),
    show_default=True,
    help="Where to write the table of what each runtime does not enforce.",
)
@options.check("the files")
def docs(out: Path, support_out: Path, check: bool) -> None:
    """Write the spec reference (every kind, field, type and default) and the support
    table (what each runtime does not enforce) as Markdown."""
    stale = [
        path
        for path, text in ((out, reference.render()), (support_out, support.render()))
        if _written(path, text, check=check)
    ]
    if check and stale:
        raise ReportedError


def _written(path: Path, text: str, *, check: bool) -> bool:
    """Whether ``path`` was (or, checking, would be) rewritten with ``text``."""
    current = path.read_text(encoding="utf-8") if path.is_file() else None
    if current == text:
        return False
    if check:
        click.echo(f"stale {path}")
        return True
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    click.echo(f"wrote {path}")
    return True
