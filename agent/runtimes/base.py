"""What every runtime offers the agent."""

from __future__ import annotations

from dataclasses import dataclass
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


class Runtime(Protocol):
    """Applies, deletes and observes resources; every method is idempotent."""

    def apply(self, command: signed.Command, context: ApplyContext) -> signed.ResourceStatus:
        """Make the resource match the command; report what it became."""
        ...

    def delete(self, command: signed.Command) -> None:
        """Remove the resource and everything it started."""
        ...
