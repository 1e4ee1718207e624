"""``DataPlane``: a place that runs things, and the key its agent signs with."""

from __future__ import annotations

from typing import Annotated, ClassVar, Literal, Self

from pydantic import AfterValidator, Field, model_validator

from schemas import ed25519, hints
from schemas.common import Duration, Name, Strict
from schemas.document import Document


def _a_usable_key(value: str) -> str:
    """The checks the ledger makes of every key it verifies with (``schemas.ed25519``)."""
    why = ed25519.problem(bytes.fromhex(value))
    if why is not None:
        raise ValueError(why)
    return value


class AgentKey(Strict):
    """The public half of the agent's Ed25519 key (``gitplane keys agent`` prints it)."""

    type: Literal["ed25519"] = "ed25519"
    public: Annotated[str, Field(pattern=r"^[0-9a-f]{64}$"), AfterValidator(_a_usable_key)]
    """32-byte public key, lower-case hex: a canonical point that is not of small order."""


class SyncPolicy(Strict):
    """How the reconciler keeps this plane converged (Argo CD ``syncPolicy`` semantics)."""

    prune: bool = False
    """Delete resources whose spec was removed from git. Off by default, as in Argo CD."""
    self_heal: bool = True
    """Revert drift the agent observes back to the last verified desired state."""


class Capacity(Strict):
    """Upper bounds the reconciler will not plan past on this plane."""

    max_replicas: Annotated[int, Field(ge=1)] | None = None
    max_deployments: Annotated[int, Field(ge=1)] | None = None


class PortRange(Strict):
    """An inclusive range of TCP ports."""

    start: Annotated[int, Field(ge=1024, le=65535)]
    end: Annotated[int, Field(ge=1024, le=65535)]

    @model_validator(mode="after")
    def _ordered(self) -> Self:
        if self.start > self.end:
            raise ValueError("start must not exceed end")
        return self


class LocalRuntime(Strict):
    """What the plane's ``local`` runtime is set up with, recorded for people and tools.

    The agent takes these from its own configuration file (``runtime.*`` in
    docs/agent.md), never from git: keep the two equal.
    """

    mlflow_tracking_uri: str | None = None
    """MLflow tracking URI (the agent's ``runtime.mlflowTrackingUri``); default a SQLite store
    in the agent's state directory."""
    ports: PortRange = Field(default_factory=lambda: PortRange(start=20000, end=29999))
    """Ports endpoints are given from (the agent's ``runtime.ports``); replicas listen on
    loopback ports the system chooses."""


Image = Annotated[str, Field(max_length=512, pattern=hints.IMAGE, title="image reference")]
"""An OCI image reference (``ghcr.io/acme/serve:2.14``, ``repo@sha256:<64 hex>``)."""
SecretName = Annotated[str, Field(max_length=253, pattern=hints.SUBDOMAIN, title="Secret name")]
"""The name of a Kubernetes Secret in the plane's namespace."""


class KubernetesImages(Strict):
    """The images a Kubernetes plane runs (pin them by digest: ``repo@sha256:...``)."""

    serving: Image
    """MLflow's scoring server and the model's runtime (``mlflow models serve``)."""
    build: Image | None = None
    """Runs MLflow Projects (``mlflow run``) for builds and DAG steps; default ``serving``."""
    agent: Image | None = None
    """Gitplane's own image: fetches and checks sources in Jobs, runs feature sets."""


class KubernetesSource(Strict):
    """Where pods fetch the spec repository from (builds and DAG steps)."""

    url: Annotated[str, Field(max_length=2048, pattern=hints.GIT_URL)]
    """The repository as pods reach it (https://, ssh://, git@host:path)."""
    secret: SecretName | None = None
    """A Secret in the plane's namespace whose keys become the fetching container's
    environment (git credentials); named, never given."""


class KubernetesPrometheus(Strict):
    """The Prometheus that scrapes the endpoints' proxies (their pods' ``prometheus.io/*``
    annotations), as KEDA's operator reaches it."""

    url: Annotated[str, Field(max_length=2048, pattern=hints.HTTP_URL, title="URL")]
    """``http://prometheus.monitoring.svc:9090``: KEDA's ``prometheus`` scaler queries it."""


class KubernetesAutoscaling(Strict):
    """How a Kubernetes plane scales Deployments on their measured load."""

    prometheus: KubernetesPrometheus | None = None
    """Without it (or without KEDA in the cluster) a Deployment scales on CPU with an
    ``autoscaling/v2`` HPA, and its status says which targets are not honoured."""


class KubernetesRuntime(Strict):
    """Settings of the ``kubernetes`` runtime (ADR 0016: signed to the agent with its
    commands, once the runtime reads them)."""

    namespace: Name = "gitplane"
    context: str | None = None
    """kubeconfig context; default in-cluster configuration."""
    mlflow_tracking_uri: str | None = None
    images: KubernetesImages | None = None
    source: KubernetesSource | None = None
    autoscaling: KubernetesAutoscaling | None = None


class DataPlaneSpec(Strict):
    """What a data plane is and how it is trusted."""

    runtime: Literal["local", "kubernetes"]
    """Which runtime the plane's agent applies commands with."""
    agent_key: AgentKey | None = None
    """Key the agent signs status with; without it no status from this plane is trusted."""
    sync: SyncPolicy = Field(default_factory=SyncPolicy)
    status_stale_after: Duration = "10m"
    """A plane whose last signed status is older than this is flagged stale."""
    capacity: Capacity = Field(default_factory=Capacity)
    local: LocalRuntime | None = None
    kubernetes: KubernetesRuntime | None = None


class DataPlane(Document):
    """A data plane; its ``metadata.labels`` (env, region) are what selectors match."""

    KIND: ClassVar[str] = "DataPlane"
    api_version: Literal["gitplane.dev/v1alpha1"]
    kind: Literal["DataPlane"]
    spec: DataPlaneSpec
