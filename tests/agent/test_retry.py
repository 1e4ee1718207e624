"""A failed apply is retried on the plane, from the command it holds: no new signed command,
capped backoff, then ``Stalled`` until the spec changes."""

from __future__ import annotations

import re
import shutil
from datetime import timedelta
from pathlib import Path

import pytest

from agent import retry
from agent.agent import Agent
from agent.config import load_config
from reconciler import reconcile as reconciling
from schemas import signed
from tests.agent.test_agent_daemon import _agent_config, _jobs_only
from tests.conftest import FIXTURES
from tests.reconciler.conftest import NOW, World, world  # noqa: F401 - the fixture

FAILED = signed.ResourceStatus(
    kind="DAG", name="d", phase="Failed", digest="sha256:" + "a" * 64, message="boom"
)


def test_backoff_doubles_to_its_cap_then_the_resource_is_stalled() -> None:
    state, waits = None, []
    for _ in range(retry.LIMIT):
        state = retry.after_failure(FAILED, state, NOW)
        if state.phase == "Failed":
            assert retry.due(state, NOW + timedelta(seconds=retry.CAP_SECONDS))
            waits.append(str(state.observed["nextRetry"]))
    assert waits == [
        "2026-11-24T12:00:30Z",
        "2026-11-24T12:01:00Z",
        "2026-11-24T12:02:00Z",
        "2026-11-24T12:04:00Z",
    ]
    assert state is not None and state.phase == "Stalled"
    assert state.message == f"stalled after {retry.LIMIT} failed attempts: boom"
    assert "nextRetry" not in state.observed and not retry.due(state, NOW + timedelta(days=9))


def test_a_new_command_counts_from_one_and_a_runtime_that_retries_is_left_to_it() -> None:
    twice = retry.after_failure(FAILED, retry.after_failure(FAILED, None, NOW), NOW)
    assert twice.observed["attempts"] == 2
    other = FAILED.model_copy(update={"digest": "sha256:" + "b" * 64})
    assert retry.after_failure(other, twice, NOW).observed["attempts"] == 1
    own = FAILED.model_copy(update={"observed": {"retryAt": "2026-11-24T12:05:00Z"}})
    assert retry.after_failure(own, None, NOW) == own
    assert not retry.due(own, NOW + timedelta(days=1))
    ready = FAILED.model_copy(update={"phase": "Ready"})
    assert retry.after_failure(ready, twice, NOW) == ready


BROKEN = """\
apiVersion: gitplane.dev/v1alpha1
kind: Model
metadata: {name: broken}
spec:
  version: "1.0.0"
  source: {project: {path: projects/broken}}
  planeSelector: {matchLabels: {env: dev}}
"""


@pytest.mark.slow
def test_the_agent_retries_from_the_command_it_holds_then_stalls(
    world: World,  # noqa: F811
) -> None:
    """A build that fails (its training data is missing) is built again from the command
    the plane holds, after 30 s, 60 s, 120 s, 240 s; the fifth failure stalls it."""

    def broken_model(work: Path) -> None:
        _jobs_only(work)
        shutil.rmtree(work / "dags")
        shutil.rmtree(work / "features")
        shutil.copytree(FIXTURES / "projects" / "broken", work / "projects" / "broken")
        (work / "models").mkdir()
        (work / "models" / "broken.yaml").write_text(BROKEN)

    world.change("a model whose build fails", broken_model)
    reconciler = reconciling.Reconciler(world.settings())
    reconciler.reconcile(NOW)
    assert reconciler.log.read("local-dev").head.sequence == 1
    worker = Agent(load_config(_agent_config(world, "")))

    worker.run_once(NOW)
    first = worker.journal.resources["Model/broken"]
    assert (first.phase, first.observed["attempts"]) == ("Failed", 1)
    assert "training data not found" in first.message
    assert first.cause.startswith("the project run failed (exit 1; run ")
    assert first.cause.endswith("training data not found: /data/customers.parquet")
    worker.run_once(NOW + timedelta(seconds=29))  # not due yet: nothing ran
    assert worker.journal.resources["Model/broken"] == first

    now = NOW
    runs = set(re.findall(r"run ([0-9a-f]{32})", first.message))
    for attempt in range(2, retry.LIMIT + 1):
        now += timedelta(minutes=10)
        worker.run_once(now)
        state = worker.journal.resources["Model/broken"]
        assert state.observed["attempts"] == attempt
        runs |= set(re.findall(r"run ([0-9a-f]{32})", state.message))
    assert len(runs) == retry.LIMIT  # built again each time, each a run of its own
    stalled = worker.journal.resources["Model/broken"]
    assert stalled.phase == "Stalled"
    assert stalled.message.startswith(f"stalled after {retry.LIMIT} failed attempts: ")
    worker.run_once(now + timedelta(days=1))
    assert worker.journal.resources["Model/broken"] == stalled  # until the spec changes

    cycle = reconciler.reconcile(now)
    assert cycle.issued == {}, cycle.issued
    view = reconciler.log.read("local-dev")  # every retry came from the command it held:
    assert (view.head.sequence, len(view.bundles)) == (1, 1)  # no bundle was issued since
    assert cycle.plan is not None
    [action] = [
        a
        for p in cycle.plan.planes
        if p.plane == "local-dev"
        for a in p.actions
        if a.ref == "Model/broken"
    ]
    assert action.op == "blocked"
    assert action.reason.endswith("change its spec to try again (docs/agent.md)")


@pytest.mark.effect("DataPlane", "spec.sync.selfHeal")
def test_a_bundle_of_settings_alone_changes_how_the_agent_heals(
    world: World,  # noqa: F811
) -> None:
    """``selfHeal: false`` on its own is a bundle with no commands: the agent verifies it,
    applies nothing, and from then on reports drift instead of healing it."""

    def jobs_only_no_dag(work: Path) -> None:
        _jobs_only(work)
        shutil.rmtree(work / "dags")

    def hands_off(work: Path) -> None:
        path = work / "planes" / "local-dev.yaml"
        path.write_text(path.read_text().replace("selfHeal: true", "selfHeal: false"))

    world.change("a feature set only", jobs_only_no_dag)
    reconciler = reconciling.Reconciler(world.settings())
    reconciler.reconcile(NOW)
    worker = Agent(load_config(_agent_config(world, "")))
    worker.run_once(NOW)
    assert worker.journal.self_heal is True
    applied = dict(worker.journal.resources)
    world.change("hands off local-dev", hands_off)
    reconciler.reconcile(NOW + timedelta(minutes=1))
    worker.run_once(NOW + timedelta(minutes=1))
    assert worker.journal.self_heal is False
    assert worker.journal.resources.keys() == applied.keys()  # nothing applied again
