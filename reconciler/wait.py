"""``gitplane wait``: until a resource is Synced, or Synced and Ready, on its planes.

:func:`judge` is pure: one look at the status views (``status_view``) says met, pending
or failed, with the reason in one line per plane. :func:`wait` is the loop around it: it
reads the logs anew each interval exactly as ``gitplane status`` does
(``planning.make_status``), and takes its clock and its sleep as values, so a test runs
minutes of waiting in no time.

Failed means the condition cannot hold until a person acts, so a CI job stops at once
rather than at its timeout: the resource is Blocked; it is Failed, Stalled or Blocked on
its plane from the command issued last (a plane retries a Failed apply after a backoff;
a deploy job should not sit through it); its plane's log or status was refused or
reports an attack; or it is on no plane.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from reconciler import planning
from reconciler.status_view import PlaneStatus, Resource
from schemas import signed
from schemas.errors import UsageError
from schemas.inert import inert
from schemas.problems import did_you_mean

Condition = Literal["synced", "ready"]
Outcome = Literal["met", "pending", "failed"]


@dataclass(frozen=True)
class Target:
    """What to wait for."""

    kind: str
    name: str
    condition: Condition
    """``synced``: the plane applied what git wants; ``ready``: that, and its phase is Ready."""
    plane: str | None = None
    """Only this plane; else every plane the resource is on."""

    @property
    def ref(self) -> str:
        """``Kind/name``."""
        return f"{self.kind}/{self.name}"


@dataclass(frozen=True)
class Verdict:
    """Where the wait stands."""

    outcome: Outcome
    reasons: tuple[str, ...]
    """A line per plane that decides the outcome (when met, per plane the resource is on)."""

    @property
    def line(self) -> str:
        """The reasons in one line."""
        return "; ".join(self.reasons)


@dataclass(frozen=True)
class Clock:
    """Where a wait reads the time and how it sleeps: the CLI's clock, or a test's."""

    now: Callable[[], datetime]
    sleep: Callable[[float], None]


def judge(target: Target, planes: Sequence[PlaneStatus]) -> Verdict:
    """Met when ``target`` holds on every plane it is on (or on ``target.plane``), failed when
    it cannot hold without a person on one of them, else pending."""
    key = (target.kind, target.name)
    shown = [p for p in planes if target.plane in (None, p.name)]
    found = [(p, r) for p in shown for r in p.resources if (r.kind, r.name) == key]
    on = {p.name for p, _ in found} | ({target.plane} if target.plane else set())
    halted = tuple(f"{p.name}: {inert(p.halted)}" for p in shown if p.halted and p.name in on)
    if halted:
        return Verdict("failed", halted)
    if not found:
        where = f"on {target.plane}" if target.plane else "on any plane"
        return Verdict("failed", (f"{target.ref} is not {where}: its spec selects no such plane",))
    judged = [(_outcome(target.condition, r), describe(p.name, r)) for p, r in found]
    for outcome in ("failed", "pending"):
        lines = tuple(line for o, line in judged if o == outcome)
        if lines:
            return Verdict(outcome, lines)
    return Verdict("met", tuple(line for _, line in judged))


def _outcome(condition: Condition, r: Resource) -> Outcome:
    if r.sync in ("Blocked", "Unknown") or is_failed(r):
        return "failed"
    if r.sync != "Synced":
        return "pending"
    return "met" if condition == "synced" or r.phase == "Ready" else "pending"


def is_failed(r: Resource) -> bool:
    """Failed, Stalled or Blocked on its plane from the command issued last (``issued`` is
    ``#N digest``), not from an older one a newer command may still fix."""
    return r.phase in signed.FAILING and bool(r.applied) and r.issued.endswith(f" {r.applied}")


def describe(plane: str, r: Resource) -> str:
    """``Deployment/churn-dev on local-dev is Issued (Unknown): issued in #2; …``, inert."""
    line = f"{r.kind}/{r.name} on {plane} is {r.sync} ({r.phase})"
    return inert(f"{line}: {signed.cause_of(r.message)}" if r.message else line)


def wait(
    target: Target,
    request: planning.PlanRequest,
    *,
    timeout: float,
    interval: float,
    clock: Clock,
    say: Callable[[str], None],
) -> Verdict:
    """Read and :func:`judge` every ``interval`` seconds until met or failed, or until
    ``timeout`` seconds have passed (the last verdict, still pending, is returned);
    ``say`` gets each pending line that differs from the one before."""
    start = clock.now()
    said = ""
    while True:
        verdict = judge(target, read(target, request, clock.now()))
        left = timeout - (clock.now() - start).total_seconds()
        if verdict.outcome != "pending" or left <= 0:
            return verdict
        if verdict.line != said:
            say(verdict.line)
            said = verdict.line
        clock.sleep(min(interval, left))


def read(target: Target, request: planning.PlanRequest, now: datetime) -> list[PlaneStatus]:
    """Every plane as ``gitplane status`` shows it; a usage error when ``target`` names a
    resource or plane that ``request.rev`` does not define (with the ones it does)."""
    result = planning.make_status(request, now)
    if result.problems:
        raise planning.InvalidSpecsError(result.problems)
    names = [p.name for p in result.planes]
    if target.plane is not None and target.plane not in names:
        hint = did_you_mean(target.plane, names)
        raise UsageError(f"no DataPlane named {target.plane!r} at {request.rev}{hint}")
    if (target.kind, target.name) not in result.defined:
        known = [f"{kind}/{name}" for kind, name in result.defined]
        hint = did_you_mean(target.ref, known)
        listed = ", ".join(known) or "none"
        raise UsageError(f"no spec at {request.rev} defines {target.ref}{hint}; known: {listed}")
    return result.planes
