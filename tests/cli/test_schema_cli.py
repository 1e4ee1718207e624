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


def test_the_committed_spec_reference_and_support_table_are_fresh(gitplane_bin: str) -> None:
    reference = ROOT / "docs" / "reference"
    done = run(
        gitplane_bin, "schema", "docs", "--out", str(reference / "specs.md"),
        "--support-out", str(reference / "support.md"), "--check",
    )  # fmt: skip
    assert done.returncode == 0, "run `gitplane schema docs` and commit docs/reference/"


def test_docs_writes_every_kind_and_the_support_table(gitplane_bin: str, tmp_path: Path) -> None:
    out, table = tmp_path / "specs.md", tmp_path / "support.md"
    paths = ("--out", str(out), "--support-out", str(table))
    assert run(gitplane_bin, "schema", "docs", *paths).returncode == 0
    text = out.read_text()
    for kind in ("DataPlane", "Model", "Deployment", "FeatureSet", "DAG", "Policy"):
        assert f"\n## {kind}\n" in text
    assert "| `maxReplicas` | int | **required** |" in text
    assert "| FeatureSet | `spec.resources.memory` | any value | not enforced" in table.read_text()
    for stale in (out, table):
        stale.write_text("old")
        done = run(gitplane_bin, "schema", "docs", *paths, "--check")
        assert (done.returncode, done.stdout) == (1, f"stale {stale}\n")
        assert stale.read_text() == "old"  # --check writes nothing
        assert run(gitplane_bin, "schema", "docs", *paths).returncode == 0
