"""Conditions in the Kubernetes style, as the simulated controllers write them: each
reason a documented constant with the real controller's type, status and message."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

Json = dict[str, Any]


@dataclass(frozen=True)
class Reason:
    """One condition a controller reports; ``{name}`` in the message is the object's."""

    type: str
    status: bool
    reason: str
    message: str
    updated: str = "lastUpdateTime"
    """Deployments say when a condition was last updated; Jobs when it was last probed."""


AVAILABLE = Reason(
    "Available", True, "MinimumReplicasAvailable", "Deployment has minimum availability."
)
UNAVAILABLE = Reason(
    "Available",
    False,
    "MinimumReplicasUnavailable",
    "Deployment does not have minimum availability.",
)
ROLLED_OUT = Reason(
    "Progressing",
    True,
    "NewReplicaSetAvailable",
    'ReplicaSet "{name}" has successfully progressed.',
)
ROLLING = Reason("Progressing", True, "ReplicaSetUpdated", 'ReplicaSet "{name}" is progressing.')
TIMED_OUT = Reason(
    "Progressing",
    False,
    "ProgressDeadlineExceeded",
    'ReplicaSet "{name}" has timed out progressing.',
)
JOB_COMPLETE = Reason(
    "Complete",
    True,
    "CompletionsReached",
    "Reached expected number of succeeded pods",
    "lastProbeTime",
)
JOB_FAILED = Reason(
    "Failed",
    True,
    "BackoffLimitExceeded",
    "Job has reached the specified backoff limit",
    "lastProbeTime",
)
JOB_DEADLINE = Reason(
    "Failed",
    True,
    "DeadlineExceeded",
    "Job was active longer than specified deadline",
    "lastProbeTime",
)
JOB_FAILED_INDEXES = Reason(
    "Failed", True, "FailedIndexes", "Job has failed indexes", "lastProbeTime"
)
JOB_MAX_FAILED_INDEXES = Reason(
    "Failed",
    True,
    "MaxFailedIndexesExceeded",
    "Job has exceeded the specified maximal number of failed indexes",
    "lastProbeTime",
)


def condition(before: list[Json], reason: Reason, *, name: str = "", now: str) -> Json:
    """``reason`` as a condition whose ``lastTransitionTime`` moves only when its status
    does (``before``: the conditions it replaces)."""
    value = "True" if reason.status else "False"
    old = next((c for c in before if c.get("type") == reason.type), {})
    moved = (old.get("status"), old.get("reason")) != (value, reason.reason)
    return {
        "type": reason.type,
        "status": value,
        "reason": reason.reason,
        "message": reason.message.format(name=name),
        reason.updated: now if moved else old.get(reason.updated, now),
        "lastTransitionTime": now
        if old.get("status") != value
        else old.get("lastTransitionTime", now),
    }
