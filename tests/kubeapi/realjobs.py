"""The Job controller's decisions in kubelet mode (:mod:`tests.kubeapi.kubelet`), pure: a
Job's status from its pods' real phases, and the completion indexes that need a new pod,
by the real controller's rules: ``completions`` and ``parallelism``, ``backoffLimit``,
``activeDeadlineSeconds`` from ``startTime`` (on the double's clock), and for Indexed Jobs
``completedIndexes`` and, with ``backoffLimitPerIndex``, ``failedIndexes`` and
``maxFailedIndexes``."""

from __future__ import annotations

from collections import Counter
from datetime import datetime, timedelta
from typing import Any

from tests.kubeapi import conditions
from tests.kubeapi.api import timestamp
from tests.kubeapi.conditions import Reason, condition
from tests.kubeapi.cronjobs import parse_time
from tests.kubeapi.jobs import index_of, ranges

Json = dict[str, Any]
ACTIVE = {"Pending", "Running"}


def observed_status(job: Json, pods: list[Json], *, now: datetime) -> Json:
    """The status of a Job whose pods really run: ``succeeded`` and ``failed`` counted from
    the pods' phases; ``Failed`` past the deadline, the backoff limit or with failed
    indexes; ``Complete`` once the completions succeeded."""
    status = job.get("status") or {}
    if "startTime" not in status:
        return {"startTime": timestamp(now), "active": len(to_start(job, pods)), "ready": 0}
    done, lost = succeeded_indexes(job, pods), failed_indexes(job, pods)
    failed = sum(_phase(p) == "Failed" for p in pods)
    made: Json = {
        "startTime": status["startTime"],
        "active": sum(_phase(p) in ACTIVE for p in pods),
        "ready": sum(_phase(p) == "Running" for p in pods),
        "succeeded": len(done),
        **({"failed": failed} if failed else {}),
        **({"completedIndexes": ranges(done)} if _indexed(job) and done else {}),
        **({"failedIndexes": ranges(lost)} if lost else {}),
    }
    return {**made, **_ending(job, made, lost=len(lost), now=now)}


def _ending(job: Json, made: Json, *, lost: int, now: datetime) -> Json:
    reason = _failure(job, made, lost=lost, now=now)
    at = timestamp(now)
    if reason is not None:
        return {"active": 0, "conditions": [condition([], reason, now=at)]}
    if made["succeeded"] >= job["spec"]["completions"]:
        complete = condition([], conditions.JOB_COMPLETE, now=at)
        return {"completionTime": at, "conditions": [complete]}
    return {}


def _failure(job: Json, made: Json, *, lost: int, now: datetime) -> Reason | None:
    """Why the Job failed, if it did: past its deadline, past ``backoffLimit`` failed pods
    (by default 2147483647 with ``backoffLimitPerIndex``), with a failed index once every
    index ended, or at once past ``maxFailedIndexes`` failed indexes."""
    spec = job["spec"]
    deadline = spec.get("activeDeadlineSeconds")
    if deadline is not None and now - parse_time(made["startTime"]) >= timedelta(seconds=deadline):
        return conditions.JOB_DEADLINE
    if made.get("failed", 0) > spec["backoffLimit"]:
        return conditions.JOB_FAILED
    most = spec.get("maxFailedIndexes")
    if most is not None and lost > most:
        return conditions.JOB_MAX_FAILED_INDEXES
    if lost and made["succeeded"] + lost >= spec["completions"]:
        return conditions.JOB_FAILED_INDEXES
    return None


def failed_indexes(job: Json, pods: list[Json]) -> set[int]:
    """With ``backoffLimitPerIndex``: the indexes whose pods failed more often than that
    (never retried again)."""
    if not _per_index(job):
        return set()
    limit = job["spec"]["backoffLimitPerIndex"]
    failures = Counter(index_of(p) for p in pods if _phase(p) == "Failed")
    return {i for i, n in failures.items() if n > limit} - succeeded_indexes(job, pods)


def succeeded_indexes(job: Json, pods: list[Json]) -> set[int]:
    """The completions done: by index for an Indexed Job, else counted (as 0, 1, ...)."""
    won = [p for p in pods if _phase(p) == "Succeeded"]
    if _indexed(job):
        return {index_of(p) for p in won} & set(range(job["spec"]["completions"]))
    return set(range(min(len(won), job["spec"]["completions"])))


def to_start(job: Json, pods: list[Json]) -> list[int]:
    """The indexes that need a new pod, at most ``parallelism`` running: an Indexed Job's
    lowest not succeeded, running or given up; a NonIndexed Job's free slots while
    completions remain."""
    spec, done = job["spec"], succeeded_indexes(job, pods)
    busy = {index_of(p) for p in pods if _phase(p) in ACTIVE}
    if _indexed(job):
        lost = failed_indexes(job, pods)
        left = sorted(set(range(spec["completions"])) - done - busy - lost)
        return left[: max(spec["parallelism"] - len(busy), 0)]
    wanted = min(spec["parallelism"], spec["completions"] - len(done)) - len(busy)
    free = [i for i in range(spec["parallelism"]) if i not in busy]
    return free[: max(wanted, 0)]


def _indexed(job: Json) -> bool:
    return bool(job["spec"].get("completionMode") == "Indexed")


def _per_index(job: Json) -> bool:
    return _indexed(job) and job["spec"].get("backoffLimitPerIndex") is not None


def _phase(pod: Json) -> str:
    return str((pod.get("status") or {}).get("phase") or "Pending")
