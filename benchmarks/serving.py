"""What the local serving path costs: the proxy in front of MLflow's scoring server, and
the time from a pushed replica change to the plane reporting it ready.

Run: ``.venv/bin/python benchmarks/serving.py [--only proxy|startup|push] [--repeat K]
[--requests N] [--seconds S] [--threads T] [--samples P]``. Defaults: K = 5 rounds,
N = 1,000 sequential requests per round, S = 4 s per throughput run, T = 4 client
threads, P = 3 pushes.

Three things are measured, each printed beside its target or floor; nothing is asserted:

1. The proxy (targets: p50 latency through the proxy <= 1.10x straight to the
   replica; throughput through the proxy >= 0.9x of one replica). A small
   scikit-learn model is registered in a temporary MLflow SQLite store by a
   subprocess (as a build would), a Deployment with ``replicas: 1`` is applied
   through ``agent.runtimes.local.serving.apply`` on a ``LocalEnv`` in the same
   directory, and 1-row ``dataframe_split`` requests to ``/invocations`` go to
   three targets: the endpoint URL (the supervisor's proxy), the replica's own
   port (from its ``logs/replica-<port>.log``), and a minimal Python relay to
   the replica in a process of its own (sockets, ``TCP_NODELAY``, no HTTP
   parsing beyond ``Content-Length``: the floor of any hop written in Python).
   Latency: N sequential requests per target over one kept-alive
   ``http.client`` connection each, after 200 warm-up requests, the targets
   taking turns request by request so that all see the same noise; p50/p95 per
   round. Throughput: T client threads (each with its own kept-alive
   connection) for S seconds per target, targets in turn; requests/s, and CPU
   time per request of the client, replica, proxy (supervisor) and relay
   processes from ``/proc``.
2. The floor of a replica start: a bare scoring server
   (``_mlflow.scoring_server`` on the same model directory) from ``Popen``
   until ``GET /ping`` answers 200 (polled every 10 ms), K times; beside it
   what a fresh interpreter spends: ``python -c pass``, importing
   ``mlflow.pyfunc.scoring_server``, importing its ``app`` (which loads the
   model).
3. Push to ready (target <= 5 s on a local repository). The set-up of
   ``gitplane demo`` (``cli.demo.Demo``: a bare repository holding
   ``example-repo/``, keys, ``gitplane reconcile --watch`` and ``gitplane
   agent run`` daemons, the model build) until ``Deployment/churn-dev`` is
   Ready; then, each time the endpoint is at rest (its warm standby replica
   healthy), P commits each raise its ``minReplicas`` by one (and
   ``maxReplicas`` when needed), each pushed and timed from the moment ``git
   push`` returns to the moment the signed status, read with
   ``reconciler.planning.make_status`` (called whenever the status ref moves),
   reports the new ready count. Files and refs are polled every 10 ms to break
   the time down: the reconciler fetched the commit, the signed command reached
   the bare repository, the agent fetched it, wrote the endpoint's
   ``desired.json``, the supervisor started a replica (its log file appears),
   the replica's uvicorn said it is running, the supervisor reported it ready
   (``status.json``), the agent's signed status reached the bare repository,
   ``make_status`` confirmed it. Once the demo is stopped, a bare scoring
   server of the same model is started P times: the floor of the replica
   start inside the push.

Everything started is stopped in a ``finally`` (``serving.stop_all`` on each
state directory, SIGTERM to the daemons). Exit 1 when a set-up step fails.
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import json
import math
import os
import platform
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from agent.runtimes.base import ApplyContext
from agent.runtimes.local import _mlflow, serving
from agent.runtimes.local.env import LocalEnv
from cli import demo
from ledger import commands, gitrepo, layout
from reconciler import planning, status_view
from schemas import signed

ROOT = Path(__file__).resolve().parent.parent
TARGET_LATENCY_RATIO = 1.10
TARGET_THROUGHPUT_RATIO = 0.90
TARGET_PUSH_TO_READY = 5.0
WARM_UP = 200
POLL = 0.010
START_TIMEOUT = 120.0
READY_TIMEOUT = 120.0
SETTLE = 2.0
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
FEATURES = ["tenure_months", "support_tickets"]
BODY = json.dumps({"dataframe_split": {"columns": FEATURES, "data": [[3.0, 4.0]]}}).encode()
HEADERS = {"Content-Type": "application/json"}
DEPLOYMENT_FILE = f"deployments/{demo.DEPLOYMENT}.yaml"
SPEC_REF = "refs/remotes/origin/main"
REGISTER = """
import json, sys
from pathlib import Path

import mlflow, mlflow.sklearn, numpy as np, pandas as pd
from mlflow.models import infer_signature
from sklearn.linear_model import LogisticRegression

from agent.runtimes.local import models

features = json.loads(sys.argv[1])
rng = np.random.default_rng(3)
frame = pd.DataFrame({f: rng.normal(size=200) for f in features})
model = LogisticRegression().fit(frame, (frame.tenure_months > 0).astype(int))
with mlflow.start_run():
    signature = infer_signature(frame, model.predict(frame))
    info = mlflow.sklearn.log_model(model, name="model", signature=signature)
mlflow.register_model(info.model_uri, "churn")
target = Path(sys.argv[2])
mlflow.artifacts.download_artifacts(artifact_uri="models:/churn/1", dst_path=str(target))
Path(sys.argv[3]).write_text(models.digest_directory(target))
"""
RELAY = """
import socket, sys, threading

def head(reader):
    lines = []
    while True:
        line = reader.readline()
        if not line:
            return b""
        lines.append(line)
        if line in (b"\\r\\n", b"\\n"):
            return b"".join(lines)

def length(block):
    for line in block.split(b"\\r\\n"):
        if line[:15].lower() == b"content-length:":
            return int(line[15:])
    raise ValueError("no Content-Length")

def relay(client, port):
    upstream = socket.create_connection(("127.0.0.1", port))
    for sock in (client, upstream):
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    inbound, outbound = client.makefile("rb"), upstream.makefile("rb")
    while request := head(inbound):
        upstream.sendall(request + inbound.read(length(request)))
        reply = head(outbound)
        client.sendall(reply + outbound.read(length(reply)))
    client.close()
    upstream.close()

server = socket.create_server(("127.0.0.1", 0))
print(server.getsockname()[1], flush=True)
while True:
    conn, _ = server.accept()
    threading.Thread(target=relay, args=(conn, int(sys.argv[1])), daemon=True).start()
"""


def main() -> int:
    """Run the parts asked for and print the report."""
    args = _arguments()
    print(_machine())
    with tempfile.TemporaryDirectory(prefix="gitplane-serving-bench-") as tmp:
        root = Path(tmp)
        try:
            if args.only in (None, "proxy", "startup"):
                model = register_model(root / "registry")
                if args.only in (None, "proxy"):
                    proxy_overhead(model, root / "proxy", args)
                if args.only in (None, "startup"):
                    startup_floor(model.model_dir, args.repeat)
            if args.only in (None, "push"):
                push_to_ready(root / "push", args.samples)
        except SetupError as exc:
            print(f"  FAILED: {exc}")
            return 1
    return 0


def _arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", choices=("proxy", "startup", "push"), help="one part only")
    parser.add_argument("--repeat", type=int, default=5, help="rounds per figure (5)")
    parser.add_argument("--requests", type=int, default=1000, help="requests per round (1000)")
    parser.add_argument("--seconds", type=float, default=4.0, help="seconds per load run (4)")
    parser.add_argument("--threads", type=int, default=4, help="client threads under load (4)")
    parser.add_argument("--samples", type=int, default=3, help="scaling pushes timed (3)")
    args = parser.parse_args()
    if min(args.repeat, args.requests, args.threads, args.samples) < 1 or args.seconds <= 0:
        parser.error("--repeat, --requests, --threads, --samples and --seconds must be positive")
    return args


def _machine() -> str:
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else "?"
    commit = _git(ROOT, "rev-parse", "--short", "HEAD")
    dirty = _git(ROOT, "status", "--porcelain", "--", "agent", "reconciler", "ledger")
    return (
        f"machine: {platform.python_implementation()} {platform.python_version()}, "
        f"{platform.platform()}, {os.cpu_count()} CPUs ({usable} usable), "
        f"load average {os.getloadavg()[0]:.2f}\n"
        f"project: commit {commit}"
        + (" + uncommitted changes in agent/, reconciler/ or ledger/" if dirty else "")
    )


class SetupError(Exception):
    """A set-up step failed: nothing can be measured."""


def _git(cwd: Path, *args: str) -> str:
    done = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SetupError(f"git {' '.join(args)}: {done.stderr.strip()}")
    return done.stdout.strip()


def _ms(seconds: float) -> str:
    return f"{seconds * 1e3:,.2f} ms"


def _verdict(met: bool) -> str:
    return "met" if met else "MISSED"


def _spread(values: list[float], unit: Callable[[float], str], low_is_best: bool = True) -> str:
    """Best and median of ``values``."""
    best = min(values) if low_is_best else max(values)
    return f"best {unit(best)} / median {unit(statistics.median(values))}"


def _quantile(ordered: list[float], q: float) -> float:
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


# A registered model ---------------------------------------------------------------------


@dataclass(frozen=True)
class Model:
    """Version 1 of ``churn`` in a temporary registry, and its downloaded artifacts."""

    tracking_uri: str
    digest: str
    model_dir: Path


def register_model(root: Path) -> Model:
    """Register a small scikit-learn model in a fresh SQLite store, in a process of its own."""
    root.mkdir(parents=True)
    uri = f"sqlite:///{root / 'mlflow.db'}"
    script, digest = root / "register.py", root / "digest"
    script.write_text(REGISTER)
    argv = [json.dumps(FEATURES), str(root / "model"), str(digest)]
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, str(script), *argv],
        env={**os.environ, "MLFLOW_TRACKING_URI": uri, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        check=False,
        cwd=root,
        timeout=600,
    )
    if done.returncode != 0:
        raise SetupError(f"registering the model failed:\n{done.stderr[-3000:]}")
    print(f"model  : churn v1 (LogisticRegression, 2 features) registered in {uri}"
          f" in {time.perf_counter() - started:.1f} s")  # fmt: skip
    return Model(uri, digest.read_text(), root / "model")


def deployment_command(model: Model, spec: dict[str, Any], name: str) -> signed.Command:
    """A Deployment command serving ``models:/churn/1`` with ``spec``, as a reconciler
    resolves it (the pinned digest of the registered artifacts)."""
    body = {
        "apiVersion": "gitplane.dev/v1alpha1",
        "kind": "Deployment",
        "metadata": {"name": name},
        "spec": {"model": {"name": "churn"}, "planeSelector": {}, **spec},
        "resolved": {
            "model": {
                "name": "churn",
                "version": "1.0.1",
                "registryVersion": 1,
                "digest": model.digest,
                "uri": "models:/churn/1",
            }
        },
    }
    text = json.dumps(body, sort_keys=True)
    return commands.new_command("Deployment", name, text)


# Clients --------------------------------------------------------------------------------


class Client:
    """One kept-alive connection sending the 1-row request."""

    def __init__(self, port: int) -> None:
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)

    def post(self) -> float:
        """Seconds one ``POST /invocations`` takes, body read."""
        started = time.perf_counter()
        self.conn.request("POST", "/invocations", body=BODY, headers=HEADERS)
        response = self.conn.getresponse()
        data = response.read()
        took = time.perf_counter() - started
        if response.status != 200 or b"predictions" not in data:
            raise RuntimeError(f"HTTP {response.status}: {data[:200]!r}")
        return took

    def close(self) -> None:
        """Close the connection."""
        self.conn.close()


def interleaved(ports: dict[str, int], requests: int) -> dict[str, list[float]]:
    """Sorted latencies of ``requests`` requests to each target, one target after the other
    request by request (so all see the same noise), each over its kept-alive connection,
    after ``WARM_UP`` warm-up requests each."""
    clients = {name: Client(port) for name, port in ports.items()}
    latencies: dict[str, list[float]] = {name: [] for name in ports}
    try:
        for _ in range(WARM_UP):
            for client in clients.values():
                client.post()
        for i in range(requests):
            names = list(clients)
            for name in names[i % len(names) :] + names[: i % len(names)]:
                latencies[name].append(clients[name].post())
    finally:
        for client in clients.values():
            client.close()
    return {name: sorted(found) for name, found in latencies.items()}


@dataclass
class Load:
    """One throughput run."""

    requests: int
    seconds: float
    cpu: dict[str, float]
    """CPU seconds per process group (client, replica, proxy, relay) during the run."""

    @property
    def rate(self) -> float:
        """Requests per second."""
        return self.requests / self.seconds


def load(port: int, threads: int, seconds: float, pids: dict[str, list[int]]) -> Load:
    """``threads`` clients sending back to back for ``seconds``; requests done and CPU used."""
    counts = [0] * threads
    stop = threading.Event()
    ready = threading.Barrier(threads + 1, timeout=START_TIMEOUT)  # broken if a client fails

    def worker(index: int) -> None:
        client = Client(port)
        client.post()
        ready.wait()
        while not stop.is_set():
            client.post()
            counts[index] += 1
        client.close()

    workers = [threading.Thread(target=worker, args=(i,)) for i in range(threads)]
    for thread in workers:
        thread.start()
    ready.wait()
    before, started = cpu_seconds(pids), time.perf_counter()
    time.sleep(seconds)
    stop.set()
    for thread in workers:
        thread.join()
    took, after = time.perf_counter() - started, cpu_seconds(pids)
    return Load(sum(counts), took, {k: after[k] - before[k] for k in pids})


def cpu_seconds(pids: dict[str, list[int]]) -> dict[str, float]:
    """User + system CPU seconds of each named group of processes (threads included)."""
    return {name: sum(_cpu(pid) for pid in group) for name, group in pids.items()}


def _cpu(pid: int) -> float:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


# 1. The proxy ---------------------------------------------------------------------------


@dataclass
class Targets:
    """Where requests go (name -> port) and the processes whose CPU time is counted."""

    ports: dict[str, int]
    pids: dict[str, list[int]]


def proxy_overhead(model: Model, root: Path, args: argparse.Namespace) -> None:
    """Part 1: latency and throughput through the proxy versus straight to the replica."""
    print(f"\n1. The proxy: one replica, 1-row dataframe_split requests ({args.repeat} rounds)")
    env = _local_env(model, root)
    relay: subprocess.Popen[str] | None = None
    try:
        targets = serve(env, deployment_command(model, {"replicas": 1}, "bench"))
        relay = start_relay(targets.ports["direct"])
        targets.ports["relay"] = int(relay.stdout.readline()) if relay.stdout else 0
        targets.pids["relay"] = [relay.pid]
        _latency_rounds(targets.ports, args.requests, args.repeat)
        _throughput_rounds(targets, args.threads, args.seconds, args.repeat)
    finally:
        if relay is not None:
            relay.kill()
            relay.wait()
        stopped = serving.stop_all(env.state_dir)
        print(f"  stopped {stopped} endpoint supervisor(s) and their replicas")


def start_relay(port: int) -> subprocess.Popen[str]:
    """A minimal Python relay to ``port`` in its own process; it prints its own port."""
    return subprocess.Popen(
        [sys.executable, "-c", RELAY, str(port)], stdout=subprocess.PIPE, text=True
    )


def _local_env(model: Model, root: Path) -> LocalEnv:
    specs = root / "specs"
    specs.mkdir(parents=True)
    _git(specs, "init", "-q", "-b", "main")
    base = 39000 + (os.getpid() % 100) * 10
    return LocalEnv(
        gitrepo.GitRepo(specs), model.tracking_uri, root / "state", root / "data", (base, base + 9)
    )


def serve(env: LocalEnv, command: signed.Command) -> Targets:
    """Apply the command as the agent would; the endpoint once it is Ready."""
    started = time.perf_counter()
    scratch = env.state_dir / "scratch"
    scratch.mkdir(parents=True, exist_ok=True)
    status = serving.apply(command, ApplyContext("0" * 40, scratch, now=datetime.now(UTC)), env)
    if status.phase != "Ready":
        raise SetupError(f"the endpoint did not become Ready: {status.message}")
    directory = env.kind_dir("Deployment", command.name)
    logs = sorted((directory / "logs").glob("replica-*.log"))
    replica = int(logs[0].stem.removeprefix("replica-"))
    port = int(str(status.observed["url"]).rsplit(":", 1)[1])
    supervisor = int((directory / "supervisor.pid").read_text())
    pids = {"client": [os.getpid()], "replica": _listening(replica), "proxy": [supervisor]}
    print(
        f"  serving.apply -> Ready in {time.perf_counter() - started:.1f} s:"
        f" proxy :{port} (supervisor pid {supervisor}), replica :{replica}"
        f" (pid {', '.join(map(str, pids['replica']))})"
    )
    return Targets({"direct": replica, "proxy": port}, pids)


def _listening(port: int) -> list[int]:
    """Processes whose command line names ``--port <port>`` (a replica and its children)."""
    marker = f"--port\0{port}\0".encode()
    found = []
    for proc in Path("/proc").iterdir():
        with contextlib.suppress(OSError):
            if proc.name.isdigit() and marker in (proc / "cmdline").read_bytes():
                found.append(int(proc.name))
    return found


def _latency_rounds(ports: dict[str, int], requests: int, rounds: int) -> None:
    p50: dict[str, list[float]] = {name: [] for name in ports}
    p95: dict[str, list[float]] = {name: [] for name in ports}
    for _ in range(rounds):
        for name, latencies in interleaved(ports, requests).items():
            p50[name].append(_quantile(latencies, 0.50))
            p95[name].append(_quantile(latencies, 0.95))
    print(
        f"  latency, {requests:,} sequential requests per target and round after {WARM_UP}"
        " warm-up, targets taking turns request by request:"
    )
    for name, label in LABELS.items():
        print(f"    {label:<44} p50 {_spread(p50[name], _ms)}; p95 {_spread(p95[name], _ms)}")
    ratios = _ratios(p50["proxy"], p50["direct"])
    print(
        f"    p50 ratio proxy/direct: {_spread(ratios, _x)}  target <= {TARGET_LATENCY_RATIO:.2f}x:"
        f" {_verdict(min(ratios) <= TARGET_LATENCY_RATIO)} (best),"
        f" {_verdict(statistics.median(ratios) <= TARGET_LATENCY_RATIO)} (median)"
    )
    print(
        f"    p50 added by the proxy: {_spread(_differences(p50['proxy'], p50['direct']), _ms)};"
        f" floor, by a minimal relay: {_spread(_differences(p50['relay'], p50['direct']), _ms)}"
    )


LABELS = {
    "direct": "straight to the replica",
    "proxy": "through the endpoint's proxy",
    "relay": "floor: minimal relay (no HTTP parsing)",
}


def _ratios(values: list[float], bases: list[float]) -> list[float]:
    return [v / b for v, b in zip(values, bases, strict=True)]


def _differences(values: list[float], bases: list[float]) -> list[float]:
    return [v - b for v, b in zip(values, bases, strict=True)]


def _x(ratio: float) -> str:
    return f"{ratio:.3f}x"


def _throughput_rounds(targets: Targets, threads: int, seconds: float, rounds: int) -> None:
    runs: dict[str, list[Load]] = {name: [] for name in targets.ports}
    for round_ in range(rounds):
        names = list(targets.ports)
        for name in names[round_ % len(names) :] + names[: round_ % len(names)]:
            runs[name].append(load(targets.ports[name], threads, seconds, targets.pids))
    print(f"  throughput, {threads} client threads for {seconds:.0f} s per run, targets in turn:")
    for name, label in LABELS.items():
        rates = [run.rate for run in runs[name]]
        print(f"    {label:<44} {_spread(rates, _rps, low_is_best=False)}")
        print(f"      {_cpu_line(runs[name])}")
    ratios = _ratios([r.rate for r in runs["proxy"]], [r.rate for r in runs["direct"]])
    print(
        f"    ratio proxy/direct: {_spread(ratios, _x, low_is_best=False)}"
        f"  target >= {TARGET_THROUGHPUT_RATIO:.2f}x:"
        f" {_verdict(max(ratios) >= TARGET_THROUGHPUT_RATIO)} (best),"
        f" {_verdict(statistics.median(ratios) >= TARGET_THROUGHPUT_RATIO)} (median)"
    )


def _rps(rate: float) -> str:
    return f"{rate:,.0f} req/s"


def _cpu_line(runs: list[Load]) -> str:
    """Median CPU time per request of each process group, and the cores they kept busy."""
    names = runs[0].cpu
    per_request = {n: statistics.median(r.cpu[n] / max(r.requests, 1) for r in runs) for n in names}
    busy = statistics.median(sum(r.cpu.values()) / r.seconds for r in runs)
    shown = ", ".join(f"{n} {per_request[n] * 1e6:,.0f}" for n in names)
    return f"median CPU per request (µs): {shown}; {busy:.2f} cores busy"


# 2. The floor of a replica start ----------------------------------------------------------


def startup_floor(model_dir: Path, repeat: int) -> list[float]:
    """Part 2: a bare scoring server from Popen to /ping 200, ``repeat`` times; and what a
    fresh interpreter spends before uvicorn can listen."""
    print(f"\n2. Floor of a replica start: a bare MLflow scoring server on the same model"
          f" ({repeat} starts each)")  # fmt: skip
    starts = [start_bare_server(model_dir) for _ in range(repeat)]
    _, env = _mlflow.scoring_server(model_dir, port=0, workers=1, timeout=60)
    steps = {
        "python -c pass": ("pass", os.environ),
        "import mlflow.pyfunc.scoring_server (MLflow, FastAPI)": (
            "import mlflow.pyfunc.scoring_server",
            os.environ,
        ),
        "import mlflow.pyfunc.scoring_server.app (+ model load)": (
            "import mlflow.pyfunc.scoring_server.app",
            env,
        ),
    }
    for label, (code, environ) in steps.items():
        took = [_python(code, environ, model_dir) for _ in range(repeat)]
        print(f"  {label:<58}{_spread(took, _s)}")
    print(f"  {'uvicorn ... scoring_server.app:app, Popen -> /ping 200':<58}{_spread(starts, _s)}")
    return starts


def _s(seconds: float) -> str:
    return f"{seconds:.2f} s"


def start_bare_server(model_dir: Path) -> float:
    """Seconds from starting a scoring server to its first ``/ping`` 200; it is stopped."""
    port = _free_port()
    command, env = _mlflow.scoring_server(model_dir, port=port, workers=1, timeout=60)
    started = time.perf_counter()
    process = subprocess.Popen(
        command,
        env=env,
        cwd=model_dir,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        while _ping(port) != 200:
            if process.poll() is not None or time.perf_counter() - started > START_TIMEOUT:
                raise SetupError(f"the scoring server did not start (exit {process.poll()})")
            time.sleep(POLL)
        return time.perf_counter() - started
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        process.wait()


def _free_port() -> int:
    import socket  # noqa: PLC0415 - only this helper needs it

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _ping(port: int) -> int | None:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
    try:
        conn.request("GET", "/ping")
        return conn.getresponse().status
    except OSError:
        return None
    finally:
        conn.close()


def _python(code: str, env: Mapping[str, str], cwd: Path) -> float:
    """Seconds a fresh interpreter takes to run ``code`` and exit."""
    started = time.perf_counter()
    subprocess.run([sys.executable, "-c", code], env=env, cwd=cwd, check=True, capture_output=True)
    return time.perf_counter() - started


# 3. Push to ready -----------------------------------------------------------------------


STAGES = (
    ("fetched", "reconciler fetched the commit"),
    ("issued", "signed command in the bare repository"),
    ("agent", "agent fetched the command"),
    ("desired", "agent wrote desired.json"),
    ("started", "supervisor started a replica"),
    ("running", "replica's uvicorn running"),
    ("ready", "supervisor reports it ready"),
    ("status", "signed status in the bare repository"),
    ("confirmed", "make_status reports it"),
)


@dataclass
class Places:
    """What part 3 polls: refs and files of the demo's set-up."""

    bare: Path
    reconciler: Path
    agent: Path
    endpoint: Path

    def ref(self, repo: Path, name: str) -> str:
        """A ref's commit, read from its loose file (git when it is packed)."""
        with contextlib.suppress(OSError):
            return (repo / name).read_text().strip()
        return subprocess.run(
            ["git", "-C", str(repo), "rev-parse", "-q", "--verify", name],
            capture_output=True,
            text=True,
            check=False,
        ).stdout.strip()

    def status(self) -> dict[str, Any]:
        """The supervisor's ``status.json`` (empty when unreadable)."""
        try:
            body: dict[str, Any] = json.loads((self.endpoint / "status.json").read_bytes())
        except (OSError, ValueError):
            return {}
        return body

    def replica_logs(self) -> set[Path]:
        """The replica log files (one per replica process started)."""
        return set((self.endpoint / "logs").glob("replica-*.log"))


@dataclass
class Sample:
    """One timed push: seconds after ``git push`` returned at which each stage was seen."""

    replicas: int
    seen: dict[str, float] = field(default_factory=dict)
    make_status: list[float] = field(default_factory=list)

    def share(self, key: str) -> float:
        """Seconds between the previous stage seen and ``key``."""
        keys = [k for k, _ in STAGES]
        earlier = [self.seen[k] for k in keys[: keys.index(key)] if k in self.seen]
        return self.seen.get(key, math.nan) - max(earlier, default=0.0)


def push_to_ready(root: Path, samples: int) -> None:
    """Part 3: the demo's set-up, then ``samples`` scaling pushes timed to a ready report."""
    print(f"\n3. Push to ready: the set-up of `gitplane demo`, then {samples} scaling pushes")
    root.mkdir(parents=True)
    steps = demo.Demo(ROOT / "example-repo", root, converge_timeout=600.0)
    narration = root / "narration.log"
    try:
        _set_up(steps, narration)
        places = Places(
            steps.bare,
            root / "reconciler" / "specs.git",
            steps.plane / "state" / "mirror.git",
            steps.plane / "state" / "deployments" / demo.DEPLOYMENT,
        )
        taken = [_one_push(steps, places, i) for i in range(samples)]
    except (SetupError, RuntimeError, TimeoutError) as exc:
        print(f"  narration (tail):\n{_tail(narration)}")
        raise SetupError(str(exc)) from None
    finally:
        print(f"  {_stop_demo(steps)}")
    model_dir = Path(json.loads((places.endpoint / "desired.json").read_bytes())["model_dir"])
    floor = [start_bare_server(model_dir) for _ in range(samples)]
    _print_pushes(taken, floor)


def _set_up(steps: demo.Demo, narration: Path) -> None:
    """The demo's steps 1-5 (repository, keys, plane, daemons, converge), narration to a file."""
    started = time.perf_counter()
    with narration.open("w") as out, contextlib.redirect_stdout(out):
        try:
            steps.repository()
            steps.trust()
            steps.data_plane()
            steps.start()
            steps.converge()
        except Exception as exc:  # click.ClickException and anything a step raises
            raise SetupError(f"the demo set-up failed: {exc}") from None
    print(f"  set-up (repository, keys, reconciler and agent daemons, build, endpoint Ready):"
          f" {time.perf_counter() - started:.1f} s")  # fmt: skip


def _tail(path: Path, lines: int = 25) -> str:
    with contextlib.suppress(OSError):
        text = path.read_text(errors="replace").splitlines()[-lines:]
        return "\n".join(f"    {line}" for line in text)
    return "    (none)"


def _stop_demo(steps: demo.Demo) -> str:
    stopped = steps.stop()
    return f"stopped the reconciler, the agent and {stopped} endpoint supervisor(s)"


def _one_push(steps: demo.Demo, places: Places, index: int) -> Sample:
    time.sleep(SETTLE)  # let the previous cycle's status and observe reports land
    _wait_for_standby(places.endpoint)  # an endpoint at rest: its warm standby is healthy
    replicas = _edit_min_replicas(steps.work)
    watch = Watch(steps, places, _git(steps.work, "rev-parse", "HEAD"), Sample(replicas))
    _git(steps.work, "push", "-q", "origin", "main")
    watch.until_confirmed(time.perf_counter())
    print(f"  push {index + 1}: minReplicas -> {replicas}, ready reported after"
          f" {watch.sample.seen['confirmed']:.2f} s")  # fmt: skip
    return watch.sample


def _wait_for_standby(endpoint: Path, timeout: float = 120.0) -> None:
    """Until the endpoint's warm standby replica (``runtime.standbyReplicas``, default 1)
    answers ``/ping``: pushes are measured against an endpoint at rest, not one still
    warming the standby the previous push used."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError, ValueError, KeyError):
            ports = json.loads((endpoint / "status.json").read_bytes())["standbyPorts"]
            if ports and _pings(int(ports[0])):
                return
        time.sleep(0.1)
    raise TimeoutError("the endpoint's warm standby never became healthy")


def _pings(port: int) -> bool:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=1)
    try:
        conn.request("GET", "/ping")
        return conn.getresponse().status == 200
    except OSError:
        return False
    finally:
        conn.close()


def _edit_min_replicas(work: Path) -> int:
    """Raise ``minReplicas`` by one (``maxReplicas`` too when it would pass it); commit."""
    path = work / DEPLOYMENT_FILE
    text = path.read_text()
    low = int(_field("minReplicas", text)) + 1
    high = max(low, int(_field("maxReplicas", text)))
    text = re.sub(r"minReplicas: \d+", f"minReplicas: {low}", text)
    path.write_text(re.sub(r"maxReplicas: \d+", f"maxReplicas: {high}", text))
    name, email = demo.PEOPLE["bo"]
    _git(work, "-c", f"user.name={name}", "-c", f"user.email={email}",
         "commit", "-q", "-am", f"Scale {demo.DEPLOYMENT} to {low} replicas at least")  # fmt: skip
    return low


def _field(name: str, text: str) -> str:
    found = re.search(rf"{name}: (\d+)", text)
    if found is None:
        raise SetupError(f"{DEPLOYMENT_FILE} sets no {name}")
    return found.group(1)


class Watch:
    """Polls every stage of one push, from snapshots taken before it."""

    def __init__(self, steps: demo.Demo, places: Places, commit: str, sample: Sample) -> None:
        self.steps, self.places, self.commit, self.sample = steps, places, commit, sample
        self.commands_ref = layout.commands_ref(demo.PLANE)
        self.status_ref = layout.status_ref(demo.PLANE)
        self.mirrored = "refs/remotes/origin/" + self.commands_ref.removeprefix("refs/heads/")
        self.commands = places.ref(places.bare, self.commands_ref)
        self.status = places.ref(places.bare, self.status_ref)
        self.desired = (places.endpoint / "desired.json").read_bytes()
        self.logs = places.replica_logs()

    def until_confirmed(self, pushed: float) -> None:
        """Poll until ``make_status`` reports the sample's replicas ready."""
        confirmed_at = self.status
        while "confirmed" not in self.sample.seen:
            now = time.perf_counter() - pushed
            if now > READY_TIMEOUT:
                missing = [key for key, _ in STAGES if key not in self.sample.seen]
                raise TimeoutError(f"not ready after {READY_TIMEOUT:.0f} s; not seen: {missing}")
            for key, moved in self._checks().items():
                if key not in self.sample.seen and moved():
                    self.sample.seen[key] = now
            head = self.places.ref(self.places.bare, self.status_ref)
            if head != confirmed_at:
                confirmed_at = head
                self._confirm(pushed)
            _check_daemons(self.steps)
            time.sleep(POLL)

    def _checks(self) -> dict[str, Callable[[], bool]]:
        places, status = self.places, self.places.status()
        return {
            "fetched": lambda: places.ref(places.reconciler, SPEC_REF) == self.commit,
            "issued": lambda: places.ref(places.bare, self.commands_ref) != self.commands,
            "agent": lambda: places.ref(places.agent, self.mirrored) != self.commands,
            "desired": lambda: (places.endpoint / "desired.json").read_bytes() != self.desired,
            "started": lambda: bool(self._new_logs()),
            "running": lambda: any(b"Uvicorn running" in p.read_bytes() for p in self._new_logs()),
            "ready": lambda: (
                (status.get("readyReplicas"), status.get("phase"))
                == (self.sample.replicas, "Ready")
            ),
            "status": lambda: places.ref(places.bare, self.status_ref) != self.status,
        }

    def _new_logs(self) -> set[Path]:
        return self.places.replica_logs() - self.logs

    def _confirm(self, pushed: float) -> None:
        """Read the signed status as ``gitplane status`` does; note when it shows the count."""
        started = time.perf_counter()
        request = planning.PlanRequest(self.steps.bare, root=self.steps.keys / "root.json")
        planes = planning.make_status(request, datetime.now(UTC))
        done = time.perf_counter()
        self.sample.make_status.append(done - started)
        body = status_view.as_json([p for p in planes if p.name == demo.PLANE])
        if _ready_replicas(body["planes"][0]["resources"]) == self.sample.replicas:
            self.sample.seen["confirmed"] = done - pushed


def _ready_replicas(resources: list[dict[str, Any]]) -> int:
    for resource in resources:
        observed = resource["observed"]
        if (
            (resource["kind"], resource["name"]) == ("Deployment", demo.DEPLOYMENT)
            and (resource["sync"], resource["phase"]) == ("Synced", "Ready")
            and observed.get("desiredReplicas") == observed.get("readyReplicas")
        ):
            return int(observed.get("readyReplicas", 0))
    return 0


def _check_daemons(steps: demo.Demo) -> None:
    for process in steps.processes:
        if process.poll() is not None:
            raise RuntimeError(f"{process.args!r} exited with {process.returncode}")


def _print_pushes(taken: list[Sample], floor: list[float]) -> None:
    totals = [s.seen["confirmed"] for s in taken]
    print(
        f"  push returned -> make_status reports the new ready count: {_spread(totals, _s)}"
        f"  target <= {TARGET_PUSH_TO_READY:.0f} s: {_verdict(min(totals) <= TARGET_PUSH_TO_READY)}"
        f" (best), {_verdict(statistics.median(totals) <= TARGET_PUSH_TO_READY)} (median)"
    )
    print("  breakdown: stage, seconds after the push returned per push, its own share best/median")
    for key, label in STAGES:
        if all(key not in s.seen for s in taken):
            print(f"    {label:<42}   (none: a warm standby replica took the traffic)")
            continue
        at = "  ".join(f"{s.seen.get(key, math.nan):6.2f}" for s in taken)
        shares = [s.share(key) for s in taken]
        print(f"    {label:<42}{at}   +{min(shares):.2f} / +{statistics.median(shares):.2f}")
    cold = [s.share("running") for s in taken if "running" in s.seen]
    print(f"  cold replica starts inside the pushes: {len(cold)} of {len(taken)}"
          + (f" ({_spread(cold, _s)})" if cold else "")
          + f"; floor of a cold start, a bare scoring server of the same model, Popen -> /ping"
          f" 200 on the idle machine afterwards: {_spread(floor, _s)}")  # fmt: skip
    reads = [t for s in taken for t in s.make_status]
    print(f"  one make_status read: {_spread(reads, _s)}")


if __name__ == "__main__":
    raise SystemExit(main())
