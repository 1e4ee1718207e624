"""Daemon logs: one line per record on stderr, with time and level, as text or JSON.

Code under ``agent/`` and ``reconciler/`` logs through the standard ``logging`` module
on a ``gitplane.*`` logger, with a short lower-case message and its data as fields::

    log.info("issued", extra={"fields": {"plane": "dev", "sequence": 3}})

and never formats data into the message: the formatters here render the fields, so a
log shipper gets them as keys (``json``) and a person reads them as ``key=value``
(``text``). Every record is one line in both formats: text values are made inert (a
newline from a project's output or a plane's message cannot forge another line), and an
exception's traceback is one field.
"""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime

from schemas.inert import inert

LEVELS = {
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warning": logging.WARNING,
    "error": logging.ERROR,
}
FORMATS = ("text", "json")
LOGGER = "gitplane"
"""The logger every daemon line comes from (``gitplane.agent``, ``gitplane.reconciler``)."""

_CORE = ("time", "level", "logger", "msg")


def fields_of(record: logging.LogRecord) -> dict[str, object]:
    """The fields a record was logged with (``extra={"fields": {...}}``), if any."""
    fields = getattr(record, "fields", None)
    return dict(fields) if isinstance(fields, dict) else {}


def timestamp(record: logging.LogRecord) -> str:
    """When the record was made, in UTC with milliseconds: ``2026-12-06T19:30:01.123Z``.
    Observation, not a decision: the one place a wall clock is read besides ``cli.clock``."""
    moment = datetime.fromtimestamp(record.created, UTC)
    return f"{moment:%Y-%m-%dT%H:%M:%S}.{int(record.msecs):03d}Z"


def text_value(value: object) -> str:
    """A field's value for a ``key=value`` pair: as is when it is one plain word, else
    quoted; a list joined with commas, a mapping as compact JSON; always one inert line."""
    if isinstance(value, list | tuple):
        value = ",".join(str(item) for item in value)
    elif isinstance(value, dict):
        value = json.dumps(value, default=str, ensure_ascii=False, separators=(",", ":"))
    shown = inert(str(value))
    if shown and not any(ch in shown for ch in ' "='):
        return shown
    return '"' + shown.replace('"', '\\"') + '"'


class TextFormatter(logging.Formatter):
    """``TIME LEVEL LOGGER  message  key=value ...``, for people and ``grep``; a field
    that is None is left out."""

    def format(self, record: logging.LogRecord) -> str:
        """One line for ``record``."""
        fields = {k: v for k, v in fields_of(record).items() if v is not None}
        if record.exc_info:
            fields["exception"] = self.formatException(record.exc_info)
        pairs = " ".join(f"{inert(str(k))}={text_value(v)}" for k, v in fields.items())
        head = f"{timestamp(record)} {record.levelname:<5} {record.name}  "
        return head + inert(record.getMessage()) + (f"  {pairs}" if pairs else "")


class JsonFormatter(logging.Formatter):
    """One JSON object per line: ``time``, ``level``, ``logger``, ``msg``, then the fields
    as keys (a field named like one of those four is kept as ``field_NAME``), then
    ``exception`` with the traceback when there is one. For Loki, Elasticsearch, jq."""

    def format(self, record: logging.LogRecord) -> str:
        """One line for ``record``."""
        body: dict[str, object] = {
            "time": timestamp(record),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for key, value in fields_of(record).items():
            body[f"field_{key}" if key in _CORE else key] = value
        if record.exc_info:
            body["exception"] = self.formatException(record.exc_info)
        return json.dumps(body, default=str, ensure_ascii=False)


class _Stderr(logging.StreamHandler):  # type: ignore[type-arg]
    """Writes to whatever ``sys.stderr`` is when a record comes (a test runner swaps it)."""

    def emit(self, record: logging.LogRecord) -> None:
        """Write ``record`` to the current stderr."""
        self.stream = sys.stderr
        super().emit(record)


def configure(level: str = "info", fmt: str = "text") -> None:
    """Send log records to stderr in ``fmt`` (``text`` or ``json``): ``gitplane.*`` from
    ``level`` up, other libraries' from ``warning`` up (their debug lines are not ours to
    show). Calling it again replaces what an earlier call set."""
    handler = _Stderr()
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    root = logging.getLogger()
    for old in [h for h in root.handlers if isinstance(h, _Stderr)]:
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(max(LEVELS[level], logging.WARNING))
    logging.getLogger(LOGGER).setLevel(LEVELS[level])
