"""Where the API-behaviour checks run: the test double (always), or the real cluster of
``$KUBECONFIG`` for the copies marked ``cluster`` (deselected unless asked for and set;
see README.md). Each check gets a namespace of its own, deleted afterwards."""

from __future__ import annotations

import os
import secrets
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client, config

from tests.kubeapi.server import KubeApiDouble

APPLY = "application/apply-patch+yaml"
CLUSTER_PATIENCE = 30.0
"""Seconds a check waits for a real cluster's garbage collector (the double is immediate)."""


@dataclass(frozen=True)
class Target:
    """An API server to check, a client for it and a fresh namespace on it."""

    kubeconfig: Path
    namespace: str
    api_client: client.ApiClient
    double: KubeApiDouble | None

    @property
    def core(self) -> client.CoreV1Api:
        return client.CoreV1Api(self.api_client)

    @property
    def apps(self) -> client.AppsV1Api:
        return client.AppsV1Api(self.api_client)

    @property
    def batch(self) -> client.BatchV1Api:
        return client.BatchV1Api(self.api_client)

    def compact(self) -> None:
        """Make old resourceVersions too old to watch from (a real cluster compacts by itself)."""
        if self.double is not None:
            self.double.compact()

    def eventually(self, check: Callable[[], bool]) -> bool:
        """``check()`` holds now (the double) or within a real cluster's patience."""
        deadline = time.monotonic() + (0 if self.double else CLUSTER_PATIENCE)
        while not check():
            if time.monotonic() > deadline:
                return False
            time.sleep(0.2)
        return True


@pytest.fixture(scope="module")
def double() -> Iterator[KubeApiDouble]:
    with KubeApiDouble() as started:
        yield started


@pytest.fixture(params=["double", pytest.param("cluster", marks=pytest.mark.cluster)])
def target(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Target]:
    double = request.getfixturevalue("double") if request.param == "double" else None
    if double is not None:
        kubeconfig = double.write_kubeconfig(tmp_path / "kubeconfig")
    else:
        kubeconfig = Path(os.environ["KUBECONFIG"])
    api_client = config.new_client_from_config(config_file=str(kubeconfig))
    namespace = f"kubeapi-{secrets.token_hex(4)}"
    core = client.CoreV1Api(api_client)
    core.create_namespace({"metadata": {"name": namespace}})
    try:
        yield Target(kubeconfig, namespace, api_client, double)
    finally:
        core.delete_namespace(namespace)
        api_client.close()


def apply(
    patch: Callable[..., Any],
    name: str,
    namespace: str,
    body: dict[str, Any],
    *,
    manager: str = "gitplane",
    force: bool = False,
) -> Any:
    """Server-side apply through one of the client's ``patch_namespaced_*`` methods."""
    forced = {"force": True} if force else {}
    return patch(name, namespace, body, field_manager=manager, _content_type=APPLY, **forced)


def deployment(
    name: str,
    *,
    replicas: int = 1,
    image: str = "registry.example/serve:1",
    labels: dict[str, str] | None = None,
) -> dict[str, Any]:
    """A Deployment as a runtime applies it: selector and template labels agree."""
    pod = {"containers": [{"name": "serve", "image": image}]}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "labels": labels or {"app": name}},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            "template": {"metadata": {"labels": {"app": name}}, "spec": pod},
        },
    }


def job(
    name: str, *, completions: int = 1, indexed: bool = False, backoff: int = 0
) -> dict[str, Any]:
    pod = {
        "containers": [{"name": "step", "image": "registry.example/step:1"}],
        "restartPolicy": "Never",
    }
    spec = {
        "completions": completions,
        "parallelism": completions,
        "backoffLimit": backoff,
        "completionMode": "Indexed" if indexed else "NonIndexed",
        "template": {"spec": pod},
    }
    return {"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": name}, "spec": spec}


def cron_job(name: str, *, policy: str = "Allow", suspend: bool = False) -> dict[str, Any]:
    """Every five minutes; a suspended one is left alone by any controller, so a check may
    write its status."""
    pod = {"containers": [{"name": "c", "image": "registry.example/c:1"}], "restartPolicy": "Never"}
    spec = {
        "schedule": "*/5 * * * *",
        "suspend": suspend,
        "concurrencyPolicy": policy,
        "jobTemplate": {"spec": {"backoffLimit": 9, "template": {"spec": pod}}},
    }
    return {"apiVersion": "batch/v1", "kind": "CronJob", "metadata": {"name": name}, "spec": spec}


def config_map(name: str, labels: dict[str, str] | None = None, **extra: Any) -> dict[str, Any]:
    metadata = {"name": name, "labels": labels or {}, **extra}
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": metadata, "data": {"k": "v"}}


def owner_reference(owner: Any, kind: str, api_version: str) -> dict[str, Any]:
    """An ownerReference naming ``owner`` (a client model read back from the server)."""
    return {
        "apiVersion": api_version,
        "kind": kind,
        "name": owner.metadata.name,
        "uid": owner.metadata.uid,
    }
