"""What the double's kubelet makes of a pod's containers, pure: the argv, environment and
working directory a container runs with on this machine, and the status the API reports
for it. :mod:`tests.kubeapi.kubelet` does the running.

Where a real kubelet mounts a volume at ``mountPath``, this one rewrites: every
``mountPath`` (and the container's ``terminationMessagePath``) that starts a path in
``command``, ``args``, ``workingDir`` or an ``env`` value becomes the host directory (or
file) that stands for it. A program that finds a mounted path any other way (a path
built at run time, a default in its code) does not see the volume.
"""

from __future__ import annotations

import base64
import os
import re
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

Json = dict[str, Any]
TERMINATION_LOG = "/dev/termination-log"
MESSAGE_LIMIT = 4096
"""Bytes of a termination message the kubelet keeps."""
FALLBACK_LINES, FALLBACK_BYTES = 80, 2048
"""``FallbackToLogsOnError`` takes the log's tail: this many lines or bytes, the smaller."""
FIELD = re.compile(r"metadata\.(annotations|labels)\['([^']+)'\]")

Lookup = Callable[[str, str], "Mapping[str, str] | None"]
"""``(kind, name)`` -> the data of that Secret (decoded) or ConfigMap in the pod's namespace."""


class ConfigError(Exception):
    """A container cannot start: a Secret or key it names is missing
    (``CreateContainerConfigError``, as the real kubelet reports it)."""


@dataclass(frozen=True)
class Launch:
    """One container as this machine runs it."""

    name: str
    argv: list[str]
    env: dict[str, str]
    cwd: Path
    message_file: Path
    message_policy: str


def secret_data(secret: Json) -> dict[str, str]:
    """A Secret's values, base64-decoded as the API stores ``data`` (``stringData`` as is);
    bytes that are not UTF-8 survive as surrogates (a key file written back is the same)."""
    data = (secret.get("data") or {}).items()
    decoded = {k: base64.b64decode(v).decode(errors="surrogateescape") for k, v in data}
    return {**decoded, **(secret.get("stringData") or {})}


def rewrite(text: str, mounts: Mapping[str, Path]) -> str:
    """``text`` with each mount path that starts a path in it replaced by its host path
    (in one pass, the longest first: a host path is never rewritten again)."""
    hosts = {m.rstrip("/"): str(p) for m, p in mounts.items() if m.rstrip("/")}
    if not hosts:
        return text
    either = "|".join(re.escape(m) for m in sorted(hosts, key=len, reverse=True))
    return re.sub(rf"(?<![\w./-])({either})(?=/|$|[^\w.-])", lambda m: hosts[m[1]], text)


def _field(pod: Json, path: str) -> str:
    metadata = pod["metadata"]
    if path in {"metadata.name", "metadata.namespace", "metadata.uid"}:
        return str(metadata.get(path.split(".")[1], ""))
    found = FIELD.fullmatch(path)
    if found is None:
        raise ConfigError(f"unsupported fieldRef {path!r} (the double's kubelet)")
    return str((metadata.get(found[1]) or {}).get(found[2], ""))


def _reference(lookup: Lookup, kind: str, ref: Json, key: str | None) -> dict[str, str]:
    data = lookup(kind, ref.get("name", ""))
    optional = bool(ref.get("optional"))
    if data is None:
        if optional:
            return {}
        raise ConfigError(f'{kind.lower()} "{ref.get("name", "")}" not found')
    if key is None:
        return dict(data)
    if key not in data:
        if optional:
            return {}
        raise ConfigError(f"couldn't find key {key} in {kind} {ref.get('name', '')}")
    return {key: data[key]}


def environment(container: Json, pod: Json, lookup: Lookup) -> dict[str, str]:
    """The container's own variables: ``envFrom`` first, then ``env`` (which wins), as the
    kubelet orders them; ConfigError when a non-optional reference is missing."""
    made: dict[str, str] = {}
    for source in container.get("envFrom") or []:
        prefix = source.get("prefix", "")
        for kind, ref in (
            ("Secret", source.get("secretRef")),
            ("ConfigMap", source.get("configMapRef")),
        ):
            if ref is not None:
                made.update({prefix + k: v for k, v in _reference(lookup, kind, ref, None).items()})
    for variable in container.get("env") or []:
        made.update(_variable(variable, pod, lookup))
    return made


def _variable(variable: Json, pod: Json, lookup: Lookup) -> dict[str, str]:
    name, source = variable["name"], variable.get("valueFrom")
    if source is None:
        return {name: str(variable.get("value", ""))}
    for kind, field_name in (("Secret", "secretKeyRef"), ("ConfigMap", "configMapKeyRef")):
        if field_name in source:
            ref = source[field_name]
            key = ref.get("key", "")
            found = _reference(lookup, kind, ref, key)
            return {name: found[key]} if found else {}
    if "fieldRef" in source:
        return {name: _field(pod, source["fieldRef"]["fieldPath"])}
    raise ConfigError(f"unsupported valueFrom of {name} (the double's kubelet)")


def launch(
    container: Json,
    pod: Json,
    *,
    mounts: Mapping[str, Path],
    message_file: Path,
    scratch: Path,
    lookup: Lookup,
    base: Mapping[str, str],
) -> Launch:
    """How ``container`` runs here: ``command`` + ``args`` (the image is ignored, so with no
    ``command`` the first of ``args`` is the program), found on the PATH of this
    interpreter's environment first; the ``base`` environment, then the pod's."""
    where = container.get("terminationMessagePath") or TERMINATION_LOG
    paths = {**mounts, where: message_file}
    argv = [
        rewrite(a, paths)
        for a in [*(container.get("command") or []), *(container.get("args") or [])]
    ]
    if not argv:
        raise ConfigError(f"container {container['name']} has no command or args to run here")
    own = {k: rewrite(v, paths) for k, v in environment(container, pod, lookup).items()}
    path = os.pathsep.join([str(Path(sys.executable).parent), base.get("PATH", "")])
    env = {**base, "PATH": path, "HOSTNAME": pod["metadata"]["name"], **own}
    cwd = working_dir(container.get("workingDir") or "/", paths, scratch)
    policy = container.get("terminationMessagePolicy") or "File"
    return Launch(container["name"], argv, env, cwd, message_file, policy)


def working_dir(asked: str, mounts: Mapping[str, Path], scratch: Path) -> Path:
    """``workingDir`` on this machine: in its volume when a mount holds it, else under
    ``scratch`` (the container's own files: what the image would hold; ``/`` is
    ``scratch`` itself), never a directory of the machine outside the kubelet's root."""
    moved = rewrite(asked, mounts)
    return Path(moved) if moved != asked else scratch / asked.lstrip("/")


def message(written: bytes, log: bytes, *, exit_code: int, policy: str) -> str:
    """The termination message: the file's first 4096 bytes; with ``FallbackToLogsOnError``
    and an empty file after a failure, the log's last 80 lines or 2048 bytes."""
    if written.strip() or policy != "FallbackToLogsOnError" or exit_code == 0:
        return written[:MESSAGE_LIMIT].decode(errors="replace")
    tail = b"".join(log.splitlines(keepends=True)[-FALLBACK_LINES:])[-FALLBACK_BYTES:]
    return tail.decode(errors="replace")


def waiting(name: str, image: str, reason: str, text: str = "") -> Json:
    state: Json = {"reason": reason, **({"message": text} if text else {})}
    return _status(name, image, {"waiting": state}, started=False)


def running(name: str, image: str, *, at: str) -> Json:
    return _status(name, image, {"running": {"startedAt": at}}, started=True)


def terminated(
    name: str, image: str, *, exit_code: int, text: str, started: str, finished: str
) -> Json:
    """A container that ended: reason ``Completed`` on exit 0, else ``Error``."""
    state: Json = {
        "exitCode": exit_code,
        "reason": "Completed" if exit_code == 0 else "Error",
        "startedAt": started,
        "finishedAt": finished,
        **({"message": text} if text else {}),
    }
    return _status(name, image, {"terminated": state}, started=False)


def _status(name: str, image: str, state: Json, *, started: bool) -> Json:
    return {
        "name": name,
        "image": image,
        "imageID": "",
        "ready": False,
        "restartCount": 0,
        "started": started,
        "state": state,
    }


def pod_conditions(status: Json, *, now: str) -> list[Json]:
    """The pod's conditions from its phase and containers' states (no probes: a running
    container is ready); ``lastTransitionTime`` moves only when a condition's status does."""
    before = {c["type"]: c for c in status.get("conditions", [])}
    init = status.get("initContainerStatuses", [])
    initialized = all(c["state"].get("terminated", {}).get("exitCode") == 0 for c in init)
    running = any("running" in c["state"] for c in status.get("containerStatuses", []))
    ended = status.get("phase") in {"Succeeded", "Failed"}
    not_ready = "PodCompleted" if ended else "ContainersNotReady"
    wanted = [
        ("PodScheduled", True, ""),
        ("Initialized", initialized, "" if initialized else "ContainersNotInitialized"),
        ("ContainersReady", running, "" if running else not_ready),
        ("Ready", running, "" if running else not_ready),
    ]
    return [
        _condition(before.get(kind), kind, value, reason, now) for kind, value, reason in wanted
    ]


def _condition(old: Json | None, kind: str, value: bool, reason: str, now: str) -> Json:
    text = "True" if value else "False"
    kept = old is not None and old["status"] == text
    made: Json = {
        "type": kind,
        "status": text,
        "lastProbeTime": None,
        "lastTransitionTime": old["lastTransitionTime"] if old is not None and kept else now,
    }
    return {**made, **({"reason": reason} if reason else {})}
