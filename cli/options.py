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

spec_path = click.argument("path", default=".", type=click.Path(file_okay=False, path_type=Path))
"""PATH: a checkout of the spec repository (default: the current directory)."""

state_repo = click.option(
    "--state-repo",
    help="Where the logs are (default: PATH's repository if it holds them, else its origin).",
)


def root(*, required: bool, what: str) -> Callable[[F], F]:
    """``--root root.json``: the pinned root of trust ``what`` is verified from."""
    return click.option(
        "--root",
        required=required,
        type=click.Path(dir_okay=False, exists=True, path_type=Path),
        help=f"root.json: {what}.",
    )


_FOR = {"text": "text for people", "markdown": "markdown for PR comments", "json": "JSON for tools"}


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


def plane_filter(help_text: str) -> Callable[[F], F]:
    """``--plane NAME``: show only this plane (passed as ``only``)."""
    return click.option("--plane", "only", help=help_text)


def listen(help_text: str) -> Callable[[F], F]:
    """``--listen HOST:PORT``: where a daemon serves its HTTP endpoints."""
    return click.option("--listen", metavar="HOST:PORT", default=None, help=help_text)


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


def plane_name(_context: click.Context, _param: click.Parameter, value: str) -> str:
    """Refuse a plane name that is not a name (a path, empty, upper case or non-ASCII): it
    names files the key is written to."""
    if len(value) > 63 or not PLANE_NAME.fullmatch(value):
        raise click.BadParameter(
            f"{value!r} is not a DataPlane name (lower-case letters, digits and '-', "
            "at most 63, as its metadata.name)"
        )
    return value


def logs(what: str) -> Callable[[F], F]:
    """``--log-level`` and ``--log-format`` (env ``GITPLANE_LOG_LEVEL``,
    ``GITPLANE_LOG_FORMAT``): how ``what`` logs to stderr (see :mod:`cli.logs`)."""
    level = click.option(
        "--log-level",
        type=click.Choice(["debug", "info", "warning", "error"]),
        default="info",
        show_default=True,
        envvar="GITPLANE_LOG_LEVEL",
        show_envvar=True,
        help=f"The least severe lines {what} logs.",
    )
    fmt = click.option(
        "--log-format",
        type=click.Choice(["text", "json"]),
        default="text",
        show_default=True,
        envvar="GITPLANE_LOG_FORMAT",
        show_envvar=True,
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
