"""Deployments on a Kubernetes plane: apply the rendered objects, follow the rollout,
roll back a failed one, heal drift, delete by inventory.

Health is the Deployment's own status, as ``kubectl rollout status`` reads it: the
controller saw the newest generation, every replica runs the new template and is
available; ``Progressing=False`` with ``ProgressDeadlineExceeded`` is a failed rollout.
A failed rollout with ``autoRollback`` puts back the pod template that ran before (what
``kubectl rollout undo`` does) and reports ``Failed`` with why, so the endpoint keeps
serving the last good version while the agent retries (ADR 0012).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from agent.runtimes.base import ApplyContext
from agent.runtimes.kubernetes import render
from agent.runtimes.kubernetes.cluster import Cluster, Manifest
from agent.runtimes.kubernetes.inventory import Inventory
from schemas import commands, signed
from schemas.common import parse_duration
from schemas.observed import EndpointObserved

POLL = 0.2
"""Seconds between two reads of a rollout in progress."""
GRACE = 30.0
"""Seconds past the progress deadline the agent waits for the controller to say so."""
SCALED_OBJECT = ("keda.sh/v1alpha1", "ScaledObject")
OWNED = (
    ("apps/v1", "Deployment"),
    ("v1", "Service"),
    ("autoscaling/v2", "HorizontalPodAutoscaler"),
    SCALED_OBJECT,
)
"""The kinds a Deployment command makes: what delete and prune look through."""


def owned(*, keda: bool) -> tuple[tuple[str, str], ...]:
    """The kinds of :data:`OWNED` the cluster serves: KEDA's only when it is installed."""
    return OWNED if keda else tuple(kind for kind in OWNED if kind != SCALED_OBJECT)


def is_ours(found: Mapping[str, Any]) -> bool:
    """Whether an object with the inventory labels is Gitplane's to prune or delete: not one
    that another object owns (KEDA's HPA of a ScaledObject copies its labels)."""
    return not (found.get("metadata") or {}).get("ownerReferences")


def rollout(live: Mapping[str, Any]) -> tuple[str, str]:
    """A Deployment's rollout as a phase and why: ``Ready``, ``Progressing`` or
    ``Failed`` (pure; ``kubectl rollout status`` reads the same fields)."""
    meta, spec, status = live.get("metadata", {}), live.get("spec", {}), live.get("status") or {}
    if status.get("observedGeneration", 0) < meta.get("generation", 0):
        return "Progressing", "waiting for the controller to see the new generation"
    conditions = {c.get("type"): c for c in status.get("conditions") or []}
    progressing = conditions.get("Progressing", {})
    if progressing.get("status") == "False" and progressing.get("reason") == (
        "ProgressDeadlineExceeded"
    ):
        said = progressing.get("message") or "no progress past progressDeadlineSeconds"
        return "Failed", f"rollout failed (ProgressDeadlineExceeded): {said}"
    wanted = spec.get("replicas", 1)
    updated = status.get("updatedReplicas", 0)
    available = status.get("availableReplicas", 0)
    if updated < wanted:
        return "Progressing", f"{updated} of {wanted} replica(s) updated"
    if status.get("replicas", 0) > updated:
        return "Progressing", f"{status['replicas'] - updated} old replica(s) still running"
    if available < updated:
        return "Progressing", f"{available} of {updated} updated replica(s) available"
    return "Ready", ""


def drift(wanted: Any, live: Any, path: str = "") -> Iterator[str]:
    """The fields of ``wanted`` that ``live`` does not hold as rendered (pure). What the
    server adds (defaults, status, other managers' fields) is not drift."""
    if isinstance(wanted, dict):
        if not isinstance(live, dict):
            yield path or "(object)"
            return
        for key, value in wanted.items():
            yield from drift(value, live.get(key), f"{path}.{key}" if path else key)
    elif isinstance(wanted, list):
        if not isinstance(live, list) or len(live) != len(wanted):
            yield path
            return
        for i, (a, b) in enumerate(zip(wanted, live, strict=True)):
            yield from drift(a, b, f"{path}[{i}]")
    elif str(wanted) != str(live):  # "1" and 1: quantities and ports may come back either way
        yield path


class Deployments:
    """Apply, observe and delete Deployment commands in one namespace."""

    def __init__(
        self,
        cluster: Cluster,
        target: render.Target,
        *,
        clock: Callable[[], float] = time.monotonic,
        poll: float = POLL,
        inventory: Inventory | None = None,
    ) -> None:
        self.cluster = cluster
        self.target = target
        self.clock = clock
        self.poll = poll
        self.inventory = inventory
        """Where observing reads, once synced (no request per cycle); else the API."""

    def apply(self, command: signed.Command, context: ApplyContext) -> signed.ResourceStatus:
        """Apply the objects that differ from what runs (with the cache, an object already
        as rendered is not sent: one request per changed object), prune what the command
        no longer makes, follow the rollout."""
        context.cancel.check()
        objects = render.deployment(command, self.target)
        before = self._read("apps/v1", "Deployment", command.name)
        generation = 0
        for manifest in objects:
            live = self._read(
                manifest["apiVersion"], manifest["kind"], manifest["metadata"]["name"]
            )
            cached = self.inventory is not None and self.inventory.synced
            if not (cached and live is not None and next(drift(manifest, live), None) is None):
                live = self.cluster.apply(manifest)
            if manifest["kind"] == "Deployment" and live is not None:
                generation = live.get("metadata", {}).get("generation", 0)
        self._prune(command, objects)
        return self._follow(command, before, context, generation)

    def observe(
        self, command: signed.Command, last: signed.ResourceStatus, context: ApplyContext
    ) -> signed.ResourceStatus:
        """What runs now; with self-heal, objects changed or deleted by anyone else are put
        back (one apply each), otherwise the drift is reported. A failed rollout stays
        ``Failed`` and rolled back: applying it again is the agent's retry, not a heal."""
        if last.phase == "Failed":
            return last
        objects = render.deployment(command, self.target)
        changed = [m for m in objects if self._drifted(m)]
        if changed and context.self_heal:
            for manifest in changed:
                self.cluster.apply(manifest)
        live = self._read("apps/v1", "Deployment", command.name)
        if live is None:
            return self._status(command, "Progressing", "the Deployment is gone", None)
        phase, why = rollout(live)
        if changed and not context.self_heal:
            fields = ", ".join(m["kind"] for m in changed)
            why = f"drifted from the command ({fields}); selfHeal is off"
        seen = self._status(command, phase, why, live)
        return last if seen == last else seen

    def delete(self, command: signed.Command) -> None:
        """Delete every object of the resource, found by its inventory labels."""
        selector = render.labels(self.target, command.kind, command.name)
        for api_version, kind in owned(keda=self.target.keda):
            for found in self.cluster.select(api_version, kind, selector):
                if is_ours(found):
                    self.cluster.delete(api_version, kind, found["metadata"]["name"])

    def _prune(self, command: signed.Command, objects: list[Manifest]) -> None:
        """Objects an earlier command made for the resource that this one does not (the HPA
        once ``autoscaling`` is removed, or replaced by a ScaledObject)."""
        keep = {(m["kind"], m["metadata"]["name"]) for m in objects}
        selector = render.labels(self.target, command.kind, command.name)
        for api_version, kind in owned(keda=self.target.keda):
            for found in self._select(api_version, kind, selector):
                if (kind, found["metadata"]["name"]) not in keep and is_ours(found):
                    self.cluster.delete(api_version, kind, found["metadata"]["name"])

    def _follow(
        self,
        command: signed.Command,
        before: Manifest | None,
        context: ApplyContext,
        generation: int,
    ) -> signed.ResourceStatus:
        """Until the rollout of ``generation`` (what the apply stored) ends; the cache's
        copy counts once it shows that generation, so an older copy never reads Ready."""
        spec = commands.read(command, commands.DeploymentCommand).spec
        deadline = self.clock() + parse_duration(spec.rollout.progress_deadline) + GRACE
        while True:
            live = self._read("apps/v1", "Deployment", command.name)
            behind = (live or {}).get("metadata", {}).get("generation", 0) < generation
            phase, why = ("Progressing", "") if behind else rollout(live or {})
            if phase == "Ready":
                return self._status(command, phase, "", live)
            if phase == "Failed" or self.clock() > deadline:
                why = why if phase == "Failed" else "rollout failed: no progress past its deadline"
                return self._failed(command, before, why, spec.rollout.auto_rollback, live)
            if context.cancel.wait(self.poll):
                context.cancel.check()

    def _failed(
        self,
        command: signed.Command,
        before: Manifest | None,
        why: str,
        auto_rollback: bool,
        live: Manifest | None,
    ) -> signed.ResourceStatus:
        previous = (before or {}).get("metadata", {}).get("annotations", {}).get(render.DIGEST)
        if not auto_rollback or before is None or previous == command.digest:
            return self._status(command, "Failed", why, live)
        undo = render.deployment(command, self.target)[0]
        undo["spec"]["template"] = before["spec"]["template"]
        self.cluster.apply(undo)
        return self._status(command, "Failed", f"{why}; rolled back to {previous}", live)

    def _select(self, api_version: str, kind: str, selector: Mapping[str, str]) -> list[Manifest]:
        if self.inventory is not None and self.inventory.synced:
            return self.inventory.select(api_version, kind, selector)
        return self.cluster.select(api_version, kind, selector)

    def _read(self, api_version: str, kind: str, name: str) -> Manifest | None:
        if self.inventory is not None and self.inventory.synced:
            return self.inventory.get(api_version, kind, name)
        return self.cluster.get(api_version, kind, name)

    def _drifted(self, manifest: Manifest) -> bool:
        api_version, kind = manifest["apiVersion"], manifest["kind"]
        live = self._read(api_version, kind, manifest["metadata"]["name"])
        return live is None or next(drift(manifest, live), None) is not None

    def _status(
        self, command: signed.Command, phase: str, message: str, live: Manifest | None
    ) -> signed.ResourceStatus:
        pinned = commands.read(command, commands.DeploymentCommand).resolved.model
        status = (live or {}).get("status") or {}
        scaler = render.scaler(command, self.target)
        warning = scaler.warning if scaler is not None else ""
        observed = EndpointObserved(
            url=f"http://{command.name}.{self.target.namespace}.svc",
            served_version=pinned.version,
            ready_replicas=status.get("readyReplicas", 0),
            desired_replicas=(live or {}).get("spec", {}).get("replicas", 0),
            scaler=scaler.kind if scaler is not None else None,
            scaler_warning=warning or None,
        )
        return signed.ResourceStatus(
            kind="Deployment",
            name=command.name,
            phase=phase,  # type: ignore[arg-type]
            digest=command.digest,
            observed=observed.flat(),
            message="; ".join(m for m in (message, warning) if m),
        )
