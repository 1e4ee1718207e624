"""The few calls the runtime makes to a cluster, through the official client, by manifest.

Every write is a server-side apply (``PATCH`` as ``application/apply-patch+yaml``) under
the field manager ``gitplane``, forced: Gitplane owns the fields it renders, and taking them
back from another manager (a ``kubectl scale``, an edit) is what self-heal means. Reads are
by name or by the inventory labels. The API's own errors become :class:`ClusterError` with
the server's message, so a refusal (a 422 naming a field, a 403 from RBAC) reads as what the
cluster said.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from kubernetes import client
from kubernetes.client.exceptions import ApiException

from schemas.errors import GitplaneError

MANAGER = "gitplane"
APPLY = "application/apply-patch+yaml"

Manifest = dict[str, Any]


class ClusterError(GitplaneError):
    """The cluster refused a call, or could not be reached; the message is its own."""

    def __init__(self, message: str, *, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status
        """The HTTP status the server answered with; None when it was not reached."""


VERBS = ("get", "list", "watch", "create", "patch", "delete")
"""The RBAC verbs :class:`Cluster` and the inventory's watches use on a kind: ``get`` (read by
name), ``list`` and ``watch`` (the inventory), ``patch`` (server-side apply), ``create``
(a server-side apply that makes the object is authorised as a create), ``delete``."""


@dataclass(frozen=True)
class Kind:
    """How to reach one kind through the typed client: its API class and method suffix;
    and what RBAC must grant on it (deploy/kubernetes's Role is checked against :func:`rules`)."""

    api: type
    suffix: str
    plural: str = ""
    """The API's resource name, when it is not the suffix's words joined with an ``s``."""
    verbs: tuple[str, ...] = VERBS
    """The verbs the runtime uses on it (a kind only read needs fewer)."""
    subresources: tuple[str, ...] = ()
    """Subresources the runtime reads (``log`` of a Pod): each is granted ``get`` alone."""
    custom: bool = False
    """A custom resource (a CRD's kind): reached through ``CustomObjectsApi``, whose methods
    take its group, version and :attr:`plural` first (and ``get_*`` for ``read_*``)."""

    @property
    def resource(self) -> str:
        """The resource name RBAC rules grant (``horizontalpodautoscalers``)."""
        return self.plural or self.suffix.removeprefix("namespaced_").replace("_", "") + "s"


KINDS: Mapping[tuple[str, str], Kind] = {
    ("apps/v1", "Deployment"): Kind(client.AppsV1Api, "namespaced_deployment"),
    ("v1", "Service"): Kind(client.CoreV1Api, "namespaced_service"),
    ("autoscaling/v2", "HorizontalPodAutoscaler"): Kind(
        client.AutoscalingV2Api, "namespaced_horizontal_pod_autoscaler"
    ),
    ("batch/v1", "Job"): Kind(client.BatchV1Api, "namespaced_job"),
    ("keda.sh/v1alpha1", "ScaledObject"): Kind(
        client.CustomObjectsApi,
        "namespaced_custom_object",
        plural="scaledobjects",
        custom=True,
    ),
    ("batch/v1", "CronJob"): Kind(client.BatchV1Api, "namespaced_cron_job"),
    ("v1", "ConfigMap"): Kind(client.CoreV1Api, "namespaced_config_map"),
    ("v1", "Pod"): Kind(
        client.CoreV1Api, "namespaced_pod", verbs=("get", "list", "watch"), subresources=("log",)
    ),  # made by Jobs, only read: their status (termination messages) and log tails
}


def rules() -> list[dict[str, Any]]:
    """The namespaced RBAC rules the runtime needs: one per API group, each kind's resource
    with its verbs (pure; the deploy manifests' Role must equal these)."""
    granted: dict[tuple[str, tuple[str, ...]], set[str]] = {}
    for (api_version, _), kind in KINDS.items():
        group = api_version.rpartition("/")[0]
        granted.setdefault((group, tuple(sorted(kind.verbs))), set()).add(kind.resource)
        for sub in kind.subresources:
            granted.setdefault((group, ("get",)), set()).add(f"{kind.resource}/{sub}")
    return [
        {"apiGroups": [group], "resources": sorted(resources), "verbs": list(verbs)}
        for (group, verbs), resources in sorted(granted.items())
    ]


class Cluster:
    """One namespace of one cluster, reached with an ``ApiClient`` (kubeconfig or in-cluster)."""

    def __init__(self, api: client.ApiClient, namespace: str) -> None:
        self.api = api
        self.namespace = namespace

    def apply(self, manifest: Manifest) -> Manifest:
        """Server-side apply ``manifest``; the object as the server stored it."""
        name = manifest["metadata"]["name"]
        method = self._method(manifest, "patch")
        return self._call(
            method,
            name,
            self.namespace,
            manifest,
            field_manager=MANAGER,
            force=True,
            _content_type=APPLY,
        )

    def get(self, api_version: str, kind: str, name: str) -> Manifest | None:
        """The object, or None when there is none."""
        method = self._method({"apiVersion": api_version, "kind": kind}, "read")
        try:
            return self._call(method, name, self.namespace)
        except ClusterError as exc:
            if exc.status == 404:
                return None
            raise

    def select(self, api_version: str, kind: str, selector: Mapping[str, str]) -> list[Manifest]:
        """The objects of ``kind`` whose labels match ``selector``."""
        return self.list_versioned(api_version, kind, selector)[0]

    def list_versioned(
        self, api_version: str, kind: str, selector: Mapping[str, str]
    ) -> tuple[list[Manifest], str]:
        """The objects of ``kind`` matching ``selector``, and the list's ``resourceVersion``
        (where a watch of them starts)."""
        found = self._call(
            self.lister(api_version, kind),
            self.namespace,
            label_selector=self.selector_text(selector),
        )
        version = str((found.get("metadata") or {}).get("resourceVersion") or "")
        return list(found.get("items") or []), version

    def lister(self, api_version: str, kind: str) -> Any:
        """The typed client's list method of ``kind`` (what a watch streams)."""
        return self._method({"apiVersion": api_version, "kind": kind}, "list")

    @staticmethod
    def selector_text(selector: Mapping[str, str]) -> str:
        """``a=b,c=d``: a label selector as the API takes it."""
        return ",".join(f"{k}={v}" for k, v in sorted(selector.items()))

    def delete(self, api_version: str, kind: str, name: str) -> None:
        """Delete the object and what it owns (background propagation); gone already is fine."""
        method = self._method({"apiVersion": api_version, "kind": kind}, "delete")
        try:
            self._call(method, name, self.namespace, propagation_policy="Background")
        except ClusterError as exc:
            if exc.status != 404:
                raise

    def pod_log(self, name: str, container: str, *, lines: int) -> str:
        """The last ``lines`` lines a pod's container wrote (``kubectl logs --tail``)."""
        try:
            response: Any = client.CoreV1Api(self.api).read_namespaced_pod_log(
                name,
                self.namespace,
                container=container,
                tail_lines=lines,
                _preload_content=False,
            )
        except ApiException as exc:
            raise ClusterError(_said(exc), status=exc.status) from None
        except OSError as exc:
            raise ClusterError(f"the cluster is unreachable: {exc}") from None
        return bytes(response.data).decode(errors="replace")

    def serves(self, api_version: str, kind: str) -> bool:
        """Whether the cluster serves ``kind`` (a CRD installed: KEDA's ScaledObject), by
        discovery: ``GET /apis/<group>/<version>``, a 404 when the group is not there."""
        group, _, version = api_version.rpartition("/")
        discover = client.CustomObjectsApi(self.api).get_api_resources
        try:
            found = self._call(discover, group, version)
        except ClusterError as exc:
            if exc.status == 404:
                return False
            raise
        return any(r.get("kind") == kind for r in found.get("resources") or [])

    def _method(self, manifest: Mapping[str, Any], verb: str) -> Any:
        key = (manifest["apiVersion"], manifest["kind"])
        kind = KINDS.get(key)
        if kind is None:
            raise ClusterError(f"{key[1]} ({key[0]}) is not a kind this runtime manages")
        if kind.custom:
            group, _, version = key[0].partition("/")
            return _custom(kind.api(self.api), verb, group, version, kind.plural)
        return getattr(kind.api(self.api), f"{verb}_{kind.suffix}")

    def _call(self, method: Any, *args: Any, **kwargs: Any) -> Manifest:
        try:
            response = method(*args, _preload_content=False, **kwargs)
        except ApiException as exc:
            raise ClusterError(_said(exc), status=exc.status) from None
        except OSError as exc:  # urllib3's connection errors are OSErrors
            raise ClusterError(f"the cluster is unreachable: {exc}") from None
        body = response.data
        return json.loads(body) if body else {}


def _custom(api: client.CustomObjectsApi, verb: str, group: str, version: str, plural: str) -> Any:
    """A ``CustomObjectsApi`` method called as the typed ones are (``name, namespace, ...``;
    ``namespace, ...`` to list), so applying, reading, watching and deleting a custom
    resource take the same paths as a Deployment."""
    method = getattr(api, f"{'get' if verb == 'read' else verb}_namespaced_custom_object")
    if verb == "list":

        def listed(namespace: str, **kwargs: Any) -> Any:
            return method(group, version, namespace, plural, **kwargs)

        return listed

    def named(name: str, namespace: str, *args: Any, **kwargs: Any) -> Any:
        return method(group, version, namespace, plural, name, *args, **kwargs)

    return named


def _said(exc: ApiException) -> str:
    """The server's own message (a ``Status`` body), else the HTTP reason."""
    try:
        status = json.loads(exc.body or "{}")
    except ValueError:
        status = {}
    message = status.get("message") if isinstance(status, dict) else None
    return f"{exc.status} {message or exc.reason}"
