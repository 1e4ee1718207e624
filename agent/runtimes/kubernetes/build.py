"""Stage one model build inside its pod: the build's MLflow run is made where it runs.

``python -m agent.runtimes.kubernetes.build --into DIR --plan JSON --termination-log FILE``
runs as the second init container of a build Job (:func:`render.model_build`), in the
agent's image, after the source is in ``DIR/project``. With the local plane's own function
(:func:`registration.build_run`: experiment ``gitplane-<model>``, the provenance tags) it
makes the build's MLflow run on ``MLFLOW_TRACKING_URI``, says its id in the termination
message (``{"runId": ...}``, which the agent reads from the pod status), and writes
``DIR/run.sh``, the ``mlflow run . --run-id`` the ``run`` container (the build image:
``mlflow`` and ``sh``, no Gitplane) runs. The plan is rendered from the signed command and
the plane; the run's id is the one thing decided here. Exit 1 with why (on stderr and as
the termination message) when staging fails; nothing runs then.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from agent.runtimes.kubernetes import step
from agent.runtimes.local.models import registration
from schemas.common import ProjectRef
from schemas.errors import GitplaneError

TERMINATION_LOG = "/dev/termination-log"


def stage(plan: dict[str, Any], into: Path, tracking_uri: str) -> str:
    """The build's run made and ``into/run.sh`` written to run the project in it; its id."""
    if not tracking_uri:
        raise GitplaneError("MLFLOW_TRACKING_URI is not set: the pod cannot reach MLflow")
    project = ProjectRef.model_validate(plan["project"])
    artifacts = plan.get("artifacts")
    _, run_id = registration.build_run(
        tracking_uri,
        plan["model"],
        plan["version"],
        project,
        spec_commit=plan["commit"],
        artifacts=Path(artifacts) if artifacts else None,
    )
    parameters = {key: str(value) for key, value in sorted(project.parameters.items())}
    run = step.project_run(project.entry_point, project.env_manager, run_id, parameters)
    (into / "run.sh").write_text(f"set -e\n{shlex.join(run)}\n")
    return run_id


def main(argv: list[str] | None = None, environ: Mapping[str, str] = os.environ) -> int:
    """The init container's entry point: 0 with the run made and ``run.sh`` in place, 1
    with why not."""
    parser = argparse.ArgumentParser(prog="gitplane-build", description=__doc__)
    parser.add_argument("--into", required=True, type=Path)
    parser.add_argument("--plan", required=True)
    parser.add_argument("--termination-log", type=Path, default=Path(TERMINATION_LOG))
    args = parser.parse_args(argv)
    try:
        run_id = stage(json.loads(args.plan), args.into, environ.get("MLFLOW_TRACKING_URI", ""))
    except KeyError as exc:
        return _report(args.termination_log, f"build: the plan names no {exc}", 1)
    except (GitplaneError, OSError, ValueError, TypeError) as exc:
        return _report(args.termination_log, f"build: cannot stage the build: {exc}", 1)
    return _report(args.termination_log, json.dumps({"runId": run_id}), 0)


def _report(path: Path, message: str, code: int) -> int:
    try:
        path.write_text(message[:4096])  # the kubelet keeps at most 4096 bytes
    except OSError as exc:
        print(f"build: cannot write {path}: {exc}", file=sys.stderr)
    print(message, file=sys.stderr if code else sys.stdout)
    return code


if __name__ == "__main__":
    sys.exit(main())
