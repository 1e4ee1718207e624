"""The driver: after each cycle, find what changed, queue it for every target that wants
it, and remember what was notified in the work directory.

The file (:data:`STATE_FILE`) holds the last notified view, so a restarted
reconciler does not announce every resource again; without it (the first run,
or a file that does not read), the current state counts as known and only the
commands issued in that cycle are sent.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Mapping, Sequence
from pathlib import Path

from reconciler import reconcile as reconciling
from reconciler.notify import events, targets
from reconciler.notify.config import Destination
from reconciler.notify.sender import Delivery, Sender
from reconciler.recorded import IssuedLog

STATE_FILE = "notified.json"
DRAIN_TIMEOUT = 30.0  # seconds ``reconcile --once`` waits for deliveries before it exits
log = logging.getLogger("gitplane.notify")


class Notifier:
    """Turns cycles into deliveries."""

    def __init__(self, destinations: Sequence[Destination], work_dir: Path, sender: Sender):
        self.destinations = destinations
        self.sender = sender
        self._state = work_dir / STATE_FILE
        self._last = _load(self._state)

    def observe(
        self, cycle: reconciling.Cycle, folded: Mapping[str, IssuedLog]
    ) -> list[events.Event]:
        """Queue the events of ``cycle`` (``folded``: each plane's log as the reconciler
        folded it) and remember its view; an invalid commit changes nothing."""
        if cycle.plan is None or cycle.problems:
            return []
        view = events.view_of(cycle.plan, cycle.recorded, folded)
        found = events.changes(self._last, view, cycle.issued, commit=cycle.plan.commit)
        for event in found:
            self._queue(event)
        if view != self._last:
            _persist(self._state, events.dumps(view))
        self._last = view
        return found

    def close(self, timeout: float = DRAIN_TIMEOUT) -> int:
        """Deliver what is queued within ``timeout`` seconds; the number left undelivered."""
        return self.sender.close(timeout)

    def _queue(self, event: events.Event) -> None:
        delivery = str(uuid.uuid4())  # one id per event and target, kept across retries
        what = targets.line(event)
        for destination in self.destinations:
            if destination.target.wants(event.event, event.plane):
                request = targets.request(destination, event, delivery)
                self.sender.submit(Delivery(destination.name, request, what))


def _load(path: Path) -> dict[str, events.PlaneView] | None:
    try:
        return events.loads(path.read_text())
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        fields = {"file": path, "error": exc}
        log.warning("treating the current state as notified", extra={"fields": fields})
        return None


def _persist(path: Path, text: str) -> None:
    """Write atomically; a failure is logged (the next restart may repeat some events)."""
    scratch = path.with_suffix(".tmp")
    try:
        scratch.write_text(text)
        scratch.replace(path)
    except OSError as exc:
        log.warning("notified state not written", extra={"fields": {"file": path, "error": exc}})
