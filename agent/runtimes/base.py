"""What every runtime offers the agent."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Protocol

from schemas import signed


@dataclass(frozen=True)
class ApplyContext:
    """What a runtime may need beyond the command itself."""

    spec_commit: str
    """The spec commit the command was derived from (projects are checked out at it)."""
    scratch: Path
    """A private directory for this apply; removed afterwards."""
    self_heal: bool = True
    """Whether drift from the command is corrected (the plane's ``sync.selfHeal``)."""
    now: datetime = field(kw_only=True)
    """When the apply or observation starts: the agent's one clock, never read here."""


class Runtime(Protocol):
    """Applies, deletes and observes resources; every method is idempotent."""

    def apply(self, command: signed.Command, context: ApplyContext) -> signed.ResourceStatus:
        """Make the resource match the command; report what it became."""
        ...

    def observe(
        self,
        command: signed.Command,
        last: signed.ResourceStatus,
        context: ApplyContext,
        now: datetime,
    ) -> signed.ResourceStatus:
        """What the resource looks like now; heals drift when ``context.self_heal``, and runs
        scheduled work that has fallen due. Returns ``last`` when nothing changed."""
        ...

    def delete(self, command: signed.Command) -> None:
        """Remove the resource and everything it started."""
        ...

    def cancel(self, started_by: threading.Thread) -> None:
        """Stop the processes ``started_by`` started for an apply or a scheduled run, and any
        it would start after; that work ends early (the agent is stopping, or a newer command
        superseded the apply)."""
        ...
