"""``python launch.py [--memory BYTES] [--cpus N] -- COMMAND...``

Set this process's limits, then become ``COMMAND`` (``exec``): what it starts
inherits them. The CPUs are picked from those this process may use, starting
at one chosen by its pid, so that limited processes spread over the plane's
CPUs instead of all taking the first. Run as a script (never imported as
part of the package, whose ``__init__`` loads every kind): it runs before
every limited build and replica.
"""

from __future__ import annotations

import argparse
import os
import resource
import sys


def main(argv: list[str]) -> None:
    """Apply the limits and ``exec`` the command (exit 2 on a bad call)."""
    parser = argparse.ArgumentParser(prog="launch.py")
    parser.add_argument("--memory", type=int, help="RLIMIT_DATA in bytes")
    parser.add_argument("--cpus", type=int, help="how many CPUs it may run on")
    parser.add_argument("command", nargs="+")
    args = parser.parse_args(argv)
    if args.memory is not None:
        resource.setrlimit(resource.RLIMIT_DATA, (args.memory, args.memory))
    if args.cpus is not None:
        have = sorted(os.sched_getaffinity(0))
        start = os.getpid() % len(have)
        chosen = {have[(start + i) % len(have)] for i in range(min(args.cpus, len(have)))}
        os.sched_setaffinity(0, chosen)
    try:
        os.execvp(args.command[0], args.command)  # noqa: S606 - the exec is its job
    except OSError as exc:
        print(f"launch: cannot run {args.command[0]}: {exc.strerror}", file=sys.stderr)
        sys.exit(127)


if __name__ == "__main__":
    main(sys.argv[1:])
