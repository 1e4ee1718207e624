"""``resources`` on the local runtime: memory and CPUs are limits its processes are held to
(checked in the processes themselves), a GPU is never visible unasked, and what cannot be
given is refused (Blocked, nothing started)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from agent.runtimes.base import ApplyContext
from agent.runtimes.local import _mlflow, limits, serving
from agent.runtimes.local.env import LocalEnv
from agent.runtimes.local.serving import desired, replicas
from ledger import envelope, gitrepo
from schemas import signed
from schemas.common import Resources
from schemas.deployment import DeploymentSpec
from tests.agent.test_builds import _build_in, _command, _mlflow_run
from tests.clock import NOW
from tests.conftest import init_repo

MIB = 2**20
CPUS = len(os.sched_getaffinity(0))


def test_resources_become_whole_cpus_and_bytes() -> None:
    assert limits.of(Resources()) == limits.Limits()
    assert limits.of(Resources(cpu="500m", memory="512Mi")) == limits.Limits(512 * MIB, 1)
    assert limits.of(Resources(cpu="1.5")).cpus == 2
    assert limits.Limits().command(["x"]) == ["x"]  # nothing asked: started as it is
    assert limits.refusal(Resources(cpu="1"), "Model/m") == ""
    assert limits.refusal(Resources(gpu=1), "Model/m") == (
        "Model/m: resources.gpu 1: the local runtime schedules no GPUs "
        "(use a plane whose runtime does, or gpu: 0)"
    )
    assert limits.refusal(Resources(cpu=str(CPUS + 1)), "Model/m") == (
        f"Model/m: resources.cpu {CPUS + 1} needs {CPUS + 1} CPUs; this plane has {CPUS}"
    )


def _held(held: limits.Limits, code: str) -> subprocess.CompletedProcess[str]:
    command = held.command([sys.executable, "-c", code])
    env = {**os.environ, **held.env()}
    return subprocess.run(command, capture_output=True, text=True, env=env, check=False)


def test_a_limited_process_is_held_to_its_memory_and_cpus() -> None:
    probe = (
        "import os, resource; print(resource.getrlimit(resource.RLIMIT_DATA)[0], "
        "len(os.sched_getaffinity(0)), repr(os.environ['CUDA_VISIBLE_DEVICES']))"
    )
    done = _held(limits.Limits(256 * MIB, 1), probe)
    assert done.stdout.split() == [str(256 * MIB), "1", "''"], done.stderr
    over = _held(limits.Limits(256 * MIB, None), "bytearray(512 * 2**20)")
    assert over.returncode == 1 and over.stderr.strip().endswith("MemoryError")
    assert _held(limits.Limits(), "bytearray(512 * 2**20)").returncode == 0  # unlimited


def test_the_launcher_says_what_it_cannot_run() -> None:
    held = limits.Limits(cpus=1).command(["no-such-program-here"])
    done = subprocess.run(held, capture_output=True, text=True, check=False)
    assert done.returncode == 127
    assert (
        done.stderr.strip() == "launch: cannot run no-such-program-here: No such file or directory"
    )


@pytest.mark.effect("Model", "spec.resources.memory")
@pytest.mark.slow
def test_a_build_runs_within_its_resources(tmp_path: Path) -> None:
    """The project's own process reports the limits it ran under; a build whose memory
    cannot hold it fails with the cause, and a GPU or more CPUs than the plane has are
    refused before anything runs."""
    runtime, context = _build_in(tmp_path, "regressor")
    resources = {"cpu": "500m", "memory": "2Gi"}
    built = runtime.apply(_command("regressor", resources=resources), context)
    assert built.phase == "Ready", built.message
    tags = _mlflow_run(runtime.env.tracking_uri, str(built.observed["runId"])).data.tags
    assert (tags["limits.memory"], tags["limits.cpus"]) == (str(2 * 1024 * MIB), "1")
    assert tags["limits.gpus"] == ""

    with pytest.raises(_mlflow.MlflowError) as starved:  # the agent reports it Failed
        runtime.apply(_command("regressor", resources={"memory": "64Mi"}), context)
    assert "memory allocation" in str(starved.value).lower()  # OpenBLAS's, or MemoryError

    for asked, why in (({"gpu": 1}, "schedules no GPUs"), ({"cpu": "64"}, "needs 64 CPUs")):
        refused = runtime.apply(_command("regressor", resources=asked), context)
        assert refused.phase == "Blocked" and not refused.observed.get("runId")  # nothing ran
        assert why in refused.message


@pytest.mark.effect("Deployment", "spec.resources.memory", "spec.resources.cpu")
def test_each_replica_runs_within_the_deployments_resources(tmp_path: Path) -> None:
    spec = DeploymentSpec.model_validate(
        {
            "model": {"name": "m"},
            "planeSelector": {},
            "resources": {"cpu": "500m", "memory": "300Mi"},
        }
    )
    template = desired.build(
        "m", spec, command="c", attempt="a", port=0, version="1", model_dir=tmp_path,
        python=sys.executable,
    ).template()  # fmt: skip
    replica = replicas.start(template, tmp_path / "logs")
    try:
        limits_file = Path(f"/proc/{replica.process.pid}/limits")
        deadline = time.monotonic() + 10
        cmdline = Path(f"/proc/{replica.process.pid}/cmdline")
        while cmdline.read_text().split("\0")[1:3] != ["-m", "uvicorn"]:  # exec'd twice
            assert time.monotonic() < deadline, "the launcher never became the server"
            time.sleep(0.01)
        data = next(line for line in limits_file.read_text().splitlines() if "data" in line)
        assert data.split()[3:5] == [str(300 * MIB), str(300 * MIB)]
        assert len(os.sched_getaffinity(replica.process.pid)) == 1
    finally:
        replica.process.kill()
        replica.process.wait()


@pytest.mark.effect("Deployment", "spec.resources.gpu")
def test_a_deployment_asking_for_a_gpu_is_refused_and_nothing_starts(tmp_path: Path) -> None:
    repo = gitrepo.GitRepo(init_repo(tmp_path / "repo"))
    env = LocalEnv(repo, "sqlite:///unused.db", tmp_path / "state", tmp_path / "data")
    body = {
        "apiVersion": "gitplane.dev/v1alpha1",
        "kind": "Deployment",
        "metadata": {"name": "gpu"},
        "spec": {"model": {"name": "m"}, "planeSelector": {}, "resources": {"gpu": 1}},
        "resolved": {"model": {"name": "m", "version": "1", "registryVersion": 1,
                               "digest": "sha256:" + "0" * 64, "uri": "models:/m/1"}},
    }  # fmt: skip
    text = json.dumps(body, sort_keys=True)
    command = signed.Command(
        id="Deployment/gpu", action="apply", kind="Deployment", name="gpu", spec=text,
        digest=envelope.digest(text.encode()),
    )  # fmt: skip
    context = ApplyContext("0" * 40, tmp_path, now=NOW)
    refused = serving.apply(command, context, env)
    assert (refused.phase, refused.message) == (
        "Blocked",
        "Deployment/gpu: resources.gpu 1: the local runtime schedules no GPUs "
        "(use a plane whose runtime does, or gpu: 0)",
    )
    assert serving.observe(command, refused, context, env) == refused
    assert not (env.state_dir / "deployments").exists()  # no desired.json, no supervisor
