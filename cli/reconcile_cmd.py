"""``gitplane reconcile``."""

from __future__ import annotations

import json
import os
from pathlib import Path

import click

from cli import clock, logs, options
from reconciler import notify, render
from reconciler import reconcile as reconciling
from reconciler import watch as watching
from schemas.errors import ReportedError
from schemas.inert import inert


@click.command("reconcile")
@click.option(
    "--repo",
    required=True,
    callback=options.given,
    **options.env("--repo"),
    help="The spec repository: a path or a git URL.",
)
@click.option(
    "--keys",
    "keys_dir",
    required=True,
    type=options.GivenPath(file_okay=False, exists=True, path_type=Path),
    **options.env("--keys"),
    help="Directory made by `gitplane keys init` (root.json, reconciler/*.key).",
)
@click.option(
    "--key-uri",
    "key_uris",
    multiple=True,
    metavar="ROLE=URI",
    callback=options.key_uris,
    help="Sign ROLE (commands or timestamp) through this securesystemslib signer URI of an "
    "Ed25519 key (hv:NAME/VERSION for a HashiCorp Vault transit key, file2:PATH) instead of "
    "reconciler/ROLE.key; it must be a key root.json names for ROLE. Repeat for each role.",
)
@click.option(
    "--work-dir",
    type=options.GivenPath(file_okay=False, path_type=Path),
    default=Path(".gitplane/reconciler"),
    show_default=True,
    **options.env("--work-dir"),
    help="Scratch space for bare mirrors.",
)
@click.option(
    "--branch",
    default="main",
    show_default=True,
    **options.env("--branch"),
    help="The protected branch the reconciler follows.",
)
@click.option("--path", "spec_path", default="", help="Directory of the specs in the repo.")
@click.option(
    "--state-repo",
    **options.env("--state-repo"),
    help="Keep the command and status logs in this repository.",
)
@click.option("--once", is_flag=True, help="One cycle, then exit (the default).")
@click.option("--watch", is_flag=True, help="Run until stopped (SIGTERM, Ctrl-C).")
@click.option(
    "--interval",
    **options.env("--interval"),
    help="Polling interval in watch mode, 1s to 7d (a cheap ls-remote when nothing changed). "
    "[default: 30s]",
)
@click.option(
    "--notifications",
    type=click.Path(dir_okay=False, exists=True, path_type=Path),
    help="Send state changes to the webhooks, Slack and forge commit statuses this file "
    "lists (docs/operations.md, Notifications).",
)
@options.listen("Serve /metrics, /healthz and /webhook here (watch mode).")
@options.output("text", "json")
@options.logs("the reconciler")
def reconcile(
    keys_dir: Path,
    key_uris: dict[str, str],
    work_dir: Path,
    repo: str,
    branch: str,
    spec_path: str,
    state_repo: str | None,
    once: bool,
    watch: bool,
    interval: str | None,
    listen: str | None,
    notifications: Path | None,
    output: str,
    log_level: str,
    log_format: str,
) -> None:
    """Plan every plane against its recorded state and issue signed commands."""
    if once and watch:
        raise click.UsageError("use --once or --watch, not both")
    interval, listen = _for_watch(watch, interval=interval, listen=listen)
    given = click.get_current_context().get_parameter_source("output")
    if watch and given is not click.core.ParameterSource.DEFAULT:
        raise click.UsageError("--output applies only without --watch (a daemon logs)")
    logs.configure(log_level, log_format)
    every = watching.WatchSettings.parse(interval or "30s", listen) if watch else None
    destinations = _destinations(notifications)
    settings = reconciling.Settings(
        repo=repo,
        keys_dir=keys_dir,
        key_uris=key_uris,
        work_dir=work_dir,
        branch=branch,
        path=spec_path,
        state_repo=state_repo,
    )
    reconciler = reconciling.Reconciler(settings)
    if every is not None:
        watching.run(reconciler, every, clock=clock.now, destinations=destinations)
        return
    cycle = reconciler.reconcile(clock.now())
    _report(cycle, output)
    if destinations:  # after the report: delivering may take up to notify.DRAIN_TIMEOUT
        notifier = notify.Notifier(destinations, work_dir, notify.Sender())
        notifier.observe(cycle, reconciler.recorded.folded)
        notifier.close()
    if cycle.problems:
        raise ReportedError


def _for_watch(
    watch: bool, *, interval: str | None, listen: str | None
) -> tuple[str | None, str | None]:
    """``--interval`` and ``--listen`` as they apply: given as flags without ``--watch`` they
    are refused; from GITPLANE_INTERVAL or GITPLANE_LISTEN (set for the daemon) a one-off
    run leaves them be."""
    if watch:
        return interval, listen
    context = click.get_current_context()
    for flag, value in (("--interval", interval), ("--listen", listen)):
        name = flag.removeprefix("--")
        if value is not None and not options.from_environment(context, name):
            raise click.UsageError(f"{flag} applies only with --watch")
    return None, None


def _destinations(path: Path | None) -> list[notify.Destination]:
    """The targets of ``--notifications``, with their secrets: checked before any cycle."""
    if path is None:
        return []
    return notify.resolve(notify.load(path), path, os.environ)


def _report(cycle: reconciling.Cycle, output: str) -> None:
    if output == "json":
        click.echo(
            json.dumps(
                {
                    "commit": cycle.commit,
                    "valid": not cycle.problems,
                    "errors": [p.as_dict() for p in cycle.problems],
                    "issued": {plane: head.sequence for plane, head in cycle.issued.items()},
                    "flags": cycle.flags,
                    "alarms": cycle.alarms,
                    "plan": render.as_json(cycle.plan) if cycle.plan else None,
                },
                indent=2,
            )
        )
        return
    for problem in cycle.problems:
        click.echo(str(problem), err=True)
    if cycle.problems:
        click.echo(
            f"error: {len(cycle.problems)} problem(s) at {cycle.commit}: nothing issued", err=True
        )
        return
    if cycle.plan is not None:
        click.echo(render.text(cycle.plan, title="Reconcile"))
    for plane, head in sorted(cycle.issued.items()):
        click.echo(f"issued bundle {head.sequence} to {plane}")
    for alarm in cycle.alarms:
        click.echo(f"! {inert(alarm)}", err=True)
