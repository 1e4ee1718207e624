"""Pause the cyclic garbage collector around bulk work.

Loading and planning 10,000 specs allocate millions of acyclic objects; the
collections they trigger walk every object alive (the whole parsed tree) and
cost a fifth of a large load or plan. Reference counting still frees
everything; cycles left behind are collected once the collector runs again.
"""

from __future__ import annotations

import contextlib
import gc
from collections.abc import Iterator


@contextlib.contextmanager
def paused() -> Iterator[None]:
    """Disable the collector for the block (re-entrant: only the outermost re-enables it)."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()
