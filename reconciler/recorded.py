"""Recorded state: what each plane was told (its command log) and last said (its status).

Pure data plus one pure constructor from what the ledger read. A plane whose
status is missing, stale, unverifiable or reporting an attack is *flagged*:
the plan shows the flag, and nothing the plane claims is trusted beyond it.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from schemas import signed

Key = tuple[str, str]
"""(kind, name) of a resource."""


@dataclass(frozen=True)
class Issued:
    """The last command issued for one resource on one plane."""

    action: str
    digest: str
    sequence: int
    issued_at: str = ""
    attempts: int = 1
    """How many bundles in a row carried this same command (retries after failure)."""
    spec: str = ""
    """The resolved spec it carried (JSON text): what ``plan`` diffs an update against."""


@dataclass(frozen=True)
class RecordedPlane:
    """One plane's recorded state."""

    name: str
    issued: Mapping[Key, Issued] = field(default_factory=dict)
    observed: Mapping[Key, signed.ResourceStatus] = field(default_factory=dict)
    head: int = 0
    """Sequence of the newest bundle issued."""
    applied: int = 0
    """Sequence of the newest bundle the plane reports applied."""
    flag: str | None = None
    """Why the plane's own report is not trusted or not current, if it is not."""
    log_flag: str | None = None
    """Why its command log needs attention though it verified (its timestamp expired)."""
    log_refused: bool = False
    """Its command log did not verify: nothing is issued to it until it does."""
    refused: bool = False
    """Its status report was refused, or reports a verification failure (an attack code):
    :attr:`flag` says which; only a person clears it (a stale plane may catch up alone)."""
    capabilities: signed.PlaneCapabilities | None = None
    """What its runtime can enforce, from its last verified report (None: not reported)."""

    @property
    def flags(self) -> tuple[str, ...]:
        """Every flag raised on the plane, the command log's first."""
        return tuple(f for f in (self.log_flag, self.flag) if f)

    @property
    def summary(self) -> str | None:
        """:attr:`flags` as one line, or None."""
        return "; ".join(self.flags) or None

    def observed_phase(self, key: Key) -> str | None:
        """The phase the plane reports for ``key``, if it reports one."""
        status = self.observed.get(key)
        return status.phase if status else None


@dataclass(frozen=True)
class IssuedLog:
    """What a plane was issued: the last command per resource, folded over its verified
    bundles. :meth:`extend` folds only the bundles after those already folded."""

    bundles: tuple[signed.Bundle, ...] = ()
    issued: Mapping[Key, Issued] = field(default_factory=dict)

    def extend(self, bundles: tuple[signed.Bundle, ...]) -> IssuedLog:
        """The fold over ``bundles``: this one carried on when ``bundles`` starts with the
        bundles folded here (the same verified objects, so the check is cheap), else anew."""
        done = len(self.bundles)
        if bundles[:done] != self.bundles:
            return IssuedLog().extend(bundles)
        if len(bundles) == done:
            return self
        issued = dict(self.issued)
        for bundle in bundles[done:]:
            for command in bundle.commands:
                key = (command.kind, command.name)
                before = issued.get(key)
                same = before is not None and before.digest == command.digest
                attempts = before.attempts + 1 if before and same else 1
                issued[key] = Issued(
                    command.action,
                    command.digest,
                    bundle.sequence,
                    bundle.issued_at,
                    attempts,
                    command.spec,
                )
        return IssuedLog(bundles, issued)


def from_ledger(
    name: str,
    log: IssuedLog,
    status: signed.Status | None,
    *,
    refused: str | None,
    now: datetime,
    stale_after: timedelta,
    expires: datetime | None = None,
) -> RecordedPlane:
    """Recorded state from a verified command log and a status report (or its refusal);
    ``expires``: when the log's timestamp expires (flagged once it has)."""
    bundles = log.bundles
    head = bundles[-1].sequence if bundles else 0
    applied = status.applied.sequence if status else 0
    observed: dict[Key, signed.ResourceStatus] = (
        {(r.kind, r.name): r for r in status.resources} if status else {}
    )
    late = next((b for b in bundles if b.sequence > applied), None)
    refusal = _flag(status, refused)
    flag = refusal or _stale(late, now, stale_after)
    expired = _expired(expires, now)
    capabilities = status.capabilities if status else None
    return RecordedPlane(
        name,
        log.issued,
        observed,
        head,
        applied,
        flag,
        log_flag=expired,
        refused=refusal is not None,
        capabilities=capabilities,
    )


def _expired(expires: datetime | None, now: datetime) -> str | None:
    """The flag of a log whose timestamp expired: the agent applies nothing from it (a freeze
    is refused), so the reconciler has not re-signed it for the timestamp's whole life."""
    if expires is None or expires > now:
        return None
    return f"timestamp expired {_age(now - expires)} ago: is the reconciler running?"


def _age(span: timedelta) -> str:
    seconds = span.total_seconds()
    if seconds < 7200:
        return f"{max(1, round(seconds / 60))} minutes"
    if seconds < 2 * 86400:
        return f"{round(seconds / 3600)} hours"
    return f"{span.days} days"


def _flag(status: signed.Status | None, refused: str | None) -> str | None:
    if refused is not None:
        return f"status refused: {refused}"
    if status is not None and status.error is not None:
        return f"agent reports {status.error.code}: {status.error.message}"
    return None


def _stale(late: signed.Bundle | None, now: datetime, stale_after: timedelta) -> str | None:
    """Status is written on change only, so silence is not staleness: a plane is stale
    when a bundle stays unapplied longer than ``stale_after``."""
    if late is None:
        return None
    issued_at = datetime.strptime(late.issued_at, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=now.tzinfo)
    if now - issued_at <= stale_after:
        return None
    return f"stale: bundle {late.sequence} issued {late.issued_at} is not applied yet"


def spec_json(document: Mapping[str, object]) -> str:
    """The canonical JSON text of a resolved spec: sorted keys, compact, ASCII."""
    return json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
