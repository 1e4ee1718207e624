"""The double's etcd: objects by resource, namespace and name; one global resourceVersion;
a bounded history of change events that watches replay and follow.

Every read-modify-write holds :attr:`Store.lock` (the double serialises writes as etcd
does), so the resourceVersion order is the order of events. A watch that asks for a
resourceVersion older than the history is told 410 Gone, as after an etcd compaction.
"""

from __future__ import annotations

import copy
import threading
from collections import deque
from dataclasses import dataclass
from typing import Any

from tests.kubeapi.resources import Resource

Json = dict[str, Any]
HISTORY = 10_000
"""Change events kept for watches to replay (the real watch cache keeps a few minutes)."""


@dataclass(frozen=True)
class Event:
    """One change, as a watch sends it: ``ADDED``, ``MODIFIED`` or ``DELETED``."""

    revision: int
    type: str
    resource: Resource
    object: Json
    previous: Json | None = None
    """The object before the change (None for ADDED): a selecting watch needs both."""


def _key(resource: Resource, namespace: str | None, name: str) -> tuple[str, str, str]:
    return (resource.qualified, namespace or "", name)


class Store:
    """Objects and their change events; callers hold :attr:`lock` around each request."""

    def __init__(self, *, history: int = HISTORY) -> None:
        self.lock = threading.Condition()
        self.closed = False
        self.revision = 0
        self._objects: dict[tuple[str, str, str], Json] = {}
        self._events: deque[Event] = deque(maxlen=history)
        self._oldest = 0
        """Watches may start at this revision or later."""

    def get(self, resource: Resource, namespace: str | None, name: str) -> Json | None:
        found = self._objects.get(_key(resource, namespace, name))
        return copy.deepcopy(found) if found is not None else None

    def list(self, resource: Resource, namespace: str | None) -> list[Json]:
        """Objects of ``resource`` in ``namespace`` (every namespace for None), by key."""
        keys = sorted(k for k in self._objects if k[0] == resource.qualified)
        return [
            copy.deepcopy(self._objects[k]) for k in keys if namespace is None or k[1] == namespace
        ]

    def save(self, resource: Resource, obj: Json, event: str, previous: Json | None = None) -> Json:
        """Store ``obj`` (formerly ``previous``) at the next resourceVersion; tell the watches."""
        self.revision += 1
        obj["metadata"]["resourceVersion"] = str(self.revision)
        metadata = obj["metadata"]
        self._objects[_key(resource, metadata.get("namespace"), metadata["name"])] = obj
        self._record(Event(self.revision, event, resource, copy.deepcopy(obj), previous))
        return copy.deepcopy(obj)

    def delete(self, resource: Resource, obj: Json) -> Json:
        self.revision += 1
        metadata = obj["metadata"]
        del self._objects[_key(resource, metadata.get("namespace"), metadata["name"])]
        metadata["resourceVersion"] = str(self.revision)
        self._record(Event(self.revision, "DELETED", resource, copy.deepcopy(obj), obj))
        return obj

    def _record(self, event: Event) -> None:
        if len(self._events) == self._events.maxlen:
            self._oldest = self._events[0].revision
        self._events.append(event)
        self.lock.notify_all()

    def events_after(self, revision: int) -> list[Event]:
        """Events newer than ``revision``; ValueError when the history no longer reaches back."""
        if revision < self._oldest:
            raise ValueError(f"too old resource version: {revision} ({self._oldest})")
        newer = []
        for event in reversed(self._events):  # the newest first: cost grows with news only
            if event.revision <= revision:
                break
            newer.append(event)
        return newer[::-1]

    def compact(self) -> None:
        """Forget the history, as an etcd compaction does: older watches get 410 Gone."""
        self._events.clear()
        self._oldest = self.revision

    def close(self) -> None:
        self.closed = True
        self.lock.notify_all()
