"""One reconcile cycle: pin a spec commit, read recorded state, plan, issue signed commands.

The reconciler keeps no truth of its own: everything comes from git each
cycle (the spec branch, each plane's command log and status log), pinned to
one commit per ref. Commands are appended with compare-and-swap, and the
plane's actions are decided again against the log as it is at the moment of
the append, so a restart or a second reconciler never issues a command twice.
Invalid specs issue nothing.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from pathlib import Path
from typing import NamedTuple

from ledger import approvals as approval_verdicts
from ledger import (
    commands,
    errors,
    gitrepo,
    keyring,
    keys,
    layout,
    logcheck,
    roots,
    status,
    verify,
    watermark,
)
from reconciler import anchoring, approval_gate, desired, recorded, replan, tracker
from reconciler.plan import Desired, Plan, PlanePlan, plan_inputs, plan_plane
from reconciler.planned import Signed
from schemas import files, signed
from schemas.common import parse_duration
from schemas.dataplane import DataPlane
from schemas.document import Document
from schemas.errors import UsageError
from schemas.problems import Problem

RECONCILER = gitrepo.Identity("gitplane-reconciler", "reconciler@gitplane.invalid")
WATERMARKS = "watermarks.json"
APPROVAL_RULE = anchoring.RULE
APPROVALS_TIP = "approvals-tip"
"""The approvals branch's tip last read: the branch only ever moves forward."""
"""The approval rule in force (ADR 0018): who approves, anchored by root."""
"""In the work directory: the newest head seen per plane (rollback protection)."""


@dataclass(frozen=True)
class Settings:
    """Where the specs and logs are, and the keys to sign with."""

    repo: str
    """The spec repository: a path or any git URL."""
    keys_dir: Path
    """Holds root.json and reconciler/{commands,timestamp}.key (``gitplane keys init``)."""
    work_dir: Path
    """Bare mirrors (a cache) and the watermarks of every plane's log (rollback protection:
    deleting them falls back to what the planes' signed status proves)."""
    branch: str = "main"
    path: str = ""
    """Directory of the specs inside the repository."""
    state_repo: str | None = None
    """Keep the logs in this repository instead of the spec repository."""
    identity: gitrepo.Identity = RECONCILER
    key_uris: Mapping[str, str] = field(default_factory=dict)
    """Online roles that sign through a securesystemslib URI (a KMS) instead of their key
    file: role -> URI."""


@dataclass
class Cycle:
    """What one cycle saw and did."""

    commit: str | None
    plan: Plan | None = None
    issued: dict[str, signed.Head] = field(default_factory=dict)
    problems: list[Problem] = field(default_factory=list)
    flags: dict[str, str] = field(default_factory=dict)
    alarms: list[str] = field(default_factory=list)
    """Attacks on what every plane shares (the root branch), found and undone this cycle."""
    recorded: dict[str, recorded.RecordedPlane] = field(default_factory=dict)
    """Each plane's recorded state as this cycle read it (what notifications compare)."""
    approvals: tuple[approval_verdicts.Verdict, ...] = ()
    """Every signed approval record of the commit, verified under the rule in force."""


class Reconciler:
    """Reconciles every plane a spec branch declares; call :meth:`reconcile` per trigger."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.specs = gitrepo.Mirror.open(settings.work_dir / "specs.git", settings.repo)
        state_url = settings.state_repo or settings.repo
        self.state = gitrepo.Mirror.open(settings.work_dir / "state.git", state_url)
        history = [_read(path) for path in keyring.root_files(settings.keys_dir)]
        commands_key, timestamp_key = keyring.load_reconciler_signers(
            settings.keys_dir, uris=settings.key_uris
        )
        self.log = commands.CommandLog(
            self.state,
            history[0],
            [commands_key],
            [timestamp_key],
            settings.identity,
            watermarks=watermark.Watermarks.load(settings.work_dir / WATERMARKS),
        )
        self.recorded = RecordedReader(self.log, self.state)
        self.tracker = tracker.Tracker(self.specs.repo, prefix=settings.path)
        self.planner = replan.Planner()
        self._changed: frozenset[recorded.Key] | None = None
        """Resources changed since the last plan (None: plan everything)."""
        self._roots = history
        self._published = False
        self._signed: Signed | None = None
        """What the signed approvals came to last cycle."""

    def specs_documents(self) -> list[Document]:
        """The valid documents at the branch's current commit (for tools and tests)."""
        commit = self.specs.fetch([self.branch_ref]).get(self.branch_ref)
        if commit is None:
            return []
        return [doc for _, doc in self._load(commit).state.documents]

    def _load(self, commit: str) -> tracker.Snapshot:
        """The snapshot of ``commit``; what it changed adds to what the next plan must see."""
        snapshot = self.tracker.load(commit)
        if self._changed is not None and snapshot.changed is not None:
            self._changed |= snapshot.changed
        else:
            self._changed = None
        return snapshot

    @property
    def branch_ref(self) -> str:
        """The protected branch: the only source of desired state."""
        return f"refs/heads/{self.settings.branch}"

    def reconcile(self, now: datetime) -> Cycle:
        """One full cycle."""
        if not self._published:
            for root in self._roots:  # every version, oldest first: the chain has no gap
                roots.publish(self.state, root, who=self.settings.identity)
            self._published = True
        commit = self.specs.fetch([self.branch_ref]).get(self.branch_ref)
        if commit is None:
            raise UsageError(f"{self.settings.repo} has no branch {self.settings.branch}")
        self._check_path(commit)
        snapshot = self._load(commit)
        if snapshot.want is None:
            return Cycle(commit, problems=snapshot.state.problems)
        want = snapshot.want
        planes = {d.name: d for d in want.documents if isinstance(d, DataPlane)}
        refs, alarms = self._snapshot(now)
        refs, rewritten = self._approvals_append_only(refs)
        alarms += rewritten
        states = self.recorded.read_each(planes.values(), now, refs)
        recorded_state = {n: s[0] for n, s in states.items()}
        gated, trouble = self._approved(want, recorded_state, refs, now)
        alarms += trouble
        if gated.refused:
            problem = Problem(".", 0, 0, "", gated.refused)
            return Cycle(commit, problems=[problem], alarms=alarms, approvals=gated.verdicts)
        want = gated.want
        result = self.planner.plan(want, recorded_state, now, self._changed, snapshot.documents)
        cycle = Cycle(commit, result, alarms=alarms, recorded=recorded_state)
        cycle.approvals = gated.verdicts
        self._changed = frozenset()
        cycle.flags = {n: s[0].summary for n, s in states.items() if s[0].summary}
        planned = {p.plane: p for p in cycle.plan.planes} if cycle.plan else {}
        issuing = {
            name: _Issuing(plane, states[name], planned[name])
            for name, plane in planes.items()
            if not states[name][0].log_refused
        }
        updates = [u for i in issuing.values() if (u := self._prepare(i, want, now, refs))]
        refused = self.log.publish(updates)  # every plane's log in one push
        for update in updates:
            head = (
                self._issue(issuing[update.plane], want, now)
                if update.plane in refused  # its log moved since the snapshot: as in a race
                else update.head
            )
            if head is not None:
                cycle.issued[update.plane] = head
        self.log.watermarks.flush()  # the heads this cycle read, once for every plane
        return cycle

    def _approvals_append_only(self, refs: gitrepo.Snapshot) -> tuple[gitrepo.Snapshot, list[str]]:
        """``refs`` with the approvals branch at the newest tip that descends from the one
        read before (kept in the work directory): a rewritten branch is read as it was,
        and reported (ADR 0018; a rewrite can only have removed approvals)."""
        path = self.settings.work_dir / APPROVALS_TIP
        last = path.read_text().strip() if path.exists() else ""
        tip = refs.get(layout.APPROVALS_REF)
        if tip == last or (tip is None and not last):
            return refs, []
        if last and not self.state.repo.is_ancestor(last, tip or ""):
            kept = gitrepo.Snapshot({**refs, layout.APPROVALS_REF: last}, refs.broken)
            return kept, [f"{layout.APPROVALS_REF} was rewritten: kept {last[:12]}"]
        files.atomic_write(path, f"{tip}\n".encode())
        return refs, []

    def _approved(
        self,
        want: Desired,
        recorded_state: Mapping[str, recorded.RecordedPlane],
        refs: gitrepo.Snapshot,
        now: datetime,
    ) -> tuple[approval_gate.Gated, list[str]]:
        """``want`` with what its signed approvals come to, and the approval rule now in
        force (kept in the work directory, anchored by root); a change in the approvals
        since the last cycle replans everything (a gate's verdict moved, not a spec).
        Alarms: an approvers anchor on the root branch that was not taken."""
        change = approval_gate.Change(self.specs.repo, self.settings.path, want, recorded_state)
        trust = anchoring.trusted(self.settings.work_dir, self.state, refs, self._roots[-1])
        gated = approval_gate.signed(change, self.state, refs, now, trust.rule)
        if gated.refused == approval_gate.NO_ANCHOR and trust.trouble:
            gated = replace(gated, refused=f"{trust.trouble}; {gated.refused}")
        anchoring.keep(self.settings.work_dir, gated.rule, trust)
        if gated.want.signed != self._signed:
            self._changed = None
            self._signed = gated.want.signed
        return gated, [trust.trouble] if trust.trouble else []

    def _check_path(self, commit: str) -> None:
        """``--path`` names a directory of the commit (git's own ``ls-tree`` error was all
        that was said)."""
        path = self.settings.path.strip("/")
        if path and not self.specs.repo.tree_id(commit, path):
            raise UsageError(
                f"--path {self.settings.path!r} is not a directory of {self.settings.repo} at "
                f"{self.settings.branch} ({commit[:12]}): give the directory of the specs"
            )

    def _snapshot(self, now: datetime) -> tuple[gitrepo.Snapshot, list[str]]:
        """One snapshot of every log for the whole cycle, with a root chain that verifies: a
        root branch that does not is put back to the roots this reconciler holds (an
        attack, reported), instead of stopping every plane. Alarms: that, and a root in
        force that expires soon or has."""
        refs = self.state.fetch_all()
        try:
            logcheck.check_fetched(refs, layout.ROOT_REF)
            chain = self.log.follow_roots(refs)
            why = None if chain.newest.version >= len(self._roots) else "versions are missing"
        except errors.VerificationError as exc:
            why = f"{exc.code}: {exc}"
        if why is None:
            return refs, _root_alarm(chain.newest, now)
        repaired = roots.repair(self.state, self._roots, who=self.settings.identity)
        if repaired is None:
            raise errors.MixAndMatchError(f"the roots this reconciler holds do not verify: {why}")
        refs = self.state.fetch_all()
        return refs, [f"{repaired} ({why})", *_root_alarm(self.log.follow_roots(refs).newest, now)]

    def _prepare(
        self, issuing: _Issuing, want: Desired, now: datetime, refs: Mapping[str, str]
    ) -> commands.Update | None:
        """The plane's new log commit, from the cycle's snapshot: its commands, or else a
        timestamp re-signed if it is due."""
        name, seen = issuing.plane.name, self.recorded.seen.get(issuing.plane.name, 0)
        update = self.log.prepare_append(
            name,
            self._decide(issuing, want, now),
            spec_commit=want.commit,
            now=now,
            status_seen=seen,
            self_heal=issuing.plane.spec.sync.self_heal,
            kubernetes=issuing.plane.spec.kubernetes,
            refs=refs,
        )
        return update or self.log.prepare_refresh(name, now, status_seen=seen, refs=refs)

    def _issue(self, issuing: _Issuing, want: Desired, now: datetime) -> signed.Head | None:
        """Append this plane's commands to its log as fetched now, retrying every race."""
        name, seen = issuing.plane.name, self.recorded.seen.get(issuing.plane.name, 0)
        head = self.log.append(
            name,
            self._decide(issuing, want, now),
            spec_commit=want.commit,
            now=now,
            status_seen=seen,
            self_heal=issuing.plane.spec.sync.self_heal,
            kubernetes=issuing.plane.spec.kubernetes,
        )
        if head is None:
            self.log.refresh(name, now, status_seen=seen)
        return head

    def _decide(self, issuing: _Issuing, want: Desired, now: datetime) -> commands.Decide:
        """The plane's commands, decided again against the log at append time."""
        plane, (state, read), planned = issuing

        def decide(view: commands.LogView) -> list[signed.Command]:
            if view.head.sequence == state.head:
                return planned.commands  # the log is as planned against
            again = recorded.from_ledger(
                plane.name,
                self.recorded.issued_log(plane.name, view.bundles),
                read.status,
                refused=None,
                now=now,
                stale_after=timedelta.max,
            )
            return plan_plane(plane, want, again, now).commands

        return decide


class _Issuing(NamedTuple):
    """One plane of a cycle: its spec, what was recorded of it, and its plan."""

    plane: DataPlane
    read: tuple[recorded.RecordedPlane, status.StatusRead]
    planned: PlanePlan


def desired_at(
    repo: gitrepo.GitRepo, commit: str, prefix: str, loaded: desired.DesiredState
) -> Desired:
    """Desired state of a valid commit: its documents, project tree ids and trailers."""
    documents = [doc for _, doc in loaded.documents]
    inputs = {p: repo.tree_id(commit, f"{prefix}/{p}".strip("/")) for p in plan_inputs(documents)}
    info = repo.commit_info(commit)
    return Desired(
        commit, documents, inputs=inputs, trailers=info.trailers, merged=info.parents > 1
    )


@dataclass
class RecordedReader:
    """Reads each plane's recorded state: its verified log and its verified status."""

    log: commands.CommandLog
    state: gitrepo.Mirror
    seen: dict[str, int] = field(default_factory=dict)
    """Newest status counter accepted per plane (with the timestamps', the replay bound)."""
    last: dict[str, tuple[object, recorded.RecordedPlane]] = field(default_factory=dict)
    """Per plane, what was read last and the state made of it: an unchanged log and status
    give the same ``issued`` and ``observed`` objects, so the planner sees nothing new."""
    reports: dict[str, tuple[str, bytes]] = field(default_factory=dict)
    """Per plane, the status branch's commit and the report read at it."""
    folded: dict[str, recorded.IssuedLog] = field(default_factory=dict)
    """Per plane, its log folded so far: a cycle folds only the bundles appended since."""

    def refused(
        self, plane: str, error: errors.VerificationError
    ) -> tuple[recorded.RecordedPlane, status.StatusRead]:
        """A plane whose command log does not verify: what was recorded of it last (or
        nothing), flagged with why; the reconciler issues it nothing until it verifies."""
        previous = self.last.get(plane)
        state = previous[1] if previous else recorded.RecordedPlane(plane)
        flag = f"command log refused: {error.code}: {error}"
        refused = replace(state, flag=flag, log_flag=None, log_refused=True)
        return refused, status.StatusRead(None, None)

    def read_each(
        self, planes: Iterable[DataPlane], now: datetime, refs: Mapping[str, str]
    ) -> dict[str, tuple[recorded.RecordedPlane, status.StatusRead]]:
        """Every plane's recorded state from the snapshot ``refs``. A root chain that does not
        verify fails them all; a plane whose own command log does not verify is flagged
        alone (:meth:`refused`), and nothing is issued to it."""
        self.log.follow_roots(refs)
        states = {}
        for plane in planes:
            try:
                states[plane.name] = self.read(plane, now, refs)
            except errors.VerificationError as exc:
                states[plane.name] = self.refused(plane.name, exc)
        return states

    def issued_log(self, plane: str, bundles: tuple[signed.Bundle, ...]) -> recorded.IssuedLog:
        """``plane``'s verified ``bundles`` folded, carrying on from the last fold."""
        log = self.folded.get(plane, recorded.IssuedLog()).extend(bundles)
        self.folded[plane] = log
        return log

    def read(
        self, plane: DataPlane, now: datetime, refs: Mapping[str, str] | None = None
    ) -> tuple[recorded.RecordedPlane, status.StatusRead]:
        """The plane's recorded state, flagged if its status is missing, stale or refused.

        ``refs``: the cycle's snapshot of the state repository's branches, if it took one.
        """
        view = self.log.read(plane.name, refs=refs)
        stamp_seen = view.timestamp.status_seen if view.timestamp else 0
        seen = max(self.seen.get(plane.name, 0), stamp_seen)
        read = status.read_status(
            self.state,
            plane.name,
            key=_agent_key(plane),
            seen=seen,
            head=view.head,
            issued=view.issued,
            refs=refs,
            read=self.reports,
        )
        if isinstance(read.error, errors.AheadOfLogError):  # the log moved under the agent
            raise errors.RollbackError(_rolled_back(read.error))
        if read.status is not None:
            self.seen[plane.name] = read.status.counter
        refused = f"{read.error.code}: {read.error}" if read.error else None
        stale = timedelta(seconds=parse_duration(plane.spec.status_stale_after))
        state = recorded.from_ledger(
            plane.name,
            self.issued_log(plane.name, view.bundles),
            read.status,
            refused=refused,
            now=now,
            stale_after=stale,
            expires=verify.parse_time(view.timestamp.expires) if view.timestamp else None,
        )
        source = (view.head, read.status.counter if read.status else None, refused)
        previous = self.last.get(plane.name)
        if previous is not None and previous[0] == source:
            state = replace(state, issued=previous[1].issued, observed=previous[1].observed)
        self.last[plane.name] = (source, state)
        return state, read


ROOT_WARNING = timedelta(days=30)
"""How long before the root in force expires the reconciler starts saying so."""


def _root_alarm(root: signed.Root, now: datetime) -> list[str]:
    """Say so when the root in force has expired (every agent refuses every log: nothing
    moves until ``gitplane keys rotate``) or expires within :data:`ROOT_WARNING`."""
    expires = verify.parse_time(root.expires)
    if expires <= now:
        return [
            f"root version {root.version} expired at {root.expires}: agents refuse every "
            "command log until the root is rotated (gitplane keys rotate)"
        ]
    if expires - now <= ROOT_WARNING:
        return [f"root version {root.version} expires at {root.expires}: rotate it before then"]
    return []


def _rolled_back(evidence: errors.AheadOfLogError) -> str:
    """Why a log is taken for rolled back, with the agent's own signed alarm if it raised one."""
    alarm = evidence.status.error
    cause = f"; the agent reports {alarm.code}: {alarm.message}" if alarm else ""
    return f"{evidence}{cause}"


def _agent_key(plane: DataPlane) -> keys.PublicKey | None:
    if plane.spec.agent_key is None:
        return None
    try:
        return keys.load_public_key(plane.spec.agent_key.public)
    except errors.BadKeyError:
        return None


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise UsageError(f"cannot read {path}: {exc.strerror}") from None
