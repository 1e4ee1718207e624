"""Log lines while an apply runs: when it starts, every so often while it goes, when it ends.

A model build, a DAG run or the making of an environment takes minutes or an hour, and
``agent run --once`` would be silent all along. The agent wraps each apply in
:func:`watched`: a line when it starts, a progress line every ``interval`` seconds with the
time elapsed and what the runtime says it is doing (the last line of the build's output,
the rollout's ready replicas), and a line with the duration when it ends.

The runtime tells what it is doing through the :class:`Progress` in its ``ApplyContext``;
a heartbeat thread reads it. Elapsed time comes from the ``monotonic`` source in
:class:`Pace`, so a test drives it without waiting.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from schemas import signed

log = logging.getLogger("gitplane.agent")

LAST_LINE_BYTES = 4096
"""How much of the end of an output file is read for its last line."""


@dataclass(frozen=True)
class Pace:
    """How often a long apply logs a progress line, and the clock that measures it."""

    interval: float = 30.0
    """Seconds between progress lines (the first comes ``interval`` after the start)."""
    monotonic: Callable[[], float] = time.monotonic


class Progress:
    """What an apply is doing now: set by the runtime's thread, read by the heartbeat's."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._doing = ""
        self._output: Path | None = None

    def step(self, doing: str, output: Path | None = None) -> None:
        """The apply is now ``doing`` this (``building``, ``making the environment``),
        writing its output to ``output`` if it has one."""
        with self._lock:
            self._doing, self._output = doing, output

    def follow(self, output: Path) -> None:
        """The apply's output now goes to ``output`` (what it is doing stays as said)."""
        with self._lock:
            self._output = output

    def now(self) -> tuple[str, str]:
        """What the apply is doing, and the last line its output has so far (or "")."""
        with self._lock:
            doing, output = self._doing, self._output
        return doing, last_line(output) if output is not None else ""


def last_line(path: Path) -> str:
    """The last non-empty line of ``path``, "" when there is none or it cannot be read
    (a process may not have created it yet)."""
    try:
        with path.open("rb") as file:
            file.seek(max(0, path.stat().st_size - LAST_LINE_BYTES))
            tail = file.read().decode(errors="replace")
    except OSError:
        return ""
    lines = [line.strip() for line in tail.splitlines() if line.strip()]
    return lines[-1][-500:] if lines else ""


def seconds(elapsed: float) -> str:
    """``elapsed`` for a log line: ``4.2s``, ``12m05s``, ``1h02m``."""
    whole = int(elapsed)
    if whole < 60:
        return f"{elapsed:.1f}s"
    if whole < 3600:
        return f"{whole // 60}m{whole % 60:02d}s"
    return f"{whole // 3600}h{whole % 3600 // 60:02d}m"


@dataclass
class Heartbeat:
    """The progress lines of one apply of ``ref``."""

    ref: str
    fields: dict[str, object]
    progress: Progress
    pace: Pace
    started: float = field(init=False)

    def __post_init__(self) -> None:
        self.started = self.pace.monotonic()

    def elapsed(self) -> float:
        """Seconds since the apply started."""
        return self.pace.monotonic() - self.started

    def beat(self) -> None:
        """One progress line: how long so far and what is happening."""
        doing, output = self.progress.now()
        now = {"elapsed": seconds(self.elapsed()), "doing": doing or None, "output": output or None}
        log.info(f"still applying {self.ref}", extra={"fields": {**self.fields, **now}})

    def run(self, done: threading.Event) -> None:
        """Beat every ``interval`` until ``done`` is set."""
        while not done.wait(self.pace.interval):
            self.beat()


def watched(
    ref: str,
    apply: Callable[[], signed.ResourceStatus],
    *,
    progress: Progress,
    pace: Pace,
    **fields: object,
) -> signed.ResourceStatus:
    """``apply()``, logged: a line when it starts, one every ``pace.interval`` while it
    runs (on a heartbeat thread), and one with its duration and outcome when it ends."""
    log.info(f"applying {ref}", extra={"fields": fields})
    heart = Heartbeat(ref, fields, progress, pace)
    done = threading.Event()
    thread = threading.Thread(target=heart.run, args=(done,), name=f"progress {ref}", daemon=True)
    thread.start()
    try:
        result = apply()
    finally:
        done.set()
        thread.join()
    ended = {**fields, "phase": result.phase, "duration": seconds(heart.elapsed())}
    log.info(f"finished applying {ref}", extra={"fields": ended})
    return result
