"""The ``gitplane`` command: sub-commands, and the one place exit codes are decided.

Exit codes: 0 success; 1 an expected failure (invalid specs, a refused
command); 2 a usage error; 3 a crash (a bug: the traceback is printed);
130 interrupted.
"""

from __future__ import annotations

import sys
import traceback

import click

from cli import agent_cmd, keys_cmd, plan_cmd, reconcile_cmd, schema_cmd, validate_cmd
from schemas.errors import GitplaneError

EXIT_CRASH = 3
EXIT_INTERRUPTED = 130


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(package_name="gitplane")
def gitplane() -> None:
    """GitOps for machine-learning assets: specs in git, signed commands, pull-based agents."""


gitplane.add_command(validate_cmd.validate)
gitplane.add_command(schema_cmd.schema)
gitplane.add_command(keys_cmd.keys)
gitplane.add_command(plan_cmd.plan)
gitplane.add_command(reconcile_cmd.reconcile)
gitplane.add_command(agent_cmd.agent)


def main() -> None:
    """Entry point of the console script."""
    try:
        gitplane.main(standalone_mode=False)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except click.Abort:
        sys.exit(EXIT_INTERRUPTED)
    except GitplaneError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        sys.exit(EXIT_INTERRUPTED)
    except Exception:  # a bug: say so, with the traceback to report
        traceback.print_exc()
        click.echo("gitplane crashed; please report the traceback above.", err=True)
        sys.exit(EXIT_CRASH)
