"""The runtime contract: what every runtime must do, whatever it runs on.

One set of checks, parametrised by runtime (kopf tests each handler kind, python-tuf
runs one suite against every fetcher). The local runtime runs it on a real plane; the
Kubernetes runtime will join the list. A deliberately broken runtime must fail it, so
the suite is known to be able to fail.
"""

from __future__ import annotations

import shutil
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import pytest

from agent.runtimes.base import ApplyContext, Capabilities, Runtime
from agent.runtimes.local import LocalRuntime
from agent.runtimes.local.env import LocalEnv
from ledger import gitrepo
from schemas import signed
from tests.agent.test_features import APRIL, SAMPLE, _command, no_backfill
from tests.conftest import init_repo


@dataclass
class Subject:
    """A runtime, a command for a resource it runs, and a scratch space for contexts."""

    runtime: Runtime
    command: signed.Command
    scratch: Path

    def context(self, at: timedelta = timedelta(0)) -> ApplyContext:
        scratch = self.scratch / f"apply-{at.total_seconds():.0f}"
        scratch.mkdir(parents=True, exist_ok=True)
        return ApplyContext("0" * 40, scratch, now=APRIL + at)


def _local(tmp_path: Path) -> Runtime:
    data = tmp_path / "plane"
    (data / "data").mkdir(parents=True)
    shutil.copy(SAMPLE, data / "data" / "events.csv")
    repo = gitrepo.GitRepo(init_repo(tmp_path / "specs"))
    return LocalRuntime(LocalEnv(repo, "", tmp_path / "state", data))


class ForgetfulRuntime(LocalRuntime):
    """Deliberately broken: it does the work again on every apply, and says so."""

    applies = 0

    def apply(self, command: signed.Command, context: ApplyContext) -> signed.ResourceStatus:
        ForgetfulRuntime.applies += 1
        done = super().apply(command, context)
        return done.model_copy(update={"message": f"apply #{ForgetfulRuntime.applies}"})


def _forgetful(tmp_path: Path) -> Runtime:
    local = _local(tmp_path)
    assert isinstance(local, LocalRuntime)
    return ForgetfulRuntime(local.env)


RUNTIMES: dict[str, Callable[[Path], Runtime]] = {"local": _local}


@pytest.fixture(params=sorted(RUNTIMES))
def subject(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Subject]:
    runtime = RUNTIMES[request.param](tmp_path)
    yield Subject(runtime, _command(no_backfill), tmp_path / "scratch")
    runtime.delete(_command(no_backfill))


# --- the contract ----------------------------------------------------------------------


def declares_what_it_runs(subject: Subject) -> None:
    runtime = subject.runtime
    assert subject.command.kind in runtime.kinds
    assert runtime.jobs <= runtime.kinds
    assert isinstance(runtime.capabilities, Capabilities)
    assert "local" in runtime.capabilities.env_managers


def applies_idempotently(subject: Subject) -> None:
    first = subject.runtime.apply(subject.command, subject.context())
    assert (first.kind, first.name) == (subject.command.kind, subject.command.name)
    assert first.digest == subject.command.digest
    assert first.phase == "Ready", first.message
    again = subject.runtime.apply(subject.command, subject.context(timedelta(seconds=1)))
    assert again == first, "the same command twice changed something"


def observes_what_it_applied(subject: Subject) -> None:
    applied = subject.runtime.apply(subject.command, subject.context())
    seen = subject.runtime.observe(
        subject.command, applied, subject.context(), APRIL + timedelta(seconds=1)
    )
    assert (seen.phase, seen.digest) == (applied.phase, applied.digest)


def deletes_and_applies_again(subject: Subject) -> None:
    subject.runtime.apply(subject.command, subject.context())
    subject.runtime.delete(subject.command)
    subject.runtime.delete(subject.command)  # deleting twice is harmless
    again = subject.runtime.apply(subject.command, subject.context(timedelta(minutes=1)))
    assert again.phase == "Ready", again.message


def cancels_what_is_not_running_harmlessly(subject: Subject) -> None:
    idle = threading.Thread(target=lambda: None)
    subject.runtime.cancel(idle)  # nothing runs for it: nothing happens
    done = subject.runtime.apply(subject.command, subject.context())
    assert done.phase == "Ready", done.message  # and this thread was never cancelled


CONTRACT = [
    declares_what_it_runs,
    applies_idempotently,
    observes_what_it_applied,
    deletes_and_applies_again,
    cancels_what_is_not_running_harmlessly,
]


@pytest.mark.parametrize("check", CONTRACT, ids=[c.__name__ for c in CONTRACT])
def test_every_runtime_keeps_the_contract(
    subject: Subject, check: Callable[[Subject], None]
) -> None:
    check(subject)


def test_a_broken_runtime_fails_the_contract(tmp_path: Path) -> None:
    broken = Subject(_forgetful(tmp_path), _command(no_backfill), tmp_path / "scratch")
    with pytest.raises(AssertionError, match="the same command twice changed something"):
        applies_idempotently(broken)
