"""Cron schedules and retry backoff, shared by scheduled kinds (feature sets, DAGs).

Kubernetes CronJob semantics: five-field cron (plus the ``@daily``-style
shorthands) read in the schedule's IANA time zone; times in and out are UTC.
"""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import cronsim

from schemas.common import Retry, Schedule, parse_duration
from schemas.errors import GitplaneError

SHORTHANDS = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@hourly": "0 * * * *",
}


class ScheduleError(GitplaneError):
    """A time zone or cron expression that cannot be followed."""


def slot(schedule: Schedule, start: datetime, *, reverse: bool) -> datetime:
    """The first cron time after ``start`` (or at or before it, with ``reverse``), in UTC."""
    try:
        zone = ZoneInfo(schedule.timezone)
    except (ZoneInfoNotFoundError, ValueError):
        raise ScheduleError(f"unknown time zone {schedule.timezone!r}") from None
    expression = SHORTHANDS.get(schedule.cron, schedule.cron)
    try:
        found = next(cronsim.CronSim(expression, start.astimezone(zone), reverse=reverse))
    except (cronsim.CronSimError, StopIteration) as exc:
        raise ScheduleError(f"cron {schedule.cron!r} cannot be scheduled: {exc}") from None
    return found.astimezone(UTC)


def backoff(retry: Retry, number: int) -> float:
    """Seconds to wait before retry ``number`` (1-based): ``backoff`` doubling, capped."""
    first, cap = parse_duration(retry.backoff), parse_duration(retry.max_backoff)
    return float(min(cap, first * 2 ** (number - 1)))
