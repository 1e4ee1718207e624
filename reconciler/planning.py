"""``gitplane plan``: load a commit, plan it, and (with ``--base``) keep only what a PR changes."""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path

from ledger import gitrepo
from reconciler import desired
from reconciler.plan import Action, Desired, Plan, plan, plan_inputs
from reconciler.recorded import RecordedPlane
from schemas.errors import GitplaneError, UsageError
from schemas.problems import Problem


class InvalidSpecsError(GitplaneError):
    """The commit does not validate: no plan is made from it."""

    def __init__(self, problems: list[Problem]) -> None:
        super().__init__(f"{len(problems)} problem(s) in the specs: no plan was made")
        self.problems = problems


@dataclass(frozen=True)
class PlanRequest:
    """What to plan."""

    path: Path
    rev: str = "HEAD"
    base: str | None = None


def make_plan(request: PlanRequest, recorded: dict[str, RecordedPlane], now: datetime) -> Plan:
    """The plan of ``request.rev``; with a base, only the actions the change introduces."""
    repo, prefix = _repo(request.path)
    head = plan(_desired(repo, request.rev, prefix, str(request.path)), recorded, now)
    if request.base is None:
        return head
    base = plan(_desired(repo, request.base, prefix, str(request.path)), recorded, now)
    return _difference(head, base)


def _repo(path: Path) -> tuple[gitrepo.GitRepo, str]:
    found = gitrepo.find_repo(path) if path.is_dir() else None
    if found is None:
        raise UsageError(f"{path}: not a directory inside a git repository")
    return found


def _desired(repo: gitrepo.GitRepo, rev: str, prefix: str, display: str) -> Desired:
    try:
        state = desired.load_commit(repo, rev, prefix=prefix, display=display)
        info = repo.commit_info(state.commit or rev)
    except gitrepo.GitError as exc:
        raise UsageError(f"cannot read {rev}: {exc}") from None
    if not state.valid:
        raise InvalidSpecsError(state.problems)
    documents = [doc for _, doc in state.documents]
    commit = state.commit or rev
    inputs = {
        path: repo.tree_id(commit, f"{prefix}/{path}".strip("/")) for path in plan_inputs(documents)
    }
    return Desired(
        commit, documents, inputs=inputs, trailers=info.trailers, merged=info.parents > 1
    )


def _difference(head: Plan, base: Plan) -> Plan:
    """Actions on resources whose declared state differs from ``base``: what a PR changes."""
    before = {(p.plane, _key(a)) for p in base.planes for a in p.actions}
    planes = tuple(
        replace(p, actions=tuple(a for a in p.actions if (p.plane, _key(a)) not in before))
        for p in head.planes
    )
    return Plan(head.commit, planes)


def _key(action: Action) -> tuple[str, str, str]:
    return (action.kind, action.name, action.source)
