"""The pure core of a DAG run: step order, what a failure stops, parameters, shares, slots.

Nothing here runs a process, reads the clock or imports MLflow or git: each function
takes data ("now" included) and returns a decision, so every rule is a table test.

Invariants:

* ``order`` puts every step after all of its ``dependsOn``; among steps that are
  ready together, the one declared first goes first.
* ``shares`` gives every file to exactly one instance; the same names always land
  in the same instances (sorted round-robin, or sha256 for ``hash``).
* ``due`` returns at most one slot however many were missed, as a CronJob does.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta

from agent.runtimes.local import cron
from schemas.common import ParamValue, Schedule
from schemas.crossref import find_cycle
from schemas.dag import Partition, Step
from schemas.errors import GitplaneError

TIME_FORMAT = "%Y-%m-%dT%H:%M:%SZ"


class DagError(GitplaneError):
    """The DAG cannot run as written: it needs a new commit, not a retry."""


def order(steps: Sequence[Step]) -> list[Step]:
    """The steps in ``dependsOn`` order; among steps ready together, declaration order."""
    _check(steps)
    placed: list[Step] = []
    names: set[str] = set()
    while len(placed) < len(steps):
        ready = next(s for s in steps if s.name not in names and set(s.depends_on) <= names)
        placed.append(ready)
        names.add(ready.name)
    return placed


def _check(steps: Sequence[Step]) -> None:
    names = [s.name for s in steps]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    unknown = sorted({d for s in steps for d in s.depends_on} - set(names))
    cycle = find_cycle({s.name: [d for d in s.depends_on if d in names] for s in steps})
    loose = [s.name for s in steps if s.partition and s.partition.from_ not in s.depends_on]
    for problem, found in (
        ("duplicate step names", duplicates),
        ("unknown steps in dependsOn", unknown),
        ("a dependsOn cycle", [" -> ".join(cycle)] if cycle else []),
        ("steps partitioning a step they do not depend on", loose),
    ):
        if found:
            raise DagError(f"the DAG cannot run: {problem}: {', '.join(found)}")


def blocker(step: Step, stopped: Mapping[str, str]) -> str | None:
    """The first upstream step whose failure (or skip) keeps ``step`` from running."""
    return next((name for name in step.depends_on if name in stopped), None)


def parameters(declared: frozenset[str], *layers: Mapping[str, ParamValue]) -> dict[str, str]:
    """Later layers override earlier ones; only parameters the entry point declares are kept."""
    merged: dict[str, ParamValue] = {}
    for layer in layers:
        merged.update(layer)
    return {k: _text(v) for k, v in sorted(merged.items()) if k in declared}


def _text(value: ParamValue) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def unit(path: str, by: str) -> str:
    """What a file (a ``/``-separated relative path) is assigned by: ``object`` the file
    itself, ``directory`` its top-level directory (a top-level file is its own unit),
    ``key`` its key (see :func:`key`)."""
    if by == "object":
        return path
    if by == "directory":
        return path.split("/", 1)[0]
    return key(path)


def key(path: str) -> str:
    """A file's key: its base name up to the first ``-`` (``eu-0001.csv`` → ``eu``), or up
    to the first ``.`` when the name has no ``-`` (``us.csv`` → ``us``)."""
    base = path.rsplit("/", 1)[-1]
    return base.split("-", 1)[0] if "-" in base else base.split(".", 1)[0]


def shares(paths: Sequence[str], partition: Partition) -> list[list[str]]:
    """Each instance's files: units sorted by name, then dealt round-robin or by hash."""
    units = sorted({unit(p, partition.by) for p in paths})
    home = {u: _instance(u, i, partition) for i, u in enumerate(units)}
    result: list[list[str]] = [[] for _ in range(partition.instances)]
    for path in sorted(paths):
        result[home[unit(path, partition.by)]].append(path)
    return result


def _instance(name: str, index: int, partition: Partition) -> int:
    if partition.assignment == "round-robin":
        return index % partition.instances
    digest = hashlib.sha256(name.encode()).digest()
    return int.from_bytes(digest[:8], "big") % partition.instances


backoff = cron.backoff


def due(schedule: Schedule, after: datetime, now: datetime) -> datetime | None:
    """The newest slot in ``(after, now]`` (UTC), or None; missed slots make one run."""
    floor = now.astimezone(UTC).replace(second=0, microsecond=0) + timedelta(minutes=1)
    slot = _slot(schedule, floor, reverse=True)
    return slot if slot > after else None


def next_slot(schedule: Schedule, now: datetime) -> datetime:
    """The first slot strictly after ``now`` (UTC)."""
    return _slot(schedule, now, reverse=False)


def _slot(schedule: Schedule, start: datetime, *, reverse: bool) -> datetime:
    try:
        return cron.slot(schedule, start, reverse=reverse)
    except cron.ScheduleError as exc:
        raise DagError(str(exc)) from None


def stamp(moment: datetime) -> str:
    """``2024-05-01T02:30:00Z``: how times appear in status and tags."""
    return moment.astimezone(UTC).strftime(TIME_FORMAT)


def parse_stamp(text: str) -> datetime:
    """The inverse of :func:`stamp`."""
    return datetime.strptime(text, TIME_FORMAT).replace(tzinfo=UTC)
