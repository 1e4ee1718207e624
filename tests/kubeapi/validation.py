"""What the real server refuses with 422 Invalid, and the few defaults it fills that a
runtime or the simulated controllers read. Only the rules a runtime can trip over are
here: names, a Deployment's selector against its template, required containers."""

from __future__ import annotations

import re
from typing import Any

from tests.kubeapi import errors, resources
from tests.kubeapi.errors import Cause
from tests.kubeapi.resources import Resource

_LABEL = r"[a-z0-9]([-a-z0-9]*[a-z0-9])?"
DNS_SUBDOMAIN = re.compile(rf"^{_LABEL}(\.{_LABEL})*$")
DNS_LABEL = re.compile(rf"^{_LABEL}$")
SUBDOMAIN_HELP = (
    "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-'"
    " or '.', and must start and end with an alphanumeric character (e.g. 'example.com',"
    " regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*"
    "[a-z0-9])?)*')"
)
LABEL_HELP = (
    "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-',"
    " and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc',"
    " regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')"
)
WORKLOADS = {resources.DEPLOYMENTS.plural, resources.JOBS.plural}


def _name_causes(resource: Resource, name: str) -> list[Cause]:
    pattern, limit, help_text = (
        (DNS_LABEL, 63, LABEL_HELP) if resource.dns_label else (DNS_SUBDOMAIN, 253, SUBDOMAIN_HELP)
    )
    if not name:
        return [
            Cause(
                "FieldValueRequired",
                "Required value: name or generateName is required",
                "metadata.name",
            )
        ]
    if len(name) > limit or not pattern.match(name):
        return [
            Cause("FieldValueInvalid", f'Invalid value: "{name}": {help_text}', "metadata.name")
        ]
    return []


def _selector_causes(spec: dict[str, Any]) -> list[Cause]:
    """A Deployment must select its own pods: a selector, and template labels it matches."""
    selector = (spec.get("selector") or {}).get("matchLabels")
    if not selector:
        return [Cause("FieldValueRequired", "Required value", "spec.selector")]
    labels = ((spec.get("template") or {}).get("metadata") or {}).get("labels") or {}
    if any(labels.get(k) != v for k, v in selector.items()):
        return [
            Cause(
                "FieldValueInvalid",
                f"Invalid value: {labels!r}: `selector` does not match template `labels`",
                "spec.template.metadata.labels",
            )
        ]
    return []


def _template_causes(spec: dict[str, Any]) -> list[Cause]:
    pod = (spec.get("template") or {}).get("spec") or {}
    if not pod.get("containers"):
        return [Cause("FieldValueRequired", "Required value", "spec.template.spec.containers")]
    return []


IMMUTABLE = {
    resources.DEPLOYMENTS.plural: ("selector",),
    resources.JOBS.plural: ("selector", "template", "completionMode"),
}
"""Spec fields an update may not change: a Job is deleted and made anew to change its pods."""


def _immutable_causes(resource: Resource, spec: dict[str, Any], old: dict[str, Any]) -> list[Cause]:
    before = old.get("spec") or {}
    return [
        Cause(
            "FieldValueInvalid",
            f"Invalid value: {spec.get(key)!r}: field is immutable",
            f"spec.{key}",
        )
        for key in IMMUTABLE.get(resource.plural, ())
        if spec.get(key) != before.get(key)
    ]


def check(resource: Resource, obj: dict[str, Any], old: dict[str, Any] | None) -> None:
    """Raise 422 Invalid, naming every field the real server would name."""
    name = obj.get("metadata", {}).get("name", "")
    causes = _name_causes(resource, name)
    spec = obj.get("spec") or {}
    if resource.plural == resources.DEPLOYMENTS.plural:
        causes += _selector_causes(spec)
    if resource.plural in WORKLOADS:
        causes += _template_causes(spec)
    if old is not None:
        causes += _immutable_causes(resource, spec, old)
    if causes:
        raise errors.invalid(resource, name, causes)


MAX_INT32 = 2147483647


def default(resource: Resource, obj: dict[str, Any]) -> None:
    """Fill the defaults the double's controllers read (the real server fills many more)."""
    spec = obj.get("spec")
    if resource.plural == resources.DEPLOYMENTS.plural and isinstance(spec, dict):
        spec.setdefault("replicas", 1)
        spec.setdefault("progressDeadlineSeconds", 600)
    if resource.plural == resources.JOBS.plural and isinstance(spec, dict):
        spec.setdefault("completions", 1)
        spec.setdefault("parallelism", 1)
        spec.setdefault(
            "backoffLimit", 6 if spec.get("backoffLimitPerIndex") is None else MAX_INT32
        )
        spec.setdefault("completionMode", "NonIndexed")


def default_job_selector(job: dict[str, Any]) -> None:
    """On create, as the real server: a selector on the Job's own uid, and the labels it
    selects (and the Job's name) on the pod template."""
    metadata, spec = job["metadata"], job.get("spec")
    if not isinstance(spec, dict) or spec.get("manualSelector"):
        return
    uid, name = metadata["uid"], metadata["name"]
    spec["selector"] = {"matchLabels": {"batch.kubernetes.io/controller-uid": uid}}
    template = spec.setdefault("template", {}).setdefault("metadata", {})
    template["labels"] = {**(template.get("labels") or {}), **job_labels(uid, name)}


def job_labels(uid: str, name: str) -> dict[str, str]:
    """The labels the real server puts on a Job's pods."""
    return {
        "batch.kubernetes.io/controller-uid": uid,
        "batch.kubernetes.io/job-name": name,
        "controller-uid": uid,
        "job-name": name,
    }
