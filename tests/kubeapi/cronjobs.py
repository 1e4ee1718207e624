"""The simulated CronJob controller's decisions, pure: when a CronJob is next due on the
double's clock, and the Job it makes then (named ``<cronjob>-<minutes since the epoch>``
and owned by the CronJob, as the real controller names and owns it)."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import cronsim

from tests.kubeapi.api import timestamp

Json = dict[str, Any]
SCHEDULED = "batch.kubernetes.io/cronjob-scheduled-timestamp"


def parse_time(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def due(cron_job: Json, now: datetime) -> datetime | None:
    """The latest scheduled time after the last one run (or the CronJob's creation) and
    not after ``now``; None when nothing is due or the CronJob is suspended. Missed times
    before it are skipped, as the real controller starts only the most recent."""
    spec, status = cron_job["spec"], cron_job.get("status") or {}
    if spec.get("suspend"):
        return None
    zone = ZoneInfo(spec.get("timeZone") or "UTC")
    since = parse_time(status.get("lastScheduleTime") or cron_job["metadata"]["creationTimestamp"])
    latest = None
    for at in cronsim.CronSim(spec["schedule"], since.astimezone(zone)):
        if at > now:
            return latest
        latest = at
    return latest


def job_for(cron_job: Json, at: datetime) -> Json:
    """The Job ``cron_job`` runs for its time ``at``."""
    metadata, template = cron_job["metadata"], cron_job["spec"].get("jobTemplate") or {}
    owner = {
        "apiVersion": "batch/v1",
        "kind": "CronJob",
        "name": metadata["name"],
        "uid": metadata["uid"],
        "controller": True,
        "blockOwnerDeletion": True,
    }
    labels = (template.get("metadata") or {}).get("labels") or {}
    return {
        "metadata": {
            "name": f"{metadata['name']}-{int(at.timestamp()) // 60}",
            "labels": labels,
            "annotations": {SCHEDULED: timestamp(at)},
            "ownerReferences": [owner],
        },
        "spec": template.get("spec") or {},
    }


def reference(job: Json) -> Json:
    """A Job as ``status.active`` of its CronJob lists it."""
    metadata = job["metadata"]
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "name": metadata["name"],
        "namespace": metadata["namespace"],
        "uid": metadata["uid"],
    }
