"""The CI templates call ``gitplane`` commands that exist, with flags that exist.

Every ``gitplane …`` command line of the GitHub workflows and GitLab CI templates in
example-repo/ is parsed by the command's own click parser (types, required options, files
that must exist), with each shell expansion replaced by a value of the option's type. A
renamed flag, a flag a command does not have, or a required option the job forgot fails
here instead of in a user's pipeline.
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path
from typing import Any

import click
import pytest
import yaml

from cli.main import gitplane
from tests.conftest import ROOT

EXAMPLE = ROOT / "example-repo"
GITHUB = ("gitplane.yml", "gitplane-attest.yml")
GITLAB = (".gitlab-ci.yml", ".gitlab/gitplane-attest.gitlab-ci.yml")
SET = re.compile(r"\$\{\w+:\+([^}]*)\}")
"""``${VAR:+words}``: the words, as when the variable is set."""
CALL = re.compile(r"(?:^|\$\(|[;&|]\s*)\s*gitplane\s+([^|>)]*?)(?:\s+\d?>|\s*\)|\s*\|\||$)")


def scripts(name: str) -> list[str]:
    """Every shell script of a template, continuation lines joined."""
    if name in GITHUB:
        body = _load(EXAMPLE / ".github/workflows" / name)
        found = [s["run"] for job in body["jobs"].values() for s in job["steps"] if "run" in s]
    else:
        body = _load(EXAMPLE / name)
        found = [
            line
            for job in body.values()
            if isinstance(job, dict)
            for part in ("before_script", "script", "after_script")
            for line in job.get(part, [])
        ]
    return [script.replace("\\\n", " ") for script in found]


def _load(path: Path) -> dict[Any, Any]:
    loaded = yaml.safe_load(path.read_text())
    assert isinstance(loaded, dict)
    return loaded


def calls(name: str) -> list[list[str]]:
    """The arguments of every ``gitplane`` command line of a template."""
    out = []
    for script in scripts(name):
        for written in script.splitlines():
            line = SET.sub(r"\1", written.replace('"${root[@]}"', '--root "$ROOT"'))
            match = CALL.search(line)
            if match:
                out.append(shlex.split(match.group(1)))
    return out


def parsed(args: list[str], files: Path) -> click.Context:
    """``args`` through the command's click parser, each ``$VAR`` a value of its type."""
    context = click.Context(gitplane)
    command = gitplane.get_command(context, args[0])
    assert command is not None, f"gitplane has no command {args[0]}"
    options = {opt: p for p in command.params for opt in p.opts}
    given = [
        _value(options.get(args[i]), files) if "$" in arg else arg
        for i, arg in enumerate(args[1:], start=0)
    ]
    return command.make_context(args[0], given)


def _value(param: click.Parameter | None, files: Path) -> str:
    kind = param.type if param is not None else None
    if isinstance(kind, click.Path):
        return str(files)
    if isinstance(kind, click.types.IntParamType):
        return "7"
    return "x"


@pytest.fixture
def files(tmp_path: Path) -> Path:
    path = tmp_path / "a-file"
    path.write_text("")
    return path


@pytest.mark.parametrize("name", GITHUB + GITLAB)
def test_every_gitplane_call_parses(name: str, files: Path) -> None:
    found = calls(name)
    assert found, f"{name} calls no gitplane command"
    for args in found:
        context = parsed(args, files)
        assert context.command.name == args[0]


@pytest.mark.parametrize("name", ["gitplane-attest.yml", ".gitlab/gitplane-attest.gitlab-ci.yml"])
def test_the_attest_jobs_sign_the_reviewed_head(name: str, files: Path) -> None:
    (args,) = [a for a in calls(name) if a[0] == "attest"]
    context = parsed(args, files)
    assert {"rev", "base", "pr", "approved_by", "key", "root"} <= {
        k for k, v in context.params.items() if v is not None
    }


def test_the_attest_workflow_runs_on_reviews_with_a_token_that_can_push() -> None:
    body = _load(EXAMPLE / ".github/workflows/gitplane-attest.yml")
    assert set(body[True]) == {"pull_request_review"}  # PyYAML reads `on:` as True
    assert body["permissions"]["contents"] == "write"
    reviews = next(
        s["run"] for s in body["jobs"]["attest"]["steps"] if "gh api" in s.get("run", "")
    )
    assert "pulls/$PR/reviews" in reviews


@pytest.mark.parametrize("name", ["gitplane.yml", ".gitlab-ci.yml"])
def test_the_plan_comment_is_made_against_the_logs_when_the_root_is_set(
    name: str, files: Path
) -> None:
    (args,) = [a for a in calls(name) if a[0] == "plan"]
    assert parsed(args, files).params["root"] == files


def test_a_flag_that_does_not_exist_is_caught(files: Path) -> None:
    with pytest.raises(click.NoSuchOption):
        parsed(["attest", ".", "--rev", "$H", "--pull", "$PR"], files)
    with pytest.raises(click.MissingParameter):
        parsed(["attest", ".", "--rev", "$H", "--key", "$KEY", "--root", "$R", "--pr", "1"], files)
