"""The clock of the processes a test starts: libfaketime, set to the test's own ``now``.

Gitplane has no way to set its clock (ADR 0010): every command reads the real one,
so a user cannot trust a clock they set by accident. A test that signs its fixtures
at a fixed time and then runs ``gitplane`` as a process must give that process the
same clock, or it passes only in the week it was written. :func:`env_at` preloads
libfaketime (the PyPI build: Debian's 0.9.10 hangs Python's timed lock waits) with
the process's clock starting at ``now`` and running on from there.

``python -m tests.clock +400d pytest …`` runs a whole suite with every process's
clock moved ahead (``make test-future``): the guard against tests that depend on
today's date.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import libfaketime

NOW = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)
"""The tests' fixed time: a Tuesday noon, when prod's change window is open."""


def _preload() -> dict[str, str]:
    _, additions = libfaketime.get_reload_information()
    preload = dict(additions)
    inherited = os.environ.get("LD_PRELOAD", "")
    if "libfaketime" in inherited:  # already under a shifted clock: one library is enough
        preload["LD_PRELOAD"] = inherited
    return preload


def env_at(now: datetime, base: Mapping[str, str] | None = None) -> dict[str, str]:
    """``base`` (default: this process's environment) with the clock starting at ``now``."""
    start = now.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S")
    return {**(os.environ if base is None else base), **_preload(), "FAKETIME": f"@{start}"}


def env_shifted(offset: str, base: Mapping[str, str] | None = None) -> dict[str, str]:
    """``base`` with the clock moved by ``offset`` (libfaketime's syntax: ``+400d``)."""
    return {**(os.environ if base is None else base), **_preload(), "FAKETIME": offset}


@dataclass(frozen=True)
class Running:
    """A test's clock for real processes that run for real durations: ``start`` when made,
    running on in real time. In-process code reads it by calling it; a process started
    with :meth:`env` reads the same clock."""

    start: datetime
    _origin: float = field(default_factory=time.monotonic)

    def __call__(self) -> datetime:
        return self.start + timedelta(seconds=time.monotonic() - self._origin)

    def env(self, base: Mapping[str, str] | None = None) -> dict[str, str]:
        """The environment of a process whose clock is this one."""
        return env_at(self(), base)


def main(argv: list[str]) -> None:
    """``python -m tests.clock OFFSET COMMAND…``: run COMMAND with the clock moved."""
    if len(argv) < 2 or argv[0][:1] not in "+-":
        sys.exit("usage: python -m tests.clock +400d COMMAND [ARG…]")
    os.execvpe(argv[1], argv[1:], env_shifted(argv[0]))  # noqa: S606 - the caller's command


if __name__ == "__main__":
    main(sys.argv[1:])
