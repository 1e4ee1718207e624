"""``gitplane agent run``."""

from __future__ import annotations

import json
import logging
import signal
import sys
import threading
from datetime import UTC, datetime
from pathlib import Path

import click

from agent import agent as agent_loop
from agent.config import load_config

log = logging.getLogger("gitplane.agent")


@click.group()
def agent() -> None:
    """The data-plane agent."""


@agent.command()
@click.option(
    "--config",
    "config_file",
    required=True,
    type=click.Path(dir_okay=False, exists=True, path_type=Path),
    help="Agent configuration (see docs/agent.md).",
)
@click.option("--once", is_flag=True, help="One cycle, then exit (for scripts and tests).")
def run(config_file: Path, once: bool) -> None:
    """Pull this plane's signed commands, verify and apply them, report signed status."""
    logging.basicConfig(stream=sys.stderr, level=logging.INFO, format="%(message)s")
    config = load_config(config_file)
    worker = agent_loop.Agent(config)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    while True:
        outcome = worker.run_once(datetime.now(UTC))
        log.info(
            json.dumps(
                {
                    "msg": "cycle",
                    "plane": config.plane,
                    "applied": [f"{c.kind}/{c.name}" for c in outcome.applied],
                    "error": outcome.error.code if outcome.error else None,
                    "unreachable": outcome.unreachable,
                    "reported": outcome.reported,
                }
            )
        )
        if once:
            sys.exit(1 if outcome.error or outcome.unreachable else 0)
        if stop.wait(config.poll_seconds):
            return
