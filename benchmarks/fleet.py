"""What one reconcile cycle costs across a fleet of data planes.

Run: ``.venv/bin/python benchmarks/fleet.py [--planes P] [--repeat K]``. Default:
1,000 planes, best of 3.

The example repository (``example-repo/``) with P more DataPlanes like its
``local-dev`` (each with its own agent key registered), pushed to a bare
repository over ``file://``; keys from ``keyring.init_keys``; a real
``reconcile.Reconciler``, cycles called in process. Measured per cycle: wall
time, this process's CPU time, the CPU time of the git processes it ran, and
how many it ran:

1. the first cycle: every plane gets its first bundle (a model build and a
   feature set, as ``local-dev`` does);
2. the cycle after: each log moved, so each is read again (its new bundle
   verified) and nothing is issued;
3. an idle cycle: nothing changed anywhere (best of K);
4. a cycle after one plane's agent reported (a real ``CommandReader`` and
   ``StatusWriter`` for one plane): one report to read and verify.

Target (reference/performance.md G6): one control plane serves >= 1,000 data
planes at a 30 s poll on <= 1 core, so an idle cycle of 1,000 planes must cost
well under 30 s of CPU. Before the cycle snapshot (one ``ls-remote`` for every
log) and incremental log reads, an idle cycle ran about ten git processes per
plane (measured: 32 planes, 323 processes, 1.5-1.9 s); before a cycle pushed
every plane's log in one ``git push``, the first cycle of 1,000 planes took
126 s, 118 s of it in git (one push per plane, each checking every ref).
For the first two cycles the git wall time is also split by subcommand.

The script reports; it does not assert targets. Exit 0.
"""

from __future__ import annotations

import argparse
import os
import platform
import resource
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from ledger import gitrepo, keyring, keys, status
from ledger import reader as log_reader
from reconciler import reconcile

NOW = datetime(2026, 11, 24, 12, tzinfo=UTC)
EXAMPLE = Path(__file__).resolve().parent.parent / "example-repo"
TARGET_PLANES = 1_000
TARGET_SECONDS = 30.0
AGENT = gitrepo.Identity("gitplane-agent", "agent@gitplane.invalid")


def main() -> int:
    """Build the fleet, run the cycles, print the report."""
    args = _arguments()
    print(
        f"machine: {platform.python_implementation()} {platform.python_version()},"
        f" {os.cpu_count()} CPUs; {_git_version()}"
    )
    with tempfile.TemporaryDirectory(prefix="gitplane-fleet-") as tmp:
        fleet = build(Path(tmp), args.planes)
        print(f"fleet: {args.planes:,} planes + the example's 2, one bare repository over file://")
        run_cycles(fleet, args.repeat)
    return 0


def _arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--planes", type=int, default=TARGET_PLANES, help="DataPlanes (1000)")
    parser.add_argument("--repeat", type=int, default=3, help="idle cycles, best of (3)")
    args = parser.parse_args()
    if min(args.planes, args.repeat) < 1:
        parser.error("--planes and --repeat must be at least 1")
    return args


def _git_version() -> str:
    return subprocess.run(
        ["git", "--version"], capture_output=True, check=True, text=True
    ).stdout.strip()


@dataclass(frozen=True)
class Fleet:
    """The spec repository, keys and a reconciler over them."""

    base: Path
    remote: str
    keys_dir: Path
    agent_keys: dict[str, keys.FileSigner]
    reconciler: reconcile.Reconciler


def build(base: Path, planes: int) -> Fleet:
    """The example repository with ``planes`` more DataPlanes, pushed to a bare remote."""
    keys_dir = base / "keys"
    keyring.init_keys(
        keys_dir,
        root_keys=1,
        threshold=1,
        now=NOW - timedelta(days=1),
        lifetime=timedelta(days=365),
    )
    work = base / "work"
    shutil.copytree(EXAMPLE, work)
    template = (work / "planes" / "local-dev.yaml").read_text()
    agent_keys = {}
    for i in range(planes):
        name = f"dev-{i:04d}"
        agent_keys[name] = keys.FileSigner.generate()
        key = agent_keys[name].public_key.hex
        text = template.replace("name: local-dev", f"name: {name}")
        text = text.replace("spec:\n", f"spec:\n  agentKey: {{type: ed25519, public: {key}}}\n", 1)
        text = text.replace(
            "ports: {start: 20000, end: 20999}", f"ports: {{start: {30000 + i}, end: {30000 + i}}}"
        )
        (work / "planes" / f"{name}.yaml").write_text(text)
    remote = base / "remote.git"
    _git(base, "init", "-q", "--bare", "-b", "main", str(remote))
    _git(work, "init", "-q", "-b", "main")
    _git(work, "add", "-A")
    _git(work, "-c", "user.name=bench", "-c", "user.email=bench@invalid", "commit", "-qm", "fleet")
    _git(work, "push", "-q", str(remote), "main")
    settings = reconcile.Settings(repo=str(remote), keys_dir=keys_dir, work_dir=base / "reconciler")
    return Fleet(base, f"file://{remote}", keys_dir, agent_keys, reconcile.Reconciler(settings))


def _git(cwd: Path, *args: str) -> None:
    subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True)


@dataclass(frozen=True)
class Spent:
    """One cycle's cost."""

    wall: float
    cpu: float
    git_cpu: float
    git_processes: int
    issued: int
    git_seconds: dict[str, float]
    """Wall time of the git processes run, by subcommand."""


class Counter:
    """Counts the git processes every GitRepo of this process runs (patched in, restored after)."""

    def __init__(self) -> None:
        self.count = 0
        self.seconds: dict[str, float] = {}
        """Wall time per git subcommand (those run to completion; ``start``-ed ones aside)."""
        self._execute = gitrepo.GitRepo.execute
        self._start = gitrepo.GitRepo.start

    def __enter__(self) -> Counter:
        execute, start, counter = self._execute, self._start, self

        def counted_execute(repo: gitrepo.GitRepo, *args: str, **kwargs: object) -> object:
            counter.count += 1
            began = time.perf_counter()
            try:
                return execute(repo, *args, **kwargs)  # type: ignore[arg-type]
            finally:
                took = time.perf_counter() - began
                counter.seconds[args[0]] = counter.seconds.get(args[0], 0.0) + took

        def counted_start(repo: gitrepo.GitRepo, *args: str) -> object:
            counter.count += 1
            return start(repo, *args)

        gitrepo.GitRepo.execute = counted_execute  # type: ignore[assignment,method-assign]
        gitrepo.GitRepo.start = counted_start  # type: ignore[assignment,method-assign]
        return self

    def __exit__(self, *_: object) -> None:
        gitrepo.GitRepo.execute = self._execute  # type: ignore[method-assign]
        gitrepo.GitRepo.start = self._start  # type: ignore[method-assign]


def cycle(fleet: Fleet, now: datetime) -> Spent:
    """One ``Reconciler.reconcile`` and what it cost."""
    with Counter() as counter:
        children = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpu, wall = time.process_time(), time.perf_counter()
        done = fleet.reconciler.reconcile(now)
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
    git_cpu = (after.ru_utime + after.ru_stime) - (children.ru_utime + children.ru_stime)
    return Spent(wall, cpu, git_cpu, counter.count, len(done.issued), counter.seconds)


def report_one(fleet: Fleet, plane: str, now: datetime) -> None:
    """What ``plane``'s agent does: verify its new commands, report them applied."""
    mirror = gitrepo.Mirror.open(fleet.base / f"agent-{plane}", fleet.remote)
    root = (fleet.keys_dir / keyring.ROOT_FILE).read_bytes()
    trust = fleet.base / f"agent-{plane}-trust.json"
    reader = log_reader.CommandReader(mirror, plane, trust, root)
    pending = reader.update(now)
    head = pending[-1][0]
    reader.mark_applied(head)
    writer = status.StatusWriter(mirror, plane, fleet.agent_keys[plane], AGENT, trust, root)
    writer.write(applied=head, timestamp_version=1, resources=[], error=None, now=now)


def run_cycles(fleet: Fleet, repeat: int) -> None:
    """The four cycles of the module docstring, printed as a table."""
    minute = timedelta(minutes=1)
    rows: list[tuple[str, Spent]] = [
        ("first cycle: every plane issued its first bundle", cycle(fleet, NOW))
    ]
    rows.append(("next cycle: every log moved, nothing to issue", cycle(fleet, NOW + minute)))
    idle = [cycle(fleet, NOW + minute * (2 + i)) for i in range(repeat)]
    rows.append((f"idle cycle (best of {repeat})", min(idle, key=lambda s: s.wall)))
    plane = next(iter(fleet.agent_keys))
    report_one(fleet, plane, NOW + minute * 10)
    rows.append(("one plane reported", cycle(fleet, NOW + minute * 11)))
    _print(rows, len(fleet.agent_keys) + 2)


def _print(rows: list[tuple[str, Spent]], planes: int) -> None:
    print(f"  {'':<50}{'wall s':>8}{'CPU s':>8}{'git CPU s':>11}{'git procs':>11}{'issued':>8}")
    for label, spent in rows:
        print(
            f"  {label:<50}{spent.wall:>8.2f}{spent.cpu:>8.2f}{spent.git_cpu:>11.2f}"
            f"{spent.git_processes:>11,}{spent.issued:>8,}"
        )
    for label, spent in rows[:2]:
        top = sorted(spent.git_seconds.items(), key=lambda item: -item[1])[:5]
        print(
            f"  {label.split(':')[0]}, git wall time by subcommand: "
            + ", ".join(f"{command} {seconds:.1f} s" for command, seconds in top)
        )
    idle = rows[2][1]
    per_plane = (idle.cpu + idle.git_cpu) / planes
    at_target = per_plane * TARGET_PLANES
    verdict = "met" if at_target < TARGET_SECONDS else "MISSED"
    print(
        f"  idle cycle CPU per plane: {per_plane * 1e3:.2f} ms -> {at_target:.1f} s for"
        f" {TARGET_PLANES:,} planes, against a {TARGET_SECONDS:.0f} s poll on one core: {verdict}"
    )


if __name__ == "__main__":
    raise SystemExit(main())
