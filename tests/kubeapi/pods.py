"""One pod run by the double's kubelet (:mod:`tests.kubeapi.kubelet`): its volumes as host
directories, its init containers in order and then its first container as local
processes (each in a session of its own, so a kill reaches its children), its status
written through the status subresource as the real kubelet writes it.

``restartPolicy`` is read as ``Never`` (a failed container fails the pod; the Job
controller makes a new pod, as for Job pods it does); containers after the first
(sidecars) do not run.
"""

from __future__ import annotations

import os
import signal
import subprocess
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tests.kubeapi import containers, errors, resources, volumes
from tests.kubeapi.api import timestamp

if TYPE_CHECKING:
    from tests.kubeapi.kubelet import Kubelet

Json = dict[str, Any]
MANAGER = "kubelet"
GRACE_CAP = 5.0
"""Seconds a stopped pod's processes get after SIGTERM, at most, before SIGKILL."""
RETRY = 0.2
"""Seconds between tries of a container whose Secret or ConfigMap is missing."""
START_ERROR = 128
"""The exit code the container runtime reports for a program it cannot start."""


class PodRun:
    """A pod's processes and the status they earn it."""

    def __init__(self, kubelet: Kubelet, pod: Json) -> None:
        self.kubelet = kubelet
        self.pod = pod
        metadata = pod["metadata"]
        self.namespace, self.name = metadata["namespace"], metadata["name"]
        self.spec: Json = pod.get("spec") or {}
        self.root = kubelet.root / "pods" / metadata.get("uid", self.name)
        self.cancel = threading.Event()
        self._lock = threading.Lock()
        self._process: subprocess.Popen[bytes] | None = None
        self._thread = threading.Thread(target=self._run, name=f"pod {self.name}", daemon=True)
        self.status: Json = {}

    def start(self) -> None:
        self._thread.start()

    def join(self, timeout: float | None = None) -> None:
        if self._thread.is_alive():
            self._thread.join(timeout)

    def kill(self) -> None:
        """Stop the pod: SIGTERM its running container now, SIGKILL after the grace."""
        with self._lock:
            self.cancel.set()
            if self._process is not None and self._process.poll() is None:
                _signal(self._process, signal.SIGTERM)

    def pid(self) -> int | None:
        with self._lock:
            running = self._process is not None and self._process.poll() is None
            return self._process.pid if running and self._process else None

    def log(self, container: str) -> bytes:
        path = self.root / "logs" / f"{container}.log"
        return path.read_bytes() if path.exists() else b""

    # -- the run ------------------------------------------------------------------------------

    def _run(self) -> None:
        """The pod's life; a fault of the double fails the pod and says so in its status."""
        try:
            self._live()
        except Exception as bug:  # a fault of the double: reported in the status, not lost
            self.status |= {"phase": "Failed", "reason": "KubeletDoubleError"}
            self.status["message"] = f"the double's kubelet failed: {bug!r}"
            self._report()

    def _live(self) -> None:
        init = self.spec.get("initContainers") or []
        main = (self.spec.get("containers") or [])[:1]
        waiting = "PodInitializing" if init else "ContainerCreating"
        self.status = {
            "phase": "Pending",
            "hostIP": "127.0.0.1",
            "podIP": "127.0.0.1",
            "startTime": self._now(),
            **(
                {"initContainerStatuses": [self._waiting(c, "PodInitializing") for c in init]}
                if init
                else {}
            ),
            "containerStatuses": [self._waiting(c, waiting) for c in main],
        }
        self._report()
        provided = volumes.provide(
            self.spec,
            pod_root=self.root,
            node_root=self.kubelet.root,
            namespace=self.namespace,
            lookup=self.kubelet.lookup(self.namespace),
        )
        for position, container in enumerate(init):
            mounts = volumes.mounts(container, provided)
            code = self._container(container, mounts, "initContainerStatuses", position)
            if code != 0:
                self._end(code)
                return
        if main:
            mounts = volumes.mounts(main[0], provided)
            self._end(self._container(main[0], mounts, "containerStatuses", 0, phase="Running"))

    def _end(self, code: int | None) -> None:
        if code is not None:
            self.status["phase"] = "Succeeded" if code == 0 else "Failed"
            self._report()

    def _container(
        self,
        container: Json,
        mounts: dict[str, Path],
        statuses: str,
        position: int,
        *,
        phase: str = "",
    ) -> int | None:
        """Run one container to its end: its exit code, None when the pod was stopped."""
        launch = self._launch(container, mounts, statuses, position)
        if launch is None:
            return None
        log = self.root / "logs" / f"{launch.name}.log"
        started = self._now()
        try:
            process = self._spawn(launch, log)
        except OSError as failed:
            text = f"exec: {launch.argv[0]!r}: {failed.strerror or failed}"
            return self._terminated(
                container, statuses, position, code=START_ERROR, text=text, started=started
            )
        if process is None:
            return None
        image = container.get("image", "")
        self.status[statuses][position] = containers.running(launch.name, image, at=started)
        self.status["phase"] = phase or self.status["phase"]
        self._report()
        code = self._wait(process)
        _signal(process, signal.SIGKILL)  # what it left behind ends with it, as in a container
        if self.cancel.is_set():
            return None
        text = containers.message(
            _read(launch.message_file),
            _read(log),
            exit_code=code,
            policy=launch.message_policy,
        )
        return self._terminated(
            container, statuses, position, code=code, text=text, started=started
        )

    def _terminated(
        self, container: Json, statuses: str, position: int, *, code: int, text: str, started: str
    ) -> int:
        self.status[statuses][position] = containers.terminated(
            container["name"],
            container.get("image", ""),
            exit_code=code,
            text=text,
            started=started,
            finished=self._now(),
        )
        return code

    def _launch(
        self, container: Json, mounts: dict[str, Path], statuses: str, position: int
    ) -> containers.Launch | None:
        """The container's launch once its Secrets and ConfigMaps exist (retried until then,
        reported ``CreateContainerConfigError``); None when the pod is stopped first."""
        message_file = self.root / "termination" / container["name"]
        message_file.parent.mkdir(parents=True, exist_ok=True)
        message_file.write_bytes(b"")
        lookup = self.kubelet.lookup(self.namespace)
        while not self.cancel.is_set():
            try:
                made = containers.launch(
                    container,
                    self.pod,
                    mounts=mounts,
                    message_file=message_file,
                    scratch=self.root / "rootfs" / container["name"],
                    lookup=lookup,
                    base=self.kubelet.env,
                )
            except containers.ConfigError as missing:
                image = container.get("image", "")
                reason = "CreateContainerConfigError"
                self.status[statuses][position] = containers.waiting(
                    container["name"], image, reason, str(missing)
                )
                self._report()
                self.cancel.wait(RETRY)
                continue
            made.cwd.mkdir(parents=True, exist_ok=True)
            return made
        return None

    def _spawn(self, launch: containers.Launch, log: Path) -> subprocess.Popen[bytes] | None:
        log.parent.mkdir(parents=True, exist_ok=True)
        with self._lock, log.open("ab") as out:
            if self.cancel.is_set():
                return None
            self._process = subprocess.Popen(
                launch.argv,
                env=launch.env,
                cwd=launch.cwd,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
            return self._process

    def _wait(self, process: subprocess.Popen[bytes]) -> int:
        """The process's exit code; after a stop, SIGKILL once the grace is over."""
        while not self.cancel.is_set():
            try:
                return _exit_code(process.wait(timeout=RETRY))
            except subprocess.TimeoutExpired:
                continue
        try:
            return _exit_code(process.wait(timeout=self._grace()))
        except subprocess.TimeoutExpired:
            _signal(process, signal.SIGKILL)
            return _exit_code(process.wait())

    def _grace(self) -> float:
        return min(float(self.spec.get("terminationGracePeriodSeconds", 30)), GRACE_CAP)

    # -- status -------------------------------------------------------------------------------

    def _waiting(self, container: Json, reason: str) -> Json:
        return containers.waiting(container["name"], container.get("image", ""), reason)

    def _now(self) -> str:
        return timestamp(self.kubelet.clock())

    def _report(self) -> None:
        """Write the pod's status as the kubelet does; a pod deleted meanwhile is let be."""
        api = self.kubelet.api
        self.status["conditions"] = containers.pod_conditions(self.status, now=self._now())
        with api.store.lock:
            if self.cancel.is_set():
                return
            try:
                api.write_status(
                    resources.PODS,
                    self.namespace,
                    self.name,
                    {"status": self.status},
                    manager=MANAGER,
                )
            except errors.ApiError:
                return


def _signal(process: subprocess.Popen[bytes], sent: signal.Signals) -> None:
    try:
        os.killpg(process.pid, sent)
    except ProcessLookupError:
        return


def _read(path: Path) -> bytes:
    return path.read_bytes() if path.is_file() else b""


def _exit_code(code: int) -> int:
    """128 + the signal when a signal ended the process, as the container runtime says."""
    return 128 - code if code < 0 else code
