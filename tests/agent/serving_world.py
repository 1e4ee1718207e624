"""A registered model and Deployment commands for serving tests (real MLflow, real processes)."""

from __future__ import annotations

import atexit
import contextlib
import functools
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from agent.runtimes.base import ApplyContext
from agent.runtimes.local import _mlflow, models, serving
from agent.runtimes.local.env import LocalEnv
from ledger import commands, gitrepo
from schemas import signed
from tests.clock import NOW
from tests.conftest import FIXTURES, init_repo

FEATURES = ["tenure_months", "support_tickets"]
REGISTER = FIXTURES / "serving" / "register.py"


@dataclass
class Served:
    """A local plane with one registered model version (and a broken second one)."""

    env: LocalEnv
    tmp: Path
    expected: list[int]
    """Version 1's own predictions for the test rows."""

    def command(
        self, spec: dict[str, Any], version: int = 1, name: str = "churn"
    ) -> signed.Command:
        """A Deployment command serving ``models:/churn/<version>`` with ``spec``."""
        digest = self.digest(version)
        body = {
            "apiVersion": "gitplane.dev/v1alpha1",
            "kind": "Deployment",
            "metadata": {"name": name},
            "spec": {"model": {"name": "churn"}, "planeSelector": {}, **spec},
            "resolved": {
                "model": {
                    "name": "churn",
                    "version": f"1.0.{version}",
                    "registryVersion": version,
                    "digest": digest,
                    "uri": f"models:/churn/{version}",
                }
            },
        }
        text = json.dumps(body, sort_keys=True)
        return commands.new_command("Deployment", name, text)

    def digest(self, version: int) -> str:
        """The digest the build would have pinned for a registered version."""
        target = self.tmp / f"digest-{version}"
        if not target.exists():
            _mlflow.download(self.env.tracking_uri, f"models:/churn/{version}", target)
        return models.digest_directory(target)

    def apply(self, command: signed.Command) -> signed.ResourceStatus:
        """Apply through the runtime module, as the agent would."""
        scratch = self.tmp / "scratch"
        scratch.mkdir(exist_ok=True)
        return serving.apply(command, ApplyContext("0" * 40, scratch, now=NOW), self.env)


def register_models(tmp: Path, rows: list[dict[str, float]]) -> tuple[LocalEnv, list[int]]:
    """A plane whose store holds the fixture models; the model's own predictions for
    ``rows``. Registering takes a process and ~12 s, so it is done once per set of rows
    and test process, and each test gets a copy of that store (its artifacts, which
    tests only read, stay where they were registered)."""
    made = _registered(json.dumps(rows, sort_keys=True))
    shutil.copy(made / "mlflow.db", tmp / "mlflow.db")
    uri = f"sqlite:///{tmp / 'mlflow.db'}"
    repo = gitrepo.GitRepo(init_repo(tmp / "specs"))
    env = LocalEnv(repo, uri, tmp / "state", tmp / "data", ports=ports(), standby=0)
    return env, json.loads((made / "expected.json").read_text())


@functools.cache
def _registered(rows: str) -> Path:
    """Register the fixture models in a fresh store, in a process of their own as a build
    would, run in the store's directory (MLflow puts artifacts under ./mlruns)."""
    made = Path(tempfile.mkdtemp(prefix="gitplane-served-"))
    atexit.register(shutil.rmtree, made, ignore_errors=True)
    subprocess.run(
        [sys.executable, str(REGISTER), rows, str(made / "expected.json")],
        env={**os.environ, "MLFLOW_TRACKING_URI": f"sqlite:///{made / 'mlflow.db'}"},
        cwd=made,
        check=True,
        capture_output=True,
        timeout=300,
    )
    return made


def ports() -> tuple[int, int]:
    """This worker's range of endpoint ports."""
    return _base_port(), _base_port() + 50


def _base_port() -> int:
    """A per-worker port range, so parallel test runs do not collide: the two pytest-xdist
    workers of one run take slots of opposite parity, and every slot lies below the fixed
    ranges of test_agent_e2e and test_agent_daemon (31400-31799), which may run beside it."""
    worker = int(os.environ.get("PYTEST_XDIST_WORKER", "gw0").removeprefix("gw"))
    return 30000 + ((os.getpid() % 11) * 2 + worker % 2) * 60


def predict(url: str, rows: list[dict[str, float]]) -> list[Any]:
    """Predictions from an endpoint in the ``dataframe_records`` format."""
    request = urllib.request.Request(  # noqa: S310 - loopback endpoint
        f"{url}/invocations",
        data=json.dumps({"dataframe_records": rows}).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=30) as reply:  # noqa: S310 - loopback endpoint
        predictions: list[Any] = json.loads(reply.read())["predictions"]
    return predictions


def processes_of(directory: Path) -> list[int]:
    """Every live process whose command line names ``directory`` (supervisor and replicas)."""
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            cmdline = (proc / "cmdline").read_bytes()
            environ = (proc / "environ").read_bytes()
        except OSError:
            continue
        if str(directory).encode() in cmdline + environ:
            found.append(int(proc.name))
    return found


def kill_all(directory: Path) -> None:
    """Leave nothing running after a test, whatever happened."""
    for pid in processes_of(directory):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
