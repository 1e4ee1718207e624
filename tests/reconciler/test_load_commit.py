"""Loading specs from a commit: the object store is read, never the working tree."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from ledger import gitrepo
from reconciler import desired
from reconciler import validate as validation
from schemas.errors import UsageError
from schemas.parse import Limits
from tests.conftest import EXAMPLE_REPO, commit_all, git, init_repo, write


def test_the_example_repository_is_valid(example_repo: Path) -> None:
    state = desired.load_commit(gitrepo.GitRepo(example_repo), "HEAD")
    assert state.problems == []
    kinds = sorted({doc.KIND for _, doc in state.documents})
    assert kinds == ["DAG", "DataPlane", "Deployment", "FeatureSet", "Model", "Policy"]
    assert state.commit == git(example_repo, "rev-parse", "HEAD")


def test_uncommitted_edits_are_not_read_at_head(example_repo: Path) -> None:
    (example_repo / "models" / "churn.yaml").write_text("kind: [broken\n")
    assert desired.load_commit(gitrepo.GitRepo(example_repo), "HEAD").valid
    assert not desired.load_worktree(example_repo).valid


def test_validate_notes_uncommitted_changes(example_repo: Path) -> None:
    (example_repo / "models" / "churn.yaml").write_text("kind: [broken\n")
    result = validation.validate(example_repo)
    assert result.state.valid
    assert any("--worktree" in note for note in result.notes)


def test_any_revision_can_be_validated(example_repo: Path) -> None:
    good = git(example_repo, "rev-parse", "HEAD")
    (example_repo / "models" / "churn.yaml").write_text("kind: [broken\n")
    commit_all(example_repo, "break it")
    assert not validation.validate(example_repo).state.valid
    assert validation.validate(example_repo, rev=good).state.valid
    assert validation.validate(example_repo, rev="HEAD~1").state.commit == good


def test_a_subdirectory_is_validated_at_its_prefix(tmp_path: Path) -> None:
    repo = init_repo(tmp_path / "mono")
    shutil.copytree(EXAMPLE_REPO, repo / "ml" / "specs")
    write(repo, {"README.md": "monorepo\n"})
    commit_all(repo)
    result = validation.validate(repo / "ml" / "specs")
    assert result.state.valid
    assert len(result.state.documents) == 8


def test_unknown_revision_is_a_usage_error(example_repo: Path) -> None:
    with pytest.raises(UsageError, match=r"has no commit .no-such-branch. \(give a branch"):
        validation.validate(example_repo, rev="no-such-branch")
    with pytest.raises(UsageError):
        validation.validate(example_repo, rev="--output=/tmp/x")


def test_a_plain_directory_is_validated_from_disk_with_a_note(tmp_path: Path) -> None:
    plain = tmp_path / "plain"
    shutil.copytree(EXAMPLE_REPO, plain)
    result = validation.validate(plain)
    assert result.state.valid
    assert result.state.commit is None
    assert "not in a git repository" in result.notes[0]
    with pytest.raises(UsageError, match="--rev"):
        validation.validate(plain, rev="HEAD")


def test_symlinks_in_a_commit_are_refused_and_never_read(example_repo: Path) -> None:
    (example_repo / "models" / "passwd.yaml").symlink_to("/etc/passwd")
    (example_repo / "dags" / "projects-link").symlink_to("../../projects")
    commit_all(example_repo)
    assert git(example_repo, "ls-files", "-s", "models/passwd.yaml").startswith("120000")
    state = desired.load_commit(gitrepo.GitRepo(example_repo), "HEAD")
    assert [(p.file, p.line) for p in state.problems] == [
        ("dags/projects-link", 0),
        ("models/passwd.yaml", 0),
    ]
    assert all("symlinks are not allowed" in p.message for p in state.problems)


def test_symlinks_on_disk_are_refused_and_never_followed(example_repo: Path) -> None:
    (example_repo / "models" / "passwd.yaml").symlink_to("/etc/passwd")
    state = desired.load_worktree(example_repo)
    assert [p.file for p in state.problems] == ["models/passwd.yaml"]


def test_submodules_are_refused(example_repo: Path) -> None:
    commit = git(example_repo, "rev-parse", "HEAD")
    git(example_repo, "update-index", "--add", "--cacheinfo", f"160000,{commit},vendor/specs")
    git(example_repo, "commit", "-q", "-m", "add a submodule")
    state = desired.load_commit(gitrepo.GitRepo(example_repo), "HEAD")
    assert [p.file for p in state.problems] == ["vendor/specs"]
    assert "submodules are not allowed" in state.problems[0].message


def test_oversized_files_are_refused_by_their_size_before_reading(example_repo: Path) -> None:
    write(example_repo, {"models/huge.yaml": "# padding\n" * 200})
    commit_all(example_repo)
    state = desired.load_commit(
        gitrepo.GitRepo(example_repo), "HEAD", limits=Limits(max_bytes=1900)
    )
    assert [p.file for p in state.problems] == ["models/huge.yaml"]
    assert "2000 bytes, above the 1900-byte cap" in state.problems[0].message


def test_dot_directories_and_project_files_are_not_specs(example_repo: Path) -> None:
    write(
        example_repo,
        {
            ".github/workflows/ci.yml": "on: &x push\njobs: *x\n",
            "projects/churn/conda.yaml": "deps: &d [python]\nmore: *d\n",
        },
    )
    commit_all(example_repo)
    assert desired.load_commit(gitrepo.GitRepo(example_repo), "HEAD").valid


def test_problems_from_many_files_are_all_reported_sorted(example_repo: Path) -> None:
    write(
        example_repo,
        {
            "models/churn.yaml": (example_repo / "models/churn.yaml")
            .read_text()
            .replace("version:", "versoin:"),
            "planes/local-dev.yaml": (example_repo / "planes/local-dev.yaml")
            .read_text()
            .replace("runtime: local", "runtime: lokal"),
        },
    )
    commit_all(example_repo)
    problems = desired.load_commit(gitrepo.GitRepo(example_repo), "HEAD").problems
    assert problems == sorted(problems)
    files = {p.file for p in problems}
    assert {"models/churn.yaml", "planes/local-dev.yaml"} <= files
    assert [p.message.split(" (")[0] for p in problems] == [
        "unknown field 'versoin'",  # one typo, one message: no "missing field 'version'"
        "'lokal' is not allowed",
    ]  # and no fallout: the deployments of churn still find their (broken) model


def test_a_bare_repository_is_validated_at_a_revision(example_repo: Path, tmp_path: Path) -> None:
    bare = tmp_path / "specs.git"
    git(tmp_path, "clone", "-q", "--bare", str(example_repo), str(bare))
    result = validation.validate(bare, rev="main")
    assert result.state.valid
    assert len(result.state.documents) == 8
    assert result.notes == []


WINE = """name: wine
entry_points:
  main:
    parameters:
      alpha: {type: float, default: 0.5}
      l1_ratio: {type: float, default: 0.1}
      data: path
    command: "python train.py {alpha} {l1_ratio} {data}"
  train:
    parameters: {data: {type: path, default: wine.csv}}
    command: "python train.py 0.5 0.1 {data}"
"""
H = "apiVersion: gitplane.dev/v1alpha1\nkind: "
PLANE = H + "DataPlane\nmetadata: {name: dev}\nspec: {runtime: local}\n"


def _model(name: str, project: str) -> str:
    return H + f'Model\nmetadata: {{name: {name}}}\nspec:\n  version: "1"\n  source:\n{project}'


def test_parameters_are_checked_against_the_entry_point_mlproject_declares(
    tmp_path: Path,
) -> None:
    """As MLflow's wine example declares them: a misspelt name, a value that is no number,
    a required parameter left out, an entry point that is not there; a script entry point
    takes any parameter, and a DAG step gets what the runtime provides."""
    repo = init_repo(tmp_path / "specs")
    typos = "      parameters: {l1ratio: 0.2, alpha: abc}\n"
    write(
        repo,
        {
            "planes/dev.yaml": PLANE,
            "projects/wine/MLproject": WINE,
            "projects/wine/score.sh": "echo\n",
            "projects/broken/MLproject": "name: [broken\n",
            "models/typos.yaml": _model(
                "typos", "    project:\n      path: projects/wine\n" + typos
            ),
            "models/tain.yaml": _model(
                "tain", "    project: {path: projects/wine, entryPoint: tain}\n"
            ),
            "models/script.yaml": _model(
                "script",
                "    project: {path: projects/wine, entryPoint: score.sh, parameters: {x: 1}}\n",
            ),
            "models/trained.yaml": _model(
                "trained", "    project: {path: projects/wine, entryPoint: train}\n"
            ),
            "models/broken.yaml": _model("broken", "    project: {path: projects/broken}\n"),
            "dags/nightly.yaml": H + "DAG\nmetadata: {name: nightly}\nspec:\n  planeSelector: {}\n"
            "  parameters: {shards: 8, data: wine.csv}\n"
            "  steps:\n"
            "    - name: fit\n"
            "      project: {path: projects/wine, entryPoint: train, parameters: {alfa: 1}}\n",
        },
    )
    commit_all(repo)
    problems = [str(p) for p in validation.validate(repo).state.problems]
    assert problems == [
        f"{repo}/dags/nightly.yaml:6:16: spec.parameters.shards: "
        "no step's entry point declares 'shards'",
        f"{repo}/dags/nightly.yaml:9:70: spec.steps[0].project.parameters.alfa: "
        "entry point 'train' of projects/wine declares no parameter 'alfa' (it declares: data)",
        f"{repo}/models/broken.yaml:7:21: spec.source.project.path: cannot read "
        "projects/broken/MLproject: 2:1: invalid YAML: did not find expected ',' or ']'",
        f"{repo}/models/tain.yaml:7:48: spec.source.project.entryPoint: no entry point 'tain' "
        "in projects/wine/MLproject (it has: main, train) (did you mean 'train'?)",
        f"{repo}/models/typos.yaml:9:7: spec.source.project.parameters: entry point 'main' of "
        "projects/wine requires 'data' (declared without a default)",
        f"{repo}/models/typos.yaml:9:20: spec.source.project.parameters.l1ratio: entry point "
        "'main' of projects/wine declares no parameter 'l1ratio' (did you mean 'l1_ratio'?)",
        f"{repo}/models/typos.yaml:9:41: spec.source.project.parameters.alpha: 'alpha' is "
        "declared float in projects/wine/MLproject; 'abc' is not a number",
    ]


@pytest.mark.effect("Deployment", "spec.model.version")
def test_a_new_model_version_is_refused_until_every_deployment_pinned_to_the_old_moves(
    example_repo: Path,
) -> None:
    """churn-prod pins 1.2.0: a commit moving the Model on is refused (nothing is issued)
    until the pin moves with it; churn-dev, unpinned, follows the Model."""
    model = example_repo / "models" / "churn.yaml"
    model.write_text(model.read_text().replace('version: "1.2.0"', 'version: "1.3.0"'))
    commit_all(example_repo, "new model version")
    state = desired.load_commit(gitrepo.GitRepo(example_repo), "HEAD")
    assert [(p.file, p.message) for p in state.problems] == [
        (
            "deployments/churn-prod.yaml",
            "Model 'churn' has no version '1.2.0'; it declares '1.3.0'",
        )
    ]
    prod = example_repo / "deployments" / "churn-prod.yaml"
    prod.write_text(prod.read_text().replace('version: "1.2.0"', 'version: "1.3.0"'))
    commit_all(example_repo, "move prod")
    assert desired.load_commit(gitrepo.GitRepo(example_repo), "HEAD").valid
