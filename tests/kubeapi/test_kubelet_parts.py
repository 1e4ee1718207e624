"""The kubelet mode's pure parts as tables: mount paths rewritten, termination messages,
a container's environment, and a Job's status and new pods from its pods' phases."""

from __future__ import annotations

import base64
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from tests.clock import NOW
from tests.kubeapi import containers, jobs, realjobs
from tests.kubeapi.api import timestamp

MOUNTS = {"/workspace": Path("/node/ws"), "/workspace/cache": Path("/node/cache")}
REWRITES = {
    "the-mount-itself": ("/workspace", "/node/ws"),
    "a-path-under-it": ("/workspace/project", "/node/ws/project"),
    "after-an-equals-sign": ("--into=/workspace", "--into=/node/ws"),
    "the-longest-mount-wins": ("/workspace/cache/x", "/node/cache/x"),
    "a-longer-name-is-not-it": ("/workspaces", "/workspaces"),
    "not-inside-another-path": ("/data/workspace", "/data/workspace"),
    "every-occurrence": ("/workspace:/workspace/cache", "/node/ws:/node/cache"),
}


@pytest.mark.parametrize(("text", "expected"), REWRITES.values(), ids=REWRITES.keys())
def test_mount_paths_are_rewritten_to_their_host_directories(text: str, expected: str) -> None:
    assert containers.rewrite(text, MOUNTS) == expected


def test_a_host_path_is_never_rewritten_again() -> None:
    assert containers.rewrite("/tmp/a", {"/tmp": Path("/tmp/node/tmp")}) == "/tmp/node/tmp/a"


WORKING_DIRS = {
    "in-a-volume": ("/workspace/project", Path("/node/ws/project")),
    "the-images-own": ("/app", Path("/pod/rootfs/app")),
    "the-root": ("/", Path("/pod/rootfs")),
}


@pytest.mark.parametrize(("asked", "expected"), WORKING_DIRS.values(), ids=WORKING_DIRS.keys())
def test_the_working_directory_is_never_outside_the_kubelets_root(
    asked: str, expected: Path
) -> None:
    assert containers.working_dir(asked, MOUNTS, Path("/pod/rootfs")) == expected


def state(kind: str, code: int = 0) -> dict[str, Any]:
    inner = {"exitCode": code} if kind == "terminated" else {}
    return {"name": "c", "state": {kind: inner}}


CONDITIONS = {
    "initializing": (
        {"phase": "Pending", "initContainerStatuses": [state("running")]},
        {"Initialized": "ContainersNotInitialized", "Ready": "ContainersNotReady"},
    ),
    "running": (
        {"phase": "Running", "initContainerStatuses": [state("terminated")]}
        | {"containerStatuses": [state("running")]},
        {"Initialized": "", "Ready": ""},
    ),
    "completed": (
        {"phase": "Succeeded", "containerStatuses": [state("terminated")]},
        {"Initialized": "", "Ready": "PodCompleted"},
    ),
}


@pytest.mark.parametrize(("status", "expected"), CONDITIONS.values(), ids=CONDITIONS.keys())
def test_a_pods_conditions_follow_its_containers(
    status: dict[str, Any], expected: dict[str, str]
) -> None:
    made = {c["type"]: c.get("reason", "") for c in containers.pod_conditions(status, now="t")}
    assert {k: made[k] for k in expected} == expected
    assert made["PodScheduled"] == ""


def test_a_conditions_transition_time_moves_only_with_its_status() -> None:
    running = {"phase": "Running", "containerStatuses": [state("running")]}
    first = containers.pod_conditions(running, now="t1")
    again = containers.pod_conditions({**running, "conditions": first}, now="t2")
    ended = {"phase": "Succeeded", "containerStatuses": [state("terminated")], "conditions": again}
    last = {c["type"]: c["lastTransitionTime"] for c in containers.pod_conditions(ended, now="t3")}
    assert {c["lastTransitionTime"] for c in again} == {"t1"}
    assert last == {
        "PodScheduled": "t1",
        "Initialized": "t1",
        "ContainersReady": "t3",
        "Ready": "t3",
    }


LOG = b"".join(f"line {i}\n".encode() for i in range(100))
MESSAGES = {
    "the-file": (b"bad input", LOG, 3, "File", "bad input"),
    "truncated-to-4096-bytes": (b"x" * 5000, b"", 1, "File", "x" * 4096),
    "no-file-no-fallback": (b"", LOG, 1, "File", ""),
    "fallback-takes-80-lines": (
        b"",
        LOG,
        1,
        "FallbackToLogsOnError",
        "".join(f"line {i}\n" for i in range(20, 100)),
    ),
    "fallback-takes-2048-bytes": (b"", b"y" * 3000, 1, "FallbackToLogsOnError", "y" * 2048),
    "fallback-only-on-error": (b"", LOG, 0, "FallbackToLogsOnError", ""),
    "the-file-before-the-log": (b"why", LOG, 1, "FallbackToLogsOnError", "why"),
}


@pytest.mark.parametrize(
    ("written", "log", "code", "policy", "expected"), MESSAGES.values(), ids=MESSAGES.keys()
)
def test_the_termination_message(
    written: bytes, log: bytes, code: int, policy: str, expected: str
) -> None:
    assert containers.message(written, log, exit_code=code, policy=policy) == expected


POD = {"metadata": {"name": "p-0-0", "namespace": "ml", "annotations": {jobs.INDEX: "2"}}}
STORED = {("Secret", "s"): {"A": "1", "B": "2"}, ("ConfigMap", "c"): {"C": "3"}}


def lookup(kind: str, name: str) -> dict[str, str] | None:
    return STORED.get((kind, name))


def ref(kind: str, name: str, key: str, **extra: Any) -> dict[str, Any]:
    return {"valueFrom": {kind: {"name": name, "key": key, **extra}}}


INDEX_FIELD = f"metadata.annotations['{jobs.INDEX}']"
ENVIRONMENTS = {
    "plain": ({"env": [{"name": "X", "value": "v"}]}, {"X": "v"}),
    "secret-key": ({"env": [{"name": "X", **ref("secretKeyRef", "s", "B")}]}, {"X": "2"}),
    "config-map-key": ({"env": [{"name": "X", **ref("configMapKeyRef", "c", "C")}]}, {"X": "3"}),
    "optional-missing": (
        {"env": [{"name": "X", **ref("secretKeyRef", "gone", "A", optional=True)}]},
        {},
    ),
    "env-from-with-prefix": (
        {"envFrom": [{"secretRef": {"name": "s"}, "prefix": "S_"}]},
        {"S_A": "1", "S_B": "2"},
    ),
    "env-wins-over-env-from": (
        {"envFrom": [{"secretRef": {"name": "s"}}], "env": [{"name": "A", "value": "mine"}]},
        {"A": "mine", "B": "2"},
    ),
    "field-refs": (
        {
            "env": [
                {"name": "N", "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}},
                {"name": "I", "valueFrom": {"fieldRef": {"fieldPath": INDEX_FIELD}}},
            ]
        },
        {"N": "ml", "I": "2"},
    ),
}


@pytest.mark.parametrize(("container", "expected"), ENVIRONMENTS.values(), ids=ENVIRONMENTS.keys())
def test_a_containers_environment(container: dict[str, Any], expected: dict[str, str]) -> None:
    assert containers.environment(container, POD, lookup) == expected


MISSING = {
    "secret": ({"envFrom": [{"secretRef": {"name": "gone"}}]}, 'secret "gone" not found'),
    "key": (
        {"env": [{"name": "X", **ref("secretKeyRef", "s", "Z")}]},
        "couldn't find key Z in Secret s",
    ),
}


@pytest.mark.parametrize(("container", "expected"), MISSING.values(), ids=MISSING.keys())
def test_a_missing_reference_is_a_config_error(container: dict[str, Any], expected: str) -> None:
    with pytest.raises(containers.ConfigError, match=expected):
        containers.environment(container, POD, lookup)


def test_secret_data_is_base64_decoded_and_string_data_read_as_is() -> None:
    secret = {"data": {"A": base64.b64encode(b"one").decode()}, "stringData": {"B": "two"}}
    assert containers.secret_data(secret) == {"A": "one", "B": "two"}


def test_an_indexed_jobs_pods_get_job_completion_index_in_every_container() -> None:
    template = {"spec": {"initContainers": [{"name": "i"}], "containers": [{"name": "c"}]}}
    job = {
        "metadata": {"name": "j", "uid": "u"},
        "spec": {"completionMode": "Indexed", "template": template},
    }
    made = jobs.pod(job, 1, 0)["spec"]
    for container in [*made["initContainers"], *made["containers"]]:
        (variable,) = container["env"]
        assert variable["name"] == "JOB_COMPLETION_INDEX"
        assert variable["valueFrom"]["fieldRef"]["fieldPath"] == INDEX_FIELD
    assert "env" not in template["spec"]["containers"][0]  # the Job's template is untouched


def job(*, indexed: bool = False, completions: int = 3, backoff: int = 9, **spec: Any) -> Any:
    return {
        "metadata": {"name": "j"},
        "spec": {
            "completions": completions,
            "parallelism": completions,
            "backoffLimit": backoff,
            "completionMode": "Indexed" if indexed else "NonIndexed",
            **spec,  # parallelism=, backoffLimitPerIndex=...
        },
        "status": {"startTime": timestamp(NOW)},
    }


def pod(index: int, phase: str, attempt: int = 0) -> dict[str, Any]:
    return {"metadata": {"name": f"j-{index}-{attempt}"}, "status": {"phase": phase}}


LATER = NOW + timedelta(seconds=30)
STATUSES = {
    "running": (job(), [pod(0, "Running"), pod(1, "Pending"), pod(2, "Running")], None, 0),
    "indexed-one-failed": (
        job(indexed=True),
        [pod(0, "Succeeded"), pod(1, "Failed"), pod(2, "Succeeded")],
        None,
        1,
    ),
    "past-the-backoff-limit": (
        job(backoff=0),
        [pod(0, "Failed"), pod(1, "Running"), pod(2, "Running")],
        "BackoffLimitExceeded",
        1,
    ),
    "every-completion": (
        job(indexed=True),
        [pod(0, "Succeeded"), pod(1, "Failed"), pod(1, "Succeeded", 1), pod(2, "Succeeded")],
        "CompletionsReached",
        1,
    ),
    "an-index-past-its-own-limit-waits-for-the-others": (
        job(indexed=True, backoffLimitPerIndex=0),
        [pod(0, "Succeeded"), pod(1, "Failed"), pod(2, "Running")],
        None,
        1,
    ),
    "failed-indexes-fail-the-job-once-every-index-ended": (
        job(indexed=True, backoffLimitPerIndex=1),
        [
            *(pod(0, "Failed"), pod(0, "Failed", 1)),
            *(pod(1, "Failed"), pod(1, "Succeeded", 1)),
            pod(2, "Succeeded"),
        ],
        "FailedIndexes",
        3,
    ),
    "past-max-failed-indexes-at-once": (
        job(indexed=True, backoffLimitPerIndex=0, maxFailedIndexes=0),
        [pod(0, "Failed"), pod(1, "Running"), pod(2, "Running")],
        "MaxFailedIndexesExceeded",
        1,
    ),
    "the-job-wide-limit-still-counts": (
        job(indexed=True, backoff=1, backoffLimitPerIndex=1),
        [pod(0, "Failed"), pod(1, "Failed"), pod(2, "Running")],
        "BackoffLimitExceeded",
        2,
    ),
    "past-the-deadline": (
        job(activeDeadlineSeconds=30),
        [pod(0, "Running")],
        "DeadlineExceeded",
        0,
    ),
}


@pytest.mark.parametrize(
    ("the_job", "pods", "ended", "failed"), STATUSES.values(), ids=STATUSES.keys()
)
def test_a_jobs_status_follows_its_pods(
    the_job: Any, pods: list[Any], ended: str | None, failed: int
) -> None:
    status = realjobs.observed_status(the_job, pods, now=LATER)
    assert [c["reason"] for c in status.get("conditions", [])] == ([ended] if ended else [])
    assert status.get("failed", 0) == failed
    if ended and ended != "CompletionsReached":
        assert status["active"] == 0


def test_indexed_completions_and_failures_are_ranges() -> None:
    pods = [pod(0, "Succeeded"), pod(2, "Succeeded"), pod(1, "Failed"), pod(3, "Failed")]
    the_job = job(indexed=True, completions=4, backoffLimitPerIndex=0)
    status = realjobs.observed_status(the_job, pods, now=LATER)
    assert (status["succeeded"], status["completedIndexes"]) == (2, "0,2")
    assert status["failedIndexes"] == "1,3"


NEW_PODS = {
    "indexed-failed-index-again": (
        job(indexed=True),
        [pod(0, "Succeeded"), pod(1, "Failed"), pod(2, "Running")],
        [1],
    ),
    "indexed-nothing-missing": (job(indexed=True), [pod(0, "Running"), pod(1, "Pending")], [2]),
    "a-failed-index-is-not-retried": (
        job(indexed=True, backoffLimitPerIndex=0),
        [pod(0, "Failed"), pod(1, "Failed"), pod(1, "Succeeded", 1)],
        [2],
    ),
    "an-index-within-its-limit-is": (
        job(indexed=True, backoffLimitPerIndex=1),
        [pod(0, "Failed"), pod(1, "Running"), pod(2, "Running")],
        [0],
    ),
    "indexed-at-most-parallelism": (
        job(indexed=True, completions=5, parallelism=2),
        [pod(0, "Succeeded"), pod(1, "Running")],
        [2],
    ),
    "non-indexed-two-left": (job(), [pod(0, "Succeeded"), pod(1, "Failed")], [0, 1]),
    "non-indexed-all-busy": (job(), [pod(0, "Running"), pod(1, "Running"), pod(2, "Running")], []),
}


@pytest.mark.parametrize(("the_job", "pods", "expected"), NEW_PODS.values(), ids=NEW_PODS.keys())
def test_the_pods_a_job_starts(the_job: Any, pods: list[Any], expected: list[int]) -> None:
    assert realjobs.to_start(the_job, pods) == expected
