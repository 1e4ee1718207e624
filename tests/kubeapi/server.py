"""The Kubernetes API server test double, served over real HTTP on 127.0.0.1.

``KubeApiDouble`` is a named stand-in for a cluster's API server (no real one can run on
the machines that build Gitplane): the official ``kubernetes`` client, kubeconfig
loading and the client's error handling run unchanged against it. It serves the
resources of :mod:`tests.kubeapi.resources` with the verbs of :mod:`tests.kubeapi.api`,
checks a bearer token (401 without it), records every request it receives (so a test
can compare what a runtime sent with what it rendered), and streams watches as chunked
JSON lines. Its controllers (:mod:`tests.kubeapi.controllers`) move workloads' status
only when a test steps them.
"""

from __future__ import annotations

import hmac
import json
import secrets
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from http.server import ThreadingHTTPServer
from pathlib import Path
from typing import Self

from tests import clock as test_clock
from tests.kubeapi import controllers, errors, handler, resources
from tests.kubeapi.api import Api
from tests.kubeapi.handler import Request
from tests.kubeapi.kubelet import Kubelet
from tests.kubeapi.resources import Resource
from tests.kubeapi.store import Store


@dataclass
class ManualClock:
    """The double's clock: creationTimestamp, managedFields times and progress deadlines
    read it; a test moves it with :meth:`advance`."""

    now: datetime = test_clock.NOW

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        from datetime import timedelta  # noqa: PLC0415 - only moving time needs it

        self.now += timedelta(seconds=seconds)


@dataclass
class KubeApiDouble:
    """An API server on a free port of 127.0.0.1; use as a context manager."""

    keda: bool = False
    """Serve (and discover) KEDA's ``keda.sh/v1alpha1`` ScaledObject CRD."""
    clock: Callable[[], datetime] = field(default_factory=ManualClock)
    port: int = 0
    token: str = field(default_factory=lambda: secrets.token_hex(16))
    requests: list[Request] = field(default_factory=list)
    kubelet: bool = False
    """Run the Job controller's pods for real, as local processes (:mod:`tests.kubeapi.kubelet`)."""
    kubelet_root: Path | None = None
    """Where the kubelet keeps pods' volumes and logs (default: a temporary directory,
    removed at :meth:`stop`)."""
    kubelet_env: Mapping[str, str] | None = None
    """The environment every container starts from, before the pod's own (default: this
    process's); e.g. ``tests.clock.env_at(now)`` for pods that read the test's clock."""

    def __post_init__(self) -> None:
        self.served: tuple[Resource, ...] = resources.served(keda=self.keda)
        self.store = Store()
        self.api = Api(store=self.store, clock=self.clock, served=self.served)
        self.controllers = controllers.Controllers(
            api=self.api, clock=self.clock, kubelet=self.kubelet
        )
        self.node = (
            Kubelet(api=self.api, clock=self.clock, root=self.kubelet_root, env=self.kubelet_env)
            if self.kubelet
            else None
        )
        self._server: ThreadingHTTPServer | None = None
        self._stepping = threading.Event()
        self._stepper: threading.Thread | None = None
        with self.store.lock:
            for name in ("default", "kube-system"):
                self.api.create(
                    resources.NAMESPACES, None, {"metadata": {"name": name}}, "kube-apiserver"
                )

    @property
    def read_only_verbs(self) -> set[str]:
        """What a read-only resource (pods) allows: GET, and DELETE with the kubelet (it
        stops the pod's processes)."""
        return {"GET", "DELETE"} if self.node is not None else {"GET"}

    @property
    def url(self) -> str:
        assert self._server is not None, "start() the double first"
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def start(self) -> Self:
        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), handler.make(self))
        self._server.daemon_threads = True
        server = self._server
        threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.05}, name="kubeapi", daemon=True
        ).start()
        if self.node is not None:
            self.node.start()
        return self

    def step_every(self, seconds: float, *, advance: float = 0.0) -> Self:
        """Step the controllers on a thread of the double every ``seconds`` until
        :meth:`stop`, moving a :class:`ManualClock` ``advance`` seconds each step (as
        a cluster's controllers run on their own; a test need not step them)."""

        def run() -> None:
            while not self._stepping.wait(seconds):
                self.controllers.step()
                if advance and isinstance(self.clock, ManualClock):
                    self.clock.advance(advance)

        self._stepper = threading.Thread(target=run, name="kubeapi-controllers", daemon=True)
        self._stepper.start()
        return self

    def stop(self) -> None:
        self._stepping.set()
        if self._stepper is not None:
            self._stepper.join()
        if self.node is not None:
            self.node.stop()
        with self.store.lock:
            self.store.close()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def authorize(self, header: str) -> None:
        """401 unless the ``Authorization`` header carries this double's bearer token."""
        scheme, _, presented = header.partition(" ")
        if scheme != "Bearer" or not hmac.compare_digest(presented.encode(), self.token.encode()):
            raise errors.unauthorized()

    def write_kubeconfig(self, path: Path, *, namespace: str = "default") -> Path:
        """A kubeconfig (JSON is YAML) whose current context reaches this double."""
        name = "kubeapi-double"
        config = {
            "apiVersion": "v1",
            "kind": "Config",
            "current-context": name,
            "preferences": {},
            "clusters": [{"name": name, "cluster": {"server": self.url}}],
            "users": [{"name": name, "user": {"token": self.token}}],
            "contexts": [
                {"name": name, "context": {"cluster": name, "user": name, "namespace": namespace}}
            ],
        }
        path.write_text(json.dumps(config, indent=2) + "\n")
        return path

    def compact(self) -> None:
        """Forget the watch history: a watch from an older resourceVersion gets 410 Gone."""
        with self.store.lock:
            self.store.compact()
