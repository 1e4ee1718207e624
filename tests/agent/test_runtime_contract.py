"""The runtime contract: what every runtime must do, whatever it runs on.

One set of checks, parametrised by runtime (kopf tests each handler kind, python-tuf
runs one suite against every fetcher). The local runtime runs it on a real plane, the
Kubernetes runtime against the API server test double over real HTTP. A deliberately
broken runtime must fail it, so the suite is known to be able to fail.
"""

from __future__ import annotations

import dataclasses
import functools
import shutil
import threading
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import pytest
from kubernetes import client, config

from agent.runtimes.base import (
    ApplyContext,
    CancelledError,
    CancelToken,
    Capabilities,
    Runtime,
)
from agent.runtimes.kubernetes import KINDS, KubernetesRuntime
from agent.runtimes.kubernetes.deployments import Deployments
from agent.runtimes.kubernetes.features import FeatureSets
from agent.runtimes.local import LocalRuntime
from agent.runtimes.local.env import LocalEnv
from ledger import gitrepo
from schemas import dataplane, signed
from schemas.errors import GitplaneError
from tests.agent.test_features import APRIL, SAMPLE, _command, no_backfill, source
from tests.agent.test_kubernetes_features import feature_plane
from tests.agent.test_kubernetes_render import (
    FEATURES_SETTINGS,
    FEATURES_TARGET,
    PINNED,
    SETTINGS,
    TARGET,
)
from tests.agent.test_kubernetes_render import command as deployment_command
from tests.conftest import init_repo
from tests.kubeapi.server import KubeApiDouble


@dataclass
class Subject:
    """A runtime, a command for a resource it runs, and a scratch space for contexts."""

    runtime: Runtime
    command: signed.Command
    """A command the runtime carries out."""
    impossible: signed.Command
    """A command for the same resource that it cannot carry out (its input is missing)."""
    scratch: Path
    settings: dataplane.KubernetesRuntime = SETTINGS
    """The plane's signed ``spec.kubernetes`` (ADR 0016): only a Kubernetes plane reads it."""

    def context(
        self, at: timedelta = timedelta(0), cancel: CancelToken | None = None
    ) -> ApplyContext:
        scratch = self.scratch / f"apply-{at.total_seconds():.0f}"
        scratch.mkdir(parents=True, exist_ok=True)
        return ApplyContext(
            "0" * 40,
            scratch,
            now=APRIL + at,
            cancel=cancel or CancelToken(),
            kubernetes=self.settings,  # the plane's signed settings: a Kubernetes plane's
        )


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


class DeafRuntime(LocalRuntime):
    """Deliberately broken: it does not hear a cancel."""

    def apply(self, command: signed.Command, context: ApplyContext) -> signed.ResourceStatus:
        return super().apply(command, dataclasses.replace(context, cancel=CancelToken()))


def _forgetful(tmp_path: Path) -> Runtime:
    local = _local(tmp_path)
    assert isinstance(local, LocalRuntime)
    return ForgetfulRuntime(local.env)


def _local_subject(tmp_path: Path, request: pytest.FixtureRequest) -> Subject:
    impossible = _command(no_backfill, source(path="data/missing.csv"))
    return Subject(_local(tmp_path), _command(no_backfill), impossible, tmp_path / "scratch")


def _kubernetes_subject(tmp_path: Path, request: pytest.FixtureRequest) -> Subject:
    """A Deployment on the API server test double (tests/kubeapi), its controllers stepped
    by a thread; the impossible command pins a model version whose server never starts."""
    double = KubeApiDouble().start()
    stop = threading.Event()

    def step() -> None:
        while not stop.wait(0.02):
            double.controllers.step()
            double.clock.advance(60)

    stepper = threading.Thread(target=step, daemon=True)
    stepper.start()

    api = config.new_client_from_config(str(double.write_kubeconfig(tmp_path / "kubeconfig")))
    client.CoreV1Api(api).create_namespace({"metadata": {"name": TARGET.namespace}})
    quick = functools.partial(Deployments, poll=0.02)
    fast = dataclasses.replace(KINDS["Deployment"], handler=quick)
    runtime = KubernetesRuntime(lambda _: api, TARGET.plane, kinds={"Deployment": fast})

    def stopped() -> None:
        runtime.close()
        stop.set()
        stepper.join()
        double.stop()

    request.addfinalizer(stopped)
    double.controllers.fail_args("models:/churn/404")
    good = deployment_command("deployments/churn-prod.yaml")
    missing = {**PINNED, "registryVersion": 404, "uri": "models:/churn/404"}
    impossible = deployment_command("deployments/churn-prod.yaml", pinned=missing)
    return Subject(runtime, good, impossible, tmp_path / "scratch")


def _kubernetes_features_subject(tmp_path: Path, request: pytest.FixtureRequest) -> Subject:
    """A FeatureSet with a backfill and no schedule on the double in kubelet mode: its Job's
    pods run the feature job for real into a real redis-server; the impossible command
    reads a source that is not there."""
    stack = ExitStack()
    request.addfinalizer(stack.close)
    _, cluster = stack.enter_context(feature_plane(tmp_path, request.getfixturevalue("redis_url")))
    quick = dataclasses.replace(
        KINDS["FeatureSet"], handler=functools.partial(FeatureSets, poll=0.05)
    )
    runtime = KubernetesRuntime(
        lambda _: cluster.api, FEATURES_TARGET.plane, kinds={**KINDS, "FeatureSet": quick}
    )
    stack.callback(runtime.close)
    one_chunk = {"start": "2026-03-01", "end": "2026-03-15", "chunk": "30d"}

    def manual(spec: dict[str, object]) -> None:
        spec.pop("schedule")
        spec.update(backfill=one_chunk, retry={"limit": 0})

    impossible = _command(manual, source(path="data/missing.csv"))
    made = Subject(runtime, _command(manual), impossible, tmp_path / "scratch")
    return dataclasses.replace(made, settings=FEATURES_SETTINGS)


RUNTIMES: dict[str, Callable[[Path, pytest.FixtureRequest], Subject]] = {
    "local": _local_subject,
    "kubernetes": _kubernetes_subject,
    "kubernetes-featureset": _kubernetes_features_subject,
}


@pytest.fixture(params=sorted(RUNTIMES))
def subject(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Subject]:
    made = RUNTIMES[request.param](tmp_path, request)
    yield made
    made.runtime.delete(made.command)


# --- the contract ----------------------------------------------------------------------


def declares_what_it_runs(subject: Subject) -> None:
    runtime = subject.runtime
    assert subject.command.kind in runtime.kinds
    assert runtime.jobs <= runtime.kinds
    assert runtime.retried <= runtime.kinds
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
    seen = subject.runtime.observe(subject.command, applied, subject.context(timedelta(seconds=1)))
    assert (seen.phase, seen.digest) == (applied.phase, applied.digest)


def deletes_and_applies_again(subject: Subject) -> None:
    subject.runtime.apply(subject.command, subject.context())
    subject.runtime.delete(subject.command)
    subject.runtime.delete(subject.command)  # deleting twice is harmless
    again = subject.runtime.apply(subject.command, subject.context(timedelta(minutes=1)))
    assert again.phase == "Ready", again.message


def reports_what_it_cannot_do(subject: Subject) -> None:
    """A command it cannot carry out is reported ``Failed`` with why (or raises an error of
    Gitplane's, which the agent reports ``Failed``): never a traceback, never ``Ready``."""
    try:
        failed = subject.runtime.apply(subject.impossible, subject.context())
    except GitplaneError as exc:
        assert str(exc)
    else:
        assert failed.phase == "Failed", failed
        assert failed.digest == subject.impossible.digest
        assert failed.message
    fixed = subject.runtime.apply(subject.command, subject.context(timedelta(seconds=1)))
    assert fixed.phase == "Ready", fixed.message  # the next command recovers it


def starts_nothing_once_cancelled(subject: Subject) -> None:
    """A cancelled token refuses the work at once; the same command applies afterwards
    with a fresh token, as if the cancelled apply had never been asked for."""
    cancel = CancelToken()
    cancel.cancel("the agent is stopping")
    with pytest.raises(CancelledError, match="the agent is stopping"):
        subject.runtime.apply(subject.command, subject.context(cancel=cancel))
    done = subject.runtime.apply(subject.command, subject.context())
    assert done.phase == "Ready", done.message


CONTRACT = [
    declares_what_it_runs,
    applies_idempotently,
    observes_what_it_applied,
    deletes_and_applies_again,
    reports_what_it_cannot_do,
    starts_nothing_once_cancelled,
]


@pytest.mark.parametrize("check", CONTRACT, ids=[c.__name__ for c in CONTRACT])
def test_every_runtime_keeps_the_contract(
    subject: Subject, check: Callable[[Subject], None]
) -> None:
    check(subject)


def test_a_broken_runtime_fails_the_contract(tmp_path: Path) -> None:
    command = _command(no_backfill)
    broken = Subject(_forgetful(tmp_path), command, command, tmp_path / "scratch")
    with pytest.raises(AssertionError, match="the same command twice changed something"):
        applies_idempotently(broken)


def test_a_runtime_deaf_to_cancel_fails_the_contract(tmp_path: Path) -> None:
    local = _local(tmp_path)
    assert isinstance(local, LocalRuntime)
    command = _command(no_backfill)
    deaf = Subject(DeafRuntime(local.env), command, command, tmp_path / "scratch")
    with pytest.raises(pytest.fail.Exception, match="DID NOT RAISE"):
        starts_nothing_once_cancelled(deaf)
