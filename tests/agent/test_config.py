"""The agent's configuration file: strict, with clear errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from agent.config import load_config
from schemas.errors import UsageError

GOOD = (
    "plane: local-dev\nremote: /srv/specs.git\nrootFile: root.json\nkeyFile: k.key\nstateDir: s\n"
)


def test_defaults_and_relative_paths(tmp_path: Path) -> None:
    path = tmp_path / "agent.yaml"
    path.write_text(GOOD)
    config = load_config(path)
    assert config.root_file == tmp_path / "root.json"
    assert config.state_dir == tmp_path / "s"
    assert config.poll_seconds == 10
    assert config.spec_branch == "main"
    assert config.tracking_uri() == f"sqlite:///{tmp_path / 's' / 'mlflow.db'}"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        pytest.param(GOOD + "pollIntervl: 5s\n", "pollIntervl", id="unknown-field"),
        pytest.param(GOOD.replace("plane: local-dev", "plane: Local_Dev"), "plane", id="bad-name"),
        pytest.param(GOOD + "x: &a 1\n", "anchor", id="anchor"),
        pytest.param(GOOD.replace("remote: /srv/specs.git\n", ""), "remote", id="missing"),
    ],
)
def test_bad_configs_are_refused(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "agent.yaml"
    path.write_text(text)
    with pytest.raises(UsageError, match=message):
        load_config(path)
