"""``Deployment`` on the local plane: the agent's side of a served endpoint.

Applying a command:

1. fetches the pinned model version from the registry and checks its
   artifacts against the digest the reconciler pinned (a registry that
   changed under us is refused, never served); a version built in an
   environment of its own (``envManager`` uv, virtualenv, conda) gets one
   made from its logged requirements, once per requirements, within the
   rollout's progress deadline, and its replicas run that environment's
   Python: the model's libraries need not be Gitplane's;
2. gives the endpoint a stable port from the plane's range;
3. writes ``desired.json`` and makes sure the endpoint's supervisor
   (``endpoint.py``) runs; the supervisor rolls replicas to it;
4. waits for the rollout (``kubectl rollout status``) up to its progress
   deadline and reports what the supervisor reports.

Drift: a supervisor that is not running, or a ``desired.json`` that does not
match the applied command, is restored when the plane self-heals and
reported otherwise.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from agent.runtimes.base import ApplyContext
from agent.runtimes.local import _mlflow, limits, models
from agent.runtimes.local.env import LocalEnv
from agent.runtimes.local.serving import desired, modelenv, replicas
from schemas import commands, files, signed
from schemas.common import parse_duration
from schemas.errors import GitplaneError

APPLY_WAIT_SECONDS = 300.0
STOP_WAIT_SECONDS = 30.0
SUPERVISOR_START_SECONDS = 5.0


class ServingError(GitplaneError):
    """The endpoint cannot be served as commanded."""


def apply(command: signed.Command, context: ApplyContext, env: LocalEnv) -> signed.ResourceStatus:
    """Serve the command's model version; wait for the rollout to finish."""
    spec = commands.read(command, commands.DeploymentCommand).spec
    refused = limits.refusal(spec.resources, f"Deployment/{command.name}")
    if refused:  # Blocked: nothing is started, and no retry can make the CPUs or GPU appear
        return signed.ResourceStatus(
            kind="Deployment", name=command.name, phase="Blocked", digest=command.digest,
            message=refused,
        )  # fmt: skip
    wanted = _write_desired(command, env, context)
    seconds = min(wanted, APPLY_WAIT_SECONDS)
    return _wait(command, _directory(env, command.name), seconds, context)


def observe(
    command: signed.Command,
    last: signed.ResourceStatus,
    context: ApplyContext,
    env: LocalEnv,
) -> signed.ResourceStatus:
    """The endpoint as its supervisor reports it; drift restored when the plane self-heals."""
    now = context.now
    if last.phase == "Blocked":  # refused at apply: there is nothing to observe
        return last
    directory = _directory(env, command.name)
    drift = _drift(command, directory)
    if drift is None:
        return _status(command, directory, last, now)
    if not context.self_heal:
        return last.model_copy(update={"phase": "Failed", "message": f"drift: {drift}"})
    _write_desired(command, env, context)
    healed = _wait(command, directory, APPLY_WAIT_SECONDS, context)
    return healed.model_copy(update={"message": f"healed drift: {drift}"})


def delete(command: signed.Command, env: LocalEnv) -> None:
    """Stop the supervisor (it stops every replica) and remove the endpoint's files."""
    directory = env.state_dir / "deployments" / command.name
    if not directory.exists():
        return
    (directory / "desired.json").unlink(missing_ok=True)
    deadline = time.monotonic() + STOP_WAIT_SECONDS
    while _supervisor_running(directory) and time.monotonic() < deadline:
        time.sleep(0.1)
    _wait_exit(directory / "supervisor.pid", deadline)
    shutil.rmtree(directory, ignore_errors=True)


def _wait_exit(pid_file: Path, deadline: float) -> None:
    """Wait for the supervisor process itself to be gone (it unlocks before exiting)."""
    try:
        stat = Path(f"/proc/{int(pid_file.read_text())}/stat")
    except (OSError, ValueError):
        return
    while time.monotonic() < deadline:
        try:
            if stat.read_text().split(") ", 1)[1].startswith("Z"):
                return
        except (OSError, IndexError):
            return
        time.sleep(0.05)


def _write_desired(command: signed.Command, env: LocalEnv, context: ApplyContext) -> float:
    """Resolve, write and hand over the command; its progress deadline in seconds."""
    deployment = commands.read(command, commands.DeploymentCommand)
    model = deployment.resolved.model
    directory = _directory(env, command.name)
    model_dir = _fetch_model(env, model, directory)
    deadline = parse_duration(deployment.spec.rollout.progress_deadline)
    wanted = desired.build(
        command.name,
        deployment.spec,
        command=command.digest,
        attempt=f"{time.time_ns()}",
        port=_port(env, directory),
        version=model.version,
        model_dir=model_dir,
        python=modelenv.python(env, model, model_dir, context, timeout=deadline),
        standby=env.standby,
    )
    files.atomic_write(directory / "desired.json", desired.dumps(wanted))
    _ensure_supervisor(directory)
    return wanted.progress_deadline


def _directory(env: LocalEnv, name: str) -> Path:
    return env.kind_dir("Deployment", name)


def _fetch_model(env: LocalEnv, model: commands.PinnedModel, directory: Path) -> Path:
    """The pinned version's artifacts, downloaded once and checked against the pinned digest."""
    digest, uri = model.digest, model.uri
    if digest is None:
        raise ServingError(f"refusing to serve {uri}: the command pins no artifact digest")
    target = directory / "models" / digest.removeprefix("sha256:")[:16]
    if target.exists():
        return target
    incoming = directory / "models" / ".incoming"
    shutil.rmtree(incoming, ignore_errors=True)
    _mlflow.download(env.tracking_uri, uri, incoming)
    found = models.digest_directory(incoming)
    if found != digest:
        shutil.rmtree(incoming, ignore_errors=True)
        raise ServingError(
            f"refusing to serve {uri}: its artifacts digest to {found}, "
            f"but the command pins {digest} (the registry changed after the build)"
        )
    incoming.rename(target)
    return target


def _port(env: LocalEnv, directory: Path) -> int:
    """The endpoint's port: kept for its lifetime, unique among this plane's endpoints."""
    chosen = directory / "port"
    if chosen.exists():
        return int(chosen.read_text())
    taken = {int(p.read_text()) for p in directory.parent.glob("*/port")}
    start, end = env.ports
    for port in range(start, end + 1):
        if port not in taken and replicas.is_bindable(port):
            files.atomic_write(chosen, str(port).encode())
            return port
    raise ServingError(f"no free port left in {start}-{end} (runtime.ports in the agent config)")


def _ensure_supervisor(directory: Path) -> None:
    if _supervisor_running(directory):
        return
    subprocess.run(
        [sys.executable, "-m", "agent.runtimes.local.serving.endpoint", "--detach", str(directory)],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        check=True,
        timeout=60,
    )


def _supervisor_running(directory: Path) -> bool:
    """Whether a supervisor holds the endpoint's lock."""
    lock = directory / "lock"
    if not lock.exists():
        return False
    with lock.open("a") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        fcntl.flock(handle, fcntl.LOCK_UN)
        return False


def _drift(command: signed.Command, directory: Path) -> str | None:
    """What differs from the applied command, or None."""
    try:
        current = desired.load_desired(directory)
    except (FileNotFoundError, ValueError, TypeError):
        return "the endpoint's desired state is missing or unreadable"
    if current.command != command.digest:
        return "the endpoint's desired state was changed by hand"
    if not _supervisor_running(directory):
        return "the endpoint was not running"
    return None


def _wait(
    command: signed.Command, directory: Path, seconds: float, context: ApplyContext
) -> signed.ResourceStatus:
    """Poll the supervisor's status until this command is Ready or Failed, or time runs out
    (from ``context.now``), or the wait is cancelled (the rollout goes on: the supervisor
    owns it)."""
    started = time.monotonic()
    while True:
        waited = time.monotonic() - started
        status = _status(command, directory, None, context.now + timedelta(seconds=waited))
        if status.phase in ("Ready", "Failed") or waited > seconds:
            return status
        context.progress.step(f"rolling out: {status.message}" if status.message else "rolling out")
        if waited > SUPERVISOR_START_SECONDS and not _supervisor_running(directory):
            return status.model_copy(update={"phase": "Failed", "message": _crash(directory)})
        if context.cancel.wait(0.2):
            context.cancel.check()


def _crash(directory: Path) -> str:
    with contextlib.suppress(OSError):
        tail = (directory / "supervisor.log").read_text(errors="replace").strip().splitlines()
        return "the endpoint supervisor exited:\n" + "\n".join(tail[-10:])
    return "the endpoint supervisor exited"


def _status(
    command: signed.Command,
    directory: Path,
    last: signed.ResourceStatus | None,
    now: datetime,
) -> signed.ResourceStatus:
    """The supervisor's report, as this command's resource status."""
    body = _read_json(directory / "status.json")
    phase = "Progressing"
    if body.get("desiredCommand") == command.digest and body.get("phase") == "Failed":
        phase = "Failed"
    elif body.get("command") == command.digest and body.get("phase") == "Ready":
        phase = "Ready"
    status = signed.ResourceStatus(
        kind="Deployment",
        name=command.name,
        phase=phase,  # type: ignore[arg-type]
        digest=command.digest,
        message=str(body.get("message", "starting"))[-4000:],
        observed=_observed(body),
    )
    return _with_metrics(status, _read_json(directory / "metrics.json"), last, now)


def _read_json(path: Path) -> dict[str, Any]:
    try:
        body: dict[str, Any] = json.loads(path.read_bytes())
    except (OSError, ValueError):
        return {}
    return body


METRICS = ("rps", "p50Ms", "p95Ms", "p99Ms", "errorRate", "inFlight")
METRICS_REPORT_SECONDS = 300.0
METRICS_CHANGE = 0.25


def _with_metrics(
    status: signed.ResourceStatus,
    metrics: dict[str, Any],
    last: signed.ResourceStatus | None,
    now: datetime,
) -> signed.ResourceStatus:
    """Status carries the endpoint's traffic (last minute): fresh figures whenever anything
    else changes, otherwise at most every 5 minutes and only when a figure moved by more than
    25 % — a busy endpoint must not write a status commit per second."""
    fresh = _signable(metrics)
    at = now.strftime("%Y-%m-%dT%H:%M:%SZ")
    if last is not None and _same_but_metrics(status, last) and not _due(last, fresh, now):
        kept = {k: v for k, v in last.observed.items() if k in (*METRICS, "metricsAt")}
        return status.model_copy(update={"observed": {**status.observed, **kept}})
    return status.model_copy(update={"observed": {**status.observed, **fresh, "metricsAt": at}})


def _signable(metrics: dict[str, Any]) -> dict[str, str | int | bool]:
    """Signed payloads hold no floats: whole requests/s and milliseconds, a percent string."""
    out: dict[str, str | int | bool] = {
        k: round(float(metrics[k])) for k in METRICS if k in metrics and k != "errorRate"
    }
    if "errorRate" in metrics:
        out["errorRate"] = f"{float(metrics['errorRate']):.2%}"
    return out


def _same_but_metrics(status: signed.ResourceStatus, last: signed.ResourceStatus) -> bool:
    ignored = (*METRICS, "metricsAt")
    mine = {k: v for k, v in status.observed.items() if k not in ignored}
    theirs = {k: v for k, v in last.observed.items() if k not in ignored}
    return (status.phase, status.message, mine) == (last.phase, last.message, theirs)


def _due(last: signed.ResourceStatus, fresh: dict[str, str | int | bool], now: datetime) -> bool:
    reported = str(last.observed.get("metricsAt", ""))
    if not reported:
        return bool(fresh)
    age = now - datetime.strptime(reported, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
    if age.total_seconds() < METRICS_REPORT_SECONDS:
        return False
    return any(_moved(last.observed.get(k), value) for k, value in fresh.items())


def _moved(before: object, after: object) -> bool:
    if not isinstance(before, int | float) or not isinstance(after, int | float):
        return before != after
    return abs(after - before) > METRICS_CHANGE * max(abs(before), 1.0)


def _observed(body: dict[str, Any]) -> dict[str, str | int | bool]:
    observed: dict[str, str | int | bool] = {
        key: body[key]
        for key in ("url", "servedVersion", "readyReplicas", "desiredReplicas", "restarts")
        if key in body
    }
    events = body.get("events") or []
    if events:
        last = events[-1]
        observed["lastScale"] = (
            f"{last['at']} {last['from']}→{last['to']}: {last['reason']} (p95 {last['p95Ms']} ms)"
        )
    return observed


def stop_all(state_dir: Path) -> int:
    """Stop every endpoint of a plane (its supervisors stop their replicas); how many.

    Their files stay: an agent started again on ``state_dir`` sees the drift
    and, when the plane self-heals, serves them again.
    """
    directories = [d for d in (state_dir / "deployments").glob("*") if (d / "lock").exists()]
    running = [d for d in directories if _supervisor_running(d)]
    for directory in running:
        _signal_supervisor(directory)
    deadline = time.monotonic() + STOP_WAIT_SECONDS
    for directory in running:
        while _supervisor_running(directory) and time.monotonic() < deadline:
            time.sleep(0.1)
        _wait_exit(directory / "supervisor.pid", deadline)
    return len(running)


def _signal_supervisor(directory: Path) -> None:
    with contextlib.suppress(OSError, ValueError):
        os.kill(int((directory / "supervisor.pid").read_text()), signal.SIGTERM)
