"""Small simulated controllers that move workloads through their status, driven by the
test: each :meth:`Controllers.step` looks at every Deployment and Job once and writes the
status the real controllers would reach (through the status subresource, as
``kube-controller-manager``, so watches see MODIFIED events and a step that changes
nothing writes nothing).

* **Deployments** roll out in one step, unless a container's image was marked failing
  (:meth:`Controllers.fail_image`): then one new pod surges and never becomes ready, the
  old pods keep serving, ``Progressing`` stays ``ReplicaSetUpdated`` until the spec's
  ``progressDeadlineSeconds`` have passed on the double's clock, then turns False with
  ``ProgressDeadlineExceeded``. Re-applying the last good template (a rollback) completes.
* **Jobs** start in one step (``startTime``, ``active``) and finish in the next:
  ``Complete`` with every completion succeeded, or, for the pods a test made fail
  (:meth:`Controllers.fail_job`, by index for Indexed Jobs), one failure per pod per
  step until ``failed`` exceeds ``backoffLimit`` and the Job is ``Failed``.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from tests.kubeapi import resources
from tests.kubeapi.api import Api, timestamp

Json = dict[str, Any]
MANAGER = "kube-controller-manager"


def condition(
    before: list[Json], kind: str, status: bool, reason: str, message: str, *, now: str
) -> Json:
    """A condition whose ``lastTransitionTime`` moves only when its status does."""
    value = "True" if status else "False"
    old = next((c for c in before if c.get("type") == kind), {})
    moved = old.get("status") != value or old.get("reason") != reason
    return {
        "type": kind,
        "status": value,
        "reason": reason,
        "message": message,
        "lastUpdateTime": now if moved else old.get("lastUpdateTime", now),
        "lastTransitionTime": now
        if old.get("status") != value
        else old.get("lastTransitionTime", now),
    }


def ranges(indexes: set[int]) -> str:
    """``{0, 1, 2, 4}`` -> ``"0-2,4"``, the form of ``completedIndexes``."""
    parts: list[str] = []
    for i in sorted(indexes):
        if parts and parts[-1].split("-")[-1] == str(i - 1):
            parts[-1] = f"{parts[-1].split('-')[0]}-{i}"
        else:
            parts.append(str(i))
    return ",".join(parts)


def _key(obj: Json) -> tuple[str, str]:
    return obj["metadata"]["namespace"], obj["metadata"]["name"]


def _images(obj: Json) -> set[str]:
    pod = obj["spec"].get("template", {}).get("spec", {})
    return {c.get("image", "") for c in pod.get("containers", [])}


@dataclass
class Controllers:
    """The Deployment and Job controllers of one double."""

    api: Api
    clock: Callable[[], datetime]
    failing_images: set[str] = field(default_factory=set)
    failing_pods: dict[tuple[str, str], set[int]] = field(default_factory=dict)
    _stable: dict[tuple[str, str], str] = field(default_factory=dict)
    """Each Deployment's last template that became available (its ReplicaSet)."""
    _started: dict[tuple[str, str, str], datetime] = field(default_factory=dict)

    def fail_image(self, image: str) -> None:
        """From now on, pods of this image never become ready."""
        self.failing_images.add(image)

    def fail_job(self, namespace: str, name: str, indexes: set[int] | None = None) -> None:
        """The pods of this Job fail: those of ``indexes`` (Indexed Jobs), else every one."""
        self.failing_pods[(namespace, name)] = indexes if indexes is not None else {-1}

    def step(self) -> None:
        """Move every Deployment and Job one step on."""
        with self.api.store.lock:
            for obj in self.api.store.list(resources.DEPLOYMENTS, None):
                self._write(resources.DEPLOYMENTS, obj, self.deployment_status(obj))
            for obj in self.api.store.list(resources.JOBS, None):
                self._write(resources.JOBS, obj, self.job_status(obj))

    def _write(self, resource: resources.Resource, obj: Json, status: Json) -> None:
        namespace, name = _key(obj)
        self.api.write_status(resource, namespace, name, {"status": status}, manager=MANAGER)

    # -- Deployments ------------------------------------------------------------------------

    def deployment_status(self, obj: Json) -> Json:
        key, spec = _key(obj), obj["spec"]
        template = json.dumps(spec.get("template"), sort_keys=True)
        if self._stable.get(key) == template or not _images(obj) & self.failing_images:
            self._stable[key] = template
            return self._available(obj)
        started = self._started.setdefault((*key, template), self.clock())
        late = self.clock() - started >= timedelta(seconds=spec["progressDeadlineSeconds"])
        return self._stuck(obj, late=late, serving=key in self._stable)

    def _available(self, obj: Json) -> Json:
        replicas, now = obj["spec"]["replicas"], timestamp(self.clock())
        before = obj.get("status", {}).get("conditions", [])
        name = obj["metadata"]["name"]
        return {
            "observedGeneration": obj["metadata"]["generation"],
            "replicas": replicas,
            "updatedReplicas": replicas,
            "readyReplicas": replicas,
            "availableReplicas": replicas,
            "conditions": [
                condition(
                    before,
                    "Available",
                    True,
                    "MinimumReplicasAvailable",
                    "Deployment has minimum availability.",
                    now=now,
                ),
                condition(
                    before,
                    "Progressing",
                    True,
                    "NewReplicaSetAvailable",
                    f'ReplicaSet "{name}" has successfully progressed.',
                    now=now,
                ),
            ],
        }

    def _stuck(self, obj: Json, *, late: bool, serving: bool) -> Json:
        replicas, now = obj["spec"]["replicas"], timestamp(self.clock())
        before = obj.get("status", {}).get("conditions", [])
        old_ready = obj.get("status", {}).get("availableReplicas", 0) if serving else 0
        name = obj["metadata"]["name"]
        progressing = (
            condition(
                before,
                "Progressing",
                False,
                "ProgressDeadlineExceeded",
                f'ReplicaSet "{name}" has timed out progressing.',
                now=now,
            )
            if late
            else condition(
                before,
                "Progressing",
                True,
                "ReplicaSetUpdated",
                f'ReplicaSet "{name}" is progressing.',
                now=now,
            )
        )
        available = (
            condition(
                before,
                "Available",
                True,
                "MinimumReplicasAvailable",
                "Deployment has minimum availability.",
                now=now,
            )
            if old_ready or not replicas
            else condition(
                before,
                "Available",
                False,
                "MinimumReplicasUnavailable",
                "Deployment does not have minimum availability.",
                now=now,
            )
        )
        return {
            "observedGeneration": obj["metadata"]["generation"],
            "replicas": old_ready + 1,
            "updatedReplicas": 1,
            "readyReplicas": old_ready,
            "availableReplicas": old_ready,
            "unavailableReplicas": max(replicas - old_ready, 1),
            "conditions": [available, progressing],
        }

    # -- Jobs -------------------------------------------------------------------------------

    def job_status(self, obj: Json) -> Json:
        status = obj.get("status") or {}
        if any(
            c["status"] == "True" and c["type"] in {"Complete", "Failed"}
            for c in status.get("conditions", [])
        ):
            return status
        now = timestamp(self.clock())
        if "startTime" not in status:
            return {"startTime": now, "active": obj["spec"]["parallelism"], "ready": 0}
        return self._finish(obj, status, now=now)

    def _finish(self, obj: Json, status: Json, now: str) -> Json:
        spec, completions = obj["spec"], obj["spec"]["completions"]
        failing = self.failing_pods.get(_key(obj), set())
        failing = set(range(completions)) if -1 in failing else failing & set(range(completions))
        done = set(range(completions)) - failing
        made: Json = {
            "startTime": status["startTime"],
            "succeeded": len(done),
            "active": len(failing),
            "ready": 0,
        }
        if failing:
            made["failed"] = status.get("failed", 0) + len(failing)
        if spec.get("completionMode") == "Indexed" and done:
            made["completedIndexes"] = ranges(done)
        if made.get("failed", 0) > spec["backoffLimit"]:
            made["active"] = 0
            made["conditions"] = [
                condition(
                    [],
                    "Failed",
                    True,
                    "BackoffLimitExceeded",
                    "Job has reached the specified backoff limit",
                    now=now,
                )
            ]
        elif not failing:
            made["completionTime"] = now
            made["conditions"] = [
                condition(
                    [],
                    "Complete",
                    True,
                    "CompletionsReached",
                    "Reached expected number of succeeded pods",
                    now=now,
                )
            ]
        return made
