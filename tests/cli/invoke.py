"""Run ``gitplane`` in this process as its console script runs it (``cli.main.main``: the
one place exit codes are decided), fast enough for a table of many invocations."""

from __future__ import annotations

import sys
from dataclasses import dataclass
from unittest import mock

from click.testing import CliRunner

from cli import main as cli_main


@dataclass(frozen=True)
class Ran:
    """What an invocation did."""

    code: int
    stdout: str
    stderr: str


def gitplane(args: list[str], env: dict[str, str] | None = None) -> Ran:
    """``gitplane ARGS`` with ``env`` added to the environment; its exit code and streams."""
    runner = CliRunner()
    with (
        runner.isolation(env=env) as (stdout, stderr, _),
        mock.patch.object(sys, "argv", ["gitplane", *args]),
    ):
        try:
            cli_main.main()
            code = 0
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else 1
    return Ran(code, stdout.getvalue().decode(), stderr.getvalue().decode())
