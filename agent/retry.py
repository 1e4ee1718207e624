"""Retrying a failed apply on the plane: pure decisions over a resource's state and time.

Flux retries a failed reconciliation at its ``retryInterval`` and marks a resource
``Stalled`` when retrying cannot help; Kubernetes backs a failing Job off
exponentially up to ``backoffLimit``. The agent does both, locally: a failed apply is
applied again from the command it already holds — no new signed command, no commit —
after 30 s, then 60 s, doubling to a 10-minute cap, and after ``LIMIT`` failed
attempts in all the resource is ``Stalled`` and stays so until a new command for it
arrives (its spec changed: see docs/agent.md, "Failures and retries").

The count and the next time live in the resource's observed fields (``attempts``,
``nextRetry``), so they are in every signed status report and survive a restart.
A runtime that retries a resource itself (a feature set's ``retry`` policy reports
``retryAt``) is left to do so.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from ledger import verify
from schemas import signed
from schemas.observed import RetryObserved

BASE_SECONDS = 30.0
CAP_SECONDS = 600.0
LIMIT = 5
"""Failed attempts in all (the first apply and four retries) before a resource is Stalled."""


def after_failure(
    state: signed.ResourceStatus, before: signed.ResourceStatus | None, now: datetime
) -> signed.ResourceStatus:
    """``state`` (a failed apply of its command) with its attempt count and when it is tried
    again, or ``Stalled`` once it has failed ``LIMIT`` times. Attempts count while the
    command's digest stays the same; a new command starts again at one."""
    if state.phase != "Failed" or RetryObserved.of(state).retry_at is not None:
        return state  # its runtime retries it
    earlier = RetryObserved.of(before).attempts if before and before.digest == state.digest else 0
    attempts = (earlier or 0) + 1
    observed = {**RetryObserved.cleared(state.observed), **RetryObserved(attempts=attempts).flat()}
    if attempts >= LIMIT:
        why = f"stalled after {attempts} failed attempts: {state.message}"
        return state.model_copy(
            update={"phase": "Stalled", "message": why[:4000], "observed": observed}
        )
    delay = min(CAP_SECONDS, BASE_SECONDS * 2 ** (attempts - 1))
    at = verify.format_time(now + timedelta(seconds=delay))
    observed |= RetryObserved(next_retry=at).flat()
    return state.model_copy(update={"observed": observed})


def due(state: signed.ResourceStatus, now: datetime) -> bool:
    """Whether the agent applies ``state``'s command again now: its retry time has come, or a
    retry was in progress when the agent stopped (``Progressing`` with a retry time, and no
    apply running for it)."""
    at = RetryObserved.of(state).next_retry
    if state.phase not in ("Failed", "Progressing") or at is None:
        return False
    try:
        return verify.parse_time(at) <= now
    except ValueError:
        return False
