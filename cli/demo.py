"""``gitplane demo``: the main job on the embedded default, narrated, on one machine.

Everything is real and everything is started here: a bare git repository
holding ``example-repo/``, keys, ``gitplane reconcile --watch`` and
``gitplane agent run`` as processes, MLflow (SQLite), the model build and
scan, feature computation, and HTTP endpoints. It stops everything it
started, also when interrupted.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import click

from agent import agent, config
from cli import clock
from reconciler import planning, status_view
from schemas import signed

PLANE = "local-dev"
DEPLOYMENT = "churn-dev"
ROWS = [
    {"tenure_months": 3.0, "monthly_spend": 80.0, "support_tickets": 4.0,
     "events_7d": 2.0, "spend_7d": 5.0},
    {"tenure_months": 60.0, "monthly_spend": 40.0, "support_tickets": 0.0,
     "events_7d": 20.0, "spend_7d": 30.0},
    {"tenure_months": 24.0, "monthly_spend": 55.0, "support_tickets": 1.0,
     "events_7d": 12.0, "spend_7d": 18.0},
]  # fmt: skip
PEOPLE = {
    "ada": ("Ada Admin", "ada@example.com"),
    "bo": ("Bo Builder", "bo@example.com"),
}


class Demo:
    """The demo's places and processes."""

    def __init__(self, source: Path, workdir: Path, converge_timeout: float) -> None:
        self.source, self.dir, self.timeout = source, workdir, converge_timeout
        self.work, self.bare = workdir / "work", workdir / "specs.git"
        self.keys, self.plane = workdir / "keys", workdir / "plane"
        self.bin = Path(sys.executable).parent / "gitplane"
        self.processes: list[subprocess.Popen[bytes]] = []
        self.started = time.monotonic()
        self.total = 9

    def run(self) -> None:
        """Every step, then stop everything."""
        with self._cleanup():
            self.repository()
            self.trust()
            self.data_plane()
            self.start()
            self.converge()
            url = self.predict()
            self.scale(url)
            self.show_status()
            self.show_audit()

    # -- steps --------------------------------------------------------------------------

    def repository(self) -> None:
        """example-repo/ committed to a bare repository served over file://."""
        _step(1, self.total, "Spec repository: example-repo/ pushed to a bare git repository")
        shutil.copytree(self.source, self.work, ignore=shutil.ignore_patterns("sample-data"))
        self._git("init", "-q", "-b", "main")
        self._commit("ada", "Import the example specs")
        self._run(["git", "init", "-q", "--bare", "-b", "main", str(self.bare)])
        self._git("remote", "add", "origin", str(self.bare))
        self._git("push", "-q", "origin", "main")
        _say(f"git repository: {self.bare}")

    def trust(self) -> None:
        """A root of trust, the reconciler's keys, the plane's agent key in its DataPlane."""
        _step(2, self.total, "Keys: root of trust, reconciler keys, the local-dev agent key")
        self._gitplane(
            "keys", "init", "--dir", str(self.keys), "--root-keys", "1", "--threshold", "1"
        )
        printed = self._gitplane("keys", "agent", "--plane", PLANE, "--dir", str(self.keys))
        block = [line for line in printed.splitlines() if line and not line.startswith("#")]
        spec = self.work / "planes" / f"{PLANE}.yaml"
        text = spec.read_text().replace(
            "  # agentKey: {type: ed25519, public: <64 hex digits>}", "\n".join(block)
        )
        spec.write_text(text)
        self._commit("ada", f"Register the {PLANE} agent key")
        self._git("push", "-q", "origin", "main")
        _say(f"registered in planes/{PLANE}.yaml: {block[-1].strip()}")

    def data_plane(self) -> None:
        """The agent's configuration and the raw events the feature set reads."""
        _step(3, self.total, "Data plane: agent configuration and sample events")
        data = self.plane / "data" / "data"
        data.mkdir(parents=True)
        shutil.copy(self.source / "sample-data" / "events.csv", data / "events.csv")
        (self.plane / "agent.yaml").write_text(
            f"plane: {PLANE}\nrepo: {self.bare}\nrootFile: {self.keys / 'root.json'}\n"
            f"keyFile: {self.keys / 'agents' / f'{PLANE}.key'}\nstateDir: state\n"
            "pollInterval: 5s\nruntime:\n  type: local\n  dataDir: data\n"
            "  ports: 20000-20999\n"
        )
        _say(f"agent config: {self.plane / 'agent.yaml'} (MLflow: {self.plane}/state/mlflow.db)")

    def start(self) -> None:
        """The reconciler and the agent, as the daemons they are."""
        _step(4, self.total, "Starting `gitplane reconcile --watch` and `gitplane agent run`")
        logs = self.dir / "logs"
        logs.mkdir()
        reconciler = [
            "reconcile", "--repo", str(self.bare), "--keys", str(self.keys), "--watch",
            "--interval", "5s", "--work-dir", str(self.dir / "reconciler"),
        ]  # fmt: skip
        self._daemon(reconciler, logs / "reconciler.log")
        self._daemon(
            ["agent", "run", "--config", str(self.plane / "agent.yaml")], logs / "agent.log"
        )
        _say(f"logs: {logs}/reconciler.log, {logs}/agent.log")

    def converge(self) -> None:
        """Wait for build, scan, registration, features and the endpoint, showing progress."""
        _step(5, self.total, "Converging: build → scan → register → features → endpoint")
        _say("the model is built by running its MLflow Project; this takes a minute")
        self._wait(lambda r: _ready(r, "Deployment", DEPLOYMENT), "churn-dev serving")

    def predict(self) -> str:
        """Predictions through the endpoint's proxy, in MLflow's scoring protocol."""
        url = str(self._resource("Deployment", DEPLOYMENT)["observed"]["url"])
        _step(6, self.total, f"Predictions from {url}/invocations")
        request = urllib.request.Request(  # noqa: S310 - the demo's own loopback endpoint
            f"{url}/invocations",
            data=json.dumps({"dataframe_records": ROWS}).encode(),
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=30) as reply:  # noqa: S310
            predictions = json.loads(reply.read())["predictions"]
        for row, prediction in zip(ROWS, predictions, strict=True):
            verdict = "will churn" if prediction else "stays"
            _say(f"tenure {row['tenure_months']:>4.0f} months, "
                 f"{row['support_tickets']:.0f} tickets → {prediction} ({verdict})")  # fmt: skip
        return url

    def scale(self, url: str) -> None:
        """A reviewed change in git: two replicas at least; time from push to ready."""
        _step(7, self.total, "Change in git: churn-dev minReplicas 1 → 2")
        spec = self.work / "deployments" / f"{DEPLOYMENT}.yaml"
        spec.write_text(spec.read_text().replace("minReplicas: 1", "minReplicas: 2"))
        self._commit("bo", "Scale churn-dev to two replicas")
        pushed = time.monotonic()
        self._git("push", "-q", "origin", "main")
        self._wait(lambda r: _replicas(r, DEPLOYMENT) == 2, "2 replicas ready")
        _say(f"pushed → plane reports 2 ready replicas in {time.monotonic() - pushed:.1f}s; "
             f"endpoint unchanged: {url}")  # fmt: skip

    def show_status(self) -> None:
        """``gitplane status``, as a user would run it."""
        _step(8, self.total, f"gitplane status {self.bare} --root keys/root.json")
        click.echo(self._gitplane("status", str(self.bare), "--root", str(self.keys / "root.json")))

    def show_audit(self) -> None:
        """``gitplane audit``: who changed the endpoint, which commands, what the plane did."""
        _step(9, self.total, f"gitplane audit deployment/{DEPLOYMENT} {self.bare} --root …")
        root = str(self.keys / "root.json")
        click.echo(
            self._gitplane("audit", f"deployment/{DEPLOYMENT}", str(self.bare), "--root", root)
        )

    # -- plumbing -----------------------------------------------------------------------

    def _wait(self, done: Callable[[list[dict[str, Any]]], bool], what: str) -> None:
        deadline, shown = time.monotonic() + self.timeout, ""
        while time.monotonic() < deadline:
            resources = self._resources()
            line = _progress(resources)
            if line != shown:
                _say(f"[{time.monotonic() - self.started:5.0f}s] {line}")
                shown = line
            if done(resources):
                return
            failed = next((r for r in resources if r["phase"] in signed.FAILING), None)
            if failed is not None:
                where = f"{failed['kind']}/{failed['name']} {failed['phase']}"
                raise click.ClickException(f"{where}: {failed['message']}")
            self._check_daemons()
            time.sleep(1)
        raise click.ClickException(f"not converged within {self.timeout:.0f}s ({what})")

    def _resources(self) -> list[dict[str, Any]]:
        request = planning.PlanRequest(self.bare, root=self.keys / "root.json")
        planes = planning.make_status(request, clock.now()).planes
        body = status_view.as_json([p for p in planes if p.name == PLANE])
        resources: list[dict[str, Any]] = body["planes"][0]["resources"]
        return resources

    def _resource(self, kind: str, name: str) -> dict[str, Any]:
        return next(r for r in self._resources() if (r["kind"], r["name"]) == (kind, name))

    def _daemon(self, args: list[str], log: Path) -> None:
        with log.open("wb") as out:
            process = subprocess.Popen(
                [str(self.bin), *args], stdout=out, stderr=subprocess.STDOUT, cwd=self.plane
            )
        self.processes.append(process)
        _say(f"$ gitplane {' '.join(args)}   (pid {process.pid})")

    def _check_daemons(self) -> None:
        for process in self.processes:
            if process.poll() is not None:
                raise click.ClickException(
                    f"{' '.join(map(str, process.args))} exited ({process.returncode}); "  # type: ignore[arg-type]
                    f"see {self.dir / 'logs'}"
                )

    @contextmanager
    def _cleanup(self) -> Iterator[None]:
        try:
            yield
        finally:
            _step(None, self.total, "Stopping everything the demo started")
            stopped = self.stop()
            _say(f"stopped the reconciler, the agent and {stopped} endpoint(s); "
                 f"files kept in {self.dir}")  # fmt: skip

    def stop(self) -> int:
        """SIGTERM the daemons (SIGKILL after 30 s), then stop every endpoint; how many."""
        for process in self.processes:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process in self.processes:
            try:
                process.wait(30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        return agent.stop_serving(config.load_config(self.plane / "agent.yaml"))

    def _gitplane(self, *args: str) -> str:
        _say(f"$ gitplane {' '.join(args)}")
        return self._run([str(self.bin), *args])

    def _git(self, *args: str) -> str:
        return self._run(["git", "-C", str(self.work), *args])

    def _commit(self, who: str, message: str) -> None:
        name, email = PEOPLE[who]
        self._git("add", "-A")
        identity = {  # over any GIT_AUTHOR_* the caller's environment sets
            "GIT_AUTHOR_NAME": name,
            "GIT_AUTHOR_EMAIL": email,
            "GIT_COMMITTER_NAME": name,
            "GIT_COMMITTER_EMAIL": email,
        }
        self._run(["git", "-C", str(self.work), "commit", "-q", "-m", message], identity)
        _say(f"commit by {name}: {message}")

    def _run(self, command: list[str], extra: dict[str, str] | None = None) -> str:
        env = {**os.environ, "GIT_TERMINAL_PROMPT": "0", **(extra or {})}
        done = subprocess.run(command, capture_output=True, text=True, env=env, check=False)
        if done.returncode != 0:
            raise click.ClickException(f"{' '.join(command)} failed:\n{done.stderr.strip()}")
        return done.stdout


def _ready(resources: list[dict[str, Any]], kind: str, name: str) -> bool:
    return any(
        (r["kind"], r["name"], r["phase"], r["sync"]) == (kind, name, "Ready", "Synced")
        for r in resources
    )


def _replicas(resources: list[dict[str, Any]], name: str) -> int:
    for r in resources:
        if (r["kind"], r["name"]) == ("Deployment", name) and r["sync"] == "Synced":
            observed = r["observed"]
            if observed.get("desiredReplicas") == observed.get("readyReplicas"):
                return int(observed.get("readyReplicas", 0))
    return 0


def _progress(resources: list[dict[str, Any]]) -> str:
    return ", ".join(f"{r['kind']}/{r['name']} {r['phase']}" for r in resources) or "waiting"


def _step(number: int | None, total: int, title: str) -> None:
    counter = f"{number}/{total}" if number is not None else "done"
    click.secho(f"\n==> [{counter}] {title}", bold=True)


def _say(text: str) -> None:
    click.echo(f"    {text}")
