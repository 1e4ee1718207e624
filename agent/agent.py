"""The agent loop for one plane: pull, verify, apply in order, report.

Every cycle: fetch and verify the plane's command log through the ledger
(a verification failure applies nothing and is reported with its attack
code), apply each new command through the runtime in sequence order with a
journal (so a crash mid-apply resumes without applying twice), then publish
a signed status report if anything changed. When the git server is
unreachable, nothing already running is touched and the next cycle retries.
"""

from __future__ import annotations

import shutil
import tempfile
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from agent.config import AgentConfig
from agent.journal import Journal
from agent.runtimes.base import ApplyContext, Runtime
from agent.runtimes.local import LocalRuntime
from agent.runtimes.local.env import LocalEnv
from ledger import commands, errors, gitrepo, keys, status
from schemas import signed
from schemas.errors import GitplaneError


@dataclass
class Outcome:
    """What one cycle did."""

    applied: list[signed.Command]
    error: signed.StatusError | None
    reported: bool
    unreachable: str | None = None
    """Why git could not be reached this cycle (nothing changed; the next cycle retries)."""


class Agent:
    """One plane's agent."""

    def __init__(self, config: AgentConfig, runtime: Runtime | None = None) -> None:
        self.config = config
        state = config.state_dir
        self.mirror = gitrepo.Mirror.open(state / "mirror.git", config.remote)
        root = config.root_file.read_bytes()
        trust = state / "trust.json"
        self.reader = commands.CommandReader(self.mirror, config.plane, trust, root)
        who = gitrepo.Identity(f"gitplane-agent {config.plane}", f"{config.plane}@gitplane.invalid")
        signer = keys.FileSigner.load(config.key_file)
        self.writer = status.StatusWriter(self.mirror, config.plane, signer, who, trust, root)
        self.journal = Journal.load(state / "journal.json")
        self.runtime = runtime or LocalRuntime(
            LocalEnv(
                repo=self.mirror.repo,
                tracking_uri=config.tracking_uri(),
                state_dir=state,
                data_dir=config.data_dir(),
                ports=config.runtime.port_range(),
                standby=config.runtime.standby_replicas,
            )
        )

    def run_once(self, now: datetime) -> Outcome:
        """One cycle; never raises for bad data, only for a broken installation."""
        try:
            self.mirror.fetch([f"refs/heads/{self.config.spec_branch}"])
            pending = self.reader.update(now)
        except errors.VerificationError as exc:
            failure = signed.StatusError(code=exc.code, message=str(exc)[:4000])
            return Outcome([], failure, self._try_report(now, failure))
        except gitrepo.GitError as exc:
            return Outcome([], None, False, unreachable=str(exc))
        started = time.monotonic()
        applied = [c for head, bundle in pending for c in self._apply(head, bundle)]
        self._observe(now)
        reported_at = now + timedelta(seconds=time.monotonic() - started)  # after a long build
        return Outcome(applied, None, self._try_report(reported_at, None))

    def observe_only(self, now: datetime) -> bool:
        """Between polls: observe what runs (heal drift, run due jobs) and report changes,
        without touching git unless something changed."""
        if not self._observe(now):
            return False
        return self._try_report(now, None)

    def _observe(self, now: datetime) -> bool:
        """Ask the runtime how every applied resource is doing; True if anything changed."""
        changed = False
        for key, source in sorted(self.journal.sources.items()):
            last = self.journal.resources.get(key)
            if last is None or last.phase == "Deleted":
                continue
            scratch = Path(tempfile.mkdtemp(prefix="observe-", dir=self._scratch()))
            context = ApplyContext(source.spec_commit, scratch, self.journal.self_heal)
            try:
                now_state = self.runtime.observe(source.command, last, context, now)
            except GitplaneError as exc:
                now_state = last.model_copy(update={"message": str(exc)[-4000:]})
            finally:
                shutil.rmtree(scratch, ignore_errors=True)
            if now_state != last:
                self.journal.observed(now_state)
                changed = True
        return changed

    def _try_report(self, now: datetime, failure: signed.StatusError | None) -> bool:
        """Report, unless git is unreachable: what runs keeps running, status waits."""
        try:
            return self._report(now, failure)
        except gitrepo.GitError:
            return False

    def _apply(self, head: signed.Head, bundle: signed.Bundle) -> list[signed.Command]:
        done = []
        if self.journal.self_heal != bundle.self_heal:
            self.journal.self_heal = bundle.self_heal
            self.journal.save()
        for command in bundle.commands:
            if self.journal.step(head.sequence, command) in ("applied", "failed"):
                continue
            self.journal.record(head.sequence, command, "started")
            resource = self._apply_one(command, bundle.spec_commit, bundle.self_heal)
            step = "failed" if resource.phase == "Failed" else "applied"
            self.journal.record(head.sequence, command, step, resource, bundle.spec_commit)
            done.append(command)
        self.reader.mark_applied(head)
        return done

    def _apply_one(
        self, command: signed.Command, spec_commit: str, self_heal: bool
    ) -> signed.ResourceStatus:
        if command.action == "delete":
            try:
                self.runtime.delete(command)
            except GitplaneError as exc:
                return _failed(command, exc)
            self.journal.forget(command.kind, command.name)
            return signed.ResourceStatus(
                kind=command.kind, name=command.name, phase="Deleted", digest=command.digest
            )
        scratch = Path(tempfile.mkdtemp(prefix="apply-", dir=self._scratch()))
        try:
            return self.runtime.apply(command, ApplyContext(spec_commit, scratch, self_heal))
        except GitplaneError as exc:
            return _failed(command, exc)
        finally:
            shutil.rmtree(scratch, ignore_errors=True)

    def _scratch(self) -> Path:
        path = self.config.state_dir / "scratch"
        path.mkdir(parents=True, exist_ok=True)
        return path

    def _report(self, now: datetime, failure: signed.StatusError | None) -> bool:
        trust = self.reader.load()
        version = 0
        if trust.timestamp is not None:
            stamp = commands.timestamp_of(trust.timestamp)
            version = stamp.version
        resources = sorted(
            (r for r in self.journal.resources.values() if r.phase != "Deleted"),
            key=lambda r: (r.kind, r.name),
        )
        return self.writer.write(
            applied=trust.applied,
            timestamp_version=version,
            resources=resources,
            error=failure,
            now=now,
        )


def _failed(command: signed.Command, exc: GitplaneError) -> signed.ResourceStatus:
    return signed.ResourceStatus(
        kind=command.kind,
        name=command.name,
        phase="Failed",
        digest=command.digest,
        message=str(exc)[-4000:],
    )
