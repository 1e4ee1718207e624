"""The ``gitplane`` command: sub-commands, and the one place exit codes are decided.

Exit codes: 0 success; 1 an expected failure (invalid specs, a refused
command); 2 a usage error (also a path that cannot be used: a file where a directory
belongs, no permission); 3 a crash (a bug: the traceback is printed); 130 interrupted.
"""

from __future__ import annotations

import codecs
import errno
import importlib
import io
import os
import sys
import traceback

import click

from schemas.errors import ChangesPendingError, GitplaneError, ReportedError
from schemas.inert import inert

EXIT_CRASH = 3
EXIT_INTERRUPTED = 130


COMMANDS = {
    "validate": "cli.validate_cmd:validate",
    "plan": "cli.plan_cmd:plan",
    "status": "cli.status_cmd:status",
    "wait": "cli.wait_cmd:wait",
    "audit": "cli.audit_cmd:audit",
    "approve": "cli.approve_cmd:approve",
    "approvals": "cli.approvals_cmd:approvals",
    "attest": "cli.approve_cmd:attest",
    "reconcile": "cli.reconcile_cmd:reconcile",
    "agent": "cli.agent_cmd:agent",
    "keys": "cli.keys_cmd:keys",
    "schema": "cli.schema_cmd:schema",
    "demo": "cli.demo_cmd:demo",
}


class LazyGroup(click.Group):
    """Imports a sub-command's module only when it runs: `gitplane validate` in a
    pre-commit hook does not pay for the reconciler's server or MLflow."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        target = COMMANDS.get(cmd_name)
        if target is None:
            return None
        module, _, attribute = target.partition(":")
        command = getattr(importlib.import_module(module), attribute)
        if not isinstance(command, click.Command):
            raise TypeError(f"{target} is not a click command")  # a wiring bug
        return command


@click.group(
    cls=LazyGroup,
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
)
@click.version_option(package_name="gitplane")
@click.option(
    "--no-color",
    is_flag=True,
    help="No colour, even on a terminal (also when NO_COLOR is set, as no-color.org asks).",
)
@click.pass_context
def gitplane(ctx: click.Context, no_color: bool) -> None:
    """GitOps for machine-learning assets: specs in git, signed commands, pull-based agents."""
    if no_color or os.environ.get("NO_COLOR"):
        ctx.color = False


ASCII = {
    "\u2713": "OK",  # check mark
    "\u2717": "FAIL",  # ballot x
    "\u2026": "...",
    "\u2192": "->",
    "\u2014": "-",  # em dash
    "\u2013": "-",  # en dash
}
"""What the output's few non-ASCII marks become on a stream that cannot encode them."""


def _ascii(error: UnicodeError) -> tuple[str, int]:
    if not isinstance(error, UnicodeEncodeError):
        raise error
    text = error.object[error.start : error.end]
    return "".join(ASCII.get(char, "?") for char in text), error.end


codecs.register_error("gitplane-ascii", _ascii)


def _fit_streams() -> None:
    """Keep stdout and stderr writable whatever their encoding (``PYTHONIOENCODING=latin-1``,
    a C locale): what they cannot encode is written in ASCII instead of crashing."""
    for stream in (sys.stdout, sys.stderr):
        if isinstance(stream, io.TextIOWrapper):
            stream.reconfigure(errors="gitplane-ascii")


BAD_PATH = frozenset(
    {errno.ENOENT, errno.ENOTDIR, errno.EISDIR, errno.EEXIST, errno.EACCES, errno.EPERM,
     errno.EROFS, errno.ELOOP, errno.ENAMETOOLONG}
)  # fmt: skip
"""Errors of a path the user gave (or one made from it): a usage error, exit 2. Any other
error of a named file (a full disk, an I/O error) is an expected failure, exit 1."""


FULL = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EIO})
"""Errors of a write whose file Python does not name (a full disk): said, exit 1."""


def _path_error(exc: OSError) -> int:
    """Say which file could not be used and why, in one line; the exit code."""
    where = f"{inert(str(exc.filename))}: " if exc.filename is not None else ""
    click.echo(f"error: {where}{exc.strerror}: check the path and its permissions", err=True)
    return 2 if exc.errno in BAD_PATH else 1


def main() -> None:
    """Entry point of the console script."""
    _fit_streams()
    try:
        gitplane.main(standalone_mode=False)
    except click.ClickException as exc:
        exc.show()
        detailed = "--detailed-exitcode" in sys.argv[1:]  # 2 means "changes" there (terraform)
        sys.exit(1 if detailed and exc.exit_code == 2 else exc.exit_code)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except click.Abort:
        sys.exit(EXIT_INTERRUPTED)
    except (ReportedError, ChangesPendingError) as exc:  # said already: only the code is left
        sys.exit(exc.exit_code)
    except GitplaneError as exc:
        lines = str(exc).split("\n")  # a message's own lines stay; nothing else it carries acts
        click.echo("\n".join([f"error: {inert(lines[0])}", *map(inert, lines[1:])]), err=True)
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        sys.exit(EXIT_INTERRUPTED)
    except OSError as exc:
        if exc.filename is None and exc.errno not in FULL:  # a socket, a pipe, a bug
            _crash()
        sys.exit(_path_error(exc))
    except Exception:  # a bug: say so, with the traceback to report
        _crash()


def _crash() -> None:
    traceback.print_exc()
    click.echo("gitplane crashed; please report the traceback above.", err=True)
    sys.exit(EXIT_CRASH)
