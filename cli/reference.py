"""The CLI reference, ``docs/cli.md``, rendered from the click command tree.

Sub-commands come from the lazy group (``cli.main.COMMANDS``), so whatever is
registered is documented; ``tests/cli/test_cli_reference.py`` fails when the
file is stale. Regenerate it with ``python -m cli.reference`` (``--check``
writes nothing and exits 1 when it is stale, like ``gitplane schema docs``).
"""

from __future__ import annotations

import inspect
import re
import sys
from collections.abc import Iterator
from pathlib import Path

import click

from cli import main as cli_main
from cli import options
from schemas.errors import GitplaneError, UsageError

DEFAULT_OUT = Path("docs/cli.md")
PACKAGE_ROOT = Path(__file__).resolve().parent.parent
"""Defaults that are paths inside the installed package are shown relative to it."""

EXIT_CODES = (
    (0, "success"),
    (
        GitplaneError.exit_code,
        "an expected failure, explained on stderr: invalid specs, signed data refused, "
        "git unreachable, a stale file under `--check`",
    ),
    (
        UsageError.exit_code,
        "a usage error: an unknown option, a missing file or directory or one that cannot "
        "be used (a file where a directory belongs, no permission), an unknown revision, "
        "conflicting flags or a flag that does not apply",
    ),
    (cli_main.EXIT_CRASH, "a crash: a bug in Gitplane; the traceback is printed, please report it"),
    (cli_main.EXIT_INTERRUPTED, "interrupted (Ctrl-C)"),
)

EXIT_NOTES: dict[str, dict[int, str]] = {
    "validate": {1: "the specs are invalid; every problem is printed"},
    "plan": {
        1: "the specs at `--rev` or `--base` are invalid: no plan is made",
        2: "with `--detailed-exitcode`: the plan has changes (a usage error is then 1, as "
        "with terraform)",
    },
    "reconcile": {1: "`--once`: the specs on the branch are invalid, so nothing was issued"},
    "status": {
        1: "the specs at `--rev` are invalid: their problems are printed, and each plane "
        "still shows what it last recorded (sync `Unknown`); or a plane shown had its command "
        "log or status refused, or reports an attack (named on stderr, its status still "
        "printed); with `--exit-code`, a plane shown is not healthy"
    },
    "wait": {
        1: "the resource cannot become synced or ready until a person acts, or `--timeout` "
        "passed (`timed out after 5m: …`): the reason is printed; also when the specs at "
        "`--rev` are invalid",
        2: "a usage error, also a KIND/NAME or `--plane` no spec at `--rev` defines",
    },
    "agent run": {
        1: "`--once`: the command log was refused, or git was unreachable, or the "
        "configuration names what is not there (a plane with no command log that no DataPlane "
        "declares, a branch the repository lacks: nothing is reported)"
    },
    "schema export": {1: "`--check`: a schema file is stale"},
    "schema docs": {1: "`--check`: the reference is stale"},
}
"""Exit codes a command gives a meaning of its own, beside the common ones."""

SEE_ALSO: dict[str, tuple[tuple[str, str], ...]] = {
    "validate": (("validating specs", "validate.md"), ("the PR workflow", "workflow.md")),
    "plan": (("planning", "reconciler.md#planning"), ("the PR workflow", "workflow.md")),
    "reconcile": (("the reconciler", "reconciler.md"), ("operations", "operations.md")),
    "agent": (("the agent", "agent.md"), ("operations", "operations.md")),
    "keys": (("the security model", "security.md"), ("key custody", "operations.md")),
    "schema": (("the spec reference", "reference/specs.md"),),
    "status": (("reading status", "status.md"), ("the PR workflow", "workflow.md")),
    "audit": (("the audit trail", "audit.md"), ("the PR workflow", "workflow.md")),
    "wait": (
        ("waiting for a rollout", "operations.md#waiting-for-a-rollout"),
        ("sync and health", "status.md#sync-and-health"),
    ),
}
"""Pages of docs/ that explain a command further (paths relative to docs/)."""

NAMES = (
    ("the spec checkout a command reads", "`PATH` (argument)", "", ""),
    ("a commit to read (branch, tag or id)", "`--rev`", "", ""),
    ("the spec repository a daemon follows", "`--repo`", "--repo", "`repo`"),
    ("the protected branch a daemon follows", "`--branch`", "--branch", "`branch`"),
    ("the directory of the specs in the repository", "`--path`", "", ""),
    ("where the command and status logs are", "`--state-repo`", "--state-repo", "`repo`"),
    ("the pinned root of trust", "`--root`", "--root", "`rootFile`"),
    ("the reconciler's keys directory", "`--keys`", "--keys", ""),
    ("the agent's private key", "", "", "`keyFile`"),
    ("a daemon's own state and scratch space", "`--work-dir`", "--work-dir", "`stateDir`"),
    ("time between polls", "`--interval`", "--interval", "`pollInterval`"),
    ("where a daemon serves HTTP", "`--listen`", "--listen", ""),
    ("the agent's configuration file", "`agent run --config`", "--config", ""),
    ("a data plane", "`--plane`", "--plane", "`plane`"),
    ("the output format", "`--output`, `-o`", "", ""),
    ("no colour", "`--no-color`", "", ""),
)
"""One name per concept: (concept, CLI option, the option whose variable it takes, the
agent configuration's key). The variables come from ``cli.options.ENVIRONMENT``."""

RENAMED = (
    ("`audit --branch`", "`audit --rev`"),
    ("agent config `remote`", "agent config `repo`"),
    ("agent config `specBranch`", "agent config `branch`"),
)
"""Old spellings that still work, each with a one-line deprecation warning on stderr."""

NAME_NOTES = (
    "A flag wins over its variable. `--plane` reads `GITPLANE_PLANE` only where it filters "
    "what is shown (`status`, `audit`, `wait`), never where it names a key to create; "
    "`wait --interval` (how often it looks) reads no variable either. "
    "`GITPLANE_LISTEN` and `GITPLANE_INTERVAL` are a daemon's: a one-off run "
    "(`reconcile --once`, `agent run --once`) leaves them be, where the flags are refused. "
    "`--output` has no variable, as in kubectl and terraform: what a script parses must not "
    "change with its environment. Colour is off with `NO_COLOR` (no-color.org) as with "
    "`--no-color`. The reconciler's webhook secret is only in `GITPLANE_WEBHOOK_SECRET`, "
    "never a flag (a flag shows in `ps`)."
)

HEADER = """\
# CLI reference

Generated by `python -m cli.reference` from the `gitplane` command tree; do not
edit by hand. Every command and sub-command takes `-h` / `--help`, and
`gitplane --version` prints the installed version.
"""


def render(group: click.Group | None = None, name: str = "gitplane") -> str:
    """The Markdown reference of ``group`` (default: the ``gitplane`` command) and below."""
    root = click.Context(group or cli_main.gitplane, info_name=name)
    contexts = list(_walk(root))[1:]
    out = [HEADER, "## Exit codes", "", "| code | meaning |", "|---|---|"]
    out += [f"| {code} | {_cell(meaning)} |" for code, meaning in EXIT_CODES]
    out += ["", "Commands that give a code a meaning of their own say so below.", ""]
    out += _names_section()
    out += ["## Commands", ""]
    out += [*(_toc_line(ctx) for ctx in contexts), ""]
    for ctx in contexts:
        out += _section(ctx)
    return "\n".join(out).rstrip() + "\n"


def _names_section() -> list[str]:
    """The table of one name per concept, its variable and its agent configuration key."""
    out = ["## Names and environment variables", ""]
    out += ["| concept | CLI | environment variable | agent config |", "|---|---|---|---|"]
    for concept, flag, option, key in NAMES:
        variable = f"`{options.ENVIRONMENT[option]}`" if option else ""
        variable = "`NO_COLOR`" if flag == "`--no-color`" else variable
        out.append(f"| {_cell(concept)} | {flag} | {variable} | {key} |")
    out += ["", NAME_NOTES, "", "Renamed, the old spelling still accepted with a warning:"]
    out += ["", *(f"* {old} is now {new}" for old, new in RENAMED), ""]
    return out


def is_stale(out: Path) -> bool:
    """Whether ``out`` differs from what :func:`render` makes now."""
    return not out.is_file() or out.read_text(encoding="utf-8") != render()


def _walk(ctx: click.Context) -> Iterator[click.Context]:
    """``ctx``, then every visible sub-command's context, depth first, in name order."""
    yield ctx
    if not isinstance(ctx.command, click.Group):
        return
    for name in ctx.command.list_commands(ctx):
        command = ctx.command.get_command(ctx, name)
        if command is not None and not command.hidden:
            yield from _walk(click.Context(command, info_name=name, parent=ctx))


def _path(ctx: click.Context) -> str:
    """``agent run``: the command's path below the root command."""
    return ctx.command_path.partition(" ")[2]


def _anchor(ctx: click.Context) -> str:
    return ctx.command_path.replace(" ", "-").lower()


def _toc_line(ctx: click.Context) -> str:
    indent = "  " * (ctx.command_path.count(" ") - 1)
    summary = _inline(ctx.command.get_short_help_str(limit=200))
    return f"{indent}* [`{ctx.command_path}`](#{_anchor(ctx)}): {summary}"


def _section(ctx: click.Context) -> list[str]:
    command = ctx.command
    level = "#" * (ctx.command_path.count(" ") + 1)
    usage = " ".join([ctx.command_path, *command.collect_usage_pieces(ctx)])
    out = [f"{level} {ctx.command_path}", "", "```text", usage, "```", ""]
    out += _help(command.help or "")
    out += _arguments(command)
    out += _options(ctx)
    if isinstance(command, click.Group):
        out += _subcommands(ctx, command)
    out += _exit_notes(_path(ctx))
    out += _see_also(_path(ctx))
    return out


def _help(text: str) -> list[str]:
    """Docstring paragraphs, each on one line (so no line starts a Markdown list)."""
    body = inspect.cleandoc(text.partition("\f")[0])
    out: list[str] = []
    for paragraph in re.split(r"\n\s*\n", body):
        lines = paragraph.splitlines()
        if not lines:
            continue
        if lines[0].strip() == "\b":  # click's "do not rewrap" marker: keep the lines
            out += [_inline(line) + "  " for line in lines[1:]]
        else:
            out.append(_inline(" ".join(line.strip() for line in lines)))
        out.append("")
    return out


def _arguments(command: click.Command) -> list[str]:
    items = []
    for param in command.params:
        if isinstance(param, click.Argument):
            default = param.to_info_dict().get("default")
            need = "required" if param.required else f"optional, default `{default}`"
            items.append(f"`{param.human_readable_name}` ({need})")
    return [f"Arguments: {', '.join(items)}.", ""] if items else []


def _options(ctx: click.Context) -> list[str]:
    rows = [
        f"| {_names(p)} | {_value(p)} | {_default(p, ctx)} | {_cell(p.help or '')}{_env(p)} |"
        for p in ctx.command.params
        if isinstance(p, click.Option) and not p.hidden
    ]
    if not rows:
        return []
    return ["| option | value | default | meaning |", "|---|---|---|---|", *rows, ""]


def _env(option: click.Option) -> str:
    """`` Env: `GITPLANE_ROOT`.`` for an option that shows its variable."""
    if not option.show_envvar or not isinstance(option.envvar, str):
        return ""
    return f" Env: `{option.envvar}`."


def _names(option: click.Option) -> str:
    names = " / ".join(", ".join(f"`{o}`" for o in opts) for opts in _opt_groups(option))
    return names.replace("|", "\\|")


def _opt_groups(option: click.Option) -> list[list[str]]:
    return [option.opts, option.secondary_opts] if option.secondary_opts else [option.opts]


def _value(option: click.Option) -> str:
    if option.is_flag:
        return "flag"
    if isinstance(option.type, click.Choice):
        return ", ".join(f"`{choice}`" for choice in option.type.choices).replace("|", "\\|")
    return _cell(option.metavar or option.type.name.upper())


def _default(option: click.Option, ctx: click.Context) -> str:
    if option.required:
        return "**required**"
    default = option.to_info_dict().get("default")
    if option.is_flag and not option.is_bool_flag:  # one of several flags sharing a value
        return "(default)" if default is not None and default == option.flag_value else ""
    show = option.show_default if option.show_default is not None else ctx.show_default
    if isinstance(show, str):
        return _cell(show)
    if not show or default is None or option.is_bool_flag:
        return ""
    return _cell(f"`{_shown(default)}`")


def _shown(default: object) -> str:
    if isinstance(default, Path) and default.is_absolute() and default.is_relative_to(PACKAGE_ROOT):
        return default.relative_to(PACKAGE_ROOT).as_posix()
    if isinstance(default, list | tuple):
        return ", ".join(str(item) for item in default)
    return str(default)


def _subcommands(ctx: click.Context, group: click.Group) -> list[str]:
    out = ["| sub-command | what it does |", "|---|---|"]
    for name in group.list_commands(ctx):
        command = group.get_command(ctx, name)
        if command is not None and not command.hidden:
            summary = _cell(command.get_short_help_str(limit=200))
            out.append(f"| [`{name}`](#{_anchor(ctx)}-{name}) | {summary} |")
    return [*out, ""]


def _exit_notes(path: str) -> list[str]:
    notes = EXIT_NOTES.get(path)
    if not notes:
        return []
    items = "; ".join(f"**{code}** {_inline(text)}" for code, text in sorted(notes.items()))
    return [f"Exit codes beside the [common ones](#exit-codes): {items}.", ""]


def _see_also(path: str) -> list[str]:
    pages = SEE_ALSO.get(path)
    if not pages:
        return []
    return ["See also: " + ", ".join(f"[{title}]({target})" for title, target in pages) + ".", ""]


_CODE_SPAN = re.compile(r"(`[^`]*`)")
_SPECIAL = re.compile(r"([\\*_\[\]])")
_LEADING = re.compile(r"^([#>+-])")
_ORDERED = re.compile(r"^(\d+)([.)])")


def _inline(text: str) -> str:
    """``text`` as Markdown prose: code spans kept, everything else shown literally."""
    parts = _CODE_SPAN.split(text)
    for i in range(0, len(parts), 2):  # even parts are outside code spans
        plain = _SPECIAL.sub(r"\\\1", parts[i])
        parts[i] = plain.replace("<", "&lt;").replace(">", "&gt;")
    joined = _LEADING.sub(r"\\\1", "".join(parts))
    return _ORDERED.sub(r"\1\\\2", joined)


def _cell(text: str) -> str:
    """``text`` inside a table cell: on one line, with pipes escaped."""
    return _inline(" ".join(text.split())).replace("|", "\\|")


@click.command()
@click.option(
    "--out",
    type=click.Path(dir_okay=False, path_type=Path),
    default=DEFAULT_OUT,
    show_default=True,
    help="Where to write the Markdown reference.",
)
@options.check("the file")
def write(out: Path, check: bool) -> None:
    """Write the CLI reference, or check that it is up to date."""
    if check:
        if is_stale(out):
            click.echo(f"stale {out}: run `python -m cli.reference`", err=True)
            sys.exit(1)
        return
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(render(), encoding="utf-8")
    click.echo(f"wrote {out}")


if __name__ == "__main__":
    write()
