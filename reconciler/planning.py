"""``gitplane plan``: load a commit, plan it, and (with ``--base``) keep only what a PR changes."""

from __future__ import annotations

import tempfile
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path

from ledger import commands, gitrepo, keyring
from reconciler import approvals as rules
from reconciler import desired, fielddiff, status_view
from reconciler import reconcile as reconciling
from reconciler import validate as validation
from reconciler.decide import deletions
from reconciler.plan import Action, Desired, Plan, plan
from reconciler.planned import ORDER, PlanePlan
from reconciler.recorded import Issued, Key, RecordedPlane
from schemas import signed
from schemas.dataplane import DataPlane
from schemas.errors import GitplaneError, UsageError
from schemas.problems import Problem


class InvalidSpecsError(GitplaneError):
    """The commit does not validate: no plan is made from it."""

    def __init__(self, problems: list[Problem]) -> None:
        super().__init__(f"{len(problems)} problem(s) in the specs: no plan was made")
        self.problems = problems


@dataclass(frozen=True)
class PlanRequest:
    """What to plan, and against which recorded state."""

    path: Path
    rev: str = "HEAD"
    base: str | None = None
    root: Path | None = None
    """A root.json: read recorded state from the logs (else plan as if planes were empty)."""
    state_repo: str | None = None
    """Where the logs are; default the repository of ``path``."""


def make_plan(request: PlanRequest, now: datetime) -> Plan:
    """The plan of ``request.rev``; with a base, only the actions the change introduces."""
    repo, prefix = _repo(request.path)
    loaded = _load(repo, request.rev, prefix, str(request.path))
    if not loaded.valid:
        raise InvalidSpecsError(loaded.problems)
    head_state = _resolved(repo, request.rev, prefix, loaded)
    recorded, _ = _recorded(request, repo, head_state, now)
    head = _unissued(plan(head_state, recorded, now), recorded)
    digests = _digests(request, head_state, recorded, now)
    modes = rules.modes(head_state.documents)
    warned = replace(head, warnings=tuple(loaded.warnings), digests=digests, approvals=modes)
    if request.base is None:
        return warned
    base = plan(_desired(repo, request.base, prefix, str(request.path)), recorded, now)
    changed = _difference(warned, base)
    found = changed if request.root is not None else _removed(changed, warned, base, head_state)
    return replace(found, approvals=modes)


def _digests(
    request: PlanRequest, want: Desired, recorded: dict[str, RecordedPlane], now: datetime
) -> dict[str, str] | None:
    """The plan digests an approval of ``want`` signs, computed as the reconciler computes
    them at merge (of the whole commit, not of the change from ``--base``); None when a
    plane is protected but nothing was read to compute them against."""
    if request.root is None:
        return None if rules.signed_policies(want.documents) else {}
    return rules.plan_digests(want, recorded, now)


def _unissued(result: Plan, recorded: dict[str, RecordedPlane]) -> Plan:
    """``result`` without actions for planes whose command log was refused: the reconciler
    issues such a plane nothing until its log verifies, so the plan shows only its flag."""
    refused = {name for name, state in recorded.items() if state.log_refused}
    return replace(
        result,
        planes=tuple(replace(p, actions=()) if p.plane in refused else p for p in result.planes),
    )


@dataclass(frozen=True)
class StatusResult:
    """``gitplane status``: every plane, and the problems of the specs when they are invalid."""

    planes: list[status_view.PlaneStatus]
    problems: list[Problem]
    """Why ``rev`` does not validate. The reconciler issues nothing from such a commit, so
    nothing is compared: each plane shows what it last recorded, every resource ``Unknown``
    to sync (planes whose own DataPlane spec is broken cannot be verified, and are left out)."""
    warnings: list[Problem] = field(default_factory=list)
    """Fields the specs set that a runtime, or this release, does not enforce."""
    defined: tuple[Key, ...] = ()
    """Every resource a plane can run (``ORDER``'s kinds) that ``rev`` defines, whether or not
    it selects a plane; empty when ``rev`` does not validate."""
    approvals: dict[str, rules.Mode] = field(default_factory=dict)
    """How each plane's approvals are counted (``status`` names the weaker trailer mode)."""


def make_status(request: PlanRequest, now: datetime) -> StatusResult:
    """Every plane's recorded state beside what ``request.rev`` wants (``gitplane status``)."""
    repo, prefix = _repo(request.path)
    state = _load(repo, request.rev, prefix, str(request.path))
    if state.valid:
        want = _resolved(repo, request.rev, prefix, state)
        recorded, reports = _recorded(request, repo, want, now)
        views = status_view.build(plan(want, recorded, now), recorded, reports, now)
        defined = tuple(sorted((d.KIND, d.name) for d in want.documents if d.KIND in ORDER))
        return StatusResult(views, [], state.warnings, defined, rules.modes(want.documents))
    broken = {problem.file for problem in state.problems}
    planes = [d for f, d in state.documents if isinstance(d, DataPlane) and f not in broken]
    recorded, reports = _recorded(request, repo, Desired(state.commit or "", planes), now)
    unplanned = Plan(
        state.commit or "",
        tuple(PlanePlan(p.name, p.spec.runtime, dict(p.metadata.labels)) for p in planes),
    )
    views = status_view.build(unplanned, recorded, reports, now, compared=False)
    return StatusResult(views, state.problems, state.warnings)


def _recorded(
    request: PlanRequest, repo: gitrepo.GitRepo, want: Desired, now: datetime
) -> tuple[dict[str, RecordedPlane], dict[str, signed.Status | None]]:
    if request.root is None:
        return {}, {}
    root = keyring.read_root(request.root)
    with tempfile.TemporaryDirectory(prefix="gitplane-plan-") as scratch:
        mirror = gitrepo.Mirror.open(Path(scratch), request.state_repo or repo.logs_url())
        log = commands.CommandLog(mirror, root, [], [], reconciling.RECONCILER)
        reader = reconciling.RecordedReader(log, mirror)
        planes = [d for d in want.documents if isinstance(d, DataPlane)]
        reads = reader.read_each(planes, now, mirror.fetch_all())  # as the reconciler reads
        return {n: r[0] for n, r in reads.items()}, {n: r[1].status for n, r in reads.items()}


def _repo(path: Path) -> tuple[gitrepo.GitRepo, str]:
    found = gitrepo.find_repo(path) if path.is_dir() else None
    if found is None:
        raise UsageError(f"{path}: not a directory inside a git repository")
    return found


def _desired(repo: gitrepo.GitRepo, rev: str, prefix: str, display: str) -> Desired:
    state = _load(repo, rev, prefix, display)
    if not state.valid:
        raise InvalidSpecsError(state.problems)
    return _resolved(repo, rev, prefix, state)


def _load(repo: gitrepo.GitRepo, rev: str, prefix: str, display: str) -> desired.DesiredState:
    validation.resolve(repo, rev)  # a repository with no commits, an unknown rev: in words
    try:
        return desired.load_commit(repo, rev, prefix=prefix, display=display)
    except gitrepo.GitError as exc:
        raise UsageError(f"cannot read {rev}: {exc}") from None


def _resolved(repo: gitrepo.GitRepo, rev: str, prefix: str, state: desired.DesiredState) -> Desired:
    try:
        return reconciling.desired_at(repo, state.commit or rev, prefix, state)
    except gitrepo.GitError as exc:
        raise UsageError(f"cannot read {rev}: {exc}") from None


def _difference(head: Plan, base: Plan) -> Plan:
    """Actions on resources whose declared state differs from ``base``: what a PR changes.
    A resource the base already declared is an update of the base's spec, with its field
    diff, even when the plane recorded nothing yet (a plan without ``--root``)."""
    before = {(p.plane, _key(a)) for p in base.planes for a in p.actions}
    said = {
        (p.plane, a.kind, a.name): a.declared
        for p in base.planes
        for a in p.actions
        if a.declared and a.op != "delete"
    }
    planes = tuple(
        replace(
            p,
            actions=tuple(
                _against(a, said.get((p.plane, a.kind, a.name), ""))
                for a in p.actions
                if (p.plane, _key(a)) not in before
            ),
        )
        for p in head.planes
    )
    return replace(head, planes=planes)


def _against(action: Action, base: str) -> Action:
    """``action`` as a change of what the base declared, when the plane's own record has no
    spec to diff it with (nothing issued yet, or a gate holds it)."""
    if action.changes or not base or not action.declared:
        return action
    changes = fielddiff.changes(base, action.declared)
    if action.op == "create":
        return replace(action, op="update", reason="spec changed", changes=changes)
    return replace(action, changes=changes)


def _removed(changed: Plan, head: Plan, base: Plan, wanted: Desired) -> Plan:
    """``changed`` with a delete (or a blocked one, where the plane does not prune) for
    what the base had on a plane and ``head`` no longer has, as the reconciler will issue
    once the base was applied. Planned as if every plane were empty (no ``--root``), every
    resource a plane selects has an action, so one the base had and the head has not is
    gone from that plane."""
    planes = {d.name: d for d in wanted.documents if isinstance(d, DataPlane)}
    had = {p.plane: p.actions for p in base.planes}
    out = []
    for now, full in zip(changed.planes, head.planes, strict=True):
        plane = planes.get(now.plane)
        keys = {(a.kind, a.name) for a in full.actions}
        targets = [d for d in wanted.documents if (d.KIND, d.name) in keys]
        issued = {(a.kind, a.name): Issued("apply", a.source, 1) for a in had.get(now.plane, ())}
        gone = (
            ()
            if plane is None
            else tuple(deletions(plane, targets, RecordedPlane(now.plane, issued)))
        )
        out.append(replace(now, actions=now.actions + gone))
    return replace(changed, planes=tuple(out))


def _key(action: Action) -> tuple[str, str, str]:
    return (action.kind, action.name, action.source)


def spec_repo(path: Path) -> tuple[gitrepo.GitRepo, str]:
    """The repository holding ``path``, and ``path``'s prefix inside it."""
    return _repo(path)


def desired_of(repo: gitrepo.GitRepo, rev: str, prefix: str, display: str) -> Desired:
    """Desired state of ``rev`` (:class:`InvalidSpecsError` when it does not validate)."""
    return _desired(repo, rev, prefix, display)


def recorded_of(
    request: PlanRequest, repo: gitrepo.GitRepo, want: Desired, now: datetime
) -> dict[str, RecordedPlane]:
    """Each plane's verified recorded state, read as ``plan --root`` reads it."""
    return _recorded(request, repo, want, now)[0]
