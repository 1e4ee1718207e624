"""The double's kubelet (opt-in: ``KubeApiDouble(kubelet=True)``): every pod the Job
controller makes runs for real, as local processes, so the work a Job's pod does happens.

It watches the store as a kubelet watches the pods bound to its node: a new pod runs in a
thread of its own (init containers in order, then the first container; the image is
ignored, the interpreter and PATH of this environment serve every image), writing the pod's
status as the real kubelet reports it; a deleted pod's processes are stopped (SIGTERM to
the process group, SIGKILL after the grace period, at most :data:`GRACE_CAP` seconds).
Volumes are host directories under the kubelet's root (:mod:`tests.kubeapi.containers`
says how paths reach them). :meth:`Kubelet.stop` stops every process: none outlives the
double.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import threading
from collections.abc import Callable, Mapping
from datetime import datetime
from pathlib import Path
from typing import Any

from tests.kubeapi import containers, resources
from tests.kubeapi.api import Api
from tests.kubeapi.pods import PodRun

Json = dict[str, Any]


class Kubelet:
    """Runs the double's pods on this machine; ``start`` and ``stop`` it with the double."""

    def __init__(
        self,
        *,
        api: Api,
        clock: Callable[[], datetime],
        root: Path | None = None,
        env: Mapping[str, str] | None = None,
    ):
        self.api = api
        self.clock = clock
        self.env = dict(os.environ if env is None else env)
        """What every container's environment starts from (then the pod's own)."""
        self._own_root = root is None
        self.root = root or Path(tempfile.gettempdir()) / "kubelet-unstarted"
        """Pods' volumes, logs and files (a new temporary directory at :meth:`start`)."""
        self._runs: dict[tuple[str, str], PodRun] = {}
        """The pods that exist, by namespace and name."""
        self._every: list[PodRun] = []
        """Every pod run, deleted ones too: :meth:`stop` waits for each."""
        self._stopping = False
        self._thread = threading.Thread(target=self._watch, name="kubelet", daemon=True)

    def start(self) -> None:
        if self._own_root:
            self.root = Path(tempfile.mkdtemp(prefix="kubelet-"))
        self._thread.start()

    def stop(self) -> None:
        """Stop every process and wait for them; forget the volumes if the root is ours."""
        with self.api.store.lock:
            self._stopping = True
            self.api.store.lock.notify_all()
            runs = list(self._every)
            for run in runs:
                run.kill()
        if self._thread.is_alive():
            self._thread.join()
        for run in runs:
            run.join()
        if self._own_root and self._thread.ident is not None:
            shutil.rmtree(self.root, ignore_errors=True)

    def running(self) -> list[int]:
        """Process ids of the containers running now."""
        return [pid for run in list(self._every) if (pid := run.pid()) is not None]

    def log(self, namespace: str, name: str, container: str) -> bytes:
        """What a container of a pod printed so far (nothing for a pod it never ran)."""
        run = self._runs.get((namespace, name))
        return run.log(container) if run is not None else b""

    def wait(self, namespace: str, name: str, *, timeout: float) -> None:
        """Until the pod's processes ended (or it was never run here): ``follow=true`` on
        its log answers then, with the whole log at once."""
        run = self._runs.get((namespace, name))
        if run is not None:
            run.join(timeout)

    def lookup(self, namespace: str) -> containers.Lookup:
        """The data of a Secret (decoded) or ConfigMap of ``namespace``, None if missing."""

        def find(kind: str, name: str) -> dict[str, str] | None:
            with self.api.store.lock:
                if kind == "Secret":
                    secret = self.api.store.get(resources.SECRETS, namespace, name)
                    return containers.secret_data(secret) if secret is not None else None
                found = self.api.store.get(resources.CONFIGMAPS, namespace, name)
                return dict(found.get("data") or {}) if found is not None else None

        return find

    def _watch(self) -> None:
        store = self.api.store
        with store.lock:
            seen = store.revision
            self._resync()
            while not (self._stopping or store.closed):
                try:
                    events = store.events_after(seen)
                except ValueError:  # the history was compacted: look at every pod again
                    events = []
                    self._resync()
                seen = store.revision
                for event in events:
                    if event.resource is resources.PODS:
                        self._changed(event.type, event.object)
                store.lock.wait()

    def _changed(self, kind: str, pod: Json) -> None:
        key = (pod["metadata"]["namespace"], pod["metadata"]["name"])
        if kind == "ADDED" and key not in self._runs:
            self._runs[key] = PodRun(self, pod)
            self._every.append(self._runs[key])
            self._runs[key].start()
        elif kind == "DELETED" and key in self._runs:
            self._runs.pop(key).kill()

    def _resync(self) -> None:
        pods = {
            (p["metadata"]["namespace"], p["metadata"]["name"]): p
            for p in self.api.store.list(resources.PODS, None)
        }
        for key in set(self._runs) - set(pods):
            self._runs.pop(key).kill()
        for key in set(pods) - set(self._runs):
            self._changed("ADDED", pods[key])
