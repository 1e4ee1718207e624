"""What every runtime offers the agent."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Protocol

from agent.progress import Progress
from schemas import dataplane, signed
from schemas.errors import GitplaneError


class CancelledError(GitplaneError):
    """The work was cancelled: the agent is stopping, or a newer command superseded it."""


class CancelToken:
    """Set once, by whoever handed the work out, when it must end early.

    A runtime checks it before each step that starts work, waits on it instead of
    sleeping, and holds a hook while a process runs (the hook kills the process). Work
    started after the token is set is refused with :class:`CancelledError`.
    """

    def __init__(self) -> None:
        self._event = threading.Event()
        self._lock = threading.Lock()
        self._hooks: dict[int, Callable[[], None]] = {}
        self._next = 0
        self.why = ""

    def cancel(self, why: str) -> None:
        """Cancel: run every hook held now; later checks raise :class:`CancelledError`."""
        with self._lock:
            if self._event.is_set():
                return
            self.why = why
            self._event.set()
            hooks = list(self._hooks.values())
        for hook in hooks:
            hook()

    @property
    def cancelled(self) -> bool:
        """Whether the work must end."""
        return self._event.is_set()

    def check(self) -> None:
        """Raise :class:`CancelledError` if the work must end."""
        if self._event.is_set():
            raise CancelledError(f"cancelled: {self.why}")

    def wait(self, seconds: float) -> bool:
        """Sleep up to ``seconds``, waking at once on a cancel; whether it was cancelled."""
        return self._event.wait(seconds)

    @contextmanager
    def hook(self, on_cancel: Callable[[], None]) -> Iterator[None]:
        """Run ``on_cancel`` if the token is cancelled while the block runs. Raises
        :class:`CancelledError` at once, running nothing, if it already is: checking and holding
        are one step, so a cancel cannot slip in between."""
        with self._lock:
            self.check()
            key, self._next = self._next, self._next + 1
            self._hooks[key] = on_cancel
        try:
            yield
        finally:
            with self._lock:
                del self._hooks[key]


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
    issued_at: datetime | None = field(default=None, kw_only=True)
    """When the reconciler issued the bundle that carried the command (its signed
    ``issued_at``): the same at every apply of the command, and known to ``agent render``,
    unlike ``now``. None in a journal written before it was kept."""
    cancel: CancelToken = field(default_factory=CancelToken, kw_only=True)
    """Set when the work must end early (the agent is stopping, or a newer command
    superseded the apply): the runtime stops what it started and reports ``Failed``."""
    progress: Progress = field(default_factory=Progress, kw_only=True)
    """Where a long apply says what it is doing (``building``, with its output file): the
    agent logs it every so often while the apply runs (:mod:`agent.progress`)."""
    kubernetes: dataplane.KubernetesRuntime | None = field(default=None, kw_only=True)
    """The plane's Kubernetes settings as last signed (ADR 0016); None until a bundle carried
    them. The ``kubernetes`` runtime builds its objects from them; others ignore them."""


@dataclass(frozen=True)
class Capabilities:
    """What a runtime can enforce of a spec: what it cannot is refused or warned about
    (by ``validate``, ``plan`` and ``status``), never dropped silently."""

    env_managers: frozenset[str]
    """The MLflow Project ``envManager`` values its builds and steps honour (the local
    runtime's: those whose tool it found when it was built)."""
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
    retried: frozenset[str]
    """Kinds whose failed apply the agent applies again with backoff (:mod:`agent.retry`):
    applying the same command again redoes the work that failed. Others are final when
    they fail (a DAG run, whose steps have their own ``retry``) or retry themselves."""

    def apply(self, command: signed.Command, context: ApplyContext) -> signed.ResourceStatus:
        """Make the resource match the command; report what it became."""
        ...

    def observe(
        self, command: signed.Command, last: signed.ResourceStatus, context: ApplyContext
    ) -> signed.ResourceStatus:
        """What the resource looks like at ``context.now``; heals drift when
        ``context.self_heal``, and runs scheduled work that has fallen due. Returns ``last``
        when nothing changed."""
        ...

    def delete(self, command: signed.Command) -> None:
        """Remove the resource and everything it started."""
        ...

    def stop_serving(self) -> int:
        """Stop what keeps running between the agent's cycles (endpoints), leaving its state,
        so that an agent started again serves it again (a self-healing plane does); how
        many were stopped. For an operator taking the plane down, not for the agent."""
        ...
