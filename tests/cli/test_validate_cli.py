"""`gitplane validate` as users run it: the installed console script, in a real repository."""

from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path

from tests.conftest import EXAMPLE_REPO, commit_all, git


def run(gitplane_bin: str, *args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [gitplane_bin, *args], capture_output=True, text=True, cwd=cwd, check=False, timeout=120
    )


def _break(repo: Path) -> None:
    """Seven mistakes, one of each class the issue names."""
    edits = {
        "deployments/churn-prod.yaml": [('version: "1.2.0"', "version: 1.2")],  # wrong type
        "deployments/churn-dev.yaml": [("name: churn ", "name: churn-v2 ")],  # dangling model
        "planes/prod.yaml": [("statusStaleAfter", "statusStaleAftr")],  # typo
        "dags/churn-batch.yaml": [("{rows: 2000}}", "{rows: 2000}}\n      dependsOn: [report]")],
        "features/customer-activity.yaml": [("ttl: 2d\n", "ttl: 2d\n  ttl: 3d\n")],  # dup key
        "policies/prod.yaml": [("  kinds: [Model, Deployment]", "  kinds: &k [Model]")],  # alias
    }
    for rel, pairs in edits.items():
        text = (repo / rel).read_text()
        for old, new in pairs:
            assert old in text, (rel, old)
            text = text.replace(old, new)
        (repo / rel).write_text(text)
    (repo / "deployments" / "linked.yaml").symlink_to("../models/churn.yaml")


def test_the_example_repository_validates(gitplane_bin: str) -> None:
    done = run(gitplane_bin, "validate", str(EXAMPLE_REPO))
    assert done.returncode == 0, done.stdout + done.stderr
    assert "✓ 8 specs valid in" in done.stdout


def test_a_broken_copy_exits_1_with_every_problem_placed(
    gitplane_bin: str, example_repo: Path
) -> None:
    _break(example_repo)
    commit_all(example_repo, "break seven things")
    done = run(gitplane_bin, "validate", ".", cwd=example_repo)
    assert done.returncode == 1
    assert "Traceback" not in done.stdout + done.stderr
    lines = done.stdout.splitlines()[:-1]
    assert all(re.match(r"^[\w./-]+(:\d+:\d+)?: ", line) for line in lines), lines
    text = done.stdout
    for expected in [
        "deployments/churn-prod.yaml:10:14: spec.model.version: expected a string, got a number",
        "planes/prod.yaml:13:3: spec.statusStaleAftr: unknown field 'statusStaleAftr'"
        " (did you mean 'statusStaleAfter'?)",
        "deployments/churn-dev.yaml:9:11: spec.model.name: no Model named 'churn-v2'",
        "dags/churn-batch.yaml:16:18: spec.steps[0].dependsOn: cycle: extract -> report -> score"
        " -> extract",
        "features/customer-activity.yaml:33:3: duplicate key 'ttl'",
        "policies/prod.yaml:9:10: anchor &k is not allowed",
        "deployments/linked.yaml: symlinks are not allowed",
    ]:
        assert expected in text, f"{expected}\n--- not in ---\n{text}"
    assert "no FeatureSet named" not in text  # the broken feature set exists: no fallout
    assert len(lines) == 7


def test_json_output(gitplane_bin: str, example_repo: Path) -> None:
    _break(example_repo)
    commit_all(example_repo)
    done = run(gitplane_bin, "validate", str(example_repo), "--output", "json")
    assert done.returncode == 1
    body = json.loads(done.stdout)
    assert body["valid"] is False
    assert len(body["errors"]) >= 7
    assert set(body["errors"][0]) == {"file", "line", "column", "path", "message"}
    ok = json.loads(run(gitplane_bin, "validate", str(EXAMPLE_REPO), "-o", "json").stdout)
    assert ok["valid"] is True
    assert ok["errors"] == []


def test_worktree_mode_sees_uncommitted_edits(gitplane_bin: str, example_repo: Path) -> None:
    _break(example_repo)
    at_head = run(gitplane_bin, "validate", str(example_repo))
    assert at_head.returncode == 0
    assert "uncommitted changes" in at_head.stderr
    assert run(gitplane_bin, "validate", str(example_repo), "--worktree").returncode == 1


def test_a_path_with_no_specs_fails(gitplane_bin: str, example_repo: Path) -> None:
    """``✓ 0 specs valid`` passed a CI job pointed at the wrong directory."""
    path = example_repo / "projects"
    for args in (["--worktree"], []):
        done = run(gitplane_bin, "validate", str(path), *args)
        assert done.returncode == 1, (args, done.stdout, done.stderr)
        assert done.stdout.startswith("✗ no specs found (every *.yaml or *.yml file outside ")
    body = json.loads(run(gitplane_bin, "validate", str(path), "-o", "json").stdout)
    assert (body["valid"], body["specs"], body["reason"][:14]) == (False, 0, "no specs found")


def test_git_errors_are_said_in_the_users_words(
    gitplane_bin: str, example_repo: Path, tmp_path: Path
) -> None:
    """Not ``git rev-parse: Needed a single revision`` or a raw ``git ls-tree`` error."""
    untracked = example_repo / "not-committed"
    untracked.mkdir()
    fresh = tmp_path / "fresh"
    git(fresh.parent, "init", "-q", str(fresh))
    cases = [
        (["validate", str(untracked)], f"error: {untracked} is not in HEAD ("),
        (["validate", str(example_repo), "--rev", "nope"], "has no commit 'nope' (give a "),
        (["validate", str(fresh)], f"error: {fresh} has no commits yet: commit the specs"),
    ]
    for args, says in cases:
        done = run(gitplane_bin, *args)
        assert done.returncode == 2, (args, done.stderr)
        [line] = done.stderr.strip().splitlines()
        assert says in line, line


def test_usage_errors_exit_2(gitplane_bin: str, example_repo: Path, tmp_path: Path) -> None:
    cases = [
        ["validate", str(example_repo), "--rev", "nope"],
        ["validate", str(example_repo), "--rev", "HEAD", "--worktree"],
        ["validate", str(tmp_path / "missing")],
        ["validate", "--output", "yaml"],
        ["validate", "--no-such-flag"],
    ]
    for args in cases:
        done = run(gitplane_bin, *args)
        assert done.returncode == 2, (args, done.stdout, done.stderr)
        assert "Traceback" not in done.stderr


def test_fields_nothing_enforces_are_warned_about_where_they_are_set(
    gitplane_bin: str, example_repo: Path
) -> None:
    """Accepted and ignored is the worst bug: a field the local runtime (or this release)
    does not apply is named, placed and explained by validate and by plan; it stays valid."""
    deployment = example_repo / "deployments" / "churn-dev.yaml"
    text = deployment.read_text().replace(
        "maxUnavailable: 0}", "maxUnavailable: 0, autoRollback: false}"
    )
    deployment.write_text(text)
    features = example_repo / "features" / "customer-activity.yaml"
    features.write_text(features.read_text().replace("chunk: 7d}", "chunk: 7d, parallelism: 2}"))
    with (example_repo / "planes" / "local-dev.yaml").open("a") as plane:
        plane.write("  local:\n    ports: {start: 20000, end: 20999}\n")
    commit_all(example_repo)
    done = run(gitplane_bin, "validate", str(example_repo))
    assert done.returncode == 0, done.stdout + done.stderr
    warned = [line for line in done.stderr.splitlines() if line.startswith("warning: ")]
    agent_config = (
        "not read by the local runtime: its agent uses runtime.ports from its own "
        "configuration file (docs/agent.md); keep the two equal (planes: local-dev)"
    )
    assert warned == [
        f"warning: {example_repo}/deployments/churn-dev.yaml:24:64: spec.rollout.autoRollback: "
        "has no effect on the local runtime: the old replicas keep serving when a new version "
        "fails (planes: local-dev)",
        f"warning: {example_repo}/features/customer-activity.yaml:31:46: "
        "spec.backfill.parallelism: not applied by the local runtime: backfill chunks are "
        "computed one after another (planes: local-dev)",
        f"warning: {example_repo}/planes/local-dev.yaml:17:13: spec.local.ports.start: "
        + agent_config,
        f"warning: {example_repo}/planes/local-dev.yaml:17:27: spec.local.ports.end: "
        + agent_config,
    ]
    body = json.loads(run(gitplane_bin, "validate", str(example_repo), "-o", "json").stdout)
    assert body["valid"] is True and len(body["warnings"]) == 4
    planned = run(gitplane_bin, "plan", str(example_repo), "-o", "json")
    assert [w["path"] for w in json.loads(planned.stdout)["warnings"]] == [
        "spec.rollout.autoRollback",
        "spec.backfill.parallelism",
        "spec.local.ports.start",
        "spec.local.ports.end",
    ]


def test_output_fits_a_stream_that_cannot_encode_it(gitplane_bin: str, example_repo: Path) -> None:
    """``PYTHONIOENCODING=latin-1`` crashed on ``✓`` (and ``plan`` on ``…``)."""
    env = {**os.environ, "PYTHONIOENCODING": "latin-1"}
    for args in (["validate", str(example_repo)], ["plan", str(example_repo)]):
        done = subprocess.run(
            [gitplane_bin, *args], capture_output=True, check=False, env=env, timeout=120
        )
        assert done.returncode in (0, 2), (args, done.stderr)  # plan: 2 when there are changes
        assert b"Traceback" not in done.stderr
    validated = subprocess.run(
        [gitplane_bin, "validate", str(example_repo)], capture_output=True, env=env, check=False
    )
    assert validated.stdout.startswith(b"OK 8 specs valid in ")


def test_no_color_is_honoured() -> None:
    """``NO_COLOR`` (no-color.org) and ``--no-color`` win over a terminal's colours."""
    from click.testing import CliRunner  # noqa: PLC0415

    from cli.main import gitplane  # noqa: PLC0415

    runner = CliRunner()
    args = ["validate", str(EXAMPLE_REPO), "--worktree"]
    coloured = runner.invoke(gitplane, args, color=True)
    assert "\x1b[" in coloured.output
    flagged = runner.invoke(gitplane, ["--no-color", *args], color=True)
    assert (flagged.exit_code, "\x1b[" in flagged.output) == (0, False)
    plain = runner.invoke(gitplane, args, color=True, env={"NO_COLOR": "1"})
    assert "\x1b[" not in plain.output
