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
    assert config.runtime.type == "local"  # the embedded runtime when none is named
    assert (
        config.runtime.tracking_uri(config.state_dir) == f"sqlite:///{tmp_path / 's' / 'mlflow.db'}"
    )


def test_the_runtime_is_chosen_by_its_type(tmp_path: Path) -> None:
    path = tmp_path / "agent.yaml"
    path.write_text(GOOD + "runtime: {ports: 31000-31099, dataDir: d}\n")
    config = load_config(path)
    assert config.runtime.type == "local"  # a type left out is the local one
    assert config.runtime.port_range() == (31000, 31099)
    assert config.runtime.data_path(config.state_dir) == tmp_path / "d"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        pytest.param(GOOD + "pollIntervl: 5s\n", "pollIntervl", id="unknown-field"),
        pytest.param(GOOD.replace("plane: local-dev", "plane: Local_Dev"), "plane", id="bad-name"),
        pytest.param(GOOD + "x: &a 1\n", "anchor", id="anchor"),
        pytest.param(GOOD.replace("remote: /srv/specs.git\n", ""), "remote", id="missing"),
        pytest.param(
            GOOD + "runtime: {type: nomad}\n",
            r"runtime: unknown runtime type \(this release has: local\)",
            id="unknown-runtime",
        ),
        pytest.param(
            GOOD + "runtime: {type: local, replicas: 2}\n",
            "runtime.replicas: Extra inputs",
            id="runtime-field",
        ),
        *(
            pytest.param(
                GOOD + f"runtime: {{type: local, ports: '{ports}'}}\n",
                r"runtime.ports: .*expected START-END with 1024 <= START <= END <= 65535",
                id=f"ports-{ports}",
            )
            for ports in ("99999-5", "30000-20000", "80-90", "60000-70000")
        ),
    ],
)
def test_bad_configs_are_refused(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "agent.yaml"
    path.write_text(text)
    with pytest.raises(UsageError, match=message):
        load_config(path)
