"""The double's kubelet mode, through the official client: Job pods run for real as local
processes, their exit codes decide the pods' phases and the Jobs' status, the pod log
endpoint serves what they printed, and a deleted Job or a passed deadline stops them.
Double only: on a real cluster the same Jobs need images, not this machine's interpreter."""

from __future__ import annotations

import base64
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import pytest
from kubernetes import client, config

from tests import clock as test_clock
from tests.conftest import ROOT
from tests.kubeapi.conftest import apply
from tests.kubeapi.server import KubeApiDouble, ManualClock

NS = "default"
T = TypeVar("T")
PATIENCE = 30.0
"""Seconds a check waits for a local process at most (they take a fraction of one)."""


@dataclass(frozen=True)
class World:
    double: KubeApiDouble
    api_client: client.ApiClient

    @property
    def batch(self) -> client.BatchV1Api:
        return client.BatchV1Api(self.api_client)

    @property
    def core(self) -> client.CoreV1Api:
        return client.CoreV1Api(self.api_client)

    def run(self, name: str, **spec: Any) -> client.V1Job:
        """Apply a Job and step the controllers until it finishes."""
        apply(self.batch.patch_namespaced_job, name, NS, job(name, **spec))
        return self.until(name, finished)

    def until(self, name: str, check: Callable[[client.V1Job], bool]) -> client.V1Job:
        def stepped() -> client.V1Job | None:
            self.double.controllers.step()
            found = self.batch.read_namespaced_job(name, NS)
            return found if check(found) else None

        return eventually(stepped)

    def pods(self, job_name: str) -> list[client.V1Pod]:
        found = self.core.list_namespaced_pod(NS, label_selector=f"job-name={job_name}").items
        return sorted(found, key=lambda p: p.metadata.name)


def eventually(check: Callable[[], T | None]) -> T:
    deadline = time.monotonic() + PATIENCE
    while (found := check()) is None:
        assert time.monotonic() < deadline, "the kubelet's processes did not get there"
        time.sleep(0.02)
    return found


def finished(job: client.V1Job) -> bool:
    return any(c.status == "True" for c in job.status.conditions or [])


def reason(job: client.V1Job) -> tuple[str, str]:
    (ended,) = [c for c in job.status.conditions or [] if c.status == "True"]
    return ended.type, ended.reason


def python(code: str, **container: Any) -> dict[str, Any]:
    """A container running ``code`` with ``python``: this environment's, whatever the image."""
    return {
        "name": "step",
        "image": "registry.example/step:1",
        "args": ["python", "-c", code],
        **container,
    }


def job(
    name: str,
    *,
    containers: list[dict[str, Any]],
    init: list[dict[str, Any]] | None = None,
    volumes: list[dict[str, Any]] | None = None,
    **spec: Any,
) -> dict[str, Any]:
    pod = {"containers": containers, "restartPolicy": "Never", "volumes": volumes or []}
    if init:
        pod["initContainers"] = init
    body = {"backoffLimit": 0, "template": {"spec": pod}, **spec}
    body = {k: v for k, v in body.items() if v is not None}  # None: the server's default
    return {"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": name}, "spec": body}


def partitions(code: str, count: int) -> dict[str, Any]:
    """An Indexed Job's spec: ``count`` partitions at once, each running ``code``."""
    return {
        "containers": [python(code)],
        "completions": count,
        "parallelism": count,
        "completionMode": "Indexed",
    }


def is_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    with KubeApiDouble(kubelet=True, kubelet_root=tmp_path / "node") as double:
        api_client = config.new_client_from_config(
            config_file=str(double.write_kubeconfig(tmp_path / "kubeconfig"))
        )
        with api_client:
            yield World(double, api_client)
        assert double.node is not None
    assert double.node.running() == []


def test_a_pod_that_exits_0_completes_its_job_after_its_init_container(
    world: World, tmp_path: Path
) -> None:
    fetch = python("open('/workspace/source.txt', 'w').write('fetched')", name="fetch")
    made = tmp_path / "made.txt"
    work = python(
        f"import os; open({str(made)!r}, 'w').write(open('source.txt').read() + ' ' + os.getcwd())",
        workingDir="/workspace/project/..",
        volumeMounts=[{"name": "workspace", "mountPath": "/workspace"}],
    )
    fetch["volumeMounts"] = [{"name": "workspace", "mountPath": "/workspace"}]
    volumes = [{"name": "workspace", "emptyDir": {}}]
    done = world.run("build", containers=[work], init=[fetch], volumes=volumes)
    assert reason(done) == ("Complete", "CompletionsReached")
    assert (done.status.succeeded, done.status.failed) == (1, None)
    text, cwd = made.read_text().split(" ")
    assert text == "fetched"
    assert Path(cwd).is_relative_to(tmp_path / "node")  # the emptyDir, a host directory
    (pod,) = world.pods("build")
    assert pod.status.phase == "Succeeded"
    (state,) = pod.status.container_statuses
    assert (state.state.terminated.exit_code, state.state.terminated.reason) == (0, "Completed")
    (init,) = pod.status.init_container_statuses
    assert init.state.terminated.exit_code == 0
    ready = {c.type: (c.status, c.reason) for c in pod.status.conditions}
    assert ready["Ready"] == ("False", "PodCompleted")
    assert ready["Initialized"] == ("True", None)


def test_an_exit_code_fails_the_pod_with_its_termination_message_until_the_backoff_limit(
    world: World,
) -> None:
    code = "open('/dev/termination-log', 'w').write('bad input' + 'x' * 5000); raise SystemExit(3)"
    failed = world.run("train", containers=[python(code)], backoffLimit=1)
    assert reason(failed) == ("Failed", "BackoffLimitExceeded")
    assert (failed.status.failed, failed.status.succeeded) == (2, 0)
    pods = world.pods("train")
    assert [p.status.phase for p in pods] == ["Failed", "Failed"]
    ended = pods[0].status.container_statuses[0].state.terminated
    assert (ended.exit_code, ended.reason) == (3, "Error")
    assert ended.message.startswith("bad inputxxx") and len(ended.message) == 4096


def test_fallback_to_logs_on_error_takes_the_log_tail(world: World) -> None:
    code = "import sys; print(*range(100), sep='\\n'); sys.exit(1)"
    step = python(code, terminationMessagePolicy="FallbackToLogsOnError")
    world.run("tail", containers=[step])
    (pod,) = world.pods("tail")
    message = pod.status.container_statuses[0].state.terminated.message
    assert message.splitlines() == [str(i) for i in range(20, 100)]  # the last 80 lines


def test_init_containers_termination_messages_stay_in_the_pod_status(world: World) -> None:
    """As a kubelet reports them: each init container's own file (its
    ``terminationMessagePath``), kept in ``initContainerStatuses`` once the pod ended; what a
    build's agent reads its MLflow run from."""
    said = python(
        "open('/tmp/said', 'w').write('{\"runId\": \"abc\"}')",
        name="stage",
        terminationMessagePath="/tmp/said",
    )
    quiet = python("pass", name="fetch")
    world.run("build", containers=[python("open('/dev/termination-log', 'w').write('ran')")],
              init=[quiet, said])  # fmt: skip
    (pod,) = world.pods("build")
    assert pod.status.phase == "Succeeded"
    fetch, stage = pod.status.init_container_statuses
    assert (fetch.name, fetch.state.terminated.message) == ("fetch", None)
    assert (stage.name, stage.state.terminated.exit_code) == ("stage", 0)
    assert stage.state.terminated.message == '{"runId": "abc"}'
    assert pod.status.container_statuses[0].state.terminated.message == "ran"


def test_a_failing_init_container_stops_the_pod(world: World, tmp_path: Path) -> None:
    never = tmp_path / "never"
    fetch = python("raise SystemExit(1)", name="fetch")
    main = python(f"open({str(never)!r}, 'w')")
    failed = world.run("build", containers=[main], init=[fetch])
    assert reason(failed) == ("Failed", "BackoffLimitExceeded")
    assert not never.exists()
    (pod,) = world.pods("build")
    assert pod.status.phase == "Failed"
    assert pod.status.init_container_statuses[0].state.terminated.exit_code == 1
    assert pod.status.container_statuses[0].state.waiting.reason == "PodInitializing"


def test_an_indexed_job_runs_each_index_once(world: World, tmp_path: Path) -> None:
    code = (
        f"import os; open(os.path.join({str(tmp_path)!r}, os.environ['JOB_COMPLETION_INDEX']), 'w')"
    )
    done = world.run("partitions", **partitions(code, 3))
    assert reason(done) == ("Complete", "CompletionsReached")
    assert (done.status.succeeded, done.status.completed_indexes) == (3, "0-2")
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.isdigit()) == ["0", "1", "2"]


def test_env_comes_from_values_secrets_and_the_pod(world: World) -> None:
    secret = {
        "metadata": {"name": "source"},
        "data": {"TOKEN": base64.b64encode(b"s3cret").decode()},
    }
    world.core.create_namespaced_secret(NS, secret)
    names = ("TOKEN", "KEY", "PLAIN", "POD")
    code = f"import os; print(*(os.environ[n] for n in {names!r}))"
    step = python(
        code,
        envFrom=[{"secretRef": {"name": "source"}}],
        env=[
            {"name": "PLAIN", "value": "plain"},
            {"name": "KEY", "valueFrom": {"secretKeyRef": {"name": "source", "key": "TOKEN"}}},
            {"name": "POD", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
        ],
    )
    world.run("env", containers=[step])
    (pod,) = world.pods("env")
    logged = world.core.read_namespaced_pod_log(pod.metadata.name, NS)
    assert logged == f"s3cret s3cret plain {pod.metadata.name}\n"


def test_a_missing_secret_keeps_the_container_waiting(world: World) -> None:
    step = python("pass", envFrom=[{"secretRef": {"name": "absent"}}])
    apply(world.batch.patch_namespaced_job, "env", NS, job("env", containers=[step]))

    def waiting() -> str | None:
        world.double.controllers.step()
        pods = world.pods("env")
        statuses = pods[0].status.container_statuses if pods else None
        state = statuses[0].state.waiting if statuses else None
        return state.message if state and state.reason == "CreateContainerConfigError" else None

    assert eventually(waiting) == 'secret "absent" not found'


def test_the_pod_log_endpoint_serves_a_containers_output(world: World) -> None:
    step = python("print(*range(5), sep='\\n')")
    world.run("logs", containers=[step])
    (pod,) = world.pods("logs")
    name = pod.metadata.name
    assert world.core.read_namespaced_pod_log(name, NS, container="step") == "0\n1\n2\n3\n4\n"
    assert world.core.read_namespaced_pod_log(name, NS, tail_lines=2) == "3\n4\n"
    with pytest.raises(client.ApiException) as unknown:
        world.core.read_namespaced_pod_log(name, NS, container="other")
    assert unknown.value.status == 400
    with pytest.raises(client.ApiException) as missing:
        world.core.read_namespaced_pod_log("nothing", NS)
    assert missing.value.status == 404


def _started(world: World, tmp_path: Path, name: str, **spec: Any) -> int:
    """Apply a Job whose pod writes its pid and sleeps; its pid once it runs."""
    pid = tmp_path / f"{name}.pid"
    code = f"import os, time; open({str(pid)!r}, 'w').write(str(os.getpid())); time.sleep(600)"
    apply(world.batch.patch_namespaced_job, name, NS, job(name, containers=[python(code)], **spec))

    def running() -> int | None:
        world.double.controllers.step()
        return int(pid.read_text()) if pid.exists() and pid.read_text() else None

    return eventually(running)


def test_the_active_deadline_kills_the_pod(world: World, tmp_path: Path) -> None:
    pid = _started(world, tmp_path, "slow", activeDeadlineSeconds=60)
    assert isinstance(world.double.clock, ManualClock)
    world.double.clock.advance(61)  # on the double's clock: no test waits a minute
    failed = world.until("slow", finished)
    assert reason(failed) == ("Failed", "DeadlineExceeded")
    assert eventually(lambda: not is_alive(pid) or None)
    assert world.pods("slow") == []


def test_deleting_a_job_kills_its_process(world: World, tmp_path: Path) -> None:
    pid = _started(world, tmp_path, "doomed")
    world.batch.delete_namespaced_job("doomed", NS, propagation_policy="Background")
    assert eventually(lambda: not is_alive(pid) or None)


def test_stopping_the_double_kills_what_runs(tmp_path: Path) -> None:
    with KubeApiDouble(kubelet=True) as double:
        api_client = config.new_client_from_config(
            config_file=str(double.write_kubeconfig(tmp_path / "kubeconfig"))
        )
        with api_client:
            pid = _started(World(double, api_client), tmp_path, "left")
        root = double.node.root if double.node else None
    assert not is_alive(pid)
    assert root is not None and not root.exists()


def test_a_cron_jobs_job_runs_on_the_doubles_clock(world: World, tmp_path: Path) -> None:
    made = tmp_path / "ran"
    step = python(f"open({str(made)!r}, 'w')")
    pod = {"containers": [step], "restartPolicy": "Never"}
    spec = {"schedule": "*/5 * * * *", "jobTemplate": {"spec": {"template": {"spec": pod}}}}
    cron = {
        "apiVersion": "batch/v1",
        "kind": "CronJob",
        "metadata": {"name": "hourly"},
        "spec": spec,
    }
    apply(world.batch.patch_namespaced_cron_job, "hourly", NS, cron)
    assert isinstance(world.double.clock, ManualClock)
    world.double.clock.advance(300)

    def ran() -> bool | None:
        world.double.controllers.step()
        return made.exists() or None

    assert eventually(ran)


def test_deleting_a_pod_kills_its_process_and_the_job_replaces_it(
    world: World, tmp_path: Path
) -> None:
    pid = _started(world, tmp_path, "replaced", backoffLimit=0)
    (pod,) = world.pods("replaced")
    world.core.delete_namespaced_pod(pod.metadata.name, NS)
    assert eventually(lambda: not is_alive(pid) or None)

    def replaced() -> list[str] | None:
        world.double.controllers.step()
        uids = [p.metadata.uid for p in world.pods("replaced")]
        return uids if uids and pod.metadata.uid not in uids else None

    assert len(eventually(replaced)) == 1  # a new pod (of the same name: the double's names)


def test_python_m_tests_kubeapi_kubelet_runs_jobs(tmp_path: Path) -> None:
    made = tmp_path / "ran"
    command = [sys.executable, "-m", "tests.kubeapi", "--port", "0", "--kubelet"]
    command += ["--controllers-every", "0.05", "--kubeconfig", str(tmp_path / "kc")]
    started = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, text=True)
    try:
        assert started.stdout is not None
        kubeconfig = started.stdout.readline().strip()
        with config.new_client_from_config(config_file=kubeconfig) as api_client:
            batch = client.BatchV1Api(api_client)
            step = python(f"open({str(made)!r}, 'w').write('done')")
            apply(batch.patch_namespaced_job, "once", NS, job("once", containers=[step]))

            def ended_job() -> client.V1Job | None:
                found = batch.read_namespaced_job("once", NS)
                return found if finished(found) else None

            ended = eventually(ended_job)
        assert reason(ended) == ("Complete", "CompletionsReached")
        assert made.read_text() == "done"
    finally:
        started.terminate()
        assert started.wait(timeout=10) == 0
        started.stdout.close()


def test_pods_start_from_the_environment_the_double_is_given(tmp_path: Path) -> None:
    """``tests.clock.env_at``: the pods' processes read the test's clock, not today's."""
    with KubeApiDouble(kubelet=True, kubelet_env=test_clock.env_at(test_clock.NOW)) as double:
        api_client = config.new_client_from_config(
            config_file=str(double.write_kubeconfig(tmp_path / "kubeconfig"))
        )
        with api_client:
            world = World(double, api_client)
            world.run("clock", containers=[python("import time; print(int(time.time()))")])
            (pod,) = world.pods("clock")
            printed = int(world.core.read_namespaced_pod_log(pod.metadata.name, NS))
    assert abs(printed - test_clock.NOW.timestamp()) < PATIENCE


def test_an_indexed_job_retries_each_index_within_its_own_limit(
    world: World, tmp_path: Path
) -> None:
    """``backoffLimitPerIndex``: index 1 fails twice and is given up; 0 and 2 complete."""
    code = "import os, sys; sys.exit(os.environ['JOB_COMPLETION_INDEX'] == '1')"
    failed = world.run(
        "partitions", **partitions(code, 3), backoffLimit=None, backoffLimitPerIndex=1
    )
    assert reason(failed) == ("Failed", "FailedIndexes")
    status = failed.status
    assert (status.completed_indexes, status.failed_indexes, status.failed) == ("0,2", "1", 2)


def test_a_claim_outlives_its_pod_and_config_files_name_it_by_its_mount_path(
    world: World,
) -> None:
    """A feature job writes its offline store to a claim; the next pod reads it there, the
    path given in a ConfigMap-mounted file; a binary Secret key comes out byte for byte."""
    key = bytes(range(256))
    world.core.create_namespaced_config_map(
        NS, {"metadata": {"name": "conf"}, "data": {"store": "/offline/table.csv"}}
    )
    world.core.create_namespaced_secret(
        NS, {"metadata": {"name": "key"}, "data": {"k": base64.b64encode(key).decode()}}
    )
    volumes = [
        {"name": "offline", "persistentVolumeClaim": {"claimName": "store"}},
        {"name": "conf", "configMap": {"name": "conf"}},
        {"name": "key", "secret": {"secretName": "key"}},
    ]
    mounts = [
        {"name": "offline", "mountPath": "/offline"},
        {"name": "conf", "mountPath": "/etc/conf"},
        {"name": "key", "mountPath": "/etc/key"},
    ]
    store = "open(open('/etc/conf/store').read(), {mode!r})"
    write = python(f"{store.format(mode='w')}.write('a,b')", volumeMounts=mounts)
    world.run("write", containers=[write], volumes=volumes)
    read = f"print({store.format(mode='r')}.read(), open('/etc/key/k', 'rb').read() == {key!r})"
    done = world.run("read", containers=[python(read, volumeMounts=mounts)], volumes=volumes)
    assert reason(done) == ("Complete", "CompletionsReached")
    (pod,) = world.pods("read")
    assert world.core.read_namespaced_pod_log(pod.metadata.name, NS) == "a,b True\n"


def test_following_a_log_answers_once_the_container_ended(world: World, tmp_path: Path) -> None:
    go = tmp_path / "go"
    wait = f"while not os.path.exists({str(go)!r}): time.sleep(0.01)"
    code = f"import os, time\nprint('1', flush=True)\n{wait}\nprint('2')"
    apply(world.batch.patch_namespaced_job, "waits", NS, job("waits", containers=[python(code)]))

    def printed() -> str | None:
        world.double.controllers.step()
        pods = world.pods("waits")
        running = pods and pods[0].status.phase == "Running"
        name = pods[0].metadata.name if running else ""
        return name if name and world.core.read_namespaced_pod_log(name, NS) == "1\n" else None

    name = eventually(printed)
    with ThreadPoolExecutor(1) as pool:
        followed = pool.submit(world.core.read_namespaced_pod_log, name, NS, follow=True)
        eventually(lambda: any(r.query.get("follow") for r in world.double.requests) or None)
        go.touch()  # the follow request is in: only now may the container go on
        assert followed.result(timeout=PATIENCE) == "1\n2\n"


def test_what_a_container_leaves_running_ends_with_it(world: World, tmp_path: Path) -> None:
    child = tmp_path / "child.pid"
    code = (
        "import subprocess, sys; "
        "c = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(600)']); "
        f"open({str(child)!r}, 'w').write(str(c.pid))"
    )
    assert reason(world.run("parent", containers=[python(code)]))[0] == "Complete"
    assert eventually(lambda: not is_alive(int(child.read_text())) or None)


def test_a_program_not_on_the_path_fails_to_start(world: World) -> None:
    missing = {"name": "step", "image": "x", "command": ["no-such-program"], "args": ["a"]}
    failed = world.run("missing", containers=[missing])
    assert reason(failed) == ("Failed", "BackoffLimitExceeded")
    (pod,) = world.pods("missing")
    ended = pod.status.container_statuses[0].state.terminated
    assert ended.exit_code == 128
    assert "no-such-program" in ended.message


def test_with_its_controllers_stepping_on_their_own_a_job_just_runs(tmp_path: Path) -> None:
    """``step_every`` and a clock running in real time from the test's ``now``
    (``tests.clock.Running``): how an end-to-end test runs real work on the double."""
    made = tmp_path / "ran"
    clock = test_clock.Running(test_clock.NOW)
    with KubeApiDouble(kubelet=True, clock=clock).step_every(0.02) as double:
        api_client = config.new_client_from_config(
            config_file=str(double.write_kubeconfig(tmp_path / "kubeconfig"))
        )
        with api_client:
            batch = client.BatchV1Api(api_client)
            step = python(f"open({str(made)!r}, 'w')")
            body = job("alone", containers=[step], activeDeadlineSeconds=600)
            apply(batch.patch_namespaced_job, "alone", NS, body)
            done = eventually(lambda: _finished(batch, "alone"))
    assert reason(done) == ("Complete", "CompletionsReached")
    assert made.exists()


def _finished(batch: client.BatchV1Api, name: str) -> client.V1Job | None:
    found = batch.read_namespaced_job(name, NS)
    return found if finished(found) else None


def test_without_the_kubelet_nothing_runs_and_logs_are_empty(tmp_path: Path) -> None:
    """The simulated mode stays the default: pods are only status, pods stay read-only."""
    made = tmp_path / "never"
    with KubeApiDouble() as double:
        api_client = config.new_client_from_config(
            config_file=str(double.write_kubeconfig(tmp_path / "kubeconfig"))
        )
        with api_client:
            world = World(double, api_client)
            done = world.run("simulated", containers=[python(f"open({str(made)!r}, 'w')")])
            (pod,) = world.pods("simulated")
            assert world.core.read_namespaced_pod_log(pod.metadata.name, NS) == ""
            with pytest.raises(client.ApiException) as refused:
                world.core.delete_namespaced_pod(pod.metadata.name, NS)
    assert reason(done) == ("Complete", "CompletionsReached")
    assert (double.node, made.exists(), refused.value.status) == (None, False, 405)
