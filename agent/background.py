"""Work the agent daemon runs beside its loop: one apply at a time, and one pass over the
scheduled jobs.

Each runs on a thread of its own and only computes resource states: the agent's own thread
records them in the journal, so the journal has one writer. Cancelling goes through the
runtime, per thread (the runtime kills the processes that thread started).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

from agent.journal import Source
from ledger import verify
from schemas import signed

ABANDON_WAIT_SECONDS = 10.0
"""How long a stopping agent waits for cancelled work to unwind."""

Observe = Callable[[Source, signed.ResourceStatus], signed.ResourceStatus]


@dataclass
class Flight:
    """An apply running on the worker thread."""

    sequence: int
    command: signed.Command
    thread: threading.Thread = field(init=False)
    result: signed.ResourceStatus | None = None
    offered: bool = False
    """A cycle has seen it finished (and recorded it, unless that cycle failed)."""
    superseded_by: int = 0
    """The bundle carrying a newer command for the same resource, once one arrived: the
    apply was cancelled, and fails unless it had finished anyway."""

    @classmethod
    def start(
        cls, sequence: int, command: signed.Command, apply: Callable[[], signed.ResourceStatus]
    ) -> Flight:
        """``apply`` on a new worker thread."""
        flight = cls(sequence, command)

        def work() -> None:
            try:
                flight.result = apply()
            except Exception as exc:  # a bug in a runtime: reported as Failed, not a lost thread
                flight.result = failed(command, f"the apply raised {type(exc).__name__}: {exc}")

        flight.thread = threading.Thread(target=work, name=f"apply {flight.ref}", daemon=True)
        flight.thread.start()
        return flight

    def outcome(self) -> signed.ResourceStatus:
        """What the apply made of its resource (once it has landed)."""
        if self.superseded_by and (self.result is None or self.result.phase == "Failed"):
            return failed(
                self.command, f"superseded by bundle {self.superseded_by} before it finished"
            )
        return self.result or failed(self.command, "the apply ended early")

    def newer_in(self, pending: list[tuple[signed.Head, signed.Bundle]]) -> int:
        """The first later bundle in ``pending`` with a command for the same resource, or 0."""
        same = (self.command.kind, self.command.name)
        return next(
            (
                head.sequence
                for head, bundle in pending
                if head.sequence > self.sequence
                for command in bundle.commands
                if (command.kind, command.name) == same
            ),
            0,
        )

    @property
    def ref(self) -> str:
        """``Kind/name`` of the resource being applied."""
        return f"{self.command.kind}/{self.command.name}"

    @property
    def landed(self) -> bool:
        """Whether the apply has finished (its result waits to be recorded)."""
        return not self.thread.is_alive()


@dataclass
class JobRound:
    """One pass over the scheduled jobs on the jobs thread: each observed, due runs run."""

    watched: dict[str, tuple[Source, signed.ResourceStatus]]
    """Per resource, the command it was applied from and its state when the pass began."""
    thread: threading.Thread = field(init=False)
    results: dict[str, signed.ResourceStatus] = field(default_factory=dict)

    @classmethod
    def start(
        cls, watched: dict[str, tuple[Source, signed.ResourceStatus]], observe: Observe
    ) -> JobRound:
        """Observe every resource in ``watched`` in turn on a new jobs thread."""
        jobs = cls(watched)

        def work() -> None:
            for key, (source, last) in watched.items():
                try:
                    jobs.results[key] = observe(source, last)
                except Exception as exc:  # a bug in a runtime: reported, not a lost thread
                    why = f"observing raised {type(exc).__name__}: {exc}"
                    jobs.results[key] = last.model_copy(update={"message": why[-4000:]})

        jobs.thread = threading.Thread(target=work, name="scheduled jobs", daemon=True)
        jobs.thread.start()
        return jobs

    def found(
        self, sources: dict[str, Source], resources: dict[str, signed.ResourceStatus]
    ) -> list[signed.ResourceStatus]:
        """What the finished pass found changed, for resources neither applied again nor
        deleted since it began (those keep what the apply made of them)."""
        return [
            state
            for key, state in self.results.items()
            if (sources.get(key), resources.get(key)) == self.watched[key]
            and state != self.watched[key][1]
        ]

    def watches(self, command: signed.Command) -> bool:
        """Whether this pass, still going, is observing ``command``'s resource."""
        return not self.landed and f"{command.kind}/{command.name}" in self.watched

    @property
    def landed(self) -> bool:
        """Whether the pass has finished (its results wait to be recorded)."""
        return not self.thread.is_alive()


def progressing(
    command: signed.Command, known: dict[str, signed.ResourceStatus], now: datetime
) -> signed.ResourceStatus:
    """The resource while its apply runs: what was observed of it before, now Progressing."""
    message = f"{command.action} in progress since {verify.format_time(now)}"
    before = known.get(f"{command.kind}/{command.name}")
    if before is None or before.phase == "Deleted":
        before = signed.ResourceStatus(kind=command.kind, name=command.name, phase="Pending")
    return before.model_copy(
        update={"phase": "Progressing", "digest": command.digest, "message": message}
    )


def failed(command: signed.Command, why: str) -> signed.ResourceStatus:
    """The resource as ``command`` left it when its apply failed for ``why``."""
    return signed.ResourceStatus(
        kind=command.kind,
        name=command.name,
        phase="Failed",
        digest=command.digest,
        message=why[-4000:],
    )
