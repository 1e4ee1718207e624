"""``gitplane demo`` (what ``make demo`` runs): exits 0 and leaves no process behind."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from tests import clock
from tests.agent.serving_world import kill_all, processes_of
from tests.conftest import EXAMPLE_REPO


@pytest.mark.slow
def test_the_demo_runs_the_main_job_and_stops_everything(
    gitplane_bin: str, tmp_path: Path, running: clock.Running
) -> None:
    """On the tests' clock (a Tuesday noon, then real time): no scheduled feature or DAG run
    of the example falls due while it runs, whatever the time of day."""
    workdir = tmp_path / ".gitplane-demo"
    try:
        done = subprocess.run(
            [gitplane_bin, "demo", "--example", str(EXAMPLE_REPO), "--workdir", str(workdir)],
            capture_output=True,
            text=True,
            check=False,
            timeout=900,
            cwd=tmp_path,
            env=running.env(),
        )
        assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
        out = done.stdout
        for step in ("[1/9]", "[5/9]", "[6/9]", "[7/9]", "[8/9]", "[9/9]", "[done]"):
            assert step in out
        assert "→ 1 (will churn)" in out and "(stays)" in out
        assert "plane reports 2 ready replicas" in out
        assert re.search(r"Deployment/churn-dev +Synced +Ready +1.2.0 2/2 http://127.0.0.1:", out)
        assert '"Scale churn-dev to two replicas" by Bo Builder' in out, out[-2500:]
        assert "every signature verified, no gaps" in out
        assert processes_of(workdir) == []
    finally:
        kill_all(workdir)


def test_the_demo_refuses_a_directory_it_did_not_make(gitplane_bin: str, tmp_path: Path) -> None:
    (tmp_path / "precious").mkdir()
    done = subprocess.run(
        [gitplane_bin, "demo", "--workdir", str(tmp_path / "precious")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 2
    assert "exists and was not made by the demo" in done.stderr
    assert (tmp_path / "precious").is_dir()
