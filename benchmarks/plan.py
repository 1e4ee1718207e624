"""How fast Gitplane plans a large spec repository, re-plans a one-file commit, and reacts
to a push in watch mode.

Run: ``.venv/bin/python benchmarks/plan.py [--specs N] [--planes P] [--repeat K]
[--profile]``. Default: 10,000 specs across 100 DataPlanes, K = 10.

Three things are measured, each printed beside its target; nothing is asserted:

1. Cold plan of N specs across P planes (target <= 5 s). The corpus of
   ``corpus.py`` is written with its DataPlanes replaced by exactly P planes
   whose (env, region) labels first cover every pair the generated selectors
   use, then repeat them, so every selector matches at least one plane and an
   env-wide selector reaches about a third of the planes. It lands as an
   approved pull request would (a ``--no-ff`` merge with three ``Approved-by``
   trailers), so policies gate on change windows only, and is checked valid
   with ``desired.load_commit``. Timed in process, each run from a fresh
   ``GitRepo`` after a full collection: ``load_commit``, ``desired_at`` (the
   reconciler's project tree ids and trailers) and
   ``reconciler.plan.plan(desired, {}, now)`` against empty recorded state;
   then ``plan`` alone on documents already loaded. Also the plan's size:
   planes, actions by operation, commands; and the same first commit the way
   ``gitplane reconcile`` takes it: ``tracker.Tracker.load`` +
   ``replan.Planner.plan`` (which also keep what later re-plans reuse).
2. Re-plan after a one-file commit (target <= 50 ms). After part 1, a
   ``tracker.Tracker`` and a ``replan.Planner`` are given the corpus commit (a
   full load and plan, untimed), as a running reconciler holds them. Then K
   commits each change one Deployment's ``replicas`` and land; each is timed
   through ``Tracker.load`` (``git diff-tree``, the changed blob read and
   parsed, cross-references checked where the change reaches, trailers) and
   ``Planner.plan`` against empty recorded state. The last plan is compared with
   a full ``load_commit`` + ``plan()`` of the same commit, whose time is shown
   beside. As the floor: ``git diff-tree -r`` of the two commits, one ``git
   cat-file blob`` of the changed file and ``parse.parse_spec`` of it.
3. Commit-to-command latency in watch mode (target <= 1 s). Keys from
   ``keyring.init_keys``, the example repository pushed to a bare repository
   on local disk, and ``gitplane reconcile --watch --interval 1h`` as a
   subprocess (so only the file watch of the bare repository's refs can
   trigger a cycle). Once its first bundle is issued, K commits alternate
   ``ttl: 2d``/``ttl: 3d`` in ``features/customer-activity.yaml`` (each one a
   FeatureSet update command for ``local-dev``); each is pushed from a working
   clone and timed from the moment ``git push`` returns to the moment
   ``git for-each-ref`` in the bare repository shows the plane's commands ref
   moved (polled every 5 ms). After each move the watcher is left 1 s to
   finish the cycle its own push triggers. The watcher is stopped with SIGTERM
   in a ``finally``; its process group is killed if it does not exit.

2b. Verifying ten signed approvals (target <= 10 ms, issue 21): ten ed25519 keys made by
   ``ssh-keygen``, ten approval records signed with them, then the approvers anchor (a
   root-signed rule, 2 of 3 root keys: ``ledger.anchor.check``) and
   ``ledger.approvals.tally`` (parse, in-process SSHSIG verification, distinct-key count)
   timed K times.

Part 1 reports the best of min(K, 3) runs, fewer once a figure's runs have
taken 15 s (one full plan can take tens of seconds); parts 2 and 3 take K
samples. ``--profile`` adds cProfile's top functions for the cold
plan and the full re-plan path. Exit 1 only when the corpus is invalid or the
watcher cannot be started.
"""

from __future__ import annotations

import argparse
import cProfile
import gc
import io
import math
import os
import platform
import pstats
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TypeVar

import yaml
from corpus import commit_all, git, kind_counts, write_corpus

from ledger import anchor, approvals, gitrepo, keyring, keys, layout, sshkeygen, verify
from reconciler import desired, tracker
from reconciler.plan import Desired, Plan, plan
from reconciler.reconcile import desired_at
from reconciler.replan import Planner
from schemas import parse, sshkey
from schemas.dataplane import DataPlane
from schemas.policy import Approver

NOW = datetime(2026, 11, 24, 12, tzinfo=UTC)
TARGET_COLD = 5.0
TARGET_INCREMENTAL = 0.050
TARGET_WATCH = 1.0
TARGET_APPROVALS = 0.010
SIGNED_APPROVALS = 10
MAX_TIMED_RUNS = 3
BUDGET = 15.0
POLL = 0.005
SETTLE = 1.0
FIRST_CYCLE_TIMEOUT = 120.0
CHANGE_TIMEOUT = 30.0
ROOT = Path(__file__).resolve().parent.parent
EXAMPLE_REPO = ROOT / "example-repo"
GITPLANE = Path(sys.executable).parent / "gitplane"
WATCHED_PLANE = "local-dev"
FEATURES_FILE = "features/customer-activity.yaml"
REPLICAS = re.compile(rb"^  replicas: (\d+)$", re.MULTILINE)
APPROVALS = "\n".join(f"Approved-by: {who}@example.invalid" for who in ("ana", "bo", "cy"))
T = TypeVar("T")


def main() -> int:
    """Build the corpus, run the three measurements, print the report."""
    args = _arguments()
    print(_machine())
    runs = min(args.repeat, MAX_TIMED_RUNS)
    with tempfile.TemporaryDirectory(prefix="gitplane-plan-bench-") as tmp:
        repo = Path(tmp) / "specs"
        print(_build(repo, args.specs, args.planes))
        state = desired.load_commit(gitrepo.GitRepo(repo), "HEAD")
        if not _corpus_is_valid(state, args.specs, args.planes):
            return 1
        del state
        cold_plan(repo, runs, profile_it=args.profile)
        replan(repo, args.repeat, profile_it=args.profile)
        verify_approvals(Path(tmp) / "ssh", args.repeat)
        return watch_latency(Path(tmp) / "watch", args.repeat)


def _arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--specs", type=int, default=10_000, help="spec files (default 10000)")
    parser.add_argument("--planes", type=int, default=100, help="DataPlanes (default 100)")
    parser.add_argument(
        "--repeat",
        type=int,
        default=10,
        help="re-plan and watch-mode samples (default 10); part 1 runs min(K, 3) times",
    )
    parser.add_argument("--profile", action="store_true", help="print cProfile's top functions")
    args = parser.parse_args()
    if min(args.specs, args.planes, args.repeat) < 1:
        parser.error("--specs, --planes and --repeat must be at least 1")
    if args.specs <= args.planes:
        parser.error("--specs must exceed --planes")
    return args


def _machine() -> str:
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else "?"
    version = git(ROOT, "--version").strip()
    commit = git(ROOT, "rev-parse", "--short", "HEAD").strip()
    dirty = git(ROOT, "status", "--porcelain", "--", "reconciler", "schemas", "ledger").strip()
    return (
        f"machine: {platform.python_implementation()} {platform.python_version()}, "
        f"{platform.platform()}, {os.cpu_count()} CPUs ({usable} usable), {version}\n"
        f"project: commit {commit}"
        + (" + uncommitted changes in reconciler/, schemas/ or ledger/" if dirty else "")
    )


def best(values: list[float]) -> float:
    """The smallest of ``values`` (inf when empty)."""
    return min(values, default=math.inf)


def _ms(seconds: float) -> str:
    return f"{seconds * 1e3:,.1f} ms"


def _verdict(met: bool) -> str:
    return "met" if met else "MISSED"


# Signed approvals ---------------------------------------------------------------------


def verify_approvals(folder: Path, runs: int) -> None:
    """Part 2b: what the reconciler's gate adds to a cycle for verifying the records: ten
    approval records of ten ed25519 keys made and signed by ``ssh-keygen``, verified and
    counted by ``ledger.approvals.tally`` (the plan digests they are compared with come
    from the cycle's own plan of the protected planes, timed in parts 1 and 2)."""
    folder.mkdir()
    names = [f"approver{i}" for i in range(SIGNED_APPROVALS)]
    listed, files = [], {}
    target = approvals.Target("sha256:" + "1" * 64, "a" * 40, {"a" * 40: "b" * 40}, {})
    for name in names:
        key = folder / name
        args = ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", name, "-f", str(key)]
        subprocess.run(args, check=True, capture_output=True)
        line = Path(f"{key}.pub").read_text()
        listed.append(Approver(name=name, key=line))
        draft = approvals.Approval(
            repository=target.repository, commit=target.commit, tree="b" * 40, plans={},
            approver=name, key=sshkey.parse(line).fingerprint, time="2026-11-24T12:00:00Z",
        )  # fmt: skip
        armor = sshkeygen.sign(draft.payload(), key=key, namespace=approvals.NAMESPACE)
        files[f"approvals/{target.commit}/{name}.json"] = approvals.stored(draft, armor)
    approvers = approvals.Approvers.of(listed)
    ring = keyring.init_keys(
        folder / "keys", root_keys=3, threshold=2, now=datetime.now(UTC), lifetime=timedelta(1)
    )
    root = verify.load_trusted_root(ring.root_file.read_bytes())
    signers = [keys.FileSigner.load(folder / "keys" / "root" / f"root-{i}.key") for i in (1, 2)]
    rule = {
        "digest": "sha256:" + "2" * 64,
        "minimum": 2,
        "approvers": [a.model_dump() for a in listed],
    }
    pinned = anchor.sign(version=1, repository=target.repository, rule=rule, signers=signers)

    def gate() -> None:
        anchor.check(pinned, root, repository=target.repository)  # the rule in force
        approvals.tally(files, approvers=approvers, target=target)

    samples = [timed(gate)[0] for _ in range(runs)]
    print(
        f"\n2b. Verifying the approvers anchor and {SIGNED_APPROVALS} signed approvals "
        f"(best of {runs} runs)"
    )
    print(
        f"  {_ms(best(samples))} (target <= {_ms(TARGET_APPROVALS)}: "
        f"{_verdict(best(samples) <= TARGET_APPROVALS)})"
    )


# Corpus with P planes ------------------------------------------------------------------


def write_plane_corpus(root: Path, n: int, planes: int, seed: int = 0) -> None:
    """``n`` valid specs of which exactly ``planes`` are DataPlanes (``corpus.py``'s mix
    otherwise), with plane labels covering every (env, region) a selector uses."""
    write_corpus(root, _base_size(n, planes), seed)
    pairs = _label_pairs(root / "planes")
    if planes < len(pairs):
        raise ValueError(
            f"--planes must be at least {len(pairs)}: selectors use {len(pairs)} pairs"
        )
    shutil.rmtree(root / "planes")
    for i in range(planes):
        env, region = pairs[i % len(pairs)]
        path = root / "planes" / env / f"{env}-{region}-{i:03d}.yaml"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(_data_plane(f"{env}-{region}-{i:03d}", env, region, i))


def _base_size(n: int, planes: int) -> int:
    """The ``write_corpus`` size whose non-plane documents number ``n - planes``."""
    wanted = n - planes
    for size in range(wanted, 2 * n + 100):
        if size - kind_counts(size)["DataPlane"] == wanted:
            return size
    raise ValueError(f"no corpus size leaves {wanted} non-plane specs")


def _label_pairs(folder: Path) -> list[tuple[str, str]]:
    """Sorted (env, region) pairs of the generated planes: what the selectors were drawn from."""
    pairs = set()
    for path in folder.rglob("*.yaml"):
        labels = yaml.safe_load(path.read_text())["metadata"]["labels"]
        pairs.add((labels["env"], labels["region"]))
    return sorted(pairs)


def _data_plane(name: str, env: str, region: str, i: int) -> str:
    local = region == "local"
    port = 20000 + 1000 * (i % 40)
    runtime = (
        f"  local:\n    ports: {{start: {port}, end: {port + 999}}}\n"
        if local
        else f"  kubernetes: {{namespace: ml-{env}, context: {region}-{i % 9 + 1}}}\n"
    )
    return (
        "apiVersion: gitplane.dev/v1alpha1\n"
        "kind: DataPlane\n"
        "metadata:\n"
        f"  name: {name}\n"
        f"  labels: {{env: {env}, region: {region}, tier: {('gold', 'silver')[i % 2]}}}\n"
        f"  description: {env} data plane in {region}, shard {i}.\n"
        "spec:\n"
        f"  runtime: {'local' if local else 'kubernetes'}\n"
        f"  sync: {{prune: {str(env != 'prod').lower()}, selfHeal: true}}\n"
        "  statusStaleAfter: 5m\n"
        f"  capacity: {{maxReplicas: {100 + i}, maxDeployments: {200 + i}}}\n" + runtime
    )


def land(root: Path, message: str, *paths: str) -> str:
    """Commit ``paths`` (default: everything) as a reviewed pull request lands: a topic
    commit merged ``--no-ff`` into main with three ``Approved-by`` trailers, so policies
    gate only on change windows, as they would for an approved change."""
    if not (root / ".git").exists():
        git(root, "init", "-q", "-b", "main")
        git(root, "commit", "-q", "--allow-empty", "--no-verify", "-m", "empty")
    base = git(root, "rev-parse", "HEAD").strip()
    git(root, "add", "-A", "--", *paths)
    tree_id = git(root, "write-tree").strip()
    topic = git(root, "commit-tree", tree_id, "-p", base, "-m", message).strip()
    merge_message = f"Merge {message}\n\n{APPROVALS}"
    merge = git(root, "commit-tree", tree_id, "-p", base, "-p", topic, "-m", merge_message)
    git(root, "update-ref", "HEAD", merge.strip())
    return merge.strip()


def _build(repo: Path, n: int, planes: int) -> str:
    start = time.perf_counter()
    write_plane_corpus(repo, n, planes)
    land(repo, "specs")
    git(repo, "repack", "-adq")  # as a reconciler's fetched mirror holds it: in a pack
    took = time.perf_counter() - start
    mix = Counter(path.parts[0] for path in (p.relative_to(repo) for p in repo.rglob("*.yaml")))
    del mix["projects"]
    shown = ", ".join(f"{folder} {count:,}" for folder, count in sorted(mix.items()))
    return (
        f"corpus : {n:,} specs ({shown}), landed as an approved merge commit"
        f" (3 Approved-by trailers) and packed; written and committed in {took:.1f} s"
    )


def _corpus_is_valid(state: desired.DesiredState, n: int, planes: int) -> bool:
    found = sum(isinstance(doc, DataPlane) for _, doc in state.documents)
    if state.valid and len(state.documents) == n and found == planes:
        return True
    print(
        f"INVALID CORPUS: {len(state.problems)} problems, {len(state.documents)}/{n} documents,"
        f" {found}/{planes} planes"
    )
    for problem in state.problems[:20]:
        print(f"  {problem}")
    return False


# Loading and planning as the reconciler does -----------------------------------------


@dataclass
class Stages:
    """Seconds spent in each stage of one load-and-plan run."""

    load: float
    desired: float
    plan: float

    @property
    def total(self) -> float:
        """All three stages."""
        return self.load + self.desired + self.plan


@dataclass
class Run:
    """One load-and-plan run: its timings and what it produced."""

    stages: Stages
    state: desired.DesiredState
    want: Desired
    plan: Plan


def load_and_plan(repo: gitrepo.GitRepo, rev: str) -> Run:
    """``load_commit`` + ``desired_at`` + ``plan`` of ``rev`` against empty recorded state:
    what a reconciler does for the first commit it sees."""
    start = time.perf_counter()
    state = desired.load_commit(repo, rev)
    loaded = time.perf_counter()
    want = desired_at(repo, state.commit or rev, "", state)
    built = time.perf_counter()
    result = plan(want, {}, NOW)
    done = time.perf_counter()
    return Run(Stages(loaded - start, built - loaded, done - built), state, want, result)


def timed(run: Callable[[], T]) -> tuple[float, T]:
    """Seconds one call of ``run`` takes (after a full collection), and its result."""
    gc.collect()
    start = time.perf_counter()
    result = run()
    return time.perf_counter() - start, result


def repeated(runs: int, run: Callable[[], T]) -> tuple[list[float], T]:
    """Up to ``runs`` timed calls, stopping early once they have taken ``BUDGET`` seconds
    (a full plan can take tens of seconds); every duration and the last result."""
    seconds, result = timed(run)
    durations = [seconds]
    while len(durations) < runs and sum(durations) < BUDGET:
        del result
        seconds, result = timed(run)
        durations.append(seconds)
    return durations, result


def profile(label: str, run: Callable[[], object], top: int = 15) -> None:
    """cProfile ``run`` once and print its top functions by own time."""
    gc.collect()
    profiler = cProfile.Profile()
    profiler.runcall(run)
    out = io.StringIO()
    pstats.Stats(profiler, stream=out).sort_stats("tottime").print_stats(top)
    lines = [line for line in out.getvalue().splitlines() if line.strip()]
    print(f"\n  cProfile, {label} (top {top} by own time; profiling slows it down):")
    for line in lines[2:]:
        print(f"    {line.replace(str(ROOT) + '/', '')}")


# 1. Cold plan --------------------------------------------------------------------------


def cold_plan(repo: Path, runs: int, *, profile_it: bool = False) -> None:
    """Part 1: load + plan from nothing, plan alone, and the plan's size."""
    print(f"\n1. Cold plan (best of up to {runs} runs within {BUDGET:.0f} s; fresh GitRepo each)")
    stages: list[Stages] = []

    def cycle() -> Run:
        done = load_and_plan(gitrepo.GitRepo(repo), "HEAD")
        stages.append(done.stages)
        return done

    _, last = repeated(runs, cycle)
    want = last.want
    del last
    alone, result = repeated(runs, lambda: plan(want, {}, NOW))
    _print_cold(stages, alone, result, len(want.documents))
    first, _ = repeated(runs, lambda: _reconciler_first(repo))
    total = best(first)
    label = "a reconciler's first cycle (Tracker + Planner)"
    print(
        f"  {label:<50}{total:>8.3f} s"
        f"  target <= {TARGET_COLD:.0f} s: {_verdict(total <= TARGET_COLD)}"
        f" ({total / TARGET_COLD:.2f}x target; it also keeps what re-plans reuse)"
    )
    if profile_it:
        profile(
            "load_commit + desired_at + plan", lambda: load_and_plan(gitrepo.GitRepo(repo), "HEAD")
        )


def _reconciler_first(repo: Path) -> Plan:
    """What ``gitplane reconcile`` does with the first commit it sees, before recorded state."""
    snapshot = tracker.Tracker(gitrepo.GitRepo(repo)).load(gitrepo.GitRepo(repo).resolve("HEAD"))
    if snapshot.want is None:
        raise ValueError("the corpus does not validate")
    return Planner().plan(snapshot.want, {}, NOW, None)


def _print_cold(stages: list[Stages], alone: list[float], result: Plan, specs: int) -> None:
    fastest = min(stages, key=lambda s: s.total)
    total = fastest.total
    rows = [
        ("load_commit (ls-tree, cat-file, parse, validate)", fastest.load, ""),
        ("desired_at (project tree ids, trailers)", fastest.desired, ""),
        ("plan(desired, {}, now)", fastest.plan, ""),
        (
            f"total load + plan of {specs:,} specs",
            total,
            f"  target <= {TARGET_COLD:.0f} s: {_verdict(total <= TARGET_COLD)}"
            f" ({total / TARGET_COLD:.2f}x target)",
        ),
        ("plan() alone on loaded documents", best(alone), f"  ({len(alone)} run(s))"),
    ]
    for label, seconds, note in rows:
        print(f"  {label:<50}{seconds:>8.3f} s{note}")
    print(_plan_size(result))


def _plan_size(result: Plan) -> str:
    actions = [a for p in result.planes for a in p.actions]
    ops = Counter(a.op for a in actions)
    commands = sum(1 for a in actions if a.command is not None)
    per_plane = [len(p.actions) for p in result.planes]
    by_op = ", ".join(f"{op} {count:,}" for op, count in ops.most_common())
    return (
        f"  plan size: {len(result.planes)} planes, {len(actions):,} actions ({by_op}),"
        f" {commands:,} commands; actions per plane min {min(per_plane, default=0):,}"
        f" / median {statistics.median(per_plane or [0]):,.0f} / max {max(per_plane, default=0):,}"
    )


# 2. Re-plan after a one-file commit --------------------------------------------------


@dataclass
class Edit:
    """The Deployment whose ``replicas`` the one-file commits change."""

    path: str
    replicas: int


def find_edit(repo: Path) -> Edit:
    """The first Deployment (by path) that sets ``replicas``."""
    for path in sorted((repo / "deployments").rglob("*.yaml")):
        found = REPLICAS.search(path.read_bytes())
        if found:
            return Edit(path.relative_to(repo).as_posix(), int(found.group(1)))
    raise ValueError("no Deployment with replicas in the corpus")


def commit_edit(repo: Path, edit: Edit, replicas: int) -> str:
    """Set the deployment's replicas to ``replicas`` and land that one file."""
    path = repo / edit.path
    path.write_bytes(REPLICAS.sub(f"  replicas: {replicas}".encode(), path.read_bytes(), count=1))
    return land(repo, f"replicas {replicas}", edit.path)


def incremental_floor(repo: Path, old: str, new: str) -> tuple[float, float, float, parse.Parsed]:
    """Seconds of diff-tree of two commits, cat-file of the changed blob, parse_spec of it."""
    start = time.perf_counter()
    diff = git(repo, "diff-tree", "-r", "--no-commit-id", old, new)
    meta, _, path = diff.strip().partition("\t")
    oid = meta.split()[3]
    listed = time.perf_counter()
    data = subprocess.run(
        ["git", "cat-file", "blob", oid], cwd=repo, capture_output=True, check=True
    ).stdout
    read = time.perf_counter()
    parsed = parse.parse_spec(path, data)
    return listed - start, read - listed, time.perf_counter() - read, parsed


@dataclass
class Replan:
    """Timings of the re-plan runs, in seconds."""

    load: list[float] = field(default_factory=list)
    plan: list[float] = field(default_factory=list)
    total: list[float] = field(default_factory=list)
    diag: dict[str, list[float]] = field(default_factory=dict)
    equal: bool | None = None
    changed: int = 0

    def add(self, key: str, seconds: float) -> None:
        """Record one diagnostic timing."""
        self.diag.setdefault(key, []).append(seconds)

    def best(self, key: str) -> float:
        """The fastest run of diagnostic ``key``."""
        return best(self.diag.get(key, []))


def replan(repo: Path, runs: int, *, profile_it: bool = False) -> None:
    """Part 2: one-file commits planned the way a running reconciler plans them.

    ``tracker.Tracker`` and ``replan.Planner`` are first given the corpus commit
    (a full load and plan, untimed); then each run lands a new one-file commit
    and times ``Tracker.load`` + ``Planner.plan`` of it, the work of one
    reconcile cycle before recorded state is read. The last run's plan is
    compared with a fresh full load and ``plan()`` of the same commit.
    """
    print(f"\n2. Re-plan after a one-file commit (best of {runs} runs; median beside it)")
    spec_repo = gitrepo.GitRepo(repo)
    edit = find_edit(repo)
    follow = tracker.Tracker(spec_repo)
    planner = Planner()
    old = spec_repo.resolve("HEAD")
    first = follow.load(old)
    if first.want is None:
        raise ValueError("the corpus does not validate")
    planner.plan(first.want, {}, NOW, None)
    timings = Replan()
    result: Plan | None = None
    for run in range(runs):
        new = commit_edit(repo, edit, edit.replicas + 1 + run % 2)
        result = _one_replan(repo, (follow, planner), (old, new), timings)
        old = new
    full = load_and_plan(spec_repo, old)
    timings.equal = result == full.plan
    _print_replan(timings, edit, full.stages.total)
    if profile_it:
        new = commit_edit(repo, edit, edit.replicas)
        profile("re-plan of a one-file commit", lambda: _cycle(follow, planner, new))


def _cycle(follow: tracker.Tracker, planner: Planner, commit: str) -> tuple[float, Plan]:
    """``Tracker.load`` + ``Planner.plan`` of ``commit``; seconds of the load, and the plan."""
    start = time.perf_counter()
    snapshot = follow.load(commit)
    loaded = time.perf_counter() - start
    if snapshot.want is None:
        raise ValueError(f"{commit} does not validate")
    return loaded, planner.plan(snapshot.want, {}, NOW, snapshot.changed, snapshot.documents)


def _one_replan(
    repo: Path,
    incremental: tuple[tracker.Tracker, Planner],
    commits: tuple[str, str],
    timings: Replan,
) -> Plan:
    seconds, (loaded, result) = timed(lambda: _cycle(*incremental, commits[1]))
    timings.load.append(loaded)
    timings.plan.append(seconds - loaded)
    timings.total.append(seconds)
    listed, read, parsed_in, parsed = incremental_floor(repo, *commits)
    timings.add("diff", listed)
    timings.add("read", read)
    timings.add("parse", parsed_in)
    if parsed.document is None:
        raise ValueError(f"{parsed.file} did not parse: {parsed.problems}")
    return result


def _print_replan(timings: Replan, edit: Edit, full: float) -> None:
    total = best(timings.total)
    median = statistics.median(timings.total)
    floor = timings.best("diff") + timings.best("read") + timings.best("parse")
    print(f"  changed: {edit.path} (spec.replicas), landed as an approved merge")
    print(
        f"  Tracker.load {_ms(best(timings.load))} + Planner.plan {_ms(best(timings.plan))}"
        f" = {_ms(total)} best, {_ms(median)} median\n"
        f"    target <= {_ms(TARGET_INCREMENTAL)}: {_verdict(total <= TARGET_INCREMENTAL)}"
        f" ({total / TARGET_INCREMENTAL:.2f}x target; median {median / TARGET_INCREMENTAL:.2f}x)"
    )
    print(f"  the same commit loaded and planned in full: {_ms(full)}")
    print(f"  incremental plan equal to the full plan: {'yes' if timings.equal else 'NO'}")
    print(
        f"  floor, an ideal incremental read: diff-tree {_ms(timings.best('diff'))}"
        f" + cat-file blob {_ms(timings.best('read'))} + parse_spec {_ms(timings.best('parse'))}"
        f" = {_ms(floor)}"
    )


# 3. Watch mode -------------------------------------------------------------------------


@dataclass(frozen=True)
class WatchRepo:
    """The bare repository the watcher reads, and the working clone that pushes to it."""

    bare: Path
    work: Path
    keys: Path

    def head(self) -> str:
        """Where the watched plane's commands ref points (empty before the first bundle)."""
        ref = layout.commands_ref(WATCHED_PLANE)
        return git(self.bare, "for-each-ref", "--format=%(objectname)", ref).strip()


def setup_watch_repo(root: Path) -> WatchRepo:
    """Keys, and the example repository committed and pushed to a bare repository."""
    keys_dir = root / "keys"
    keyring.init_keys(
        keys_dir,
        root_keys=1,
        threshold=1,
        now=datetime.now(UTC) - timedelta(days=1),
        lifetime=timedelta(days=365),
    )
    bare = root / "remote.git"
    git(root, "init", "-q", "--bare", "-b", "main", str(bare))
    work = root / "work"
    shutil.copytree(EXAMPLE_REPO, work)
    commit_all(work, "example specs")
    git(work, "remote", "add", "origin", str(bare))
    git(work, "push", "-q", "origin", "main")
    return WatchRepo(bare, work, keys_dir)


def start_watcher(repo: WatchRepo, root: Path, log: io.BufferedWriter) -> subprocess.Popen[bytes]:
    """``gitplane reconcile --watch`` on the bare repository, in its own process group."""
    command = [
        str(GITPLANE),
        "reconcile",
        "--repo",
        str(repo.bare),
        "--keys",
        str(repo.keys),
        "--work-dir",
        str(root / "watcher"),
        "--watch",
        "--interval",
        "1h",
    ]
    return subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)


def wait_for_move(
    repo: WatchRepo, before: str, process: subprocess.Popen[bytes], timeout: float
) -> str:
    """Poll the commands ref every 5 ms until it differs from ``before``; its new value."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        head = repo.head()
        if head != before:
            return head
        if process.poll() is not None:
            raise RuntimeError(f"the watcher exited with {process.returncode}")
        time.sleep(POLL)
    raise TimeoutError(f"the commands ref of {WATCHED_PLANE} did not move in {timeout:.0f} s")


def push_change(repo: WatchRepo, ttl: str) -> float:
    """Commit ``ttl`` in the feature set and push it; ``perf_counter`` when the push returned."""
    path = repo.work / FEATURES_FILE
    path.write_text(re.sub(r"(?m)^  ttl: \w+$", f"  ttl: {ttl}", path.read_text(), count=1))
    git(repo.work, "-c", "commit.gpgsign=false", "commit", "-q", "--no-verify", "-am", f"ttl {ttl}")
    git(repo.work, "push", "-q", "origin", "main")
    return time.perf_counter()


def sample_latencies(
    repo: WatchRepo, process: subprocess.Popen[bytes], samples: int
) -> list[float]:
    """Seconds from push to a moved commands ref, for ``samples`` alternating ttl changes."""
    latencies = []
    head = repo.head()
    for i in range(samples):
        pushed = push_change(repo, ("3d", "2d")[i % 2])
        head = wait_for_move(repo, head, process, CHANGE_TIMEOUT)
        latencies.append(time.perf_counter() - pushed)
        time.sleep(SETTLE)
        head = repo.head()
    return latencies


def stop_watcher(process: subprocess.Popen[bytes]) -> str:
    """SIGTERM, wait; kill the process group if it lingers. What happened, in words."""
    start = time.perf_counter()
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
    try:
        code = process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        code = process.wait()
    took = time.perf_counter() - start
    left = _group_alive(process.pid)
    if left:
        os.killpg(process.pid, signal.SIGKILL)
    return (
        f"watcher stopped by SIGTERM in {_ms(took)}, exit code {code};"
        f" processes left in its group: {'some (killed)' if left else 'none'}"
    )


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def watch_latency(root: Path, samples: int) -> int:
    """Part 3: commit-to-command latency of ``gitplane reconcile --watch``."""
    print(
        f"\n3. Commit-to-command latency, watch mode on a local bare repository ({samples} pushes)"
    )
    root.mkdir(parents=True)
    repo = setup_watch_repo(root)
    log_path = root / "watcher.log"
    with log_path.open("wb") as log:
        process = start_watcher(repo, root, log)
        try:
            first = _first_cycle(repo, process)
            latencies = sample_latencies(repo, process, samples)
        except (RuntimeError, TimeoutError) as exc:
            print(f"  FAILED: {exc}\n  watcher log (tail):\n{_tail(log_path)}")
            return 1
        finally:
            print(f"  {stop_watcher(process)}")
    _print_latencies(first, latencies)
    return 0


def _first_cycle(repo: WatchRepo, process: subprocess.Popen[bytes]) -> float:
    start = time.perf_counter()
    wait_for_move(repo, "", process, FIRST_CYCLE_TIMEOUT)
    return time.perf_counter() - start


def _tail(path: Path, lines: int = 20) -> str:
    return "\n".join(
        f"    {line}" for line in path.read_text(errors="replace").splitlines()[-lines:]
    )


def _print_latencies(first: float, latencies: list[float]) -> None:
    ordered = sorted(latencies)
    p95 = ordered[min(len(ordered) - 1, math.ceil(0.95 * len(ordered)) - 1)]
    worst = ordered[-1]
    print(f"  start to first bundle issued: {first:.2f} s (process start, imports, first cycle)")
    print(
        f"  push returned -> commands ref moved: min {_ms(ordered[0])}"
        f" / median {_ms(statistics.median(ordered))} / p95 {_ms(p95)} / max {_ms(worst)}"
        f"  target <= {_ms(TARGET_WATCH)}: {_verdict(worst <= TARGET_WATCH)} (max);"
        f" p95 {_verdict(p95 <= TARGET_WATCH)}"
    )
    print("  samples (ms): " + ", ".join(f"{s * 1e3:.0f}" for s in latencies))


if __name__ == "__main__":
    raise SystemExit(main())
