"""`gitplane schema export` and the CLI's exit-code contract."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from tests.conftest import ROOT


def run(gitplane_bin: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([gitplane_bin, *args], capture_output=True, text=True, check=False)


def test_export_writes_one_file_per_kind_then_check_passes(
    gitplane_bin: str, tmp_path: Path
) -> None:
    done = run(gitplane_bin, "schema", "export", "--dir", str(tmp_path))
    assert done.returncode == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "dag.json",
        "dataplane.json",
        "deployment.json",
        "featureset.json",
        "model.json",
        "policy.json",
    ]
    assert json.loads((tmp_path / "model.json").read_text())["title"].startswith("Gitplane Model")
    assert run(gitplane_bin, "schema", "export", "--dir", str(tmp_path), "--check").returncode == 0


def test_check_fails_on_a_stale_file(gitplane_bin: str, tmp_path: Path) -> None:
    run(gitplane_bin, "schema", "export", "--dir", str(tmp_path))
    (tmp_path / "dag.json").write_text("{}")
    done = run(gitplane_bin, "schema", "export", "--dir", str(tmp_path), "--check")
    assert done.returncode == 1
    assert "stale" in done.stdout
    assert (tmp_path / "dag.json").read_text() == "{}"


def test_committed_schemas_match_the_cli_output(gitplane_bin: str) -> None:
    done = run(gitplane_bin, "schema", "export", "--dir", str(ROOT / "schemas" / "json"), "--check")
    assert done.returncode == 0, done.stdout


def test_help_and_version(gitplane_bin: str) -> None:
    assert "validate" in run(gitplane_bin, "--help").stdout
    assert run(gitplane_bin, "--version").returncode == 0


def test_the_committed_spec_reference_is_fresh(gitplane_bin: str) -> None:
    out = ROOT / "docs" / "reference" / "specs.md"
    done = run(gitplane_bin, "schema", "docs", "--out", str(out), "--check")
    assert done.returncode == 0, "run `gitplane schema docs` and commit docs/reference/specs.md"


def test_docs_writes_every_kind(gitplane_bin: str, tmp_path: Path) -> None:
    out = tmp_path / "specs.md"
    assert run(gitplane_bin, "schema", "docs", "--out", str(out)).returncode == 0
    text = out.read_text()
    for kind in ("DataPlane", "Model", "Deployment", "FeatureSet", "DAG", "Policy"):
        assert f"\n## {kind}\n" in text
    assert "| `maxReplicas` | int | **required** |" in text
    out.write_text("old")
    assert run(gitplane_bin, "schema", "docs", "--out", str(out), "--check").returncode == 1
