"""Daemon logs (``cli.logs``): one line a record, text or JSON, with time, level, logger,
message and fields; ``--log-level`` and ``--log-format`` and their environment variables."""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from cli import logs
from cli.main import gitplane
from tests.conftest import LOG_TIME

ESCAPE = "\x1b[2K\r"
"""Erase the line and go back to its start: what a forged log line would begin with."""


@pytest.fixture(autouse=True)
def _restore_logging() -> Iterator[None]:
    """Leave the root and ``gitplane`` loggers as they were for the tests that follow."""
    root, ours = logging.getLogger(), logging.getLogger(logs.LOGGER)
    handlers, levels = list(root.handlers), (root.level, ours.level)
    yield
    root.handlers[:] = handlers
    root.setLevel(levels[0])
    ours.setLevel(levels[1])


def _raised(error: Exception) -> logging._SysExcInfoType:
    """``sys.exc_info()`` while ``error`` is handled: a record's exception with a traceback."""
    try:
        raise error
    except type(error):
        return sys.exc_info()


def _record(
    message: str, fields: dict[str, object] | None = None, *, exc: bool = False
) -> logging.LogRecord:
    info = _raised(ValueError("bad\nvalue")) if exc else None
    extra = {"fields": fields} if fields is not None else {}
    return logging.makeLogRecord(
        {"name": "gitplane.agent", "levelno": logging.INFO, "levelname": "INFO",
         "msg": message, "exc_info": info, **extra}
    )  # fmt: skip


def test_text_has_time_level_logger_message_then_fields() -> None:
    line = logs.TextFormatter().format(
        _record("applied Model/churn", {"plane": "dev", "seq": 3, "error": None})
    )
    time, rest = line.split(" ", 1)
    assert LOG_TIME.fullmatch(time)
    assert rest == "INFO  gitplane.agent  applied Model/churn  plane=dev seq=3"  # None: left out


@pytest.mark.parametrize(
    ("value", "shown"),
    [
        ("dev", "dev"),
        ("two words", '"two words"'),
        ("", '""'),
        ('say "hi"', '"say \\"hi\\""'),
        ("a=b", '"a=b"'),
        (["Model/a", "DAG/b"], "Model/a,DAG/b"),
        ({"a": 1}, '"{\\"a\\":1}"'),
        (f"ok\n{ESCAPE}forged", "ok\\n\\x1b[2K\\rforged"),
    ],
    ids=["word", "spaces", "empty", "quotes", "equals", "list", "mapping", "control"],
)
def test_text_values_are_one_inert_word_or_quoted(value: object, shown: str) -> None:
    assert logs.text_value(value) == shown


def test_text_message_and_exception_stay_on_one_line() -> None:
    line = logs.TextFormatter().format(_record(f"refused {ESCAPE}x", exc=True))
    assert "\n" not in line and "\x1b" not in line and "\r" not in line
    assert "refused \\x1b[2K\\rx" in line
    assert 'exception="Traceback (most recent call last):\\n' in line
    assert line.endswith('ValueError: bad\\nvalue"')


def test_json_is_one_object_with_the_fields_as_keys() -> None:
    fields = {"plane": "dev", "applied": ["Model/churn"], "cause": f"x{ESCAPE}", "msg": "mine"}
    line = logs.JsonFormatter().format(_record("cycle done", fields))
    body = json.loads(line)
    assert LOG_TIME.fullmatch(body.pop("time"))
    assert body == {
        "level": "info",
        "logger": "gitplane.agent",
        "msg": "cycle done",
        "plane": "dev",
        "applied": ["Model/churn"],
        "cause": f"x{ESCAPE}",  # escaped by the encoder: the line stays one line
        "field_msg": "mine",  # a field never overwrites the record's own keys
    }
    assert "\n" not in line and "\x1b" not in line


def test_json_exception_is_one_field() -> None:
    line = logs.JsonFormatter().format(_record("cycle failed", exc=True))
    body = json.loads(line)
    assert body["exception"].startswith("Traceback (most recent call last):\n")
    assert body["exception"].endswith("ValueError: bad\nvalue")
    assert "\n" not in line


def test_configure_filters_by_level_and_replaces_itself(
    capsys: pytest.CaptureFixture[str],
) -> None:
    ours, theirs = logging.getLogger("gitplane.reconciler"), logging.getLogger("somelib")
    logs.configure("warning", "json")
    logs.configure("debug", "text")  # the second call wins: one handler, text
    ours.debug("seen")
    theirs.info("not ours to show")
    theirs.warning("theirs too")
    lines = capsys.readouterr().err.splitlines()
    assert [line.split("  ", 2)[1] for line in lines] == ["seen", "theirs too"]
    logs.configure("error", "text")
    ours.warning("hidden")
    assert capsys.readouterr().err == ""


LEVEL = "Invalid value for '--log-level' (env var: 'GITPLANE_LOG_LEVEL')"
FORMAT = "Invalid value for '--log-format' (env var: 'GITPLANE_LOG_FORMAT')"


@pytest.mark.parametrize(
    ("args", "env", "says"),
    [
        (["--log-level", "loud"], {}, f"{LEVEL}: 'loud' is not one of 'debug', 'info'"),
        (["--log-format", "xml"], {}, f"{FORMAT}: 'xml' is not one of 'text', 'json'"),
        ([], {"GITPLANE_LOG_LEVEL": "verbose"}, f"{LEVEL}: 'verbose' is not one of"),
        ([], {"GITPLANE_LOG_FORMAT": "yaml"}, f"{FORMAT}: 'yaml' is not one of"),
    ],
    ids=["level", "format", "level-env", "format-env"],
)
@pytest.mark.parametrize("command", ["agent", "reconcile"])
def test_a_bad_level_or_format_is_a_usage_error(
    tmp_path: Path, command: str, args: list[str], env: dict[str, str], says: str
) -> None:
    config = tmp_path / "agent.yaml"
    config.write_text("plane: x\n")
    invoked = {
        "agent": ["agent", "run", "--config", str(config), "--once"],
        "reconcile": ["reconcile", "--repo", str(tmp_path), "--keys", str(tmp_path)],
    }[command]
    done = CliRunner().invoke(gitplane, [*invoked, *args], env=env)
    assert done.exit_code == 2, done.output
    assert says in done.output and "Traceback" not in done.output
