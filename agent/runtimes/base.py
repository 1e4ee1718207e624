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


@dataclass(frozen=True)
class Capabilities:
    """What a runtime can enforce of a spec: what it cannot is refused or warned about
    (by ``validate``, ``plan`` and ``status``), never dropped silently."""

    env_managers: frozenset[str]
    """The MLflow Project ``envManager`` values its builds and steps honour."""
    enforces_resources: bool
    """Whether ``resources`` (cpu, memory, gpu) are requests and limits it applies."""


class Runtime(Protocol):
    """Applies, deletes and observes resources; every method is idempotent.

    Chosen in one place (:mod:`agent.runtimes.select`); every runtime passes the same
    contract suite (``tests/agent/test_runtime_contract.py``)."""

    kinds: frozenset[str]
    """The kinds of resource it runs."""
    jobs: frozenset[str]
    """Kinds whose ``observe`` runs scheduled work that has fallen due, which takes as long
    as it takes: the agent observes them on its jobs thread."""
    capabilities: Capabilities

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

    def stop_serving(self) -> int:
        """Stop what keeps running between the agent's cycles (endpoints), leaving its state,
        so that an agent started again serves it again (a self-healing plane does); how
        many were stopped. For an operator taking the plane down, not for the agent."""
        ...

    def cancel(self, started_by: threading.Thread) -> None:
        """Stop the processes ``started_by`` started for an apply or a scheduled run, and any
        it would start after; that work ends early (the agent is stopping, or a newer command
        superseded the apply)."""
        ...
