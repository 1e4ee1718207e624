"""The simulated Job controller's decisions, as pure functions of the Job, which of its
completion indexes fail, and the time: the status it reaches in one step, and the pods
it runs (owned by the Job, labelled and annotated as the real controller does them;
named ``<job>-<index>-<attempt>`` where the real one adds a random suffix)."""

from __future__ import annotations

import copy
from typing import Any

from tests.kubeapi import conditions
from tests.kubeapi.conditions import condition

Json = dict[str, Any]
INDEX = "batch.kubernetes.io/job-completion-index"


def finished(status: Json) -> bool:
    return any(
        c["status"] == "True" and c["type"] in {"Complete", "Failed"}
        for c in status.get("conditions", [])
    )


def ranges(indexes: set[int]) -> str:
    """``{0, 1, 2, 4}`` -> ``"0-2,4"``, the form of ``completedIndexes``."""
    parts: list[str] = []
    for i in sorted(indexes):
        if parts and parts[-1].split("-")[-1] == str(i - 1):
            parts[-1] = f"{parts[-1].split('-')[0]}-{i}"
        else:
            parts.append(str(i))
    return ",".join(parts)


def failing_indexes(completions: int, marked: set[int]) -> set[int]:
    """The indexes whose pods fail: ``-1`` marks every one."""
    every = set(range(completions))
    return every if -1 in marked else marked & every


def first_indexes(job: Json) -> list[int]:
    """The pods a Job starts with: every index of an Indexed Job, else ``parallelism``."""
    spec = job["spec"]
    if spec.get("completionMode") == "Indexed":
        return list(range(spec["completions"]))
    return list(range(min(spec["parallelism"], spec["completions"])))


def index_of(pod: Json) -> int:
    annotations = pod["metadata"].get("annotations") or {}
    return int(annotations.get(INDEX, pod["metadata"]["name"].rsplit("-", 2)[-2]))


def next_status(job: Json, failing: set[int], *, now: str) -> Json:
    """One step on: start (``startTime``, ``active``), then finish every completion that
    does not fail; a failing one fails once per step until ``backoffLimit`` is passed."""
    status = job.get("status") or {}
    if "startTime" not in status:
        return {"startTime": now, "active": len(first_indexes(job)), "ready": 0}
    spec = job["spec"]
    done = set(range(spec["completions"])) - failing
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
    return {**made, **_ending(spec, made, now=now)}


def _ending(spec: Json, made: Json, *, now: str) -> Json:
    if made.get("failed", 0) > spec["backoffLimit"]:
        return {"active": 0, "conditions": [condition([], conditions.JOB_FAILED, now=now)]}
    if not made["active"]:
        complete = condition([], conditions.JOB_COMPLETE, now=now)
        return {"completionTime": now, "conditions": [complete]}
    return {}


def pod(job: Json, index: int, attempt: int) -> Json:
    """A pod of ``job`` for ``index``: the template's spec and labels, owned by the Job."""
    metadata, spec = job["metadata"], job["spec"]
    template = spec.get("template") or {}
    labels = dict((template.get("metadata") or {}).get("labels") or {})
    annotations = {}
    pod_spec = template.get("spec") or {}
    if spec.get("completionMode") == "Indexed":
        labels[INDEX] = annotations[INDEX] = str(index)
        pod_spec = _with_index(pod_spec)
    owner = {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "name": metadata["name"],
        "uid": metadata["uid"],
        "controller": True,
        "blockOwnerDeletion": True,
    }
    return {
        "metadata": {
            "name": f"{metadata['name']}-{index}-{attempt}",
            "labels": labels,
            "annotations": annotations,
            "ownerReferences": [owner],
        },
        "spec": pod_spec,
    }


def _with_index(pod_spec: Json) -> Json:
    """``JOB_COMPLETION_INDEX`` from the pod's annotation in every container, as the real
    controller adds it to an Indexed Job's pods."""
    variable = {
        "name": "JOB_COMPLETION_INDEX",
        "valueFrom": {"fieldRef": {"fieldPath": f"metadata.annotations['{INDEX}']"}},
    }
    made = copy.deepcopy(pod_spec)
    for kind in ("initContainers", "containers"):
        for container in made.get(kind) or []:
            container["env"] = [*(container.get("env") or []), variable]
    return made
