"""How fast Gitplane loads and validates a spec repository, beside what the hardware allows.

Run: ``.venv/bin/python benchmarks/validate.py [--specs N] [--repeat K]``
(``make bench``). Default: 10,000 specs, best of 3.

A real git repository of N valid specs is built in a temporary directory
(see ``corpus.py``) and committed; the script checks that Gitplane finds it
valid, then measures, each as the best of K runs:

* the floor on the same files: one ``git ls-tree -r -z --long HEAD`` plus one
  ``git cat-file --batch`` of every spec blob, then PyYAML's libyaml loader
  (``yaml.CSafeLoader``) on every blob; also each part alone, and libyaml's
  event scan alone (no Python objects built: the parser's own cost);
* Gitplane in process: ``desired.load_commit`` end to end (ls-tree, cat-file,
  strict YAML, pydantic validation, cross-reference checks) on one core (the
  target's unit) and on both (what users get: large trees fork one parser), and
  ``parse.parse_spec`` alone over blobs already in memory, split into its
  strict YAML and pydantic halves (with the garbage collector on, as a
  library caller would run them), plus ``crossref.check`` alone. Each run
  starts from nothing but the repository path (a fresh ``GitRepo``; previous
  results dropped and collected first);
* Gitplane cold: ``gitplane validate <repo>`` in a fresh subprocess, timed
  wall-clock including interpreter start and imports (the OS page cache is
  warm), beside a bare ``python -c pass`` and ``python -c "import cli.main"``.

The figures are printed beside the targets of the performance issue
(>= 4,000 files/s on one core for load+parse+validate; a cold
``gitplane validate`` of 10,000 specs in <= 3 s) and as ratios to the floor.
The script reports; it does not assert targets. Exit 1 only when the corpus
is not valid (a bug in the corpus or in Gitplane), 0 otherwise.
"""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import _ruamel_yaml  # type: ignore[import-not-found]  # libyaml's C event parser
import yaml
from corpus import best_of, commit_all, kind_counts, write_corpus

from ledger import gitrepo
from reconciler import _parallel, desired
from schemas import _yaml, crossref, parse
from schemas.kinds import KINDS

TARGET_FILES_PER_SECOND = 4_000
TARGET_COLD_SECONDS = 3.0
TARGET_COLD_SPECS = 10_000
BIN = Path(sys.executable).parent
Blobs = list[tuple[str, bytes]]


@dataclass(frozen=True)
class Case:
    """One thing to time: ``run`` does it once, from scratch."""

    key: str
    section: str
    label: str
    run: Callable[[], object]
    per_file: bool = True
    """Whether files/s and µs/file mean anything for it (not for a bare interpreter)."""


def main() -> int:
    """Build the corpus, check it, time every case, print the report."""
    args = _arguments()
    print(_machine())
    with tempfile.TemporaryDirectory(prefix="gitplane-bench-") as tmp:
        repo = Path(tmp) / "specs"
        built = _build(repo, args.specs)
        state = desired.load_commit(gitrepo.GitRepo(repo), "HEAD")
        if not _corpus_is_valid(state, args.specs):
            return 1
        blobs = git_read(repo)
        print(_corpus_line(blobs, built))
        print(f"timing : best of {args.repeat}; in-process runs start from the repository path")
        cases = _cases(repo, blobs, state)
        seconds = {case.key: best_of(args.repeat, case.run) for case in cases}
        _print_table(cases, seconds, len(blobs))
        _print_targets(seconds, len(blobs))
    return 0


def _arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--specs", type=int, default=10_000, help="spec files (default 10000)")
    parser.add_argument("--repeat", type=int, default=3, help="runs per figure (default 3)")
    args = parser.parse_args()
    if args.specs < 1 or args.repeat < 1:
        parser.error("--specs and --repeat must be at least 1")
    return args


# Corpus --------------------------------------------------------------------------------


def _build(repo: Path, n: int) -> float:
    start = time.perf_counter()
    write_corpus(repo, n)
    commit_all(repo)
    return time.perf_counter() - start


def _corpus_is_valid(state: desired.DesiredState, n: int) -> bool:
    if state.valid and len(state.documents) == n:
        return True
    print(f"INVALID CORPUS: {len(state.problems)} problems, {len(state.documents)}/{n} documents")
    for problem in state.problems[:20]:
        print(f"  {problem}")
    return False


def _corpus_line(blobs: Blobs, built: float) -> str:
    size = sum(len(data) for _, data in blobs)
    folders = len({name.rpartition("/")[0] for name, _ in blobs})
    mix = ", ".join(f"{kind} {count:,}" for kind, count in kind_counts(len(blobs)).items())
    return (
        f"corpus : {len(blobs):,} specs ({mix}) in {folders} directories, "
        f"{size / 1e6:.1f} MB, {size / len(blobs):.0f} B/file on average; "
        f"written and committed in {built:.1f} s"
    )


def _machine() -> str:
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else "?"
    return (
        f"machine: {platform.python_implementation()} {platform.python_version()}, "
        f"{platform.platform()}, {os.cpu_count()} CPUs ({usable} usable), "
        f"PyYAML {yaml.__version__} (libyaml: {yaml.__with_libyaml__})"
    )


# The floor -----------------------------------------------------------------------------


def git_read(repo: Path) -> Blobs:
    """Every spec blob at HEAD by path: one ls-tree, one cat-file --batch."""
    listing = _git(repo, "ls-tree", "-r", "-z", "--long", "HEAD")
    specs = []
    for record in listing.split(b"\0")[:-1]:
        meta, _, path = record.partition(b"\t")
        if path.endswith(b".yaml") and not path.startswith(b"projects/"):
            specs.append((path.decode(), meta.split()[2]))
    batch = _git(repo, "cat-file", "--batch", stdin=b"\n".join(oid for _, oid in specs) + b"\n")
    return list(zip([path for path, _ in specs], split_batch(batch, len(specs)), strict=True))


def split_batch(out: bytes, count: int) -> list[bytes]:
    """The contents of ``count`` objects in ``git cat-file --batch`` output."""
    blobs, at = [], 0
    for _ in range(count):
        end = out.index(b"\n", at)
        size = int(out[at:end].rsplit(b" ", 1)[1])
        blobs.append(out[end + 1 : end + 1 + size])
        at = end + 2 + size
    return blobs


def _git(repo: Path, *args: str, stdin: bytes | None = None) -> bytes:
    return subprocess.run(
        ["git", *args], cwd=repo, input=stdin, capture_output=True, check=True
    ).stdout


def csafe_load(blobs: Blobs) -> list[Any]:
    """libyaml through PyYAML, no checks: what parsing alone costs."""
    return [yaml.load(data, Loader=yaml.CSafeLoader) for _, data in blobs]


def libyaml_events(blobs: Blobs) -> int:
    """Scan every blob with libyaml, building nothing: the parser's own cost."""
    count = 0
    for _, data in blobs:
        parser = _ruamel_yaml.CParser(data)
        while parser.get_event().__class__ is not _ruamel_yaml.StreamEndEvent:
            count += 1
    return count


# Gitplane ------------------------------------------------------------------------------


def load_commit(repo: Path) -> desired.DesiredState:
    """What ``gitplane validate`` does in process."""
    return desired.load_commit(gitrepo.GitRepo(repo), "HEAD")


def one_core(run: Callable[[], object]) -> Callable[[], object]:
    """``run`` with the parse never forked onto a second core: the per-core figure."""

    def wrapped() -> object:
        saved = _parallel.MIN_FILES_TO_FORK
        _parallel.MIN_FILES_TO_FORK = sys.maxsize
        try:
            return run()
        finally:
            _parallel.MIN_FILES_TO_FORK = saved

    return wrapped


def spawn(*command: str) -> Callable[[], object]:
    """Run ``command`` to completion; a failure is printed, not raised."""

    def run() -> object:
        done = subprocess.run(command, capture_output=True, check=False)
        if done.returncode != 0:
            print(f"warning: {' '.join(command)} exited {done.returncode}: {done.stdout[-300:]!r}")
        return done

    return run


def _cases(repo: Path, blobs: Blobs, state: desired.DesiredState) -> list[Case]:
    return [*_floor_cases(repo, blobs), *_gitplane_cases(repo, blobs, state), *_cold_cases(repo)]


def _floor_cases(repo: Path, blobs: Blobs) -> list[Case]:
    floor = "Floor: git + libyaml"
    return [
        Case("git", floor, "git ls-tree + cat-file --batch", lambda: git_read(repo)),
        Case("csafe", floor, "PyYAML CSafeLoader, every blob", lambda: csafe_load(blobs)),
        Case("floor", floor, "both: read + CSafeLoader", lambda: csafe_load(git_read(repo))),
        Case(
            "events",
            floor,
            "  libyaml events alone, no objects (diagnostic)",
            lambda: libyaml_events(blobs),
        ),
    ]


def _gitplane_cases(repo: Path, blobs: Blobs, state: desired.DesiredState) -> list[Case]:
    raws = [_yaml.load(data)[0] for _, data in blobs]
    paths = frozenset(name for name, _ in blobs) | _project_files(repo)
    section = "Gitplane, in process"
    single = one_core(lambda: load_commit(repo))
    return [
        Case("parse", section, "parse_spec (strict YAML + pydantic)", lambda: _parse_all(blobs)),
        Case("yaml", section, "  strict YAML alone (_yaml.load)", lambda: _yaml_all(blobs)),
        Case("pydantic", section, "  pydantic model_validate alone", lambda: _validate_all(raws)),
        Case("crossref", section, "crossref.check alone", lambda: _crossref(state, paths)),
        Case("load", section, "load_commit end to end, one core", single),
        Case("load2", section, "load_commit end to end, both cores", lambda: load_commit(repo)),
    ]


def _cold_cases(repo: Path) -> list[Case]:
    section, python = "Cold subprocess (wall clock)", sys.executable
    return [
        Case("python", section, "python -c pass", spawn(python, "-c", "pass"), per_file=False),
        Case(
            "imports",
            section,
            'python -c "import cli.main"',
            spawn(python, "-c", "import cli.main"),
            per_file=False,
        ),
        Case(
            "cold",
            section,
            "gitplane validate <repo>",
            spawn(str(BIN / "gitplane"), "validate", str(repo)),
        ),
    ]


def _project_files(repo: Path) -> frozenset[str]:
    listing = _git(repo, "ls-tree", "-r", "-z", "--name-only", "HEAD", "--", "projects")
    return frozenset(path.decode() for path in listing.split(b"\0")[:-1])


def _parse_all(blobs: Blobs) -> list[parse.Parsed]:
    return [parse.parse_spec(name, data) for name, data in blobs]


def _yaml_all(blobs: Blobs) -> list[object]:
    return [_yaml.load(data) for _, data in blobs]


def _validate_all(raws: list[dict[str, Any]]) -> list[object]:
    return [KINDS[raw["kind"]].model_validate(raw) for raw in raws]


def _crossref(state: desired.DesiredState, paths: frozenset[str]) -> object:
    return crossref.check(state.documents, paths)


# Report --------------------------------------------------------------------------------


def _print_table(cases: list[Case], seconds: dict[str, float], files: int) -> None:
    print(f"\n{'':<52}{'seconds':>9}{'files/s':>11}{'µs/file':>10}")
    section = ""
    for case in cases:
        if case.section != section:
            section = case.section
            print(section)
        took = seconds[case.key]
        rates = f"{files / took:>11,.0f}{took / files * 1e6:>10.1f}" if case.per_file else ""
        print(f"  {case.label:<50}{took:>9.3f}{rates}")


def _print_targets(seconds: dict[str, float], files: int) -> None:
    print("\nAgainst targets and floors")
    print(_throughput_line(seconds, files))
    print(_per_file_line(seconds, files))
    print(_cold_line(seconds, files))


def _throughput_line(seconds: dict[str, float], files: int) -> str:
    load, floor = seconds["load"], seconds["floor"]
    rate, target = files / load, TARGET_FILES_PER_SECOND
    return (
        f"  one core             {rate:>8,.0f} files/s  target >= {target:,} files/s:"
        f" {_verdict(rate >= target)} ({rate / target:.2f}x target);"
        f" floor {files / floor:,.0f} files/s, Gitplane takes {load / floor:.1f}x the floor"
    )


def _per_file_line(seconds: dict[str, float], files: int) -> str:
    per_file, csafe, events = (seconds[key] / files * 1e6 for key in ("load", "csafe", "events"))
    return (
        f"  load+parse+validate  {per_file:>8.1f} µs/file  CSafeLoader {csafe:.1f} µs/file"
        f" (parse only, no checks): {per_file / csafe:.2f}x the floor;"
        f" libyaml events alone {events:.1f} µs/file: {per_file / events:.2f}x"
    )


def _cold_line(seconds: dict[str, float], files: int) -> str:
    cold, floor = seconds["cold"], seconds["python"] + seconds["floor"]
    budget = TARGET_COLD_SECONDS * files / TARGET_COLD_SPECS
    return (
        f"  cold validate        {cold:>8.2f} s        target <= {budget:.2f} s for {files:,} specs"
        f" (3 s per 10,000): {_verdict(cold <= budget)};"
        f" floor (python start + read + CSafeLoader) {floor:.2f} s, {cold / floor:.1f}x the floor"
    )


def _verdict(met: bool) -> str:
    return "met" if met else "MISSED"


if __name__ == "__main__":
    raise SystemExit(main())
