"""API-behaviour checks written against the official client, run on the test double and,
marked ``cluster``, on a real cluster: the same checks keep the double honest.

Only what the real server guarantees is asserted (resourceVersions are compared for
equality, never order; garbage collection is waited for on a real cluster).
"""

from __future__ import annotations

import json

import pytest
from kubernetes import client, config, watch
from kubernetes.client.exceptions import ApiException

from tests.kubeapi.conftest import (
    APPLY,
    Target,
    apply,
    config_map,
    cron_job,
    deployment,
    job,
    owner_reference,
)


def body_of(raised: pytest.ExceptionInfo[ApiException]) -> dict:
    return json.loads(raised.value.body)


def owned(managed: list, manager: str) -> dict:
    """The FieldsV1 of ``manager``'s main-resource entries, merged."""
    merged: dict = {}
    for entry in managed:
        if entry.manager == manager and not entry.subresource:
            merged.update(entry.fields_v1)
    return merged


def test_apply_creates_then_merges(target: Target) -> None:
    made = apply(
        target.apps.patch_namespaced_deployment, "web", target.namespace, deployment("web")
    )
    again = apply(
        target.apps.patch_namespaced_deployment,
        "web",
        target.namespace,
        deployment("web", replicas=2),
    )
    assert (made.metadata.generation, again.metadata.generation) == (1, 2)
    assert again.metadata.uid == made.metadata.uid
    assert again.metadata.resource_version != made.metadata.resource_version
    assert again.spec.replicas == 2
    [entry] = [e for e in again.metadata.managed_fields if e.manager == "gitplane"]
    assert entry.operation == "Apply"
    assert "f:replicas" in entry.fields_v1["f:spec"]


def replicas_only(replicas: int) -> dict:
    """What an autoscaler applies: a Deployment's replicas and nothing else."""
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "web"},
        "spec": {"replicas": replicas},
    }


def test_apply_of_a_field_another_manager_owns_conflicts_unless_forced(target: Target) -> None:
    patch, ns = target.apps.patch_namespaced_deployment, target.namespace
    apply(patch, "web", ns, deployment("web", replicas=1))
    other = replicas_only(3)
    with pytest.raises(ApiException) as refused:
        apply(patch, "web", ns, other, manager="autoscaler")
    assert refused.value.status == 409
    status = body_of(refused)
    assert status["reason"] == "Conflict"
    assert [c["field"] for c in status["details"]["causes"]] == [".spec.replicas"]
    assert 'conflict with "gitplane"' in status["message"]
    forced = apply(patch, "web", ns, other, manager="autoscaler", force=True)
    assert forced.spec.replicas == 3
    assert "f:replicas" in owned(forced.metadata.managed_fields, "autoscaler")["f:spec"]
    assert "f:replicas" not in owned(forced.metadata.managed_fields, "gitplane")["f:spec"]


def test_apply_of_the_same_value_shares_the_field(target: Target) -> None:
    patch, ns = target.apps.patch_namespaced_deployment, target.namespace
    apply(patch, "web", ns, deployment("web", replicas=2))
    same = replicas_only(2)
    shared = apply(patch, "web", ns, same, manager="autoscaler")
    for manager in ("gitplane", "autoscaler"):
        assert "f:replicas" in owned(shared.metadata.managed_fields, manager)["f:spec"]


def test_apply_removes_what_its_manager_no_longer_applies(target: Target) -> None:
    patch, ns = target.apps.patch_namespaced_deployment, target.namespace
    apply(patch, "web", ns, deployment("web", labels={"app": "web", "tier": "serving"}))
    kept = apply(patch, "web", ns, deployment("web", labels={"app": "web"}))
    assert kept.metadata.labels == {"app": "web"}


def test_generation_counts_spec_changes_only(target: Target) -> None:
    patch, ns = target.apps.patch_namespaced_deployment, target.namespace
    apply(patch, "web", ns, deployment("web"))
    relabelled = apply(patch, "web", ns, deployment("web", labels={"app": "web", "x": "y"}))
    rescaled = apply(patch, "web", ns, deployment("web", replicas=3, labels={"app": "web"}))
    assert (relabelled.metadata.generation, rescaled.metadata.generation) == (1, 2)


def test_status_subresource_writes_status_only_and_main_writes_never_do(target: Target) -> None:
    batch, ns = target.batch, target.namespace
    made = apply(batch.patch_namespaced_cron_job, "nightly", ns, cron_job("nightly", suspend=True))
    changed = {
        "status": {"lastScheduleTime": "2026-11-24T12:00:00Z"},
        "spec": {"schedule": "5 5 5 5 *"},
    }
    written = batch.patch_namespaced_cron_job_status("nightly", ns, changed)
    assert written.status.last_schedule_time is not None
    assert written.spec.schedule == "*/5 * * * *"
    assert written.metadata.generation == made.metadata.generation
    main = {**cron_job("nightly", suspend=True), "status": {"lastScheduleTime": None}}
    reapplied = apply(batch.patch_namespaced_cron_job, "nightly", ns, main)
    assert reapplied.status.last_schedule_time == written.status.last_schedule_time


SELECTIONS = {
    "equals": ("tier=web", {"a", "c"}),
    "double-equals": ("tier==web", {"a", "c"}),
    "not-equals": ("tier!=web", {"b"}),
    "in": ("tier in (web,db)", {"a", "b", "c"}),
    "notin": ("tier notin (web)", {"b"}),
    "exists": ("env", {"a", "b"}),
    "does-not-exist": ("!env", {"c"}),
    "and": ("tier=web,env=prod", {"a"}),
}


@pytest.mark.parametrize(("selector", "names"), SELECTIONS.values(), ids=SELECTIONS.keys())
def test_label_selectors(target: Target, selector: str, names: set[str]) -> None:
    labels = {
        "a": {"tier": "web", "env": "prod"},
        "b": {"tier": "db", "env": "prod"},
        "c": {"tier": "web"},
    }
    for name, on in labels.items():
        target.core.create_namespaced_config_map(target.namespace, config_map(name, on))
    found = target.core.list_namespaced_config_map(target.namespace, label_selector=selector)
    assert {i.metadata.name for i in found.items} == names


def test_field_selector_on_the_name_and_a_bad_selector(target: Target) -> None:
    for name in ("a", "b"):
        target.core.create_namespaced_config_map(target.namespace, config_map(name))
    found = target.core.list_namespaced_config_map(
        target.namespace, field_selector="metadata.name=b"
    )
    assert [i.metadata.name for i in found.items] == ["b"]
    with pytest.raises(ApiException) as refused:
        target.core.list_namespaced_config_map(target.namespace, label_selector="tier in web)")
    assert refused.value.status == 400


def test_watch_replays_changes_in_order(target: Target) -> None:
    core, ns = target.core, target.namespace
    since = core.list_namespaced_config_map(ns).metadata.resource_version
    core.create_namespaced_config_map(ns, config_map("a"))
    core.patch_namespaced_config_map("a", ns, {"data": {"k": "changed"}})
    core.delete_namespaced_config_map("a", ns)
    seen = []
    stream = watch.Watch()
    for event in stream.stream(
        core.list_namespaced_config_map, ns, resource_version=since, timeout_seconds=10
    ):
        seen.append((event["type"], event["object"].metadata.name))
        if len(seen) == 3:
            stream.stop()
    assert seen == [("ADDED", "a"), ("MODIFIED", "a"), ("DELETED", "a")]


def test_a_selecting_watch_sees_objects_enter_and_leave_the_selection(target: Target) -> None:
    core, ns = target.core, target.namespace
    core.create_namespaced_config_map(ns, config_map("a", {"tier": "web"}))
    since = core.list_namespaced_config_map(ns).metadata.resource_version
    for tier in ("db", "web"):
        core.patch_namespaced_config_map("a", ns, {"metadata": {"labels": {"tier": tier}}})
    core.delete_namespaced_config_map("a", ns)
    seen = []
    stream = watch.Watch()
    for event in stream.stream(
        core.list_namespaced_config_map,
        ns,
        resource_version=since,
        label_selector="tier=web",
        timeout_seconds=10,
    ):
        seen.append(event["type"])
        if len(seen) == 3:
            stream.stop()
    assert seen == ["DELETED", "ADDED", "DELETED"]


def test_watch_from_a_compacted_version_is_410_gone(target: Target) -> None:
    target.core.create_namespaced_config_map(target.namespace, config_map("a"))
    target.compact()
    stream = watch.Watch()
    with pytest.raises(ApiException) as gone:
        for _ in stream.stream(
            target.core.list_namespaced_config_map,
            target.namespace,
            resource_version="1",
            timeout_seconds=5,
        ):
            pass
    assert gone.value.status == 410


def test_watch_ends_after_its_timeout(target: Target) -> None:
    since = target.core.list_namespaced_config_map(target.namespace).metadata.resource_version
    events = list(
        watch.Watch().stream(
            target.core.list_namespaced_config_map,
            target.namespace,
            resource_version=since,
            timeout_seconds=1,
        )
    )
    assert events == []


def _owner_and_dependent(target: Target) -> None:
    owner = apply(
        target.apps.patch_namespaced_deployment, "web", target.namespace, deployment("web")
    )
    ref = owner_reference(owner, "Deployment", "apps/v1")
    made = config_map("cache", ownerReferences=[ref])
    target.core.create_namespaced_config_map(target.namespace, made)


def _config_maps(target: Target) -> dict[str, list]:
    found = target.core.list_namespaced_config_map(target.namespace).items
    return {c.metadata.name: c.metadata.owner_references or [] for c in found}


@pytest.mark.parametrize("policy", ["Background", "Foreground"])
def test_delete_propagates_to_dependents(target: Target, policy: str) -> None:
    _owner_and_dependent(target)
    target.apps.delete_namespaced_deployment("web", target.namespace, propagation_policy=policy)
    assert target.eventually(lambda: "cache" not in _config_maps(target))


def test_orphan_delete_keeps_dependents_without_the_reference(target: Target) -> None:
    _owner_and_dependent(target)
    target.apps.delete_namespaced_deployment("web", target.namespace, propagation_policy="Orphan")
    assert target.eventually(lambda: _config_maps(target).get("cache") == [])


def test_deleting_a_job_orphans_by_default(target: Target) -> None:
    made = target.batch.create_namespaced_job(target.namespace, job("step"))
    ref = owner_reference(made, "Job", "batch/v1")
    target.core.create_namespaced_config_map(
        target.namespace, config_map("out", ownerReferences=[ref])
    )
    target.batch.delete_namespaced_job("step", target.namespace)
    assert target.eventually(lambda: _config_maps(target).get("out") == [])


def test_not_found_and_already_exists(target: Target) -> None:
    with pytest.raises(ApiException) as missing:
        target.apps.read_namespaced_deployment("nothing", target.namespace)
    assert (missing.value.status, body_of(missing)["reason"]) == (404, "NotFound")
    assert body_of(missing)["message"] == 'deployments.apps "nothing" not found'
    target.apps.create_namespaced_deployment(target.namespace, deployment("web"))
    with pytest.raises(ApiException) as twice:
        target.apps.create_namespaced_deployment(target.namespace, deployment("web"))
    assert (twice.value.status, body_of(twice)["reason"]) == (409, "AlreadyExists")


def test_a_stale_resource_version_is_a_conflict(target: Target) -> None:
    made = target.core.create_namespaced_config_map(target.namespace, config_map("a"))
    target.core.patch_namespaced_config_map("a", target.namespace, {"data": {"k": "new"}})
    with pytest.raises(ApiException) as stale:
        target.core.replace_namespaced_config_map("a", target.namespace, made)
    assert (stale.value.status, body_of(stale)["reason"]) == (409, "Conflict")


def _renamed(d: dict) -> None:
    d["metadata"]["name"] = "Not_A_Name"


def _unselected(d: dict) -> None:
    del d["spec"]["selector"]


def _mismatched(d: dict) -> None:
    d["spec"]["template"]["metadata"]["labels"] = {"app": "other"}


INVALID = {
    "name": (_renamed, "metadata.name"),
    "no-selector": (_unselected, "spec.selector"),
    "selector-mismatch": (_mismatched, "spec.template.metadata.labels"),
}


@pytest.mark.parametrize(("modify", "field"), INVALID.values(), ids=INVALID.keys())
def test_invalid_deployments_are_422(target: Target, modify, field: str) -> None:
    bad = deployment("web")
    modify(bad)
    name = bad["metadata"]["name"]
    with pytest.raises(ApiException) as refused:
        apply(target.apps.patch_namespaced_deployment, name, target.namespace, bad)
    status = body_of(refused)
    assert (refused.value.status, status["reason"], status["kind"]) == (422, "Invalid", "Status")
    assert field in [c["field"] for c in status["details"]["causes"]]
    assert target.apps.list_namespaced_deployment(target.namespace).items == []


def test_a_job_gets_a_selector_of_its_own_and_its_pod_template_is_immutable(target: Target) -> None:
    patch, ns = target.batch.patch_namespaced_job, target.namespace
    made = apply(patch, "step", ns, job("step"))
    uid = made.metadata.uid
    assert made.spec.selector.match_labels == {"batch.kubernetes.io/controller-uid": uid}
    assert made.spec.template.metadata.labels["batch.kubernetes.io/job-name"] == "step"
    assert apply(patch, "step", ns, job("step")).metadata.generation == 1
    changed = job("step")
    changed["spec"]["template"]["spec"]["containers"][0]["image"] = "registry.example/step:2"
    with pytest.raises(ApiException) as refused:
        apply(patch, "step", ns, changed)
    assert refused.value.status == 422
    assert "spec.template" in [c["field"] for c in body_of(refused)["details"]["causes"]]


def test_a_deployments_selector_is_immutable(target: Target) -> None:
    patch, ns = target.apps.patch_namespaced_deployment, target.namespace
    apply(patch, "web", ns, deployment("web"))
    moved = deployment("web")
    moved["spec"]["selector"]["matchLabels"] = {"app": "web", "v": "2"}
    moved["spec"]["template"]["metadata"]["labels"] = {"app": "web", "v": "2"}
    with pytest.raises(ApiException) as refused:
        apply(patch, "web", ns, moved)
    assert refused.value.status == 422
    assert "spec.selector" in [c["field"] for c in body_of(refused)["details"]["causes"]]


def test_an_unreadable_apply_body_is_400(target: Target) -> None:
    with pytest.raises(ApiException) as refused:
        unchecked = client.CoreV1Api.patch_namespaced_config_map.raw_function  # type: ignore[attr-defined]
        unchecked(
            target.core,
            "a",
            target.namespace,
            "{not: [yaml",
            field_manager="gitplane",
            _content_type=APPLY,
        )
    assert (refused.value.status, body_of(refused)["kind"]) == (400, "Status")


def test_the_kubeconfig_loads_and_a_wrong_token_is_401(target: Target) -> None:
    loaded = client.Configuration()
    config.load_kube_config(config_file=str(target.kubeconfig), client_configuration=loaded)
    with client.ApiClient(loaded) as good:
        client.CoreV1Api(good).read_namespace(target.namespace)
    loaded.refresh_api_key_hook = None  # it would put the kubeconfig's token back
    loaded.api_key = dict.fromkeys(loaded.api_key, "Bearer wrong")
    loaded.cert_file = loaded.key_file = None
    with client.ApiClient(loaded) as bad, pytest.raises(ApiException) as refused:
        client.CoreV1Api(bad).read_namespace(target.namespace)
    assert refused.value.status == 401


def test_discovery_names_the_served_resources(target: Target) -> None:
    groups = {g.name for g in client.ApisApi(target.api_client).get_api_versions().groups}
    assert {"apps", "batch", "autoscaling"} <= groups
    core = {r.name for r in target.core.get_api_resources().resources}
    assert {"configmaps", "secrets", "services", "pods", "namespaces"} <= core
    apps = {r.name for r in target.apps.get_api_resources().resources}
    assert {"deployments", "deployments/status"} <= apps


def test_a_new_hpa_reads_back_into_the_clients_model_and_watches(target: Target) -> None:
    """Before any controller ran: the status the server writes is one the client's models
    (and so a watch of HPAs) can read."""
    scaling = client.AutoscalingV2Api(target.api_client)
    hpa = {
        "apiVersion": "autoscaling/v2",
        "kind": "HorizontalPodAutoscaler",
        "metadata": {"name": "web"},
        "spec": {
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "none"},
            "maxReplicas": 2,
        },
    }
    made = apply(scaling.patch_namespaced_horizontal_pod_autoscaler, "web", target.namespace, hpa)
    assert made.status.desired_replicas == 0
    listed = scaling.list_namespaced_horizontal_pod_autoscaler(target.namespace)
    stream = watch.Watch().stream(
        scaling.list_namespaced_horizontal_pod_autoscaler,
        target.namespace,
        resource_version=listed.metadata.resource_version,
        timeout_seconds=1,
    )
    scaling.patch_namespaced_horizontal_pod_autoscaler(
        "web", target.namespace, {"spec": {"maxReplicas": 3}}
    )
    seen = [(e["type"], e["object"].spec.max_replicas) for e in stream]  # a controller's too
    assert ("MODIFIED", 3) in seen
