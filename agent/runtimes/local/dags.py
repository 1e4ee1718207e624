"""Placeholder: being built."""

from __future__ import annotations

from datetime import datetime

from agent.runtimes.base import ApplyContext
from agent.runtimes.local.env import LocalEnv
from schemas import signed


def apply(command: signed.Command, context: ApplyContext, env: LocalEnv) -> signed.ResourceStatus:
    """Not built yet: reported Pending, never Ready."""
    del context, env
    return signed.ResourceStatus(
        kind=command.kind,
        name=command.name,
        phase="Pending",
        digest=command.digest,
        message=f"the local runtime cannot apply {command.kind} yet",
    )


def observe(
    command: signed.Command,
    last: signed.ResourceStatus,
    context: ApplyContext,
    env: LocalEnv,
    now: datetime,
) -> signed.ResourceStatus:
    """Nothing runs, nothing changes."""
    del command, context, env, now
    return last


def delete(command: signed.Command, env: LocalEnv) -> None:
    """Nothing to remove."""
    del command, env
