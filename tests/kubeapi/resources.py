"""The resources the API server test double serves, and the discovery documents naming them.

The official client finds nothing by discovery for typed calls, but ``kubectl``, the dynamic
client and a runtime that asks "is KEDA installed?" do: ``/api``, ``/apis``, ``/api/v1`` and
``/apis/<group>/<version>`` list exactly what the double serves, no more.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

VERBS = ["create", "delete", "get", "list", "patch", "update", "watch"]
READ_VERBS = ["get", "list", "watch"]


@dataclass(frozen=True)
class Resource:
    """One REST resource: where it lives, what it is called and which rules it follows."""

    group: str
    """``""`` for the core group (``/api/v1``)."""
    version: str
    plural: str
    kind: str
    namespaced: bool = True
    status: bool = True
    """Has a ``/status`` subresource; the main resource never writes status."""
    generation: bool = True
    """``metadata.generation`` counts changes of ``spec`` (workloads do; ConfigMaps do not)."""
    read_only: bool = False
    """Written only by the double's controllers (Pods); a client write is 405."""
    dns_label: bool = False
    """Its name must be an RFC 1123 label (63 characters, no dots), not a subdomain."""

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def qualified(self) -> str:
        """How the server names it in messages: ``deployments.apps``, ``configmaps``."""
        return f"{self.plural}.{self.group}" if self.group else self.plural

    @property
    def kind_qualified(self) -> str:
        """How a 422 names it: ``Deployment.apps``, ``ConfigMap``."""
        return f"{self.kind}.{self.group}" if self.group else self.kind

    @property
    def base_path(self) -> str:
        return f"/apis/{self.group}/{self.version}" if self.group else f"/api/{self.version}"


NAMESPACES = Resource(
    "", "v1", "namespaces", "Namespace", namespaced=False, generation=False, dns_label=True
)
CONFIGMAPS = Resource("", "v1", "configmaps", "ConfigMap", status=False, generation=False)
SECRETS = Resource("", "v1", "secrets", "Secret", status=False, generation=False)
SERVICES = Resource("", "v1", "services", "Service", generation=False, dns_label=True)
PODS = Resource("", "v1", "pods", "Pod", generation=False, read_only=True)
DEPLOYMENTS = Resource("apps", "v1", "deployments", "Deployment")
JOBS = Resource("batch", "v1", "jobs", "Job")
CRONJOBS = Resource("batch", "v1", "cronjobs", "CronJob")
HPAS = Resource("autoscaling", "v2", "horizontalpodautoscalers", "HorizontalPodAutoscaler")
SCALEDOBJECTS = Resource("keda.sh", "v1alpha1", "scaledobjects", "ScaledObject")
"""KEDA's CRD: served (and discovered) only when the double is started with KEDA."""

BUILT_IN = (NAMESPACES, CONFIGMAPS, SECRETS, SERVICES, PODS, DEPLOYMENTS, JOBS, CRONJOBS, HPAS)


def served(*, keda: bool) -> tuple[Resource, ...]:
    """The resources of a double started with or without KEDA's CRDs."""
    return (*BUILT_IN, SCALEDOBJECTS) if keda else BUILT_IN


def group_versions(resources: tuple[Resource, ...]) -> list[str]:
    """Every ``group/version`` served under ``/apis``, in a stable order."""
    return sorted({r.api_version for r in resources if r.group})


def api_versions() -> dict[str, Any]:
    """``GET /api``."""
    return {"kind": "APIVersions", "versions": ["v1"], "serverAddressByClientCIDRs": []}


def group_list(resources: tuple[Resource, ...]) -> dict[str, Any]:
    """``GET /apis``: one group per served group, each with its one version."""
    groups = []
    for group_version in group_versions(resources):
        name, _, version = group_version.partition("/")
        entry = {"groupVersion": group_version, "version": version}
        groups.append({"name": name, "versions": [entry], "preferredVersion": entry})
    return {"kind": "APIGroupList", "apiVersion": "v1", "groups": groups}


def resource_list(resources: tuple[Resource, ...], group_version: str) -> dict[str, Any] | None:
    """``GET /api/v1`` or ``/apis/<group>/<version>``; None when not served."""
    entries: list[dict[str, Any]] = []
    for r in (r for r in resources if r.api_version == group_version):
        singular = r.kind.lower()
        verbs = READ_VERBS if r.read_only else VERBS
        entries.append(
            {
                "name": r.plural,
                "singularName": singular,
                "namespaced": r.namespaced,
                "kind": r.kind,
                "verbs": verbs,
            }
        )
        if r.status:
            entries.append(
                {
                    "name": f"{r.plural}/status",
                    "singularName": "",
                    "namespaced": r.namespaced,
                    "kind": r.kind,
                    "verbs": ["get", "patch", "update"],
                }
            )
    if not entries:
        return None
    return {
        "kind": "APIResourceList",
        "apiVersion": "v1",
        "groupVersion": group_version,
        "resources": entries,
    }
