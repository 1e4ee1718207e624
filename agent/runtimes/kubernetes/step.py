"""Stage one DAG step instance inside its pod, so the project sees what the local plane gives it.

``python -m agent.runtimes.kubernetes.step --into DIR --plan JSON`` runs as the second init
container of a step's Job (:func:`render.dag_step`), in the agent's image, after the source
is in ``DIR/project``. The instance is ``JOB_COMPLETION_INDEX`` (0 when the Job is not
Indexed). It sets the parameters the entry point declares exactly as the local runtime
does (``agent.runtimes.local.dags``, the same functions): ``input_dir`` (the upstream
runs' artifacts, downloaded from MLflow into ``DIR/input/<step>/``; a partitioned step gets
only its share of its ``from`` step), ``output_dir`` (``DIR/output``, logged as the child
run's artifacts when the project ends well), ``partition_index`` and ``partition_count``.
Then it writes ``DIR/run.sh``, which the step container (the build image: ``mlflow`` and
the Projects tooling, no Gitplane) runs: the same MLflow Project runs unchanged on both
runtimes. Exit 1 with one line on stderr when staging fails; nothing runs then.
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

from agent.runtimes.local import _mlflow
from agent.runtimes.local.dags import _data as _dagdata
from agent.runtimes.local.dags import _plan as _dagplan
from schemas.common import ParamValue
from schemas.dag import Partition
from schemas.errors import GitplaneError

INDEX = "JOB_COMPLETION_INDEX"


def stage(plan: dict[str, Any], into: Path, index: int, tracking_uri: str) -> Path:
    """Inputs in place and ``into/run.sh`` written for instance ``index``; the script."""
    runs: list[str] = plan["runs"]
    if not 0 <= index < len(runs):
        raise GitplaneError(f"{INDEX}={index}: the Job has {len(runs)} instance(s)")
    project = into / "project"
    declared = _mlflow.declared_parameters(project, plan["entryPoint"])
    given: dict[str, ParamValue] = plan["parameters"]
    if declared is None:  # a script: it is passed every parameter given
        declared = frozenset(given)
    provided = _provided(plan, into, index, declared, tracking_uri)
    parameters = _dagplan.parameters(declared, given, provided)
    script = into / "run.sh"
    script.write_text(_script(plan, runs[index], parameters, into / "output"))
    return script


def _provided(
    plan: dict[str, Any], into: Path, index: int, declared: frozenset[str], uri: str
) -> dict[str, ParamValue]:
    partition = Partition.model_validate(plan["partition"]) if plan["partition"] else None
    inputs: dict[str, list[str]] = plan["inputs"]
    provided: dict[str, ParamValue] = {}
    if inputs and "input_dir" in declared:
        trees = _dagdata.Trees(uri, into / "upstream")
        parted = set(plan["partitioned"])
        found = {up: trees.tree(up, runs, partitioned=up in parted) for up, runs in inputs.items()}
        share: list[str] = []
        if partition is not None:
            share = _dagplan.shares(_dagdata.files(found[partition.from_]), partition)[index]
        provided["input_dir"] = str(_dagdata.fill(into / "input", found, partition, share))
    if "output_dir" in declared:
        (into / "output").mkdir(parents=True, exist_ok=True)
        provided["output_dir"] = str(into / "output")
    if partition is not None:
        provided |= {"partition_index": index, "partition_count": partition.instances}
    return provided


def project_run(
    entry_point: str, env_manager: str, run_id: str, parameters: Mapping[str, str]
) -> list[str]:
    """``mlflow run .`` of ``entry_point`` inside the run ``run_id`` (a model build's too)."""
    run = ["mlflow", "run", ".", "-e", entry_point, "--env-manager", env_manager]
    run += ["--run-id", run_id]
    for key, value in parameters.items():
        run += ["-P", f"{key}={value}"]
    return run


def _script(plan: dict[str, Any], run_id: str, parameters: dict[str, str], output: Path) -> str:
    run = project_run(plan["entryPoint"], plan["envManager"], run_id, parameters)
    log = ["mlflow", "artifacts", "log-artifacts", "--local-dir", str(output), "--run-id", run_id]
    return "\n".join(
        [
            "set -e",
            shlex.join(run),
            f'if [ -n "$(ls -A {shlex.quote(str(output))} 2>/dev/null)" ]; then',
            f"  {shlex.join(log)}",
            "fi",
            "",
        ]
    )


def main(argv: list[str] | None = None) -> int:
    """The init container's entry point: 0 with ``run.sh`` in place, 1 with why not."""
    parser = argparse.ArgumentParser(prog="gitplane-step", description=__doc__)
    parser.add_argument("--into", required=True, type=Path)
    parser.add_argument("--plan", required=True)
    args = parser.parse_args(argv)
    try:
        index = int(os.environ.get(INDEX, "0"))
        plan = json.loads(args.plan)
        script = stage(plan, args.into, index, os.environ.get("MLFLOW_TRACKING_URI", ""))
    except (GitplaneError, OSError, ValueError, KeyError) as exc:
        print(f"step: {exc}", file=sys.stderr)
        return 1
    print(f"step: instance {index} staged in {script}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
