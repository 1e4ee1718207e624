"""What the Kubernetes runtime asks of an API server: requests and wall time.

Run: ``.venv/bin/python benchmarks/kube_runtime.py [--deployments N] [--idle-seconds S]``.
Defaults: N = 1,000, S = 10.

Against the API server test double (``tests/kubeapi``, real HTTP, the official client),
with its controllers stepped by a thread, one plane's runtime (``KubernetesRuntime``:
watches, then applies) is timed and its requests counted, each beside its floor or target;
nothing is asserted:

1. Applying N Deployments (``replicas: 1``, a Service each) one after the other, each
   followed until its rollout is Ready. Floor: one request per object created (2N).
2. An idle cycle: every Deployment observed once a second for S seconds, nothing changing.
   Target: no LIST per cycle once the watches are established; under 1 request/s.
3. A one-replica change of one Deployment. Target: one apply request.

The double serves one process on 2 cores: its wall times are the client's cost plus a
Python server's, an upper bound for a real API server's round trips on loopback, not a
figure for a cluster.
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import json
import sys
import tempfile
import threading
import time
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from kubernetes import client, config  # noqa: E402

from agent.runtimes.base import ApplyContext  # noqa: E402
from agent.runtimes.kubernetes import KINDS, KubernetesRuntime  # noqa: E402
from agent.runtimes.kubernetes.deployments import Deployments  # noqa: E402
from ledger import commands  # noqa: E402
from schemas import signed  # noqa: E402
from tests.agent.test_kubernetes_render import PINNED, SETTINGS, TARGET  # noqa: E402
from tests.kubeapi.server import KubeApiDouble  # noqa: E402

NOW = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)


def command(name: str, replicas: int) -> signed.Command:
    body = {
        "apiVersion": "gitplane.dev/v1alpha1",
        "kind": "Deployment",
        "metadata": {"name": name},
        "spec": {"model": {"name": "churn"}, "planeSelector": {}, "replicas": replicas},
        "resolved": {"model": PINNED},
    }
    text = json.dumps(body, sort_keys=True)
    return commands.new_command("Deployment", name, text)


def requests_since(double: KubeApiDouble, start: int) -> Counter[str]:
    """Requests by verb (a WATCH counted once, when it was opened)."""
    counted: Counter[str] = Counter()
    for request in double.requests[start:]:
        watching = "watch" in request.query
        collection = request.path.rsplit("/", 1)[-1] in ("deployments", "services")
        verb = (
            "WATCH"
            if watching
            else ("LIST" if request.method == "GET" and collection else request.method)
        )
        counted[verb] += 1
    return counted


def _watching(api: client.ApiClient) -> KubernetesRuntime:
    """The runtime with the plane's settings, connected and its watches synced."""
    quick = functools.partial(Deployments, poll=0.01)
    kinds = {**KINDS, "Deployment": dataclasses.replace(KINDS["Deployment"], handler=quick)}
    runtime = KubernetesRuntime(lambda _: api, TARGET.plane, settings=SETTINGS, kinds=kinds)
    runtime.delete(command("d0000", 1))  # connects and starts the watches (nothing there)
    assert runtime.inventory is not None and runtime.inventory.wait_synced(10)
    return runtime


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--deployments", type=int, default=1000)
    parser.add_argument("--idle-seconds", type=float, default=10.0)
    args = parser.parse_args()
    n = args.deployments
    with KubeApiDouble() as double, tempfile.TemporaryDirectory() as scratch:
        stop = threading.Event()

        def step() -> None:
            while not stop.wait(0.02):
                double.controllers.step()

        threading.Thread(target=step, daemon=True).start()
        api = config.new_client_from_config(str(double.write_kubeconfig(Path(scratch) / "kc")))
        client.CoreV1Api(api).create_namespace({"metadata": {"name": TARGET.namespace}})
        runtime = _watching(api)
        context = ApplyContext("0" * 40, Path(scratch), now=NOW, kubernetes=SETTINGS)

        print(f"Kubernetes runtime against the API server test double ({n} Deployments)")
        start, began = len(double.requests), time.perf_counter()
        applied = {}
        for i in range(n):
            made = command(f"d{i:04d}", 1)
            applied[made.name] = (made, runtime.apply(made, context))
        seconds = time.perf_counter() - began
        sent = requests_since(double, start)
        total = sum(sent.values())
        each = seconds / n * 1000
        print(f"1. apply {n} Deployments, each to Ready: {seconds:.1f} s ({each:.1f} ms each)")
        print(f"   requests: {total} ({dict(sent)}), {total / n:.2f} per Deployment")
        print(f"   floor: one per object created = {2 * n} (Deployment + Service each)")

        start, began, cycles = len(double.requests), time.perf_counter(), 0
        while time.perf_counter() - began < args.idle_seconds:
            for made, last in applied.values():
                runtime.observe(made, last, context)
            cycles += 1
            time.sleep(max(0.0, cycles - (time.perf_counter() - began)))
        seconds = time.perf_counter() - began
        sent = requests_since(double, start)
        total = sum(sent.values())
        print(f"2. idle: {cycles} cycles observing {n} Deployments in {seconds:.1f} s")
        print(f"   requests: {total} ({dict(sent) or 'none'}) = {total / seconds:.2f}/s")
        print("   target: no LIST per cycle, under 1 request/s")

        start, began = len(double.requests), time.perf_counter()
        made = command("d0000", 2)
        done = runtime.apply(made, context)
        seconds = time.perf_counter() - began
        sent = requests_since(double, start)
        print(f"3. one-replica change: {done.phase} in {seconds * 1000:.0f} ms")
        print(f"   requests: {sum(sent.values())} ({dict(sent)}); target: 1 apply request")
        stop.set()
        runtime.close()


if __name__ == "__main__":
    main()
