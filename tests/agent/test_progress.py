"""Progress lines while an apply runs (``agent.progress``): a line when it starts, one every
interval with the time elapsed and the last line of its output, one with its duration when
it ends; driven through the real agent with a runtime simulator whose apply is slow."""

from __future__ import annotations

import logging
import threading
from pathlib import Path

import pytest

from agent import progress
from agent.agent import Agent
from agent.config import load_config
from agent.runtimes.base import ApplyContext, Capabilities
from reconciler import reconcile as reconciling
from schemas import signed
from tests.agent.test_agent_daemon import _agent_config
from tests.reconciler.conftest import NOW, World, world  # noqa: F401 - the fixture


class Ticks:
    """A monotonic source the test moves by hand."""

    def __init__(self) -> None:
        self.at = 100.0

    def __call__(self) -> float:
        return self.at


def _fields(record: logging.LogRecord) -> dict[str, object]:
    return dict(getattr(record, "fields", {}))


@pytest.mark.parametrize(
    ("text", "last"),
    [
        (None, ""),
        ("", ""),
        ("Epoch 1/3\nEpoch 2/3\n\n  \n", "Epoch 2/3"),
        ("no newline yet", "no newline yet"),
        ("x" * 9000 + "\nlong " + "y" * 600, ("long " + "y" * 600)[-500:]),
    ],
    ids=["missing", "empty", "blank-lines", "partial", "long"],
)
def test_last_line_of_the_output(tmp_path: Path, text: str | None, last: str) -> None:
    output = tmp_path / "log.txt"
    if text is not None:
        output.write_text(text)
    assert progress.last_line(output) == last


@pytest.mark.parametrize(
    ("elapsed", "shown"),
    [(0.04, "0.0s"), (4.25, "4.2s"), (59.9, "59.9s"), (725, "12m05s"), (3725, "1h02m")],
)
def test_seconds(elapsed: float, shown: str) -> None:
    assert progress.seconds(elapsed) == shown


def test_a_beat_says_how_long_and_what_is_happening(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    ticks, doing = Ticks(), progress.Progress()
    heart = progress.Heartbeat("Model/churn", {"plane": "dev"}, doing, progress.Pace(30, ticks))
    output = tmp_path / "log.txt"
    output.write_text("Resolved 42 packages\nEpoch 3/10 loss=0.41\n")
    doing.step("building churn 1.2.0", output)
    ticks.at += 95
    with caplog.at_level(logging.INFO, logger="gitplane.agent"):
        heart.beat()
        doing.step("rolling out")  # no output file: none is shown
        heart.beat()
    first, second = caplog.records
    assert first.getMessage() == "still applying Model/churn"
    assert _fields(first) == {
        "plane": "dev",
        "elapsed": "1m35s",
        "doing": "building churn 1.2.0",
        "output": "Epoch 3/10 loss=0.41",
    }
    assert (_fields(second)["doing"], _fields(second)["output"]) == ("rolling out", None)


class SlowRuntimeSimulator:
    """A runtime simulator whose apply of ``slow`` takes as long as the test says: it writes
    its output, then waits until the agent has logged a progress line, or gives up."""

    kinds = frozenset({"Model", "FeatureSet", "DAG", "Deployment"})
    jobs: frozenset[str] = frozenset()
    retried: frozenset[str] = frozenset()
    capabilities = Capabilities(env_managers=frozenset({"local"}), enforces_resources=False)

    def __init__(self, slow: str, heard: threading.Event) -> None:
        self.slow, self.heard = slow, heard

    def apply(self, command: signed.Command, context: ApplyContext) -> signed.ResourceStatus:
        if f"{command.kind}/{command.name}" == self.slow:
            output = context.scratch / "log.txt"
            output.write_text("collecting data\ntraining: epoch 2/5\n")
            context.progress.step("building", output)
            self.heard.wait(30)  # set once a progress line is out: the test never waits 30 s
        return signed.ResourceStatus(
            kind=command.kind, name=command.name, phase="Ready", digest=command.digest
        )

    def observe(
        self, command: signed.Command, last: signed.ResourceStatus, context: ApplyContext
    ) -> signed.ResourceStatus:
        return last

    def delete(self, command: signed.Command) -> None:
        return None

    def stop_serving(self) -> int:
        return 0


class Heard(logging.Handler):
    """Sets ``heard`` when a progress line is logged."""

    def __init__(self, heard: threading.Event) -> None:
        super().__init__()
        self.heard = heard

    def emit(self, record: logging.LogRecord) -> None:
        if record.getMessage().startswith("still applying"):
            self.heard.set()


def test_a_long_apply_logs_its_start_progress_and_end(
    world: World,  # noqa: F811
    caplog: pytest.LogCaptureFixture,
) -> None:
    reconciling.Reconciler(world.settings()).reconcile(NOW)
    heard = threading.Event()
    runtime = SlowRuntimeSimulator("Model/churn", heard)
    pace = progress.Pace(interval=0.01)
    worker = Agent(load_config(_agent_config(world, "")), runtime, pace=pace)
    listener = Heard(heard)
    logging.getLogger("gitplane.agent").addHandler(listener)
    try:
        with caplog.at_level(logging.INFO, logger="gitplane.agent"):
            outcome = worker.run_once(NOW)
    finally:
        logging.getLogger("gitplane.agent").removeHandler(listener)
    assert heard.is_set(), "no progress line while the build ran"
    assert "Model/churn" in [f"{c.kind}/{c.name}" for c in outcome.applied]
    churn = [r for r in caplog.records if r.getMessage().endswith(" Model/churn")]
    said = [r.getMessage() for r in churn]
    assert said[0] == "applying Model/churn"
    assert said[-1] == "finished applying Model/churn"
    beats = [r for r in churn if r.getMessage() == "still applying Model/churn"]
    assert beats and len(said) == len(beats) + 2  # only progress lines between
    assert _fields(beats[0])["doing"] == "building"
    assert _fields(beats[0])["output"] == "training: epoch 2/5"
    assert _fields(churn[0])["plane"] == "local-dev"
    assert len(str(_fields(churn[0])["commit"])) == 12
    assert _fields(churn[-1])["phase"] == "Ready"
    quick = [r.getMessage() for r in caplog.records if "FeatureSet/" in r.getMessage()]
    assert quick[0].startswith("applying ") and quick[-1].startswith("finished applying ")
