"""Conditions in the Kubernetes style, as the simulated controllers write them."""

from __future__ import annotations

from typing import Any

Json = dict[str, Any]


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
