"""Options that several commands share, declared once: the same flag means the same thing,
with the same default and help, in every command that takes it."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import click

from ledger import errors, keys
from schemas.common import parse_duration

F = TypeVar("F", bound=Callable[..., Any])


class GivenPath(click.Path):
    """``click.Path`` that refuses an empty string, which click takes for the current
    directory (``keys init --dir ""`` wrote the keys there). An empty variable
    (``GITPLANE_ROOT=``) is no value at all, as click reads it."""

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        if isinstance(value, str) and not value.strip():
            self.fail("an empty path: give a file or directory", param, ctx)
        return super().convert(value, param, ctx)


ENVIRONMENT = {
    "--root": "GITPLANE_ROOT",
    "--state-repo": "GITPLANE_STATE_REPO",
    "--repo": "GITPLANE_REPO",
    "--keys": "GITPLANE_KEYS",
    "--branch": "GITPLANE_BRANCH",
    "--work-dir": "GITPLANE_WORK_DIR",
    "--interval": "GITPLANE_INTERVAL",
    "--listen": "GITPLANE_LISTEN",
    "--config": "GITPLANE_CONFIG",
    "--plane": "GITPLANE_PLANE",
    "--log-level": "GITPLANE_LOG_LEVEL",
    "--log-format": "GITPLANE_LOG_FORMAT",
}
"""The environment variable of each option that has one, the same in every command that
takes the option (``--plane`` only where it filters what is shown). ``--output`` has none,
as in kubectl and terraform: a script's parsing must not change with its environment;
``--no-color`` is ``NO_COLOR`` (no-color.org)."""


def env(flag: str) -> dict[str, Any]:
    """Keyword arguments giving ``flag`` its variable from :data:`ENVIRONMENT` through
    click's own ``envvar`` (shown in ``--help`` and docs/cli.md); the flag wins over it."""
    return {"envvar": ENVIRONMENT[flag], "show_envvar": True}


def from_environment(context: click.Context, name: str) -> bool:
    """Whether parameter ``name`` took its value from its environment variable: a daemon's
    variable (``GITPLANE_LISTEN``) must not refuse a one-off run the way the flag does."""
    return context.get_parameter_source(name) is click.core.ParameterSource.ENVIRONMENT


spec_path = click.argument("path", default=".", type=GivenPath(file_okay=False, path_type=Path))
"""PATH: a checkout of the spec repository (default: the current directory)."""

state_repo = click.option(
    "--state-repo",
    **env("--state-repo"),
    help="Where the logs are (default: PATH's repository if it holds them, else its origin).",
)


def root(*, required: bool, what: str) -> Callable[[F], F]:
    """``--root root.json``: the pinned root of trust ``what`` is verified from."""
    return click.option(
        "--root",
        required=required,
        type=GivenPath(dir_okay=False, exists=True, path_type=Path),
        **env("--root"),
        help=f"root.json: {what}.",
    )


_FOR = {
    "text": "text for people",
    "markdown": "markdown for PR comments",
    "json": "JSON for tools",
    "yaml": "a YAML stream, as kubectl applies it",
}


def output(*formats: str) -> Callable[[F], F]:
    """``--output/-o``: the first of ``formats`` (text, for people) by default."""
    said = ", ".join(_FOR[f] for f in formats)
    return click.option(
        "--output",
        "-o",
        type=click.Choice(list(formats)),
        default=formats[0],
        show_default=True,
        help=f"{said[0].upper()}{said[1:]}.",
    )


def agent_config(help_text: str) -> Callable[[F], F]:
    """``--config FILE``: an agent configuration (passed as ``config_file``)."""
    return click.option(
        "--config",
        "config_file",
        required=True,
        type=GivenPath(dir_okay=False, exists=True, path_type=Path),
        **env("--config"),
        help=help_text,
    )


def plane_filter(help_text: str) -> Callable[[F], F]:
    """``--plane NAME``: show only this plane (passed as ``only``)."""
    return click.option("--plane", "only", **env("--plane"), help=help_text)


def listen(help_text: str) -> Callable[[F], F]:
    """``--listen HOST:PORT``: where a daemon serves its HTTP endpoints."""
    return click.option(
        "--listen", metavar="HOST:PORT", default=None, **env("--listen"), help=help_text
    )


def check(what: str) -> Callable[[F], F]:
    """``--check``: write nothing, exit 1 if ``what`` is stale (for CI)."""
    return click.option("--check", is_flag=True, help=f"Write nothing; exit 1 if {what} is stale.")


MAX_DAYS = 3650
"""The longest root lifetime ``keys`` signs: ten years (a root is rotated long before)."""


def expires_days(help_text: str) -> Callable[[F], F]:
    """``--expires-days N``: the lifetime of a root that is signed, 1 to ten years (a root
    that has already expired, or one that would outlive any key, is refused)."""
    return click.option(
        "--expires-days",
        type=click.IntRange(1, MAX_DAYS),
        default=365,
        show_default=True,
        help=help_text,
    )


PLANE_NAME = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
"""A DataPlane's ``metadata.name``: a DNS-1123 label (``schemas.common.Name``)."""


def given(_context: click.Context, param: click.Parameter, value: str | None) -> str | None:
    """A text option's value, refused when empty or blank (``--repo ""``): click would pass
    it on, and git would take it for the current directory."""
    if value is not None and not value.strip():
        raise click.BadParameter("an empty value", param=param)
    return value


def plane_name(_context: click.Context, _param: click.Parameter, value: str) -> str:
    """Refuse a plane name that is not a name (a path, empty, upper case or non-ASCII): it
    names files the key is written to."""
    if len(value) > 63 or not PLANE_NAME.fullmatch(value):
        raise click.BadParameter(
            f"{value!r} is not a DataPlane name (lower-case letters, digits and '-', "
            "at most 63, as its metadata.name)"
        )
    return value


def deprecated(old: str, new: str, dest: str) -> Callable[[F], F]:
    """``old``, a spelling ``new`` replaced: hidden, still working, with a one-line warning
    on stderr naming ``new`` (passed as ``dest``; :func:`renamed` merges the two)."""

    def warn(_context: click.Context, _param: click.Parameter, value: str | None) -> str | None:
        if value is not None:
            click.echo(f"warning: {old} is deprecated; use {new}", err=True)
        return value

    return click.option(old, dest, hidden=True, callback=warn, help=f"Deprecated: use {new}.")


def renamed(new: str, value: Any, old_value: Any) -> Any:
    """The value of option ``new`` or of its deprecated spelling: the old one when only it
    is given; both given is a usage error."""
    if old_value is None:
        return value
    source = click.get_current_context().get_parameter_source(new.removeprefix("--"))
    if source is not click.core.ParameterSource.DEFAULT:
        raise click.UsageError(f"{new} and its deprecated spelling are both given; keep {new}")
    return old_value


def logs(what: str) -> Callable[[F], F]:
    """``--log-level`` and ``--log-format`` (env ``GITPLANE_LOG_LEVEL``,
    ``GITPLANE_LOG_FORMAT``): how ``what`` logs to stderr (see :mod:`cli.logs`)."""
    level = click.option(
        "--log-level",
        type=click.Choice(["debug", "info", "warning", "error"]),
        default="info",
        show_default=True,
        **env("--log-level"),
        help=f"The least severe lines {what} logs.",
    )
    fmt = click.option(
        "--log-format",
        type=click.Choice(["text", "json"]),
        default="text",
        show_default=True,
        **env("--log-format"),
        help=f"How {what} logs to stderr: text for people, json (one object a line) for "
        "log shippers.",
    )

    def both(command: F) -> F:
        return level(fmt(command))

    return both


def key_uris(
    _context: click.Context, _param: click.Parameter, values: tuple[str, ...]
) -> dict[str, str]:
    """``--key-uri ROLE=URI``, repeated: one signer URI per online role."""
    return _per_online_role(values, "URI", "commands=hv:gitplane-commands/1")


def public_keys(
    _context: click.Context, _param: click.Parameter, values: tuple[str, ...]
) -> dict[str, keys.PublicKey]:
    """``--public-key ROLE=HEX``, repeated: the Ed25519 public key (64 hex digits) of a key
    held elsewhere (a KMS), one per online role."""
    found = {}
    for role, value in _per_online_role(values, "HEX", "commands=<64 hex digits>").items():
        try:
            found[role] = keys.load_public_key(value)
        except errors.BadKeyError as exc:
            raise click.BadParameter(f"{role}: {exc}") from None
    return found


def _per_online_role(values: tuple[str, ...], what: str, example: str) -> dict[str, str]:
    """``ROLE=VALUE`` options: ROLE is commands or timestamp, each given once."""
    found: dict[str, str] = {}
    for value in values:
        role, sep, given = value.partition("=")
        if not sep or not given or role not in ("commands", "timestamp"):
            raise click.BadParameter(
                f"{value!r}: give ROLE={what}, ROLE being commands or timestamp (e.g. {example})"
            )
        if role in found:
            raise click.BadParameter(f"{role} is given twice; give one {what} per role")
        found[role] = given
    return found


@dataclass(frozen=True)
class Span:
    """A duration as given (``5m``, for messages) and in seconds."""

    text: str
    seconds: float


MAX_WAIT = 366 * 86400
"""The longest duration a command waits or sleeps: a year (a larger one overflows a sleep)."""


class Duration(click.ParamType[Span]):
    """``500ms``, ``30s``, ``5m``, ``1h30m``: a :class:`Span` up to :data:`MAX_WAIT`; zero
    only if ``zero_ok``."""

    name = "duration"

    def __init__(self, *, zero_ok: bool) -> None:
        self.zero_ok = zero_ok

    def convert(
        self, value: object, param: click.Parameter | None, ctx: click.Context | None
    ) -> Span:
        if isinstance(value, Span):
            return value
        try:
            seconds = parse_duration(str(value))
        except ValueError as exc:
            self.fail(str(exc), param, ctx)
        if seconds == 0 and not self.zero_ok:
            self.fail(f"{value!r} is zero: give a positive duration such as 2s", param, ctx)
        if seconds > MAX_WAIT:
            self.fail(f"{value!r} is longer than a year (366d)", param, ctx)
        return Span(str(value), seconds)
