"""Parse many spec files on every core: the cold path of a large repository.

Parsing is CPU-bound Python, so threads do not help; a forked child parses
half of the files while this process parses the other half. Fork is used
only where it is safe and cheap (Linux, a single-threaded process, enough
files to pay for it); otherwise everything is parsed here, in order. The
result is the same either way, in the same order.
"""

from __future__ import annotations

import multiprocessing
import os
import sys
import threading

from schemas import parse

MIN_FILES_TO_FORK = 2000

Item = tuple[str, bytes]


def parse_all(items: list[Item], *, limits: parse.Limits) -> list[parse.Parsed]:
    """``parse.parse_spec`` of every item, in order."""
    if not _can_fork(len(items)):
        return _parse_chunk(items, limits)
    half = len(items) // 2
    context = multiprocessing.get_context("fork")
    with context.Pool(1) as pool:
        later = pool.apply_async(_parse_chunk, (items[half:], limits))
        first = _parse_chunk(items[:half], limits)
        return first + later.get()


def _can_fork(count: int) -> bool:
    return (
        count >= MIN_FILES_TO_FORK
        and sys.platform == "linux"
        and (os.cpu_count() or 1) > 1
        and threading.active_count() == 1
    )


def _parse_chunk(items: list[Item], limits: parse.Limits) -> list[parse.Parsed]:
    return [parse.parse_spec(file, data, limits=limits) for file, data in items]
