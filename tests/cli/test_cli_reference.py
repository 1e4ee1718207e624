"""docs/cli.md: generated from the click command tree, and kept fresh by this test."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from cli import main, reference
from tests.conftest import ROOT

DOCS = ROOT / "docs"


def _every_command() -> list[tuple[str, click.Command]]:
    """(path below ``gitplane``, command) for every registered command and sub-command."""
    found: list[tuple[str, click.Command]] = []
    ctx = click.Context(main.gitplane, info_name="gitplane")
    for name in main.gitplane.list_commands(ctx):
        command = main.gitplane.get_command(ctx, name)
        assert command is not None, name
        found.append((name, command))
        if isinstance(command, click.Group):
            sub = click.Context(command, info_name=name, parent=ctx)
            children = [(c, command.get_command(sub, c)) for c in command.list_commands(sub)]
            found.extend((f"{name} {c}", child) for c, child in children if child is not None)
    return found


def test_the_committed_reference_is_fresh() -> None:
    assert not reference.is_stale(DOCS / "cli.md"), (
        "docs/cli.md is stale: run `.venv/bin/python -m cli.reference` and commit it"
    )


def test_every_registered_command_and_option_is_documented() -> None:
    text = reference.render()
    assert set(main.COMMANDS) <= {path.split()[0] for path, _ in _every_command()}
    for path, command in _every_command():
        assert f"\n{'#' * (path.count(' ') + 2)} gitplane {path}\n" in text, path
        for param in command.params:
            if isinstance(param, click.Option):
                assert f"`{param.opts[0]}`" in text, f"{path} {param.opts[0]}"


def test_the_common_exit_codes_come_from_the_cli() -> None:
    text = reference.render()
    for code in (0, 1, 2, main.EXIT_CRASH, main.EXIT_INTERRUPTED):
        assert f"\n| {code} | " in text


def test_exit_notes_and_pages_name_real_commands_and_files() -> None:
    paths = {path for path, _ in _every_command()}
    assert set(reference.EXIT_NOTES) <= paths
    assert set(reference.SEE_ALSO) <= paths
    for pages in reference.SEE_ALSO.values():
        for _, target in pages:
            page = target.partition("#")[0]
            assert (DOCS / page).is_file(), target


@click.group()
def toy() -> None:
    """A toy tree."""


@toy.command()
@click.argument("src")
@click.option("--out", "-o", type=click.Choice(["a|b", "c"]), default="c", show_default=True)
@click.option("--name", metavar="<kind>", help="One *glob* per <kind> | pipe.")
@click.option("--secret", hidden=True, help="never shown")
@click.option("--fast/--slow", default=True, help="Speed.")
@click.option("--here", type=click.Path(path_type=Path), default=reference.PACKAGE_ROOT / "x" / "y")
def make(**_: object) -> None:
    """Make a thing.

    Its second paragraph
    - wraps here, and must not become a list.
    \f

    Internal notes after the form feed.
    """


@toy.command(hidden=True)
def ghost() -> None:
    """Never documented."""


@pytest.mark.parametrize(
    ("expected", "present"),
    [
        ("## toy make", True),
        ("Its second paragraph - wraps here, and must not become a list.", True),
        ("Arguments: `SRC` (required).", True),
        ("| `--out`, `-o` | `a\\|b`, `c` | `c` |", True),
        ("| `--name` | &lt;kind&gt; |  | One \\*glob\\* per &lt;kind&gt; \\| pipe. |", True),
        ("| `--fast` / `--slow` | flag |  | Speed. |", True),
        ("| `--here` | PATH |  |", True),
        ("--secret", False),
        ("ghost", False),
        ("form feed", False),
    ],
    ids=[
        "command-heading",
        "paragraph-joined",
        "argument",
        "choices-escaped",
        "html-and-emphasis-escaped",
        "boolean-flag-pair",
        "no-default-unless-shown",
        "hidden-option",
        "hidden-command",
        "text-after-form-feed",
    ],
)
def test_rendering_of_a_toy_tree(expected: str, present: bool) -> None:
    assert (expected in reference.render(toy, "toy")) is present


def test_package_paths_are_shown_relative_to_the_package() -> None:
    @click.command()
    @click.option("--dir", type=click.Path(path_type=Path), default=reference.PACKAGE_ROOT / "a")
    @click.option("--abs", type=click.Path(path_type=Path), default=Path("/srv/data"))
    def cmd(**_: object) -> None:
        """A command."""

    group = click.Group("g", commands={"cmd": cmd})
    for param in cmd.params:
        assert isinstance(param, click.Option)
        param.show_default = True
    text = reference.render(group, "g")
    assert "| `--dir` | PATH | `a` |" in text
    assert "| `--abs` | PATH | `/srv/data` |" in text


def test_write_then_check(tmp_path: Path) -> None:
    out = tmp_path / "cli.md"
    runner = CliRunner()
    assert runner.invoke(reference.write, ["--out", str(out)]).exit_code == 0
    assert runner.invoke(reference.write, ["--out", str(out), "--check"]).exit_code == 0
    out.write_text("old\n")
    stale = runner.invoke(reference.write, ["--out", str(out), "--check"])
    assert stale.exit_code == 1
    assert out.read_text() == "old\n"


def test_module_entry_point_checks_the_committed_file() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "cli.reference", "--check", "--out", str(DOCS / "cli.md")],
        capture_output=True,
        text=True,
        cwd=ROOT,
        check=False,
    )
    assert done.returncode == 0, done.stderr
