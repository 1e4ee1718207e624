"""Work the agent daemon runs beside its loop: one apply at a time, and one pass over the
scheduled jobs.

Each is a future on a worker thread of its own and only computes resource states: the
agent's own thread records them in the journal, so the journal has one writer. Each carries
a cancel token the runtime receives in its context: cancelling it stops the processes the
work started and refuses any it would start after.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from typing import TypeVar

from agent.journal import Source
from agent.runtimes.base import CancelToken
from ledger import verify
from schemas import signed
from schemas.observed import RetryObserved

_T = TypeVar("_T")

ABANDON_WAIT_SECONDS = 10.0
"""How long a stopping agent waits for cancelled work to unwind."""

Observe = Callable[[Source, signed.ResourceStatus, CancelToken], signed.ResourceStatus]


def _submit(name: str, work: Callable[[], _T]) -> Future[_T]:
    """``work`` on a worker thread of its own, which ends with it."""
    pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix=name)
    try:
        return pool.submit(work)
    finally:
        pool.shutdown(wait=False)  # the work still runs; no idle thread is left behind


@dataclass
class Flight:
    """An apply running on the worker thread."""

    sequence: int
    command: signed.Command
    future: Future[signed.ResourceStatus] = field(init=False)
    cancel: CancelToken = field(default_factory=CancelToken)
    offered: bool = False
    """A cycle has seen it finished (and recorded it, unless that cycle failed)."""
    retry: bool = False
    """A failed apply tried again (:mod:`agent.retry`), not a command from a bundle."""
    superseded_by: int = 0
    """The bundle carrying a newer command for the same resource, once one arrived: the
    apply was cancelled, and fails unless it had finished anyway."""

    @classmethod
    def start(
        cls,
        sequence: int,
        command: signed.Command,
        apply: Callable[[CancelToken], signed.ResourceStatus],
        *,
        retry: bool = False,
    ) -> Flight:
        """``apply`` (given the flight's cancel token) on a new worker thread."""
        flight = cls(sequence, command, retry=retry)

        def work() -> signed.ResourceStatus:
            try:
                return apply(flight.cancel)
            except Exception as exc:  # a bug in a runtime: reported as Failed, not a lost thread
                return failed(command, f"the apply raised {type(exc).__name__}: {exc}")

        flight.future = _submit(f"apply {flight.ref}", work)
        return flight

    def outcome(self) -> signed.ResourceStatus:
        """What the apply made of its resource (once it has landed)."""
        result = self.future.result() if self.future.done() else None
        if self.superseded_by and (result is None or result.phase == "Failed"):
            return failed(
                self.command, f"superseded by bundle {self.superseded_by} before it finished"
            )
        return result or failed(self.command, "the apply ended early")

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
        return self.future.done()


@dataclass
class JobRound:
    """One pass over the scheduled jobs on the jobs thread: each observed, due runs run."""

    watched: dict[str, tuple[Source, signed.ResourceStatus]]
    """Per resource, the command it was applied from and its state when the pass began."""
    future: Future[None] = field(init=False)
    cancel: CancelToken = field(default_factory=CancelToken)
    results: dict[str, signed.ResourceStatus] = field(default_factory=dict)

    @classmethod
    def start(
        cls, watched: dict[str, tuple[Source, signed.ResourceStatus]], observe: Observe
    ) -> JobRound:
        """Observe every resource in ``watched`` in turn on a new jobs thread (each given the
        pass's cancel token); a cancelled pass observes nothing more."""
        jobs = cls(watched)

        def work() -> None:
            for key, (source, last) in watched.items():
                if jobs.cancel.cancelled:
                    return
                try:
                    jobs.results[key] = observe(source, last, jobs.cancel)
                except Exception as exc:  # a bug in a runtime: reported, not a lost thread
                    why = f"observing raised {type(exc).__name__}: {exc}"
                    jobs.results[key] = last.model_copy(update={"message": why[-4000:]})

        jobs.future = _submit("scheduled jobs", work)
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
        return self.future.done()


def progressing(
    command: signed.Command, known: dict[str, signed.ResourceStatus], now: datetime
) -> signed.ResourceStatus:
    """The resource while its apply runs: what was observed of it before, now Progressing."""
    message = f"{command.action} in progress since {verify.format_time(now)}"
    before = known.get(f"{command.kind}/{command.name}")
    if before is None or before.phase == "Deleted":
        before = signed.ResourceStatus(kind=command.kind, name=command.name, phase="Pending")
    elif before.digest != command.digest:  # a new command: its attempts count from one
        before = before.model_copy(update={"observed": RetryObserved.cleared(before.observed)})
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
