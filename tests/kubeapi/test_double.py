"""What only the double does: KEDA's CRD on a flag, the log of requests it received,
read-only Pods, and the command that runs it on its own and prints a kubeconfig."""

from __future__ import annotations

import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from kubernetes import client, config, watch
from kubernetes.client.exceptions import ApiException

from tests.conftest import ROOT
from tests.kubeapi.conftest import APPLY, apply, config_map, deployment
from tests.kubeapi.server import KubeApiDouble


def groups(api_client: client.ApiClient) -> set[str]:
    return {g.name for g in client.ApisApi(api_client).get_api_versions().groups}


@pytest.mark.parametrize("keda", [False, True], ids=["without-keda", "with-keda"])
def test_keda_is_discovered_only_when_installed(tmp_path: Path, keda: bool) -> None:
    with KubeApiDouble(keda=keda) as double:
        kubeconfig = str(double.write_kubeconfig(tmp_path / "kubeconfig"))
        with config.new_client_from_config(config_file=kubeconfig) as api_client:
            assert ("keda.sh" in groups(api_client)) is keda


def test_the_double_records_what_it_was_sent_and_pods_are_read_only(tmp_path: Path) -> None:
    with KubeApiDouble() as double:
        kubeconfig = str(double.write_kubeconfig(tmp_path / "kubeconfig"))
        with config.new_client_from_config(config_file=kubeconfig) as api_client:
            apps = client.AppsV1Api(api_client)
            apply(apps.patch_namespaced_deployment, "web", "default", deployment("web"))
            with pytest.raises(ApiException) as refused:
                client.CoreV1Api(api_client).delete_namespaced_pod("web-0", "default")
    [sent] = [r for r in double.requests if r.method == "PATCH"]
    assert (sent.path, sent.content_type) == (
        "/apis/apps/v1/namespaces/default/deployments/web",
        APPLY,
    )
    assert (sent.query["fieldManager"], sent.body) == ("gitplane", deployment("web"))
    assert refused.value.status == 405


def test_python_m_tests_kubeapi_prints_a_kubeconfig_that_reaches_it(tmp_path: Path) -> None:
    started = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "tests.kubeapi",
            "--port",
            "0",
            "--kubeconfig",
            str(tmp_path / "kc"),
        ],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert started.stdout is not None
        kubeconfig = started.stdout.readline().strip()
        with config.new_client_from_config(config_file=kubeconfig) as api_client:
            names = {n.metadata.name for n in client.CoreV1Api(api_client).list_namespace().items}
        assert names == {"default", "kube-system"}
    finally:
        started.terminate()
        assert started.wait(timeout=10) == 0
        started.stdout.close()


def test_an_open_watch_follows_changes_made_after_it_started(tmp_path: Path) -> None:
    with KubeApiDouble() as double:
        kubeconfig = str(double.write_kubeconfig(tmp_path / "kubeconfig"))
        with config.new_client_from_config(config_file=kubeconfig) as api_client:
            core = client.CoreV1Api(api_client)
            since = core.list_namespaced_config_map("default").metadata.resource_version
            with ThreadPoolExecutor(1) as pool:
                seen = pool.submit(first_event, core, since)
                while not any(r.query.get("watch") for r in double.requests):
                    time.sleep(0.01)
                time.sleep(0.05)  # the watch now waits in the double for a change
                core.create_namespaced_config_map("default", config_map("late"))
                assert seen.result(timeout=10) == ("ADDED", "late")


def first_event(core: client.CoreV1Api, since: str) -> tuple[str, str]:
    stream = watch.Watch()
    for event in stream.stream(
        core.list_namespaced_config_map, "default", resource_version=since, timeout_seconds=10
    ):
        stream.stop()
        return event["type"], event["object"].metadata.name
    return "", ""
