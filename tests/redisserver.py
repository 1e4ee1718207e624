"""A real redis-server for a test: its own free port and directory, nothing persisted,
stopped (by its own process id) when the test ends. redis-server comes from Debian's
``redis-server`` package; `make install` installs it when it is missing."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

STARTUP = 10.0
"""Seconds redis-server has to answer PING."""


@contextmanager
def redis_server(directory: Path) -> Iterator[str]:
    """Start redis-server on 127.0.0.1 in ``directory``; yield its ``redis://`` URL."""
    binary = shutil.which("redis-server")
    assert binary, "redis-server is not installed: apt-get install -y redis-server"
    directory.mkdir(parents=True, exist_ok=True)
    port = _free_port()
    args = [binary, "--bind", "127.0.0.1", "--port", str(port), "--dir", str(directory)]
    args += ["--save", "", "--appendonly", "no", "--protected-mode", "no"]
    log = (directory / "redis.log").open("wb")
    process = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, env=_real_clock())
    try:
        _wait(port, process)
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        process.terminate()
        process.wait(timeout=10)
        log.close()


def _real_clock() -> dict[str, str]:
    """The environment without faketime's preload: Redis's event loop stalls under it, and
    its clock is not what a test moves (the runtime's clock is passed in)."""
    hidden = {"LD_PRELOAD", "FAKETIME", "FAKETIME_NO_CACHE", "DONT_FAKE_MONOTONIC"}
    return {k: v for k, v in os.environ.items() if k not in hidden}


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _wait(port: int, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + STARTUP
    while time.monotonic() < deadline:
        assert process.poll() is None, "redis-server exited at start: see redis.log"
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5) as connection:
                connection.sendall(b"PING\r\n")
                if connection.recv(16).startswith(b"+PONG"):
                    return
        except OSError:
            time.sleep(0.02)
    raise AssertionError(f"redis-server did not answer on port {port} within {STARTUP}s")
