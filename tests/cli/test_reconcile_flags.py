"""``gitplane reconcile``'s flags: conflicting or inapplicable ones are refused (exit 2,
one line), never silently ignored; ports out of range are said, not crashed on."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["--once", "--watch"], "use --once or --watch, not both"),
        (["--once", "--listen", "127.0.0.1:9090"], "--listen applies only with --watch"),
        (["--interval", "5s"], "--interval applies only with --watch"),
        (["--watch", "--listen", "127.0.0.1:99999"], "port 99999 is not between 1 and 65535"),
        (["--watch", "--listen", "localhost"], "expected host:port"),
    ],
)
def test_flags_that_cannot_apply_are_refused(
    gitplane_bin: str, tmp_path: Path, args: list[str], says: str
) -> None:
    (tmp_path / "keys").mkdir()
    done = subprocess.run(
        [gitplane_bin, "reconcile", "--repo", f"file://{tmp_path}/none.git", "--keys",
         str(tmp_path / "keys"), "--work-dir", str(tmp_path / "work"), *args],
        capture_output=True, text=True, check=False, timeout=60,
    )  # fmt: skip
    assert done.returncode == 2, done.stdout + done.stderr
    assert says in done.stderr and "Traceback" not in done.stderr


def test_the_agent_refuses_listen_with_once(gitplane_bin: str, tmp_path: Path) -> None:
    config = tmp_path / "agent.yaml"
    config.write_text("plane: x\n")
    done = subprocess.run(
        [gitplane_bin, "agent", "run", "--config", str(config), "--once", "--listen", ":9090"],
        capture_output=True, text=True, check=False, timeout=60,
    )  # fmt: skip
    assert done.returncode == 2
    assert "--listen applies only without --once" in done.stderr
