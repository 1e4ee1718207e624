"""``Model``: a versioned model, built from an MLflow Project or imported, then scanned."""

from __future__ import annotations

import operator
from collections.abc import Callable, Mapping, Sequence
from typing import Annotated, ClassVar, Literal, Self

from pydantic import Field, model_validator

from schemas.common import Duration, LabelSelector, ProjectRef, Resources, Strict, Version
from schemas.document import Document

Severity = Literal["CRITICAL", "HIGH", "MEDIUM", "LOW"]
ScanTool = Literal["modelscan", "picklescan"]
SEVERITIES: tuple[Severity, ...] = ("LOW", "MEDIUM", "HIGH", "CRITICAL")


class RegistrySource(Strict):
    """An existing model in an MLflow registry, resolved and digested by the agent."""

    uri: Annotated[str, Field(pattern=r"^(models:/[^/@]+(/[0-9]+|@[A-Za-z0-9_-]+)|runs:/.+)$")]
    """``models:/name/3``, ``models:/name@alias`` or ``runs:/<run_id>/path``."""


class ModelSource(Strict):
    """Exactly one of ``project`` (build) or ``registry`` (import)."""

    project: ProjectRef | None = None
    """Build by running this MLflow Project; it must log a model."""
    registry: RegistrySource | None = None
    """Import an existing registered model or run artifact."""

    @model_validator(mode="after")
    def _exactly_one(self) -> Self:
        if (self.project is None) == (self.registry is None):
            raise ValueError("set exactly one of project or registry")
        return self


class ScanPolicy(Strict):
    """The security scan every model artifact passes before it is registered or served."""

    tools: list[ScanTool] = Field(
        default_factory=lambda: list[ScanTool](["picklescan"]), min_length=1
    )
    """The scanners that read pickles, numpy files and zip archives (modelscan also HDF5);
    a file two of them read is scanned by both. skops files are always read by skops."""
    fail_on: Severity = "HIGH"
    """Block the version when a finding at this severity or above is reported."""
    allow_globals: list[str] = Field(default_factory=list)
    """Pickle globals, skops types and modelscan operators (module.name) accepted despite
    the scanner's verdict."""
    allow_unscanned: bool = False
    """Accept files no scanner understands (HDF5, ONNX, unknown binaries); by default one
    blocks the version."""
    timeout: Duration = "10m"


class MetricGate(Strict):
    """A condition on a metric the build's MLflow run logged (for an import, the run that
    logged the imported model); the version is blocked unless it holds. A metric the run
    did not log fails the gate."""

    metric: Annotated[str, Field(pattern=r"^[A-Za-z0-9_\-./ ]{1,250}$")]
    """The metric's key, as the run logged it (``mlflow.log_metric``)."""
    op: Literal[">", ">=", "<", "<="]
    threshold: Annotated[float, Field(allow_inf_nan=False)]

    def holds(self, value: float) -> bool:
        """Whether ``value`` passes (NaN never does)."""
        return bool(_OPS[self.op](value, self.threshold))

    def failure(self, metrics: Mapping[str, float]) -> str | None:
        """Why ``metrics`` fail this gate (``rmse 0.859, needs < 0.7``), or None."""
        needs = f"needs {self.op} {self.threshold:g}"
        value = metrics.get(self.metric)
        if value is None:
            return f"{self.metric} not logged, {needs}"
        return None if self.holds(value) else f"{self.metric} {value:.4g}, {needs}"


_OPS: dict[str, Callable[[float, float], bool]] = {
    ">": operator.gt,
    ">=": operator.ge,
    "<": operator.lt,
    "<=": operator.le,
}

METRICS_GATE_FAILED = "failed its metrics gate"


def metrics_gate_failures(gates: Sequence[MetricGate], metrics: Mapping[str, float]) -> list[str]:
    """Why ``metrics`` fail ``gates``, one line per failing gate (empty: every gate holds)."""
    return [why for gate in gates if (why := gate.failure(metrics)) is not None]


class ModelSpec(Strict):
    """What to build or import, and how to vet it."""

    version: Version
    """The version this spec produces; deployments pin to it."""
    source: ModelSource
    registered_name: str | None = None
    """Name in the MLflow registry; default ``metadata.name``."""
    flavor: Literal["python_function", "sklearn", "xgboost", "lightgbm", "pytorch", "onnx"] = (
        "python_function"
    )
    """An MLflow flavor the built model must carry (its ``MLmodel``), or the version is
    blocked; endpoints load every model through ``python_function``, as ``mlflow models
    serve`` does."""
    scan: ScanPolicy = Field(default_factory=ScanPolicy)
    metrics_gate: list[MetricGate] = Field(default_factory=list)
    """Conditions on the metrics the build logged. A version that fails one is not
    registered: no alias moves to it and no deployment can pin it."""
    aliases: list[Annotated[str, Field(pattern=r"^[A-Za-z][A-Za-z0-9_-]*$")]] = Field(
        default_factory=list
    )
    """Registry aliases (``champion``) moved to this version once it passes its gates."""
    tags: dict[str, str] = Field(default_factory=dict)
    """Extra tags written on the registered version."""
    plane_selector: LabelSelector | None = None
    """Planes that build it; default every plane that deploys it."""
    resources: Resources = Field(default_factory=Resources)
    timeout: Duration = "1h"
    """Cap on one build."""


class Model(Document):
    """A model and the version of it that git currently asks for."""

    KIND: ClassVar[str] = "Model"
    api_version: Literal["gitplane.dev/v1alpha1"]
    kind: Literal["Model"]
    spec: ModelSpec
