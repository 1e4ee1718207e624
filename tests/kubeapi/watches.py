"""One watch of the API server test double: change events as a chunked stream of JSON lines.

A watch names a resource (in a namespace, or all), optional selectors and where to start:
no resourceVersion (or ``0``) sends the current objects as ADDED first; ``N`` replays every
change after N from the store's history, then follows new ones until ``timeoutSeconds``.
A version the history no longer reaches is an ERROR event carrying 410 Expired, which is
how the real server says "relist". Through a label selector, an object that starts to
match arrives as ADDED and one that stops matching as DELETED, as on the real server.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from tests.kubeapi import errors
from tests.kubeapi.routes import Route
from tests.kubeapi.store import Event

if TYPE_CHECKING:
    from tests.kubeapi.server import KubeApiDouble

Json = dict[str, Any]


def seen_as(event_type: str, *, before: bool, after: bool) -> str | None:
    """What a selecting watch reports for a change, from whether the object matched
    before and after it; None when it matched neither time."""
    if event_type == "DELETED":
        return "DELETED" if before else None
    if before and after:
        return "MODIFIED"
    if after:
        return "ADDED"
    return "DELETED" if before else None


class Watch:
    """The events of one watch request, as lines to send."""

    def __init__(self, double: KubeApiDouble, route: Route, wanted: Any, since: str) -> None:
        self.double, self.route, self.wanted = double, route, wanted
        self.since = since

    def _in_scope(self, event: Event) -> bool:
        metadata = event.object["metadata"]
        return (
            event.resource is self.route.resource
            and self.route.namespace in {None, metadata.get("namespace")}
            and self.route.name in {None, metadata["name"]}
        )

    def _matches(self, obj: Json | None) -> bool:
        return obj is not None and self.double.api.matches(self.wanted, obj)

    def _line(self, event: Event) -> Json | None:
        if not self._in_scope(event):
            return None
        after = event.type != "DELETED" and self._matches(event.object)
        before = self._matches(event.previous)
        kind = seen_as(event.type, before=before, after=after)
        return {"type": kind, "object": event.object} if kind else None

    def _start(self) -> tuple[int, list[Json]]:
        """The revision to follow from, and the synthetic ADDED events of a fresh watch."""
        store = self.double.store
        if self.since not in {"", "0"}:
            return int(self.since), []
        objects = store.list(self.route.resource, self.route.namespace)
        added = [{"type": "ADDED", "object": o} for o in objects if self._matches(o)]
        return store.revision, [
            a for a in added if self.route.name in {None, a["object"]["metadata"]["name"]}
        ]

    def _next(self, revision: int, deadline: float) -> tuple[int, list[Json]]:
        store = self.double.store
        with store.lock:
            events = store.events_after(revision)
            if not events and not store.closed:
                store.lock.wait(max(0.0, deadline - time.monotonic()))
                events = store.events_after(revision)
        last = events[-1].revision if events else revision
        return last, [line for line in map(self._line, events) if line is not None]

    def lines(self, deadline: float) -> Iterator[bytes]:
        """JSON lines until the deadline, the server's close, or a 410 for an old version."""
        with self.double.store.lock:
            revision, batch = self._start()
        while True:
            for event in batch:
                yield json.dumps(event).encode() + b"\n"
            if time.monotonic() >= deadline or self.double.store.closed:
                return
            try:
                revision, batch = self._next(revision, deadline)
            except ValueError as too_old:
                status = errors.expired(str(too_old)).status()
                yield json.dumps({"type": "ERROR", "object": status}).encode() + b"\n"
                return
