"""``gitplane wait`` against real logs: the status lands, a build fails, nothing comes.

The command runs in this process (``cli.main.main``, so exit codes are mapped as for a
user) with ``cli.clock`` replaced by :class:`TestClock`: a sleep moves the clock on and
lets the test's agent act, so minutes of waiting take no real time.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import pytest

from cli import clock as cli_clock
from cli import main
from reconciler import reconcile as reconciling
from reconciler import wait as waiting
from reconciler.status_view import PlaneStatus, Resource
from schemas import signed
from tests import clock
from tests.reconciler.conftest import NOW, TestAgent, World, world  # noqa: F401 - the fixture


@dataclass
class TestClock:
    """The wait's clock: starts at ``NOW``; each sleep moves it on and runs the next step."""

    __test__ = False

    at: datetime = NOW
    steps: list[Callable[[], object]] = field(default_factory=list)
    slept: list[float] = field(default_factory=list)

    def now(self) -> datetime:
        return self.at

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.at += timedelta(seconds=seconds)
        if self.steps:
            self.steps.pop(0)()


@dataclass(frozen=True)
class Done:
    code: int
    out: str
    err: str


def _wait(
    world: World,  # noqa: F811
    test_clock: TestClock,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    *args: str,
) -> Done:
    bare = world.remote.removeprefix("file://")
    root = str(world.keys_dir / "root.json")
    monkeypatch.setattr(sys, "argv", ["gitplane", "wait", *args, bare, "--root", root])
    monkeypatch.setattr(cli_clock, "now", test_clock.now)
    monkeypatch.setattr(cli_clock, "sleep", test_clock.sleep)
    code = 0
    try:
        main.main()
    except SystemExit as exc:
        code = int(exc.code or 0)
    out, err = capsys.readouterr()
    return Done(code, out, err)


def test_wait_returns_once_the_plane_reports_the_issued_digest_applied(
    world: World,  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """The deployment is issued in #2 while the plane has applied #1: Issued, not Synced. The
    wait fetches again after each interval and returns once the signed status lands."""
    reconciler = reconciling.Reconciler(world.settings())
    agent = TestAgent(world, "local-dev")
    reconciler.reconcile(NOW)
    agent.sync()
    reconciler.reconcile(NOW)  # the deployment goes out once its model is built
    test_clock = TestClock(steps=[lambda: None, agent.sync])

    done = _wait(world, test_clock, monkeypatch, capsys, "deployment/churn-dev", "--interval", "5s")
    assert done.code == 0, done.err
    assert done.out.splitlines() == [  # one progress line, though it was read twice
        "Deployment/churn-dev on local-dev is Issued (Unknown): "
        "issued in #2; the plane has applied #1",
        "Deployment/churn-dev on local-dev is Synced (Ready)",
    ]
    assert test_clock.slept == [5, 5]


def test_a_failed_build_ends_the_wait_at_once_with_its_reason(
    world: World,  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    reconciling.Reconciler(world.settings()).reconcile(NOW)
    TestAgent(world, "local-dev").sync(phase="Failed")
    test_clock = TestClock()

    done = _wait(world, test_clock, monkeypatch, capsys, "Model/churn", "--plane", "local-dev")
    assert done.code == 1
    assert done.err == (
        "error: Model/churn cannot become ready: Model/churn on local-dev is Blocked (Failed): "
        "failed (see its status); the plane does not retry it: change its spec\n"
    )
    assert test_clock.slept == []
    assert "Traceback" not in done.out + done.err


def test_a_wait_that_times_out_says_where_the_resource_stands(
    world: World,  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """No agent runs: the model stays issued. On the test's clock, 25s pass in no time."""
    reconciling.Reconciler(world.settings()).reconcile(NOW)
    test_clock = TestClock()
    args = ("Model/churn", "--plane", "local-dev", "--for", "synced", "--timeout", "25s")

    done = _wait(world, test_clock, monkeypatch, capsys, *args, "--interval", "10s")
    assert done.code == 1
    stands = "Model/churn on local-dev is Issued (Unknown): issued in #1; the plane has applied #0"
    assert done.out == stands + "\n"
    assert done.err == f"error: timed out after 25s: {stands}\n"
    assert test_clock.slept == [10, 10, 5]


def test_an_attack_report_ends_the_wait(
    world: World,  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    reconciling.Reconciler(world.settings()).reconcile(NOW)
    agent = TestAgent(world, "local-dev")
    agent.writer.write(
        applied=signed.Head(sequence=0, digest=""),
        timestamp_version=1,
        resources=[],
        error=signed.StatusError(code="rollback", message="bundle 1 is older than bundle 3"),
        now=NOW,
    )
    done = _wait(world, TestClock(), monkeypatch, capsys, "Model/churn")
    assert done.code == 1
    assert done.err == (
        "error: Model/churn cannot become ready: "
        "local-dev: agent reports rollback: bundle 1 is older than bundle 3\n"
    )


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ("Deployment/churn-dve",),
            "error: no spec at HEAD defines Deployment/churn-dve "
            "(did you mean 'Deployment/churn-dev'?); known: ",
        ),
        (("Model/churn", "--plane", "local-dve"), "no DataPlane named 'local-dve' at HEAD"),
        (("Deploy/x",), "'Deploy/x': expected KIND/NAME with KIND one of"),
        (("Model/churn", "--timeout", "soon"), "invalid duration 'soon'"),
        (("Model/churn", "--interval", "0s"), "'0s' is zero"),
        (("Model/churn", "--for", "healthy"), "'healthy' is not one of 'synced', 'ready'"),
    ],
    ids=[
        "unknown-resource",
        "unknown-plane",
        "unknown-kind",
        "bad-timeout",
        "zero-interval",
        "bad-for",
    ],
)
def test_a_wait_for_what_no_spec_defines_is_a_usage_error(
    world: World,  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    args: tuple[str, ...],
    message: str,
) -> None:
    done = _wait(world, TestClock(), monkeypatch, capsys, *args)
    assert done.code == 2
    assert message in done.err
    assert "Traceback" not in done.err


def test_wait_as_a_process_on_the_fixtures_clock(
    gitplane_bin: str,
    world: World,  # noqa: F811
) -> None:
    reconciler = reconciling.Reconciler(world.settings())
    agent = TestAgent(world, "local-dev")
    reconciler.reconcile(NOW)
    agent.sync()
    bare = world.remote.removeprefix("file://")
    root = str(world.keys_dir / "root.json")
    done = subprocess.run(
        [gitplane_bin, "wait", "Model/churn", bare, "--root", root, "--plane", "local-dev"],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
        env=clock.env_at(NOW),
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("Model/churn on local-dev is Synced (Ready)")


def _resource(sync: str, phase: str, applied: str = "sha256:b") -> Resource:
    return Resource("Model", "churn", sync, phase, "#2 sha256:b", applied, "", "", {})


def _plane(name: str, *resources: Resource, halted: str | None = None) -> PlaneStatus:
    return PlaneStatus(name, "local", None, None, 2, 2, (), resources, halted)


READY = waiting.Target("Model", "churn", "ready")
SYNCED = waiting.Target("Model", "churn", "synced")


@pytest.mark.parametrize(
    ("target", "planes", "outcome"),
    [
        (READY, [_plane("dev", _resource("Synced", "Ready"))], "met"),
        (READY, [_plane("dev", _resource("Synced", "Progressing"))], "pending"),
        (SYNCED, [_plane("dev", _resource("Synced", "Progressing"))], "met"),
        (SYNCED, [_plane("dev", _resource("Issued", "Ready", "sha256:a"))], "pending"),
        (SYNCED, [_plane("dev", _resource("Issued", "Failed", "sha256:a"))], "pending"),
        (SYNCED, [_plane("dev", _resource("Waiting", "Failed"))], "failed"),
        (SYNCED, [_plane("dev", _resource("Blocked", "Stalled"))], "failed"),
        (SYNCED, [_plane("dev", _resource("Blocked", "Unknown", ""))], "failed"),
        (SYNCED, [_plane("dev", _resource("OutOfSync", "Ready", "sha256:a"))], "pending"),
        (
            SYNCED,
            [
                _plane("dev", _resource("Synced", "Ready")),
                _plane("prod", _resource("Issued", "Unknown", "")),
            ],
            "pending",
        ),
        (
            waiting.Target("Model", "churn", "synced", "dev"),
            [
                _plane("dev", _resource("Synced", "Ready")),
                _plane("prod", _resource("Issued", "Unknown", "")),
            ],
            "met",
        ),
        (SYNCED, [_plane("dev")], "failed"),
        (
            SYNCED,
            [_plane("dev", _resource("Synced", "Ready"), halted="status refused: x")],
            "failed",
        ),
        (SYNCED, [_plane("dev", _resource("Synced", "Ready")), _plane("prod", halted="x")], "met"),
    ],
    ids=[
        "ready",
        "synced-progressing",
        "synced-is-enough",
        "issued-old-version-runs",
        "issued-old-version-failed",
        "failed-on-wanted-digest-plane-retries",
        "stalled",
        "blocked-by-policy",
        "change-due",
        "one-plane-of-two",
        "only-the-plane-asked",
        "on-no-plane",
        "plane-halted",
        "halted-plane-it-is-not-on",
    ],
)
def test_judge(target: waiting.Target, planes: list[PlaneStatus], outcome: str) -> None:
    assert waiting.judge(target, planes).outcome == outcome
