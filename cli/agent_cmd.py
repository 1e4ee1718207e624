"""``gitplane agent run``."""

from __future__ import annotations

import signal
import threading
from pathlib import Path

import click

from agent import agent as agent_agent
from agent import loop
from agent.config import load_config
from cli import agent_render_cmd, clock, logs, options
from schemas.errors import ReportedError


@click.group()
def agent() -> None:
    """The data-plane agent."""


agent.add_command(agent_render_cmd.render)


@agent.command()
@options.agent_config("Agent configuration (see docs/agent.md).")
@click.option("--once", is_flag=True, help="One cycle, then exit (for scripts and tests).")
@options.listen("Serve Prometheus metrics here (daemon mode).")
@options.logs("the agent")
def run(config_file: Path, once: bool, listen: str | None, log_level: str, log_format: str) -> None:
    """Pull this plane's signed commands, verify and apply them, report signed status.

    Without --once it runs until SIGTERM: polling every pollInterval (at once on
    a pushed ref when the remote is on local disk) and observing what runs every
    second in between.
    """
    if once and listen and options.from_environment(click.get_current_context(), "listen"):
        listen = None  # GITPLANE_LISTEN is the daemon's: a one-off cycle leaves it be
    if once and listen:
        raise click.UsageError("--listen applies only without --once (the daemon serves metrics)")
    logs.configure(log_level, log_format)
    config = load_config(config_file)
    worker = agent_agent.Agent(config)
    try:
        _run(worker, once=once, listen=listen)
    finally:
        worker.close()


def _run(worker: agent_agent.Agent, *, once: bool, listen: str | None) -> None:
    if once:
        outcome = worker.run_once(clock.now())
        loop.log_cycle(worker.config.plane, outcome)
        if outcome.misconfigured:
            click.echo(f"error: {outcome.misconfigured}", err=True)
        if outcome.error or outcome.unreachable or outcome.misconfigured:
            raise ReportedError  # the cycle's line on stderr says why
        return
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    metrics = loop.Metrics()
    if listen:
        loop.serve_metrics(metrics, listen)
    try:
        loop.run(worker, stop, metrics, clock=clock.now)
    except KeyboardInterrupt:
        stop.set()
