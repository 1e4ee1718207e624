"""Seeing a ref move in a repository on local disk within a second (the one watchfiles user).

Both the reconciler (specs and status pushed) and the agent (commands
pushed) wake on it instead of waiting for their next poll; remote
repositories are polled instead.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from pathlib import Path

import watchfiles

logging.getLogger("watchfiles").setLevel(logging.WARNING)  # not one line per change


def local_refs(repo: str | None) -> Path | None:
    """The directory whose changes mean a ref moved, for a repository on local disk."""
    if not repo:
        return None
    path = Path(repo.removeprefix("file://"))
    if not path.is_dir():
        return None
    git_dir = path / ".git" if (path / ".git").is_dir() else path
    return git_dir if (git_dir / "refs").is_dir() else None


def start(
    repos: Sequence[str | None], stop: threading.Event, on_change: Callable[[], None]
) -> threading.Thread | None:
    """Call ``on_change`` whenever a ref moves in any local repository of ``repos``, until
    ``stop`` is set; None when none of them is on local disk."""
    paths = [p for p in (local_refs(r) for r in repos) if p is not None]
    if not paths:
        return None
    thread = threading.Thread(
        target=_watch, args=(paths, stop, on_change), daemon=True, name="gitplane-refwatch"
    )
    thread.start()
    return thread


def _watch(paths: list[Path], stop: threading.Event, on_change: Callable[[], None]) -> None:
    for _ in watchfiles.watch(*paths, stop_event=stop, debounce=50, step=20, raise_interrupt=False):
        on_change()
