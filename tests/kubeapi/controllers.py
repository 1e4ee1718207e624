"""Small simulated controllers that move workloads through their status, driven by the
test: each :meth:`Controllers.step` looks at every Deployment, CronJob and Job once and writes the
status the real controllers would reach (through the status subresource, as
``kube-controller-manager``, so watches see MODIFIED events and a step that changes
nothing writes nothing).

* **Deployments** roll out in one step, unless a container's image was marked failing
  (:meth:`Controllers.fail_image`): then one new pod surges and never becomes ready, the
  old pods keep serving, ``Progressing`` stays ``ReplicaSetUpdated`` until the spec's
  ``progressDeadlineSeconds`` have passed on the double's clock, then turns False with
  ``ProgressDeadlineExceeded``. Re-applying the last good template (a rollback) completes.
* **Jobs** start their pods in one step (``startTime``, ``active``, pods Running) and
  finish in the next: ``Complete`` with every completion succeeded, or, for the pods a
  test made fail (:meth:`Controllers.fail_job`, by index for Indexed Jobs), one failed
  pod (and a new one) per index per step until ``failed`` exceeds ``backoffLimit`` and
  the Job is ``Failed`` (:mod:`tests.kubeapi.jobs` decides; this module does the writes).
* **CronJobs** start the Job that is due on the double's clock (:mod:`tests.kubeapi.cronjobs`),
  honour ``concurrencyPolicy`` and report ``active``, ``lastScheduleTime`` and
  ``lastSuccessfulTime``.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from tests.kubeapi import conditions, cronjobs, jobs, realjobs, resources
from tests.kubeapi.api import Api, owned_by, timestamp
from tests.kubeapi.conditions import condition

Json = dict[str, Any]
MANAGER = "kube-controller-manager"


def _key(obj: Json) -> tuple[str, str]:
    return obj["metadata"]["namespace"], obj["metadata"]["name"]


def _images(obj: Json) -> set[str]:
    pod = obj["spec"].get("template", {}).get("spec", {})
    return {c.get("image", "") for c in pod.get("containers", [])}


def _args(obj: Json) -> set[str]:
    pod = obj["spec"].get("template", {}).get("spec", {})
    return {a for c in pod.get("containers", []) for a in c.get("args", [])}


@dataclass
class Controllers:
    """The Deployment and Job controllers of one double."""

    api: Api
    clock: Callable[[], datetime]
    failing_images: set[str] = field(default_factory=set)
    failing_args: set[str] = field(default_factory=set)
    failing_pods: dict[tuple[str, str], set[int]] = field(default_factory=dict)
    kubelet: bool = False
    """Pods run for real (:mod:`tests.kubeapi.kubelet`): a Job's status follows its pods'
    phases, not :meth:`fail_job`."""
    _stable: dict[tuple[str, str], str] = field(default_factory=dict)
    """Each Deployment's last template that became available (its ReplicaSet)."""
    _started: dict[tuple[str, str, str], datetime] = field(default_factory=dict)

    def fail_image(self, image: str) -> None:
        """From now on, pods of this image never become ready."""
        self.failing_images.add(image)

    def fail_args(self, argument: str) -> None:
        """From now on, pods with a container given this argument never become ready (a
        server that crashes at start on it: a model version its registry does not have)."""
        self.failing_args.add(argument)

    def fail_job(self, namespace: str, name: str, indexes: set[int] | None = None) -> None:
        """The pods of this Job fail: those of ``indexes`` (Indexed Jobs), else every one."""
        self.failing_pods[(namespace, name)] = indexes if indexes is not None else {-1}

    def step(self) -> None:
        """Move every Deployment and Job one step on."""
        with self.api.store.lock:
            for obj in self.api.store.list(resources.DEPLOYMENTS, None):
                self._write(resources.DEPLOYMENTS, obj, self.deployment_status(obj))
            for obj in self.api.store.list(resources.CRONJOBS, None):
                self._step_cron_job(obj)
            for obj in self.api.store.list(resources.JOBS, None):
                self._step_job(obj)

    def _write(self, resource: resources.Resource, obj: Json, status: Json) -> None:
        namespace, name = _key(obj)
        self.api.write_status(resource, namespace, name, {"status": status}, manager=MANAGER)

    # -- Deployments ------------------------------------------------------------------------

    def deployment_status(self, obj: Json) -> Json:
        key, spec = _key(obj), obj["spec"]
        template = json.dumps(spec.get("template"), sort_keys=True)
        failing = _images(obj) & self.failing_images or _args(obj) & self.failing_args
        if self._stable.get(key) == template or not failing:
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
                condition(before, conditions.AVAILABLE, now=now),
                condition(before, conditions.ROLLED_OUT, name=name, now=now),
            ],
        }

    def _stuck(self, obj: Json, *, late: bool, serving: bool) -> Json:
        """A rollout whose new pods never become ready: the old ones (if any) still serve."""
        replicas, now = obj["spec"]["replicas"], timestamp(self.clock())
        before = obj.get("status", {}).get("conditions", [])
        old_ready = obj.get("status", {}).get("availableReplicas", 0) if serving else 0
        progress = conditions.TIMED_OUT if late else conditions.ROLLING
        enough = old_ready or not replicas
        available = conditions.AVAILABLE if enough else conditions.UNAVAILABLE
        return {
            "observedGeneration": obj["metadata"]["generation"],
            "replicas": old_ready + 1,
            "updatedReplicas": 1,
            "readyReplicas": old_ready,
            "availableReplicas": old_ready,
            "unavailableReplicas": max(replicas - old_ready, 1),
            "conditions": [
                condition(before, available, now=now),
                condition(before, progress, name=obj["metadata"]["name"], now=now),
            ],
        }

    # -- Jobs -------------------------------------------------------------------------------

    def _step_job(self, job: Json) -> None:
        before = job.get("status") or {}
        if jobs.finished(before):
            return
        if self.kubelet:
            self._step_real_job(job)
            return
        marked = self.failing_pods.get(_key(job), set())
        failing = jobs.failing_indexes(job["spec"]["completions"], marked)
        status = jobs.next_status(job, failing, now=timestamp(self.clock()))
        self._write(resources.JOBS, job, status)
        for pod in self._running_pods(job):
            phase = "Failed" if jobs.index_of(pod) in failing else "Succeeded"
            # what else the pod's status says (its containers', written by a test) stays
            self._write(resources.PODS, pod, {**pod["status"], "phase": phase})
        if not jobs.finished(status):
            starting = jobs.first_indexes(job) if "startTime" not in before else sorted(failing)
            for index in starting:
                self._start_pod(job, index)

    def _step_real_job(self, job: Json) -> None:
        """Kubelet mode: the status the pods earned; a finished Job's running pods are
        deleted (the kubelet stops them), an unfinished one's missing pods started."""
        pods = self._pods_of(job)
        status = realjobs.observed_status(job, pods, now=self.clock())
        self._write(resources.JOBS, job, status)
        if jobs.finished(status):
            for pod in pods:
                if pod.get("status", {}).get("phase") in realjobs.ACTIVE | {None}:
                    self.api.delete(resources.PODS, *_key(pod), "Background")
            return
        for index in realjobs.to_start(job, pods):
            self._start_pod(job, index)

    def _pods_of(self, job: Json) -> list[Json]:
        namespace, uid = job["metadata"]["namespace"], job["metadata"]["uid"]
        return [p for p in self.api.store.list(resources.PODS, namespace) if owned_by(p, uid)]

    def _running_pods(self, job: Json) -> list[Json]:
        return [p for p in self._pods_of(job) if p.get("status", {}).get("phase") == "Running"]

    def _start_pod(self, job: Json, index: int) -> None:
        attempt = sum(jobs.index_of(p) == index for p in self._pods_of(job))
        namespace = job["metadata"]["namespace"]
        made = self.api.create(resources.PODS, namespace, jobs.pod(job, index, attempt), MANAGER)
        if self.kubelet:
            return  # the kubelet reports the pod's status
        self._write(
            resources.PODS, made, {"phase": "Running", "startTime": timestamp(self.clock())}
        )

    # -- CronJobs ---------------------------------------------------------------------------

    def _step_cron_job(self, cron_job: Json) -> None:
        """Forget finished Jobs (the last success noted), then start the one that is due."""
        namespace = cron_job["metadata"]["namespace"]
        status = dict(cron_job.get("status") or {})
        active = []
        for ref in status.pop("active", []):
            job = self.api.store.get(resources.JOBS, namespace, ref["name"])
            if job is not None and not jobs.finished(job.get("status") or {}):
                active.append(ref)
            elif job is not None and job["status"].get("completionTime"):
                status["lastSuccessfulTime"] = job["status"]["completionTime"]
        at = cronjobs.due(cron_job, self.clock())
        if at is not None and self._may_start(cron_job, active):
            made = self.api.create(
                resources.JOBS, namespace, cronjobs.job_for(cron_job, at), MANAGER
            )
            active = [
                *([] if cron_job["spec"].get("concurrencyPolicy") == "Replace" else active),
                cronjobs.reference(made),
            ]
            status["lastScheduleTime"] = timestamp(at)
        self._write(
            resources.CRONJOBS, cron_job, {**status, **({"active": active} if active else {})}
        )

    def _may_start(self, cron_job: Json, active: list[Json]) -> bool:
        """Allow: always; Forbid: not while a Job runs; Replace: after deleting those."""
        policy = cron_job["spec"].get("concurrencyPolicy", "Allow")
        if policy == "Forbid":
            return not active
        if policy == "Replace":
            for ref in active:
                self.api.delete(resources.JOBS, ref["namespace"], ref["name"], "Background")
        return True
