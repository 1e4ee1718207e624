"""What Gitplane manages on a plane, kept current by watches: an informer's cache.

One LIST per kind at start, then one WATCH per kind from the list's ``resourceVersion``,
through the plane's inventory labels (``managed-by=gitplane``, ``gitplane.dev/plane``).
Observing reads the cache, so an idle agent sends no request per cycle however many
resources it runs: the watches carry every change, made by Gitplane or anyone else. A
watch that ends is resumed from the last version seen; one too old to resume (410 Gone)
lists again, as client-go's reflector does.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Mapping, Sequence
from typing import Any

from kubernetes import watch
from kubernetes.client.exceptions import ApiException

from agent.runtimes.kubernetes.cluster import Cluster, Manifest

log = logging.getLogger("gitplane.agent")

WATCH_SECONDS = 300
"""How long one watch request lasts before it is resumed (the server may end it sooner)."""
STOP_PATIENCE = 1.0
"""Seconds :meth:`Inventory.stop` waits, in all, for its watch threads to return."""
BACKOFF = 1.0
"""Seconds before a watch that failed is tried again."""

Key = tuple[str, str, str]
"""(apiVersion, kind, name)."""


class Inventory:
    """A cache of the managed objects of ``kinds`` in the cluster's namespace."""

    def __init__(
        self,
        cluster: Cluster,
        selector: Mapping[str, str],
        kinds: Sequence[tuple[str, str]],
        *,
        watch_seconds: int = WATCH_SECONDS,
    ) -> None:
        self.cluster = cluster
        self.selector = dict(selector)
        self.kinds = tuple(kinds)
        self.watch_seconds = watch_seconds
        self._objects: dict[Key, Manifest] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._synced = {kind: threading.Event() for kind in self.kinds}
        self._threads: list[threading.Thread] = []
        self._watches: list[watch.Watch] = []

    def start(self) -> Inventory:
        """List and watch every kind, each on a thread of its own."""
        for kind in self.kinds:
            thread = threading.Thread(
                target=self._run, args=(kind,), name=f"gitplane-watch-{kind[1]}", daemon=True
            )
            thread.start()
            self._threads.append(thread)
        return self

    def wait_synced(self, timeout: float) -> bool:
        """Whether every kind was listed within ``timeout`` seconds."""
        return all(event.wait(timeout) for event in self._synced.values())

    @property
    def synced(self) -> bool:
        """Whether every kind has been listed: the cache can answer for it."""
        return all(event.is_set() for event in self._synced.values())

    def get(self, api_version: str, kind: str, name: str) -> Manifest | None:
        """The object as the last event showed it, or None when there is none."""
        with self._lock:
            return self._objects.get((api_version, kind, name))

    def select(self, api_version: str, kind: str, selector: Mapping[str, str]) -> list[Manifest]:
        """The cached objects of ``kind`` whose labels hold ``selector``."""
        with self._lock:
            return [
                obj
                for key, obj in self._objects.items()
                if key[:2] == (api_version, kind)
                and selector.items() <= (obj.get("metadata", {}).get("labels") or {}).items()
            ]

    def stop(self, patience: float = STOP_PATIENCE) -> None:
        """End the watches: each thread returns at its stream's next event or timeout. Waits
        at most ``patience`` seconds in all for them (a watch blocked on a quiet stream cannot
        be woken; its daemon thread ends with the stream, and caches nothing after this)."""
        self._stop.set()
        for stream in list(self._watches):
            stream.stop()  # type: ignore[no-untyped-call]
        deadline = time.monotonic() + patience
        for thread in self._threads:
            thread.join(timeout=max(0.0, deadline - time.monotonic()))

    def _run(self, kind: tuple[str, str]) -> None:
        version: str | None = None
        while not self._stop.is_set():
            try:
                if version is None:
                    version = self._list(kind)
                    self._synced[kind].set()
                version = self._watch(kind, version)
            except ApiException as exc:
                if exc.status == 410:  # too old to resume: list again
                    version = None
                    continue
                self._failed(kind, f"{exc.status} {exc.reason}")
            except Exception as exc:
                # ProtocolError), a server gone: the watch thread logs it and resumes
                if self._stop.is_set():
                    return
                self._failed(kind, str(exc) or type(exc).__name__)

    def _failed(self, kind: tuple[str, str], why: str) -> None:
        log.warning("watch failed", extra={"fields": {"kind": kind[1], "error": why}})
        self._stop.wait(BACKOFF)

    def _list(self, kind: tuple[str, str]) -> str:
        items, version = self.cluster.list_versioned(*kind, self.selector)
        with self._lock:
            for key in [k for k in self._objects if k[:2] == kind]:
                del self._objects[key]
            for item in items:
                self._objects[(*kind, item["metadata"]["name"])] = _typed(item, kind)
        return version

    def _watch(self, kind: tuple[str, str], version: str) -> str:
        stream = watch.Watch()  # type: ignore[no-untyped-call]
        self._watches.append(stream)
        try:
            events = stream.stream(  # type: ignore[no-untyped-call]
                self.cluster.lister(*kind),
                self.cluster.namespace,
                label_selector=self.cluster.selector_text(self.selector),
                resource_version=version,
                timeout_seconds=self.watch_seconds,
                allow_watch_bookmarks=True,
            )
            for event in events:
                if self._stop.is_set():
                    break
                version = self._apply(kind, event, version)
        finally:
            self._watches.remove(stream)
        return version

    def _apply(self, kind: tuple[str, str], event: Mapping[str, Any], version: str) -> str:
        kind_of, raw = event.get("type"), event.get("raw_object") or {}
        if kind_of == "ERROR":
            code = raw.get("code")
            raise ApiException(status=code, reason=raw.get("message") or "watch error")
        meta = raw.get("metadata") or {}
        key = (*kind, meta.get("name", ""))
        with self._lock:
            if kind_of == "DELETED":
                self._objects.pop(key, None)
            elif kind_of in ("ADDED", "MODIFIED"):
                self._objects[key] = _typed(raw, kind)
        return str(meta.get("resourceVersion") or version)


def _typed(item: Manifest, kind: tuple[str, str]) -> Manifest:
    """A LIST's items have no ``apiVersion``/``kind``: the cache keeps them whole."""
    return {**item, "apiVersion": kind[0], "kind": kind[1]}
