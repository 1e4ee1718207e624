"""Feature sets on a Kubernetes plane: a ConfigMap with the signed spec, a CronJob for the
schedule, an Indexed Job for the backfill's chunks (:func:`render.featureset`); the pods run
the local runtime's computation (:mod:`.features_job`) into Redis and the plane's volume.

Applying sends the objects and follows the backfill Job to its end (the local runtime
backfills in its first apply too); scheduled runs happen in the CronJob's Jobs, which the
agent observes. A spec without a backfill computes nothing until its first scheduled time
(``Pending``). The status is summarised in one place (:meth:`FeatureSets._status`)
from the Jobs' own conditions and their pods' termination messages (one line of JSON each):

* ``Failed`` while the newest Job (the backfill, or the latest scheduled run) failed
  (``BackoffLimitExceeded`` after ``retry.limit`` retries, ``DeadlineExceeded`` past
  ``timeout``), with the pod's own error;
* ``Progressing`` while the backfill Job runs (``n of m chunks``);
* ``Ready`` once the newest Job completed, with its counts (``rows``, ``sourceRows``,
  ``entities``, ``entities.<name>``; a backfill's summed over its chunks, its entities the
  most any chunk wrote), else ``Pending`` before anything ran.

A Job's pods cannot change, so a backfill Job already made for the command is never sent
again; a new command makes a new one (named by its digest). It reads up to the time the
reconciler issued the command (the signed ``issued_at`` of its bundle), not the time it is
applied: every object is then a function of the command as signed, the same at every apply
and exactly what ``gitplane agent render`` prints. What falls due after it is the
CronJob's: a scheduled run starts where the backfill's chunks end.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from datetime import datetime
from typing import Any, Literal

from agent.runtimes.base import ApplyContext
from agent.runtimes.kubernetes import render
from agent.runtimes.kubernetes.cluster import Cluster, Manifest
from agent.runtimes.kubernetes.inventory import Inventory, Reader
from schemas import commands, signed
from schemas.common import parse_duration
from schemas.errors import GitplaneError

POLL = 0.2
"""Seconds between two reads of a backfill in progress."""
GRACE = 30.0
"""Seconds past the Job's deadline the agent waits for the controller to say so."""
OWNED = (("v1", "ConfigMap"), ("batch/v1", "CronJob"), ("batch/v1", "Job"))
"""The kinds a FeatureSet command makes (Jobs: the backfill's and the CronJob's)."""
JOB_NAME = "batch.kubernetes.io/job-name"
"""The label the Job controller puts on a Job's pods."""
Phase = Literal["Ready", "Progressing", "Failed", "Pending"]
Observed = dict[str, str | int | bool]


def until(context: ApplyContext) -> datetime:
    """The backfill's end: when the command was issued (``now`` for a command whose issue
    time a journal written before it was kept does not know)."""
    return context.issued_at or context.now


class FeatureSets:
    """Apply, observe and delete FeatureSet commands in one namespace."""

    def __init__(
        self,
        cluster: Cluster,
        target: render.Target,
        *,
        inventory: Inventory | None = None,
        clock: Callable[[], float] = time.monotonic,
        poll: float = POLL,
    ) -> None:
        self.cluster = cluster
        self.target = target
        self.clock = clock
        self.poll = poll
        self.reader = Reader(cluster, inventory)
        """Reads the inventory once synced (no request per cycle); else the API."""
        self._outcomes: dict[str, list[dict[str, Any]]] = {}
        """Termination messages of finished Jobs, by uid: read once, never again."""

    def apply(self, command: signed.Command, context: ApplyContext) -> signed.ResourceStatus:
        """Send the ConfigMap, the CronJob and (once per command) the backfill Job; prune
        what an earlier command made that this one does not; follow the backfill to its
        end, as the local runtime backfills in its first apply."""
        context.cancel.check()
        try:
            objects = render.featureset(command, self.target, until(context))
        except (ValueError, GitplaneError) as exc:
            return _status(command, "Failed", f"FeatureSet/{command.name}: {exc}", {})
        for manifest in objects:
            if manifest["kind"] == "Job" and self.reader.get(*_key(manifest)) is not None:
                continue  # a Job's pods cannot change: it runs as it was made
            self.cluster.apply(manifest)
        self._prune(command, objects)
        backfills = any(m["kind"] == "Job" for m in objects)
        return self._follow(command, context, backfills=backfills)

    def _follow(
        self, command: signed.Command, context: ApplyContext, *, backfills: bool
    ) -> signed.ResourceStatus:
        """The status once the backfill Job ended (or its ``timeout`` and a grace passed);
        at once when there is none. A backfill Job just sent may not be in the watch cache
        yet: until it shows, the feature set is still progressing, not ``Pending``."""
        timeout = parse_duration(commands.read(command, commands.FeatureSetCommand).spec.timeout)
        deadline = self.clock() + timeout + GRACE
        while True:
            seen = self._status(command)
            waiting = seen.phase == "Progressing" or (backfills and seen.phase == "Pending")
            if not waiting or self.clock() > deadline:
                return seen
            if context.cancel.wait(self.poll):
                context.cancel.check()

    def observe(
        self, command: signed.Command, last: signed.ResourceStatus, context: ApplyContext
    ) -> signed.ResourceStatus:
        """What the Jobs show now; the ConfigMap or CronJob put back when someone deleted
        them and ``context.self_heal`` (a refused command stays as it was reported)."""
        if last.phase == "Failed" and not last.observed:
            return last
        missing = [m for m in self._wanted(command) if self.reader.get(*m) is None]
        if missing and context.self_heal:
            return self.apply(command, context)
        seen = self._status(command)
        if missing:
            gone = ", ".join(kind for _, kind, _ in missing)
            why = f"drifted from the command ({gone} deleted); selfHeal is off"
            seen = seen.model_copy(update={"message": why})
        return last if seen == last else seen

    def _wanted(self, command: signed.Command) -> list[tuple[str, str, str]]:
        """The objects every observation expects: the ConfigMap, the CronJob if scheduled."""
        wanted = [("v1", "ConfigMap", f"{command.name}-featureset")]
        if _scheduled(command):
            wanted.append(("batch/v1", "CronJob", command.name))
        return wanted

    def delete(self, command: signed.Command) -> None:
        """Delete every object of the resource (and the Jobs' pods), by its labels. Redis
        values and the volume's files are the plane's data: they stay."""
        selector = render.labels(self.target, command.kind, command.name)
        for api_version, kind in OWNED:
            for found in self.cluster.select(api_version, kind, selector):
                self.cluster.delete(api_version, kind, found["metadata"]["name"])

    def _prune(self, command: signed.Command, objects: list[Manifest]) -> None:
        """A CronJob whose schedule was removed, an earlier command's backfill Job."""
        keep = {(m["kind"], m["metadata"]["name"]) for m in objects}
        selector = render.labels(self.target, command.kind, command.name)
        for api_version, kind in OWNED:
            for found in self.reader.select(api_version, kind, selector):
                name = found["metadata"]["name"]
                if (kind, name) not in keep and not _owned_by_cron_job(found):
                    self.cluster.delete(api_version, kind, name)

    def _status(self, command: signed.Command) -> signed.ResourceStatus:
        """The one place a feature set's status is summarised."""
        selector = render.labels(self.target, command.kind, command.name)
        jobs = self.reader.select("batch/v1", "Job", selector)
        backfill = next((j for j in jobs if _name(j) == render.backfill_name(command)), None)
        runs = sorted((j for j in jobs if _owned_by_cron_job(j)), key=_created)
        newest = runs[-1] if runs else backfill
        if newest is None:
            return _status(command, "Pending", "waiting for the schedule's first run", {})
        ended, failed = _finished(newest)
        if failed:
            return _status(command, "Failed", self._failure(newest, failed), _times(newest))
        if newest is backfill and not ended:
            return _status(command, "Progressing", _chunks(backfill), {})
        if not ended:  # a scheduled run under way: report the last one that ended
            done = [j for j in [backfill, *runs] if j is not None and _finished(j)[0]]
            if not done:
                return _status(command, "Progressing", "the first run is under way", {})
            newest = done[-1]
        return _status(command, "Ready", "", {**self._counts(newest), **_times(newest)})

    def _counts(self, job: Manifest) -> Observed:
        outcomes = [o for o in self._outcomes_of(job) if "rows" in o]
        by_entity: dict[str, int] = {}
        for outcome in outcomes:
            for entity, count in (outcome.get("byEntity") or {}).items():
                by_entity[entity] = max(by_entity.get(entity, 0), int(count))
        counts: Observed = {
            "rows": sum(int(o.get("rows", 0)) for o in outcomes),
            "sourceRows": sum(int(o.get("sourceRows", 0)) for o in outcomes),
            "entities": max((int(o.get("entities", 0)) for o in outcomes), default=0),
            **{f"entities.{entity}": n for entity, n in by_entity.items()},
        }
        chunks = sum(int(o.get("chunks", 0)) for o in outcomes)
        return {**counts, **({"backfillChunks": chunks} if chunks else {})}

    def _failure(self, job: Manifest, why: str) -> str:
        errors = [str(o["error"]) for o in self._outcomes_of(job) if o.get("error")]
        said = f"{_name(job)} failed ({why})"
        return f"{said}: {errors[-1]}"[:4000] if errors else said

    def _outcomes_of(self, job: Manifest) -> list[dict[str, Any]]:
        """The pods' termination messages, read once per finished Job."""
        uid = str(job["metadata"].get("uid") or _name(job))
        if uid not in self._outcomes:
            pods = self.cluster.select("v1", "Pod", {JOB_NAME: _name(job)})
            self._outcomes[uid] = [o for pod in pods for o in _messages(pod)]
        return self._outcomes[uid]


def _status(
    command: signed.Command, phase: Phase, message: str, observed: Observed
) -> signed.ResourceStatus:
    return signed.ResourceStatus(
        kind="FeatureSet",
        name=command.name,
        phase=phase,
        digest=command.digest,
        message=message,
        observed=observed,
    )


def _key(manifest: Manifest) -> tuple[str, str, str]:
    return manifest["apiVersion"], manifest["kind"], manifest["metadata"]["name"]


def _name(job: Manifest) -> str:
    return str(job["metadata"]["name"])


def _created(job: Manifest) -> str:
    return str(job["metadata"].get("creationTimestamp") or "")


def _scheduled(command: signed.Command) -> bool:
    return commands.read(command, commands.FeatureSetCommand).spec.schedule is not None


def _owned_by_cron_job(job: Manifest) -> bool:
    owners = job.get("metadata", {}).get("ownerReferences") or []
    return any(owner.get("kind") == "CronJob" for owner in owners)


def _finished(job: Manifest) -> tuple[bool, str]:
    """Whether the Job ended, and why it failed (empty when it did not)."""
    conditions = (job.get("status") or {}).get("conditions") or []
    true = {c.get("type"): c for c in conditions if c.get("status") == "True"}
    if "Failed" in true:
        return True, str(true["Failed"].get("reason") or "Failed")
    return "Complete" in true, ""


def _chunks(job: Manifest) -> str:
    done, wanted = (job.get("status") or {}).get("succeeded", 0), job["spec"].get("completions")
    return f"backfill: {done} of {wanted} chunk(s) computed"


def _times(job: Manifest) -> Observed:
    status = job.get("status") or {}
    ended = status.get("completionTime")
    return {"lastJob": _name(job), **({"lastRun": ended} if ended else {})}


def _messages(pod: Manifest) -> list[dict[str, Any]]:
    """The JSON outcomes in a pod's termination messages (what is not JSON is skipped)."""
    found = []
    for container in (pod.get("status") or {}).get("containerStatuses") or []:
        text = ((container.get("state") or {}).get("terminated") or {}).get("message") or ""
        try:
            outcome = json.loads(text)
        except ValueError:
            continue
        if isinstance(outcome, dict):
            found.append(outcome)
    return found
