"""``gitplane agent render``."""

from __future__ import annotations

from pathlib import Path

import click

from agent import dryrun
from agent.config import load_config
from cli import clock, options


@click.command()
@options.agent_config("The agent configuration of a kubernetes plane (see docs/agent.md).")
@options.output("yaml", "json")
@click.option(
    "--api-versions",
    "api_versions",
    multiple=True,
    metavar="GROUP/VERSION",
    help="An API the cluster serves beyond the built-in ones, as helm template takes it "
    "(repeatable): keda.sh/v1alpha1 renders autoscaled Deployments as the agent does "
    "where KEDA is installed. The agent finds out by discovery; render asks nothing.",
)
def render(config_file: Path, output: str, api_versions: tuple[str, ...]) -> None:
    """Print the manifests this plane's agent applies for its current verified log.

    As helm template or kustomize build: nothing is sent to the cluster. The log is
    verified as the agent verifies it, and rendered with the plane's signed
    spec.kubernetes by the code apply uses. A command whose objects cannot be shown
    is named on stderr with why, and the rest is printed.
    """
    config = load_config(config_file)
    text, skipped = dryrun.render(config, clock.now(), output, api_versions=api_versions)
    for line in skipped:
        click.echo(f"warning: {line}", err=True)
    click.echo(text, nl=False)
