"""One name per concept, and its ``GITPLANE_*`` variable through click's own ``envvar``:
the variable is used when the flag is absent, the flag wins over it, and the table in
``cli.options`` is what every command uses."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import click
import pytest

from cli import main as cli_main
from cli import options
from tests.cli import invoke

COMMANDS = ("plan", "status", "audit", "wait", "reconcile", "agent run")
"""The commands that take an option with a variable."""

OWN_CONCEPT = {("keys agent", "--plane"), ("wait", "--interval")}
"""Options spelled as one with a variable that mean something else, so take none: the plane
a key is made for (not a filter); how often ``wait`` looks (a daemon's GITPLANE_INTERVAL
of 30s must not slow it)."""


def _command(path: str) -> click.Command:
    command: click.Command = cli_main.gitplane
    context = click.Context(command)
    for name in path.split():
        assert isinstance(command, click.Group)
        found = command.get_command(context, name)
        assert found is not None, path
        command = found
    return command


def _with_variables(command: click.Command) -> Iterator[click.Option]:
    for param in command.params:
        if isinstance(param, click.Option) and param.envvar:
            yield param


def _every_option() -> Iterator[tuple[str, click.Option]]:
    def walk(command: click.Command, path: str) -> Iterator[tuple[str, click.Option]]:
        for param in command.params:
            if isinstance(param, click.Option):
                yield path, param
        if isinstance(command, click.Group):
            for name in command.list_commands(click.Context(command)):
                sub = command.get_command(click.Context(command), name)
                assert sub is not None
                yield from walk(sub, f"{path} {name}".strip())

    return walk(cli_main.gitplane, "")


def test_each_variable_is_the_one_of_the_table_and_each_is_used() -> None:
    used = set()
    for path, option in _every_option():
        flag = option.opts[0]
        if option.hidden:  # a deprecated spelling (audit --branch): its own concept no more
            continue
        if option.envvar is None:
            assert flag not in options.ENVIRONMENT or (path, flag) in OWN_CONCEPT, f"{path} {flag}"
            continue
        assert option.envvar == options.ENVIRONMENT[flag], f"{path} {flag}"
        assert option.show_envvar, f"{path} {flag}: --help and docs/cli.md show it"
        used.add(flag)
    assert used == set(options.ENVIRONMENT)


def _value(option: click.Option, tmp_path: Path, name: str) -> str:
    """A value ``option`` accepts: an existing file or directory where it must exist."""
    kind = option.type
    if isinstance(kind, click.Path) and kind.exists:
        target = tmp_path / name
        if kind.file_okay:
            target.write_text("{}")
        else:
            target.mkdir()
        return str(target)
    if isinstance(kind, click.Choice):  # one choice from the env, another from the flag
        return str(kind.choices[-1] if name.startswith("env-") else kind.choices[0])
    return "127.0.0.1:9000" if option.name == "listen" else f"{name}-value"


@pytest.mark.parametrize("path", COMMANDS)
def test_a_variable_is_used_without_the_flag_and_the_flag_wins(
    path: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    command = _command(path)
    arguments = ["deployment/x"] if path in ("audit", "wait") else []
    expected = {}
    for option in _with_variables(command):
        assert isinstance(option.envvar, str)
        value = _value(option, tmp_path, f"env-{option.name}")
        monkeypatch.setenv(option.envvar, value)
        expected[option.name] = value
    with command.make_context(path, list(arguments)) as context:
        assert {name: str(context.params[name]) for name in expected} == expected
    flags = []
    for option in _with_variables(command):
        value = _value(option, tmp_path, f"flag-{option.name}")
        flags += [option.opts[0], value]
        expected[option.name] = value
    with command.make_context(path, [*arguments, *flags]) as context:
        assert {name: str(context.params[name]) for name in expected} == expected


def _invoke(args: list[str], env: dict[str, str]) -> tuple[int, str]:
    done = invoke.gitplane(args, env)
    assert "Traceback" not in done.stderr and done.code != cli_main.EXIT_CRASH, done.stderr
    return done.code, done.stderr


def test_a_daemons_listen_variable_does_not_refuse_a_one_off_run(tmp_path: Path) -> None:
    """``GITPLANE_LISTEN`` set for the daemon leaves ``reconcile --once`` be (the flag is
    refused there): the run goes on, to the keys directory, which is empty."""
    (tmp_path / "keys").mkdir()
    args = ["reconcile", "--keys", str(tmp_path / "keys"), "--work-dir", str(tmp_path / "w")]
    env = {"GITPLANE_REPO": f"file://{tmp_path}/none.git", "GITPLANE_LISTEN": "127.0.0.1:9"}
    code, said = _invoke([*args, "--once"], env)
    assert "root.json: No such file" in said and "--listen" not in said, said
    code, said = _invoke([*args, "--once", "--listen", "127.0.0.1:9"], env)
    assert code == 2 and "--listen applies only with --watch" in said
