"""From a request path to what it names: a discovery document, or a resource with its
namespace, name and subresource, following the API server's URL layout
(``/apis/<group>/<version>/namespaces/<ns>/<plural>/<name>/status``)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from tests.kubeapi import errors, resources
from tests.kubeapi.resources import Resource


@dataclass(frozen=True)
class Route:
    resource: Resource
    namespace: str | None
    name: str | None
    subresource: str | None


def discovery(served: tuple[Resource, ...], path: str) -> dict[str, Any] | None:
    """The discovery document at ``path``, if it is one the double serves."""
    parts = [p for p in path.split("/") if p]
    if parts == ["api"]:
        return resources.api_versions()
    if parts == ["apis"]:
        return resources.group_list(served)
    if parts == ["version"]:
        return {
            "major": "1",
            "minor": "31",
            "gitVersion": "v1.31.0-kubeapi-double",
            "platform": "linux/amd64",
        }
    if len(parts) == 2 and parts[0] == "api":
        return resources.resource_list(served, parts[1])
    if len(parts) == 3 and parts[0] == "apis":
        return resources.resource_list(served, f"{parts[1]}/{parts[2]}")
    return None


def _unknown(path: str) -> errors.ApiError:
    return errors.ApiError(
        404, "NotFound", f"the server could not find the requested resource ({path})"
    )


def _split(path: str) -> tuple[str, list[str]]:
    """``(group/version, rest of the path)``."""
    parts = [p for p in path.split("/") if p]
    if len(parts) >= 3 and parts[0] == "api":
        return parts[1], parts[2:]
    if len(parts) >= 4 and parts[0] == "apis":
        return f"{parts[1]}/{parts[2]}", parts[3:]
    raise _unknown(path)


def route(served: tuple[Resource, ...], path: str) -> Route:
    """The resource a path names; 404 as the real server when it names none."""
    group_version, rest = _split(path)
    by_plural = {r.plural: r for r in served if r.api_version == group_version}
    namespace = None
    if rest[0] == "namespaces" and len(rest) >= 3 and by_plural.get(rest[2]):
        namespace, rest = rest[1], rest[2:]
    resource = by_plural.get(rest[0])
    if resource is None or len(rest) > 3 or (len(rest) == 3 and rest[2] != "status"):
        raise _unknown(path)
    if resource.namespaced and namespace is None and len(rest) > 1:
        raise _unknown(path)
    if rest[2:] and not resource.status:
        raise _unknown(path)
    return Route(
        resource, namespace, rest[1] if len(rest) > 1 else None, rest[2] if len(rest) > 2 else None
    )
