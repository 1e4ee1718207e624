"""`gitplane plan` as a PR check runs it: on a branch of the example repository."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from tests import clock
from tests.conftest import commit_all, git


def run(gitplane_bin: str, cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """``gitplane plan`` on the tests' clock: prod's change windows are open on a Tuesday noon,
    whatever day the suite runs."""
    return subprocess.run(
        [gitplane_bin, "plan", ".", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        check=False,
        env=clock.env_at(clock.NOW),
    )


def _branch(repo: Path, name: str, edits: dict[str, tuple[str, str]]) -> None:
    git(repo, "checkout", "-q", "-b", name)
    for rel, (old, new) in edits.items():
        text = (repo / rel).read_text()
        assert old in text
        (repo / rel).write_text(text.replace(old, new))
    commit_all(repo, f"{name}: edit")


def test_base_shows_only_the_branch_changes_as_markdown(
    gitplane_bin: str, example_repo: Path
) -> None:
    _branch(
        example_repo,
        "scale-up",
        {"deployments/churn-dev.yaml": ("maxReplicas: 4", "maxReplicas: 8")},
    )
    done = run(gitplane_bin, example_repo, "--base", "main", "--output", "markdown")
    assert done.returncode == 0, done.stderr
    body = done.stdout
    assert body.startswith("### Gitplane plan for . (changes since main)")
    refs = [line.split()[2] for line in body.splitlines() if line[:1] in "+~-!…" and line.strip()]
    assert refs == ["Deployment/churn-dev"]
    assert "```diff" in body
    assert "No changes on: `prod-eu`" in body
    assert "… wait    Deployment/churn-dev  waiting for Model/churn" in body
    assert "\n      autoscaling.maxReplicas: 4 → 8\n" in body  # what it waits to change


def test_updates_show_what_each_field_changes_in_every_form(
    gitplane_bin: str, example_repo: Path
) -> None:
    """``terraform plan`` shows ``~ attr = old -> new``; so does a PR's plan, in text,
    markdown and JSON, for a scalar, a nested field and a model version moved."""
    _branch(
        example_repo,
        "fields",
        {
            "deployments/churn-dev.yaml": ("maxReplicas: 4", "maxReplicas: 6"),
            "models/churn.yaml": ('version: "1.2.0"', 'version: "1.3.0"'),
            "deployments/churn-prod.yaml": ('version: "1.2.0"', 'version: "1.3.0"'),
        },
    )
    text = run(gitplane_bin, example_repo, "--base", "main").stdout
    assert "      autoscaling.maxReplicas: 4 → 6" in text
    assert "      version: 1.2.0 → 1.3.0" in text
    markdown = run(gitplane_bin, example_repo, "--base", "main", "-o", "markdown").stdout
    assert "      version: 1.2.0 → 1.3.0" in markdown.split("```diff")[1]
    body = json.loads(run(gitplane_bin, example_repo, "--base", "main", "-o", "json").stdout)
    changes = {a["name"]: a["changes"] for p in body["planes"] for a in p["actions"]}
    assert changes["churn"] == [{"field": "version", "before": "1.2.0", "after": "1.3.0"}]
    assert changes["churn-dev"] == [{"field": "autoscaling.maxReplicas", "before": 4, "after": 6}]
    moved = {"field": "model.version", "before": "1.2.0", "after": "1.3.0"}
    assert changes["churn-prod"] == [moved]


def test_a_resource_removed_in_the_change_is_deleted(gitplane_bin: str, example_repo: Path) -> None:
    """Without --root the planes are planned as empty, yet a PR that removes a deployment
    must not plan "No changes": it shows the delete the reconciler will issue (and the
    model no deployment on that plane uses any more)."""
    git(example_repo, "checkout", "-q", "-b", "retire")
    git(example_repo, "rm", "-q", "deployments/churn-dev.yaml")
    commit_all(example_repo, "retire churn-dev")
    done = run(gitplane_bin, example_repo, "--base", "main", "--detailed-exitcode")
    assert done.returncode == 2, done.stderr
    assert "  - delete  Deployment/churn-dev  removed from git (pruning is on)" in done.stdout
    assert "plane prod-eu (kubernetes; env=prod, region=eu-west-1)\n  (no changes)" in done.stdout


def test_changing_project_code_rebuilds_the_model(gitplane_bin: str, example_repo: Path) -> None:
    _branch(example_repo, "tweak", {"projects/churn/train.py": ("max_iter=500", "max_iter=800")})
    done = run(gitplane_bin, example_repo, "--base", "main", "-o", "json")
    body = json.loads(done.stdout)
    refs = [(p["plane"], a["kind"], a["name"]) for p in body["planes"] for a in p["actions"]]
    assert ("local-dev", "Model", "churn") in refs
    assert all(kind == "Model" for _, kind, _ in refs)


def test_a_commit_elsewhere_changes_nothing(gitplane_bin: str, example_repo: Path) -> None:
    _branch(example_repo, "docs", {"README.md": ("Example spec repository", "Example specs")})
    done = run(gitplane_bin, example_repo, "--base", "main", "--detailed-exitcode")
    assert done.returncode == 0
    assert "No changes." in done.stdout


def test_detailed_exitcode_and_json(gitplane_bin: str, example_repo: Path) -> None:
    done = run(gitplane_bin, example_repo, "--detailed-exitcode", "-o", "json")
    assert done.returncode == 2
    body = json.loads(done.stdout)
    assert body["changes"] is True
    assert body["summary"]["build"] == 1
    first = body["planes"][0]["actions"][0]
    assert set(first) == {"op", "kind", "name", "reason", "digest", "changes"}
    assert first["changes"] == []  # a first build replaces nothing
    assert first["digest"].startswith("sha256:")


def test_invalid_specs_make_no_plan(gitplane_bin: str, example_repo: Path) -> None:
    _branch(example_repo, "broken", {"models/churn.yaml": ('version: "1.2.0"', "version: 1.2")})
    done = run(gitplane_bin, example_repo)
    assert done.returncode == 1
    assert "models/churn.yaml:10:12: spec.version" in done.stderr
    assert "no plan was made" in done.stderr
    assert done.stdout == ""


def test_text_output_reads_like_terraform(gitplane_bin: str, example_repo: Path) -> None:
    done = run(gitplane_bin, example_repo)
    lines = done.stdout.splitlines()
    assert lines[2] == "plane local-dev (local; env=dev, region=local)"
    assert lines[3].startswith("  + build   Model/churn")
    assert lines[-1].startswith("Plan: 1 to build, 1 to create, 0 to update, 0 to delete;")


def test_detailed_exitcode_errors_are_1(gitplane_bin: str, example_repo: Path) -> None:
    done = run(gitplane_bin, example_repo, "--base", "no-such-branch", "--detailed-exitcode")
    assert done.returncode == 1  # 2 would read as "changes" in CI
    assert "error: cannot read no-such-branch" in done.stderr
    plain = run(gitplane_bin, example_repo, "--base", "no-such-branch")
    assert plain.returncode == 2  # a usage error, as everywhere else
    for bad in (["--output", "yaml"], ["--no-such-flag"]):  # click's own usage errors too
        done = run(gitplane_bin, example_repo, *bad, "--detailed-exitcode")
        assert done.returncode == 1, (bad, done.stderr)
        assert run(gitplane_bin, example_repo, *bad).returncode == 2
