"""The verbs of the API server test double over its store: what each request does to the
objects, with the real server's bookkeeping (resourceVersion, generation, uid,
creationTimestamp, managedFields) and its refusals (404, 409, 422).

Callers (the HTTP handler, the simulated controllers) hold ``store.lock`` around each
call, so a request is atomic, as on the real server. A write that changes nothing is not
stored: no new resourceVersion and no watch event, as a no-op apply on a real cluster.
"""

from __future__ import annotations

import copy
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from tests.kubeapi import errors, fields, resources, selectors, validation
from tests.kubeapi.resources import Resource
from tests.kubeapi.store import Store

Json = dict[str, Any]
SERVER_METADATA = ("uid", "creationTimestamp", "resourceVersion", "generation", "managedFields")


def timestamp(now: datetime) -> str:
    return now.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _without_times(obj: Json) -> Json:
    """``obj`` as compared for a no-op: managedFields' times and the version do not count."""
    bare = copy.deepcopy(obj)
    metadata = bare.get("metadata", {})
    metadata.pop("resourceVersion", None)
    for managed in metadata.get("managedFields", []):
        managed.pop("time", None)
    return bare


def initial_status(resource: Resource) -> Json:
    """A new object's status as the real server writes it: a Namespace is Active; an HPA's
    ``desiredReplicas`` has no ``omitempty`` (the client's model requires it)."""
    if resource is resources.NAMESPACES:
        return {"phase": "Active"}
    return {"desiredReplicas": 0} if resource is resources.HPAS else {}


def owned_by(obj: Json, uid: str) -> bool:
    return any(ref.get("uid") == uid for ref in obj["metadata"].get("ownerReferences", []))


class Api:
    """Create, read, update, apply, patch, delete: one method per verb."""

    def __init__(
        self, *, store: Store, clock: Callable[[], datetime], served: tuple[Resource, ...]
    ) -> None:
        self.store = store
        self.clock = clock
        self.served = served

    # -- reads ---------------------------------------------------------------------------

    def get(self, resource: Resource, namespace: str | None, name: str) -> Json:
        found = self.store.get(resource, namespace, name)
        if found is None:
            raise errors.not_found(resource, name)
        return found

    def list(
        self,
        resource: Resource,
        namespace: str | None,
        *,
        labels: str = "",
        field_selector: str = "",
    ) -> Json:
        wanted = self.selectors(labels, field_selector)
        items = [o for o in self.store.list(resource, namespace) if self.matches(wanted, o)]
        for item in items:  # a typed list's items carry no type of their own
            item.pop("apiVersion", None)
            item.pop("kind", None)
        return {
            "kind": f"{resource.kind}List",
            "apiVersion": resource.api_version,
            "metadata": {"resourceVersion": str(self.store.revision)},
            "items": items,
        }

    @staticmethod
    def selectors(labels: str, field_selector: str) -> tuple[list[Any], list[Any]]:
        try:
            return selectors.parse_labels(labels), selectors.parse_fields(field_selector)
        except ValueError as refused:
            raise errors.bad_request(str(refused)) from None

    @staticmethod
    def matches(wanted: tuple[list[Any], list[Any]], obj: Json) -> bool:
        return selectors.labels_match(wanted[0], obj) and selectors.fields_match(wanted[1], obj)

    # -- writes of the main resource -------------------------------------------------------

    def create(self, resource: Resource, namespace: str | None, body: Json, manager: str) -> Json:
        name = (body.get("metadata") or {}).get("name", "")
        self._require_namespace(resource, namespace)
        new = self._prepare(resource, namespace, None, body)
        if self.store.get(resource, namespace, name) is not None:
            raise errors.already_exists(resource, name)
        new["metadata"]["managedFields"] = self._updated(resource, None, new, manager)
        return self.store.save(resource, new, "ADDED")

    def replace(
        self, resource: Resource, namespace: str | None, name: str, body: Json, manager: str
    ) -> Json:
        """PUT: the whole object, guarded by its resourceVersion when the body names one."""
        old = self._current(resource, namespace, name, body)
        return self._store_update(resource, namespace, old, body, manager)

    def merge_patch(
        self, resource: Resource, namespace: str | None, name: str, patch: Json, manager: str
    ) -> Json:
        """A JSON merge patch (strategic merge patches are read as merge patches: every list
        is replaced whole)."""
        old = self._current(resource, namespace, name, patch)
        return self._store_update(resource, namespace, old, merge(old, patch), manager)

    def apply(
        self,
        resource: Resource,
        namespace: str | None,
        name: str,
        body: Json,
        *,
        manager: str,
        force: bool,
    ) -> Json:
        """Server-side apply: create or merge, owning exactly the fields of ``body``."""
        self._require_namespace(resource, namespace)
        old = self.store.get(resource, namespace, name)
        applied = {k: v for k, v in body.items() if k != "status"}
        mine = fields.tracked(applied)
        entries = old["metadata"].get("managedFields", []) if old else []
        found = fields.conflicts(old or {}, applied, mine, entries, manager)
        if found and not force:
            pairs = [(m, fields.dotted(p)) for m, p in found]
            raise errors.apply_conflict(pairs, resource.api_version)
        entries = fields.disown(entries, {p for _, p in found})
        merged = self._merge_applied(old, applied, mine, entries, manager)
        merged["metadata"]["name"] = name
        new = self._prepare(resource, namespace, old, merged)
        made = fields.entry(manager, "Apply", resource.api_version, self._now(), mine)
        new["metadata"]["managedFields"] = fields.record(entries, made, mine, take=False)
        return self._save(resource, old, new)

    @staticmethod
    def _merge_applied(
        old: Json | None, applied: Json, mine: set[fields.Path], entries: list[Json], manager: str
    ) -> Json:
        merged = copy.deepcopy(old) if old else {"metadata": {}}
        owned = fields.owners(entries)
        before = next(
            (
                paths
                for e, paths in owned
                if (e["manager"], e["operation"]) == (manager, "Apply") and not e.get("subresource")
            ),
            set(),
        )
        others = set().union(*(p for e, p in owned if e["manager"] != manager))
        for path in before - mine - others:
            fields.remove(merged, path)
        for path in mine:
            fields.put(merged, path, fields.get(applied, path))
        return merged

    # -- the status subresource -----------------------------------------------------------

    def write_status(
        self,
        resource: Resource,
        namespace: str | None,
        name: str,
        body: Json,
        *,
        manager: str,
        operation: str = "Update",
    ) -> Json:
        """PUT or PATCH ``.../status``: only ``status`` changes, never spec or generation."""
        old = self._current(resource, namespace, name, body)
        new = copy.deepcopy(old)
        new["status"] = copy.deepcopy(body.get("status") or {})
        paths = fields.tracked(new, status=True)
        changed = {p for p in paths if fields.get(old, p) != fields.get(new, p)}
        entries = fields.disown(old["metadata"].get("managedFields", []), changed)
        made = fields.entry(
            manager, operation, resource.api_version, self._now(), paths, subresource="status"
        )
        new["metadata"]["managedFields"] = fields.record(entries, made, paths, take=False)
        return self._save(resource, old, new)

    def status_patch(
        self, resource: Resource, namespace: str | None, name: str, patch: Json, *, manager: str
    ) -> Json:
        old = self.get(resource, namespace, name)
        return self.write_status(resource, namespace, name, merge(old, patch), manager=manager)

    # -- delete ---------------------------------------------------------------------------

    def delete(
        self, resource: Resource, namespace: str | None, name: str, policy: str | None
    ) -> Json:
        """Delete with the garbage collector's propagation: dependents (objects whose
        ownerReferences name this one) go first (Foreground) or after (Background), or lose
        that reference and stay (Orphan, the default of batch/v1 Jobs)."""
        obj = self.get(resource, namespace, name)
        policy = policy or ("Orphan" if resource is resources.JOBS else "Background")
        if policy not in {"Orphan", "Foreground", "Background"}:
            raise errors.bad_request(
                f"Unsupported value: {policy!r}: supported values: "
                '"Orphan", "Foreground", "Background"'
            )
        if resource is resources.NAMESPACES:
            self._delete_contents(name)
        uid = obj["metadata"]["uid"]
        if policy == "Orphan":
            self._orphan(namespace, uid)
        if policy == "Foreground":  # the owner goes last ...
            self._delete_dependents(namespace, uid)
        self.store.delete(resource, obj)
        if policy == "Background":  # ... or first, the collector following
            self._delete_dependents(namespace, uid)
        return {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Success",
            "details": {"name": name, "group": resource.group, "kind": resource.plural, "uid": uid},
        }

    def _dependents(self, namespace: str | None, uid: str) -> list[tuple[Resource, Json]]:
        return [
            (r, o)
            for r in self.served
            if r.namespaced
            for o in self.store.list(r, namespace)
            if owned_by(o, uid)
        ]

    def _orphan(self, namespace: str | None, uid: str) -> None:
        for resource, dependent in self._dependents(namespace, uid):
            before = copy.deepcopy(dependent)
            refs = dependent["metadata"]["ownerReferences"]
            dependent["metadata"]["ownerReferences"] = [r for r in refs if r.get("uid") != uid]
            if not dependent["metadata"]["ownerReferences"]:
                del dependent["metadata"]["ownerReferences"]
            self.store.save(resource, dependent, "MODIFIED", before)

    def _delete_dependents(self, namespace: str | None, uid: str) -> None:
        for resource, dependent in self._dependents(namespace, uid):
            self._delete_dependents(namespace, dependent["metadata"]["uid"])
            self.store.delete(resource, dependent)

    def _delete_contents(self, namespace: str) -> None:
        for resource in (r for r in self.served if r.namespaced):
            for obj in self.store.list(resource, namespace):
                self.store.delete(resource, obj)

    # -- shared steps ---------------------------------------------------------------------

    def _now(self) -> str:
        return timestamp(self.clock())

    def _require_namespace(self, resource: Resource, namespace: str | None) -> None:
        if (
            resource.namespaced
            and self.store.get(resources.NAMESPACES, None, namespace or "") is None
        ):
            raise errors.not_found(resources.NAMESPACES, namespace or "")

    def _current(self, resource: Resource, namespace: str | None, name: str, body: Json) -> Json:
        old = self.get(resource, namespace, name)
        wanted = (body.get("metadata") or {}).get("resourceVersion")
        if wanted and wanted != old["metadata"]["resourceVersion"]:
            raise errors.modified(resource, name)
        return old

    def _prepare(
        self, resource: Resource, namespace: str | None, old: Json | None, body: Json
    ) -> Json:
        """``body`` as stored: type and server-set metadata filled, status kept from ``old``
        (a main-resource write never changes it), defaulted, validated, generation counted."""
        new = copy.deepcopy(body)
        new["apiVersion"], new["kind"] = resource.api_version, resource.kind
        metadata = new.setdefault("metadata", {})
        for key in SERVER_METADATA:
            metadata.pop(key, None)
        if resource.namespaced:
            metadata["namespace"] = namespace
        kept = (
            old["metadata"] if old else {"uid": str(uuid.uuid4()), "creationTimestamp": self._now()}
        )
        metadata["uid"], metadata["creationTimestamp"] = kept["uid"], kept["creationTimestamp"]
        new.pop("status", None)
        if resource.status:
            new["status"] = (
                copy.deepcopy(old.get("status", {})) if old else initial_status(resource)
            )
        validation.default(resource, new)
        if old is None and resource is resources.JOBS:
            validation.default_job_selector(new)
        validation.check(resource, new, old)
        if resource.generation:
            metadata["generation"] = generation(old, new)
        return new

    def _updated(self, resource: Resource, old: Json | None, new: Json, manager: str) -> list[Json]:
        """managedFields after an update: its manager takes every leaf it changed."""
        before = fields.tracked(old) if old else set()
        changed = {p for p in fields.tracked(new) if fields.get(old or {}, p) != fields.get(new, p)}
        entries = old["metadata"].get("managedFields", []) if old else []
        kept = next(
            (paths for e, paths in fields.owners(entries) if fields.entry_is(e, manager, "Update")),
            set(),
        )
        mine = {p for p in kept if p in fields.tracked(new)} | changed
        entries = fields.disown(entries, changed | (before - fields.tracked(new)))
        made = fields.entry(manager, "Update", resource.api_version, self._now(), mine)
        return fields.record(entries, made, mine, take=False)

    def _store_update(
        self, resource: Resource, namespace: str | None, old: Json, body: Json, manager: str
    ) -> Json:
        new = self._prepare(resource, namespace, old, body)
        new["metadata"]["name"] = old["metadata"]["name"]
        new["metadata"]["managedFields"] = self._updated(resource, old, new, manager)
        return self._save(resource, old, new)

    def _save(self, resource: Resource, old: Json | None, new: Json) -> Json:
        if old is None:
            return self.store.save(resource, new, "ADDED")
        if _without_times(old) == _without_times(new):
            return old
        return self.store.save(resource, new, "MODIFIED", old)


def generation(old: Json | None, new: Json) -> int:
    """1 on create; one more whenever ``spec`` changes; metadata and status do not count."""
    if old is None:
        return 1
    before = int(old["metadata"].get("generation", 1))
    return before + 1 if old.get("spec") != new.get("spec") else before


def merge(target: Any, patch: Any) -> Any:
    """RFC 7386 JSON merge patch: maps merge, ``null`` deletes, anything else replaces."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    merged = copy.deepcopy(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            merged.pop(key, None)
        else:
            merged[key] = merge(merged.get(key), value)
    return merged
