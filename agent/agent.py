"""The agent loop for one plane: pull, verify, apply in order, report.

Every cycle: fetch and verify the plane's command log through the ledger
(a verification failure applies nothing and is reported with its attack
code), apply each new command through the runtime in sequence order with a
journal (so a crash mid-apply resumes without applying twice), then publish
a signed status report if anything changed. When the git server is
unreachable, nothing already running is touched and the next cycle retries.

A daemon cycle (``run_once(now, wait=False)``) hands an apply to a worker
thread and returns: a model build or a DAG run takes minutes, and meanwhile
the agent keeps observing and healing everything else, reports the resource
as ``Progressing``, and answers a stop at once. Commands still apply one at
a time, in order: the next waits until the one in progress has finished.
"""

from __future__ import annotations

import concurrent.futures
import functools
import logging
import shutil
import tempfile
import time
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from agent import background, declared, progress, retry
from agent.config import AgentConfig
from agent.journal import Journal, Source
from agent.runtimes import select
from agent.runtimes.base import ApplyContext, CancelToken, Runtime
from ledger import errors, gitrepo, keyring, keys, layout, status
from ledger import reader as log_reader
from schemas import signed
from schemas.errors import GitplaneError, UsageError

log = logging.getLogger("gitplane.agent")


@dataclass
class Outcome:
    """What one cycle did."""

    applied: list[signed.Command]
    error: signed.StatusError | None
    reported: bool
    unreachable: str | None = None
    """Why git could not be reached this cycle (nothing changed; the next cycle retries)."""
    in_progress: str | None = None
    """``Kind/name`` of the apply still running on the worker thread, if one is."""
    misconfigured: str | None = None
    """Why nothing was done or reported: the configuration names what is not there (a
    ``plane`` with no command log that the specs do not declare, a ``branch`` the repository
    does not have)."""


PROBE = b"gitplane agent key probe: does this signer hold the key the config names?"
"""Signed once at start through a key URI: never a document (those are signed over DSSE's
pre-authentication encoding, which starts ``DSSEv1``)."""


def signer_of(config: AgentConfig) -> keys.FileSigner | keys.UriSigner:
    """The agent's signer: its key file, or the key service its ``keyUri`` names, tried
    once at start so that a wrong URI or key is said before anything runs."""
    if config.key_file is not None:
        return keys.FileSigner.load(config.key_file)
    if config.key_uri is None or config.public_key is None:  # the config's own rule
        raise UsageError("the agent config names no key: give keyFile, or keyUri and publicKey")
    try:
        signer = keys.UriSigner(config.key_uri, keys.load_public_key(config.public_key))
        signer.sign(PROBE)
    except (errors.BadKeyError, errors.SignatureError) as exc:
        scheme = config.key_uri.split(":", maxsplit=1)[0]
        raise UsageError(
            f"cannot sign status through keyUri {scheme}:...: {str(exc).rstrip('.')}; it must "
            f"hold the key whose public half is publicKey ({config.public_key[:12]}...)"
        ) from None
    return signer


class Agent:
    """One plane's agent."""

    def __init__(
        self,
        config: AgentConfig,
        runtime: Runtime | None = None,
        *,
        pace: progress.Pace = progress.Pace(),  # noqa: B008 - frozen: one shared default is fine
    ) -> None:
        self.config = config
        self.pace = pace
        """How often a long apply logs a progress line."""
        state = config.state_dir
        self.mirror = gitrepo.Mirror.open(state / "mirror.git", config.repo)
        root = keyring.read_root(config.root_file)
        trust = state / "trust.json"
        self.reader = log_reader.CommandReader(self.mirror, config.plane, trust, root)
        who = gitrepo.Identity(f"gitplane-agent {config.plane}", f"{config.plane}@gitplane.invalid")
        signer = signer_of(config)
        self.writer = status.StatusWriter(self.mirror, config.plane, signer, who, trust, root)
        self.journal = Journal.load(state / "journal.json")
        self._flight: background.Flight | None = None
        self._jobs: background.JobRound | None = None
        self._held: set[str] = set()
        """Resources whose command waits for the jobs pass observing them to end."""
        self.runtime = runtime or select.for_config(config, self.mirror.repo)

    def run_once(self, now: datetime, *, wait: bool = True) -> Outcome:
        """One cycle; never raises for bad data, only for a broken installation.

        ``wait=False`` (the daemon) starts an apply on the worker thread and goes on
        without it; a later cycle records its result and applies what follows it.
        """
        if self._flight is not None and self._flight.landed:
            self._flight.offered = True  # if this cycle fails, the next poll tries again
        self._record_retry(now)
        self._held.clear()
        try:
            specs = self.mirror.fetch([f"refs/heads/{self.config.branch}"])
            pending = self.reader.update(now)
            if not pending and (why := self._misconfigured(specs)):
                return Outcome([], None, False, misconfigured=why)
        except errors.VerificationError as exc:
            failure = signed.StatusError(code=exc.code, message=str(exc)[:4000])
            reported = self._try_report(now, failure)
            return Outcome([], failure, reported, in_progress=self.in_progress)
        except gitrepo.GitError as exc:
            return Outcome([], None, False, unreachable=str(exc), in_progress=self.in_progress)
        self._supersede(pending)
        started = time.monotonic()
        applied: list[signed.Command] = []
        for head, bundle in pending:
            done, complete = self._apply(head, bundle, now, wait=wait)
            applied += done
            if not complete:  # a command is still in progress: the rest waits for it
                break
        self._observe(now, wait=wait)
        reported_at = now + timedelta(seconds=time.monotonic() - started)  # after a long build
        reported = self._try_report(reported_at, None)
        return Outcome(applied, None, reported, in_progress=self.in_progress)

    def _misconfigured(self, specs: gitrepo.Snapshot) -> str | None:
        """Why this agent has nothing to do: its branch is not in the repository, or its
        plane has no command log and the specs on its branch do not declare it. None
        otherwise (a declared plane reports before its first command: the reconciler plans
        with its capabilities)."""
        plane, branch = self.config.plane, self.config.branch
        commit = specs.get(f"refs/heads/{branch}")
        if commit is None:
            return (
                f"{self.config.repo} has no branch {branch}: check the agent configuration's branch"
            )
        if self.reader.load().timestamp is not None:
            return None
        if self.mirror.remote_heads(layout.commands_ref(plane)):
            return None
        if declared.is_declared(self.mirror, commit, plane):
            return None
        return (
            f"no command log for plane {plane!r} and no DataPlane {plane!r} in the specs on "
            f"{branch} of {self.config.repo}: check the agent configuration's plane "
            "(nothing reported)"
        )

    @property
    def landed(self) -> bool:
        """Whether an apply started by an earlier cycle has finished and no cycle has run
        since, or a command held back by a jobs pass can go now: the daemon runs a cycle
        at once to record it and apply what follows."""
        flight, jobs = self._flight, self._jobs
        if flight is not None and flight.landed and not flight.offered:
            return True
        return bool(self._held) and (jobs is None or jobs.landed)

    def abandon(self) -> str | None:
        """Stop an apply and a jobs pass in progress (the agent is stopping); ``Kind/name``
        of the apply if there was one.

        Its journal step stays ``started``, so the next start applies it again: every
        apply is idempotent. A scheduled run stopped here counts as that slot's run: the local
        runtime marks its MLflow run KILLED when the DAG next runs.
        """
        flight, self._flight = self._flight, None
        jobs, self._jobs = self._jobs, None
        running = [work for work in (flight, jobs) if work is not None and not work.landed]
        if not running:
            return None
        for work in running:
            work.cancel.cancel("the agent is stopping")
        futures: list[concurrent.futures.Future[Any]] = [work.future for work in running]
        _, unfinished = concurrent.futures.wait(futures, timeout=background.ABANDON_WAIT_SECONDS)
        if unfinished:  # a runtime that does not heed its token: the process exits when it ends
            fields = {"plane": self.config.plane, "waited": background.ABANDON_WAIT_SECONDS}
            log.warning("cancelled work still running", extra={"fields": fields})
        return flight.ref if flight in running else None

    def close(self) -> None:
        """Release what the runtime holds open between cycles (a Kubernetes runtime's
        watches), if it holds anything: the agent is stopping, after :meth:`abandon`."""
        close = getattr(self.runtime, "close", None)
        if callable(close):
            close()

    def _supersede(self, pending: list[tuple[signed.Head, signed.Bundle]]) -> None:
        """Cancel the apply in progress if a later bundle carries a newer command for the
        same resource (a fix pushed while a build runs): the newer one goes next, now, not
        when the old one ends or times out."""
        flight = self._flight
        if flight is None or flight.landed or flight.superseded_by:
            return
        newer = flight.newer_in(pending)
        if newer:
            flight.superseded_by = newer
            flight.cancel.cancel(f"superseded by bundle {newer}")

    @property
    def in_progress(self) -> str | None:
        """``Kind/name`` of the apply running on the worker thread, if one is."""
        return self._flight.ref if self._flight else None

    def observe_only(self, now: datetime) -> bool:
        """Between polls: observe what runs (heal drift, run due jobs) and report changes,
        without touching git unless something changed. Scheduled jobs run on the jobs
        thread, as in a daemon cycle."""
        if not self._observe(now, wait=False):
            return False
        return self._try_report(now, None)

    def _observe(self, now: datetime, *, wait: bool = True) -> bool:
        """Ask the runtime how every applied resource is doing; True if anything changed.

        The resource an apply is in progress for is left to that apply. Without ``wait``,
        feature sets and DAGs (whose due runs take as long as they take) are observed by a
        pass on the jobs thread, and what the last finished pass found is recorded here."""
        changed = self._record_jobs() | self._record_retry(now)
        busy = self._flight.ref if self._flight else None
        jobs: dict[str, tuple[Source, signed.ResourceStatus]] = {}
        for key, source in sorted(self.journal.sources.items()):
            last = self.journal.resources.get(key)
            if last is None or last.phase == "Deleted" or key == busy or key in self._held:
                continue
            if retry.due(last, now) and last.digest == source.command.digest:
                changed |= self._retry(source, last, now, wait=wait)
                continue
            if not wait and source.command.kind in self.runtime.jobs:
                jobs[key] = (source, last)
                continue
            now_state = self._observe_one(source, last, CancelToken(), now=now)
            if now_state != last:
                self._log_if_failed(now_state, last)
                self.journal.observed(now_state)
                changed = True
        if jobs and self._jobs is None:
            observe = functools.partial(self._observe_one, now=now)
            self._jobs = background.JobRound.start(jobs, observe)
        return changed

    def _retry(
        self, source: Source, last: signed.ResourceStatus, now: datetime, *, wait: bool
    ) -> bool:
        """Apply a failed resource's command again, from the journal: no new command is
        needed. One apply at a time, as for commands; True if anything changed."""
        command, heal = source.command, self.journal.self_heal
        apply = functools.partial(self._apply_one, source, heal, now)
        if wait:
            self._settle_retry(apply(CancelToken()), last, now)
            return True
        if self._flight is not None:
            return False  # the next observation tries again
        self._flight = background.Flight.start(0, command, apply, retry=True)
        self.journal.observed(background.progressing(command, self.journal.resources, now))
        return True

    def _record_retry(self, now: datetime) -> bool:
        """Record a retry that has finished (unless a newer command superseded it: that one
        is applied next); True if anything changed."""
        flight = self._flight
        if flight is None or not flight.retry or not flight.landed:
            return False
        self._flight = None
        if flight.superseded_by:
            return False
        self._settle_retry(flight.outcome(), self.journal.resources.get(flight.ref), now)
        return True

    def _settle_retry(
        self, state: signed.ResourceStatus, before: signed.ResourceStatus | None, now: datetime
    ) -> None:
        state = retry.after_failure(state, before, now)
        self._log_if_failed(state, None)
        self.journal.observed(state)

    def _observe_one(
        self, source: Source, last: signed.ResourceStatus, cancel: CancelToken, *, now: datetime
    ) -> signed.ResourceStatus:
        scratch = Path(tempfile.mkdtemp(prefix="observe-", dir=self._scratch()))
        context = source.context(scratch, self.journal.self_heal, now=now, cancel=cancel)
        context = replace(context, kubernetes=self.journal.kubernetes)
        try:
            return self.runtime.observe(source.command, last, context)
        except GitplaneError as exc:
            return last.model_copy(update={"message": str(exc)[-4000:]})
        finally:
            shutil.rmtree(scratch, ignore_errors=True)

    def _record_jobs(self) -> bool:
        """Record what a finished jobs pass found; True if anything changed."""
        jobs = self._jobs
        if jobs is None or not jobs.landed:
            return False
        self._jobs = None
        found = jobs.found(self.journal.sources, self.journal.resources)
        for state in found:
            self._log_if_failed(state, self.journal.resources.get(f"{state.kind}/{state.name}"))
            self.journal.observed(state)
        return bool(found)

    def _log_if_failed(
        self, state: signed.ResourceStatus, before: signed.ResourceStatus | None
    ) -> None:
        """One log line when a resource becomes Failed, Stalled or Blocked (or fails again with
        another message): a failure is never only in the status branch."""
        if state.phase not in signed.FAILING:
            return
        if before is not None and (before.phase, before.message) == (state.phase, state.message):
            return
        fields = {"plane": self.config.plane, "digest": state.digest, "cause": state.cause[:2000]}
        log.warning(f"{state.phase.lower()} {state.kind}/{state.name}", extra={"fields": fields})

    def _try_report(self, now: datetime, failure: signed.StatusError | None) -> bool:
        """Report, unless git is unreachable: what runs keeps running, status waits (and
        the failure is logged: a report that cannot be written is never silent)."""
        try:
            return self._report(now, failure)
        except gitrepo.GitError as exc:
            fields = {"plane": self.config.plane, "error": str(exc)[-2000:]}
            log.warning("status not written", extra={"fields": fields})
            return False

    def _apply(
        self, head: signed.Head, bundle: signed.Bundle, now: datetime, *, wait: bool
    ) -> tuple[list[signed.Command], bool]:
        """Apply ``bundle``'s commands not applied yet; those applied, and whether all are."""
        done: list[signed.Command] = []
        settings = (bundle.self_heal, bundle.kubernetes)
        if (self.journal.self_heal, self.journal.kubernetes) != settings:
            self.journal.self_heal, self.journal.kubernetes = settings
            self.journal.save()
        for command in bundle.commands:
            if self.journal.step(head.sequence, command) in ("applied", "failed"):
                continue
            resource = self._outcome(head.sequence, command, bundle, now, wait=wait)
            if resource is None:
                return done, False
            if command.kind in self.runtime.retried:
                before = self.journal.resources.get(f"{command.kind}/{command.name}")
                resource = retry.after_failure(resource, before, now)
            step = "failed" if resource.phase in ("Failed", "Stalled") else "applied"
            self._log_if_failed(resource, None)
            self.journal.record(head.sequence, command, step, resource, Source.of(command, bundle))
            done.append(command)
        self.reader.mark_applied(head)
        return done, True

    def _outcome(
        self,
        sequence: int,
        command: signed.Command,
        bundle: signed.Bundle,
        now: datetime,
        *,
        wait: bool,
    ) -> signed.ResourceStatus | None:
        """What applying ``command`` made of its resource; None while that is in progress."""
        flight = self._flight
        if flight is not None:
            if not flight.landed:
                return None  # one apply at a time, in order
            self._flight = None
            if (flight.sequence, flight.command) == (sequence, command):
                return flight.outcome()
        if self._jobs is not None and self._jobs.watches(command):  # its scheduled run goes on
            self._held.add(f"{command.kind}/{command.name}")
            return None
        self.journal.record(sequence, command, "started")
        source = Source.of(command, bundle)
        if wait or command.action == "delete":
            return self._apply_one(source, bundle.self_heal, now, CancelToken())
        apply = functools.partial(self._apply_one, source, bundle.self_heal, now)
        self._flight = background.Flight.start(sequence, command, apply)
        self.journal.observed(background.progressing(command, self.journal.resources, now))
        return None

    def _apply_one(
        self, source: Source, self_heal: bool, now: datetime, cancel: CancelToken
    ) -> signed.ResourceStatus:
        command = source.command
        if command.action == "delete":
            try:
                self.runtime.delete(command)
            except GitplaneError as exc:
                return background.failed(command, str(exc))
            self.journal.forget(command.kind, command.name)
            return signed.ResourceStatus(
                kind=command.kind, name=command.name, phase="Deleted", digest=command.digest
            )
        scratch = Path(tempfile.mkdtemp(prefix="apply-", dir=self._scratch()))
        doing, kubernetes = progress.Progress(), self.journal.kubernetes
        context = source.context(scratch, self_heal, now=now, cancel=cancel)
        context = replace(context, progress=doing, kubernetes=kubernetes)
        try:
            return progress.watched(
                f"{command.kind}/{command.name}",
                functools.partial(self._applied, command, context),
                progress=doing,
                pace=self.pace,
                plane=self.config.plane,
                commit=source.spec_commit[:12],
            )
        finally:
            shutil.rmtree(scratch, ignore_errors=True)

    def _applied(self, command: signed.Command, context: ApplyContext) -> signed.ResourceStatus:
        """What the runtime made of the resource; ``Failed`` with the error if it failed."""
        try:
            return self.runtime.apply(command, context)
        except GitplaneError as exc:
            return background.failed(command, str(exc))

    def _scratch(self) -> Path:
        path = self.config.state_dir / "scratch"
        path.mkdir(parents=True, exist_ok=True)
        return path

    def _report(self, now: datetime, failure: signed.StatusError | None) -> bool:
        trust = self.reader.load()
        version = 0
        if trust.timestamp is not None:
            stamp = log_reader.timestamp_of(trust.timestamp)
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
            capabilities=signed.PlaneCapabilities(
                env_managers=sorted(self.runtime.capabilities.env_managers),
                enforces_resources=self.runtime.capabilities.enforces_resources,
            ),
        )


def stop_serving(config: AgentConfig) -> int:
    """Stop what the plane of ``config`` serves (its runtime's :meth:`Runtime.stop_serving`),
    with no agent running: for an operator, or ``gitplane demo``, taking the plane down."""
    mirror = gitrepo.Mirror.open(config.state_dir / "mirror.git", config.repo)
    return select.for_config(config, mirror.repo).stop_serving()
