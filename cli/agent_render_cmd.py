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
def render(config_file: Path, output: str) -> None:
    """Print the manifests this plane's agent applies for its current verified log.

    As helm template or kustomize build: nothing is sent to the cluster. The log is
    verified as the agent verifies it, and rendered with the plane's signed
    spec.kubernetes by the code apply uses. A command whose objects are made only
    when it is applied (a model build) is named on stderr and left out.
    """
    config = load_config(config_file)
    text, skipped = dryrun.render(config, clock.now(), output)
    for line in skipped:
        click.echo(f"warning: not rendered: {line}", err=True)
    click.echo(text, nl=False)
