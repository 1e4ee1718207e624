"""A pod's volumes as the double's kubelet provides them: host directories, never mounts.

``emptyDir`` (and any other kind) is a directory of the pod's own; a
``persistentVolumeClaim`` is one directory per namespace and claim name, shared by every
pod that names it (a ReadWriteMany volume); a ``hostPath`` is ``<node root>/host/<path>``,
shared by every pod of this one node; ``secret`` and ``configMap`` volumes are written out
key by key (the pod's mount paths rewritten in their contents too).
:mod:`tests.kubeapi.containers` rewrites each ``mountPath`` to its directory.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tests.kubeapi import containers
from tests.kubeapi.containers import Lookup

Json = dict[str, Any]


def provide(
    spec: Json, *, pod_root: Path, node_root: Path, namespace: str, lookup: Lookup
) -> dict[str, Path]:
    """Each volume's host directory, by volume name; Secret and ConfigMap volumes' keys
    written as files, every mount path of the pod rewritten in them as in arguments."""
    made = {
        v["name"]: _volume(v, pod_root=pod_root, node_root=node_root, namespace=namespace)
        for v in spec.get("volumes") or []
    }
    everywhere: dict[str, Path] = {}
    for container in [*(spec.get("initContainers") or []), *(spec.get("containers") or [])]:
        everywhere |= {m: p for m, p in mounts(container, made).items() if m not in everywhere}
    for volume in spec.get("volumes") or []:
        for key, value in _files(volume, lookup).items():
            text = containers.rewrite(value, everywhere)
            (made[volume["name"]] / key).write_bytes(text.encode(errors="surrogateescape"))
    return made


def mounts(container: Json, provided: dict[str, Path]) -> dict[str, Path]:
    """Each ``mountPath`` of ``container`` -> its host path (``subPath`` in the volume)."""
    found: dict[str, Path] = {}
    for mount in container.get("volumeMounts") or []:
        if mount.get("name") in provided:
            host = provided[mount["name"]] / mount.get("subPath", "")
            if not host.exists():
                host.mkdir(parents=True)
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
