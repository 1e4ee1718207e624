"""``GET /api/v1/namespaces/{ns}/pods/{name}/log``: a container's output, as the real API
server relays it from the kubelet (``container``, ``tailLines``, ``limitBytes``; with
``follow=true`` the answer comes once the pod's processes ended, whole, not streamed), with its
refusals: 404 for a pod that does not exist, 400 for a container it cannot tell or that has
not started. Without the kubelet (simulated mode) a pod's log is empty: nothing ran."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from tests.kubeapi import errors, resources

if TYPE_CHECKING:
    from tests.kubeapi.api import Api
    from tests.kubeapi.kubelet import Kubelet

Json = dict[str, Any]
PATH = re.compile(r"/api/v1/namespaces/([^/]+)/pods/([^/]+)/log/?")


def route(path: str) -> tuple[str, str] | None:
    """``(namespace, pod)`` when ``path`` is a pod's log."""
    found = PATH.fullmatch(path)
    return (found[1], found[2]) if found else None


def container_of(pod: Json, asked: str) -> str:
    """The container whose log is asked for: the only one when none is named."""
    spec, name = pod.get("spec") or {}, pod["metadata"]["name"]
    main = [str(c["name"]) for c in spec.get("containers") or []]
    init = [str(c["name"]) for c in spec.get("initContainers") or []]
    if not asked and len(main) == 1:
        return main[0]
    if not asked:
        raise errors.bad_request(
            f"a container name must be specified for pod {name}, choose one of: "
            f"[{' '.join(main)}] or one of the init containers: [{' '.join(init)}]"
        )
    if asked not in main + init:
        raise errors.bad_request(f"container {asked} is not valid for pod {name}")
    return asked


def _waiting(pod: Json, container: str) -> str | None:
    status = pod.get("status") or {}
    states = [*status.get("initContainerStatuses", []), *status.get("containerStatuses", [])]
    for state in states:
        if state["name"] == container and "waiting" in state["state"]:
            return str(state["state"]["waiting"].get("reason", ""))
    return None


def read(api: Api, node: Kubelet | None, namespace: str, name: str, query: dict[str, str]) -> str:
    """The log text; callers hold the store's lock."""
    pod = api.get(resources.PODS, namespace, name)
    container = container_of(pod, query.get("container", ""))
    reason = _waiting(pod, container) if node is not None else None
    if reason is not None:
        raise errors.bad_request(
            f'container "{container}" in pod "{name}" is waiting to start: {reason}'
        )
    text = node.log(namespace, name, container) if node is not None else b""
    if query.get("tailLines", "").isdigit():
        lines = text.splitlines(keepends=True)
        text = b"".join(
            lines[len(lines) - int(query["tailLines"]) :] if int(query["tailLines"]) else []
        )
    if query.get("limitBytes", "").isdigit():
        text = text[: int(query["limitBytes"])]
    return text.decode(errors="replace")
