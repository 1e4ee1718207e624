"""``gitplane demo`` (what ``make demo`` runs)."""

from __future__ import annotations

import shutil
from pathlib import Path

import click

from cli import demo as demo_steps
from cli import options

MARKER = ".gitplane-demo"


@click.command("demo")
@click.option(
    "--example",
    type=options.GivenPath(file_okay=False, exists=True, path_type=Path),
    default=Path("example-repo"),
    show_default=True,
    help="The spec repository to start from.",
)
@click.option(
    "--workdir",
    type=options.GivenPath(file_okay=False, path_type=Path),
    default=Path(".gitplane-demo"),
    show_default=True,
    help="Where everything is created (emptied first if an earlier demo made it).",
)
@click.option(
    "--timeout",
    type=click.FloatRange(min=1.0),
    default=600.0,
    show_default=True,
    help="Seconds to wait per step.",
)
def demo(example: Path, workdir: Path, timeout: float) -> None:
    """Run the main job on this machine: git, keys, reconciler, agent, MLflow, endpoints.

    Builds, scans and registers the churn model, computes its features, serves
    it, sends predictions, scales it through a git commit, shows
    `gitplane status` and `gitplane audit`, then stops everything it started.
    """
    workdir = workdir.resolve()
    if workdir.exists():
        if not (workdir / MARKER).exists():
            raise click.UsageError(f"{workdir} exists and was not made by the demo")
        shutil.rmtree(workdir)
    workdir.mkdir(parents=True)
    (workdir / MARKER).touch()
    demo_steps.Demo(example.resolve(), workdir, timeout).run()
    click.secho("\nDemo finished: every step above ran for real on this machine.", bold=True)
