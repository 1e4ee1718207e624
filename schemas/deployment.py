"""``Deployment``: an inference endpoint serving one model version, autoscaled."""

from __future__ import annotations

from typing import Annotated, ClassVar, Literal, Self

from pydantic import Field, model_validator

from schemas.common import Duration, LabelSelector, Name, Resources, Strict, Version
from schemas.document import Document


class ModelRef(Strict):
    """Which model to serve: its current version, a pinned version, or a registry alias."""

    name: Name
    """A ``Model`` in this repository."""
    version: Version | None = None
    """Pin to this version; must be the version the Model declares."""
    alias: Annotated[str, Field(pattern=r"^[A-Za-z][A-Za-z0-9_-]*$")] | None = None
    """Serve what ``models:/<name>@<alias>`` points at; the reconciler pins it in the command."""

    @model_validator(mode="after")
    def _version_or_alias(self) -> Self:
        if self.version is not None and self.alias is not None:
            raise ValueError("set version or alias, not both")
        return self


class Targets(Strict):
    """Per-replica targets; the highest replica count any target asks for wins."""

    rps_per_replica: Annotated[float, Field(gt=0)] | None = None
    """Requests per second one replica should carry."""
    p95_latency_ms: Annotated[float, Field(gt=0)] | None = None
    """95th-percentile latency to stay under, measured at the proxy."""
    error_rate: Annotated[float, Field(gt=0, le=1)] | None = None
    """Fraction of failed requests to stay under."""

    @model_validator(mode="after")
    def _at_least_one(self) -> Self:
        if self.rps_per_replica is None and self.p95_latency_ms is None and self.error_rate is None:
            raise ValueError("set at least one of rpsPerReplica, p95LatencyMs, errorRate")
        return self


class Autoscaling(Strict):
    """Replica count driven by measured load (Kubernetes HPA behaviour semantics)."""

    min_replicas: Annotated[int, Field(ge=0)] = 1
    max_replicas: Annotated[int, Field(ge=1)]
    targets: Targets
    polling_interval: Duration = "15s"
    scale_up_stabilization: Duration = "0s"
    """Highest recommendation over this window is used when scaling up."""
    scale_down_stabilization: Duration = "5m"
    """Highest recommendation over this window is used when scaling down."""
    cooldown: Duration = "30s"
    """Minimum time between two scaling events."""

    @model_validator(mode="after")
    def _bounds(self) -> Self:
        if self.min_replicas > self.max_replicas:
            raise ValueError("minReplicas must not exceed maxReplicas")
        return self


class Rollout(Strict):
    """How a new version or configuration replaces the running one."""

    strategy: Literal["rolling", "recreate"] = "rolling"
    max_surge: Annotated[int, Field(ge=0)] = 1
    max_unavailable: Annotated[int, Field(ge=0)] = 0
    auto_rollback: bool = True
    """Return to the previous version when the new one fails its health checks."""
    progress_deadline: Duration = "10m"

    @model_validator(mode="after")
    def _can_progress(self) -> Self:
        if self.max_surge == 0 and self.max_unavailable == 0:
            raise ValueError(
                "maxSurge and maxUnavailable must not both be 0: no replica could be replaced"
            )
        return self


class Health(Strict):
    """Readiness probe of each replica."""

    path: Annotated[str, Field(pattern=r"^/")] = "/ping"
    initial_delay: Duration = "0s"
    period: Duration = "5s"
    timeout: Duration = "2s"
    failure_threshold: Annotated[int, Field(ge=1)] = 3


class Server(Strict):
    """Tuning of each replica's scoring server."""

    workers: Annotated[int, Field(ge=1, le=64)] = 1
    request_timeout: Duration = "60s"
    max_batch_size: Annotated[int, Field(ge=1)] | None = None


class DeploymentSpec(Strict):
    """Exactly one of ``replicas`` or ``autoscaling``."""

    model: ModelRef
    plane_selector: LabelSelector
    """Planes that serve it; must match at least one DataPlane."""
    replicas: Annotated[int, Field(ge=0)] | None = None
    autoscaling: Autoscaling | None = None
    protocol: Literal["mlflow-v2"] = "mlflow-v2"
    """MLflow scoring protocol: /invocations, /ping, /health, /version."""
    resources: Resources = Field(default_factory=Resources)
    server: Server = Field(default_factory=Server)
    rollout: Rollout = Field(default_factory=Rollout)
    health: Health = Field(default_factory=Health)
    feature_sets: list[Name] = Field(default_factory=list)
    """FeatureSets the endpoint reads online features from."""
    env: dict[Annotated[str, Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")], str] = Field(
        default_factory=dict
    )
    """Environment variables of each replica; names of secrets only, never values."""

    @model_validator(mode="after")
    def _replicas_or_autoscaling(self) -> Self:
        if self.replicas is not None and self.autoscaling is not None:
            raise ValueError("set replicas or autoscaling, not both")
        return self


class Deployment(Document):
    """An inference endpoint."""

    KIND: ClassVar[str] = "Deployment"
    api_version: Literal["gitplane.dev/v1alpha1"]
    kind: Literal["Deployment"]
    spec: DeploymentSpec
