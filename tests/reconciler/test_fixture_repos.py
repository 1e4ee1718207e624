"""Every error class, from a fixture repository committed to a real git repository.

Each folder under tests/fixtures/invalid/ is a small spec repository with one
kind of mistake; its expected.txt lists every problem, placed at
file:line:column, exactly as `gitplane validate` prints it.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from ledger import gitrepo
from reconciler import desired
from tests.conftest import FIXTURES, commit_all, init_repo

CASES = sorted(p.name for p in (FIXTURES / "invalid").iterdir() if p.is_dir())


def _expected(case: str) -> list[str]:
    return (FIXTURES / "invalid" / case / "expected.txt").read_text().splitlines()


@pytest.fixture(params=CASES)
def case_repo(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[str, Path]:
    repo = tmp_path / request.param
    shutil.copytree(FIXTURES / "invalid" / request.param, repo)
    (repo / "expected.txt").unlink()
    init_repo(repo)
    commit_all(repo)
    return request.param, repo


@pytest.mark.effect("*", "apiVersion", "kind")
def test_every_problem_is_reported_at_its_position(case_repo: tuple[str, Path]) -> None:
    case, repo = case_repo
    state = desired.load_commit(gitrepo.GitRepo(repo), "HEAD")
    assert [str(p) for p in state.problems] == _expected(case)
    assert not state.valid


def test_the_working_tree_gives_the_same_problems(case_repo: tuple[str, Path]) -> None:
    case, repo = case_repo
    state = desired.load_worktree(repo)
    assert [str(p) for p in state.problems] == _expected(case)


def test_fixtures_cover_every_error_class() -> None:
    assert len(CASES) >= 24
    messages = "\n".join("\n".join(_expected(c)) for c in CASES)
    for needle in [
        "unknown field",
        "did you mean",
        "expected a string",
        "missing required",
        "is not allowed",
        "unknown kind",
        "apiVersion",
        "no Model named",
        "has no version",
        "selects no DataPlane",
        "duplicate Deployment name",
        "no MLflow Project",
        "no FeatureSet",
        "cycle:",
        "unknown step",
        "duplicate key",
        "anchor",
        "explicit tag",
        "only one document",
        "invalid UTF-8",
        "invalid YAML",
        "invalid duration",
        "not a DNS-1123",
        "not both",
        "exactly one",
    ]:
        assert needle in messages, needle
