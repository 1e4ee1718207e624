"""A pod's volumes as the double's kubelet provides them: host directories, never mounts.

``emptyDir`` (and any other kind) is a directory of the pod's own; a
``persistentVolumeClaim`` is one directory per namespace and claim name, shared by every
pod that names it (a ReadWriteMany volume); a ``hostPath`` is ``<node root>/host/<path>``,
shared by every pod of this one node; ``secret`` and ``configMap`` volumes are written out
key by key. :mod:`tests.kubeapi.containers` rewrites each ``mountPath`` to its directory.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tests.kubeapi.containers import Lookup

Json = dict[str, Any]


def mounts(
    spec: Json, *, pod_root: Path, node_root: Path, namespace: str, lookup: Lookup
) -> dict[str, Path]:
    """Each ``mountPath`` of the pod's containers -> its host directory (``subPath`` in it)."""
    made = {
        v["name"]: _volume(v, pod_root=pod_root, node_root=node_root, namespace=namespace)
        for v in spec.get("volumes") or []
    }
    for volume in spec.get("volumes") or []:
        for key, value in _files(volume, lookup).items():
            (made[volume["name"]] / key).write_text(value)
    found: dict[str, Path] = {}
    for container in [*(spec.get("initContainers") or []), *(spec.get("containers") or [])]:
        for mount in container.get("volumeMounts") or []:
            if mount.get("name") in made:
                host = made[mount["name"]] / mount.get("subPath", "")
                host.mkdir(parents=True, exist_ok=True)
                found[mount["mountPath"]] = host
    return found


def _volume(volume: Json, *, pod_root: Path, node_root: Path, namespace: str) -> Path:
    if "persistentVolumeClaim" in volume:
        claim = str(volume["persistentVolumeClaim"]["claimName"])
        path = node_root / "claims" / namespace / claim
    elif "hostPath" in volume:
        path = node_root / "host" / str(volume["hostPath"]["path"]).lstrip("/")
    else:
        path = pod_root / "volumes" / str(volume["name"])
    path.mkdir(parents=True, exist_ok=True)
    return path


def _files(volume: Json, lookup: Lookup) -> dict[str, str]:
    """A Secret's (decoded) or ConfigMap's keys, as its volume holds them as files."""
    if "secret" in volume:
        return dict(lookup("Secret", volume["secret"].get("secretName", "")) or {})
    if "configMap" in volume:
        return dict(lookup("ConfigMap", volume["configMap"].get("name", "")) or {})
    return {}
