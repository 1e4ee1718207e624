"""``DAG``: a pipeline of MLflow Projects, with upstream artifacts partitioned across instances."""

from __future__ import annotations

from typing import Annotated, ClassVar, Literal

from pydantic import Field

from schemas.common import (
    Duration,
    LabelSelector,
    Name,
    ParamValue,
    ProjectRef,
    Resources,
    Retry,
    Schedule,
    Strict,
)
from schemas.document import Document

PROVIDED_PARAMETERS = frozenset({"input_dir", "output_dir", "partition_index", "partition_count"})
"""Parameters a runtime sets for a step whose entry point declares them: where its inputs
are, where its outputs go, and which part of a partitioned step it is."""


class Partition(Strict):
    """Split an upstream step's artifacts across ``instances`` parallel runs of this step."""

    from_: Name = Field(alias="from")
    """The upstream step whose artifacts are split; it must be in ``dependsOn``."""
    instances: Annotated[int, Field(ge=1, le=1024)]
    by: Literal["object", "directory", "key"] = "object"
    """Unit of assignment: each file, each directory, or a key parsed from the name."""
    assignment: Literal["round-robin", "hash"] = "round-robin"


class Step(Strict):
    """One MLflow Project run, logged as a child run of the DAG's parent run."""

    name: Name
    project: ProjectRef
    depends_on: list[Name] = Field(default_factory=list)
    partition: Partition | None = None
    retry: Retry = Field(default_factory=Retry)
    timeout: Duration = "1h"
    resources: Resources = Field(default_factory=Resources)
    continue_on_failure: bool = False


class Tracking(Strict):
    """Where runs are logged."""

    experiment: str | None = None
    """MLflow experiment; default the DAG's name."""


class DAGSpec(Strict):
    """Steps, their edges, and when the pipeline runs."""

    steps: list[Step] = Field(min_length=1, max_length=500)
    plane_selector: LabelSelector
    schedule: Schedule | None = None
    parameters: dict[str, ParamValue] = Field(default_factory=dict)
    """Defaults every step sees, if its entry point declares them; step parameters override
    them. Each must be declared by some step's entry point."""
    feature_sets: list[Name] = Field(default_factory=list)
    """FeatureSets the pipeline reads; they are materialised before it runs."""
    tracking: Tracking = Field(default_factory=Tracking)
    failure_policy: Literal["abort", "continue-independent"] = "abort"
    timeout: Duration = "24h"
    """Cap on one whole run."""


class DAG(Document):
    """A pipeline of MLflow Projects."""

    KIND: ClassVar[str] = "DAG"
    api_version: Literal["gitplane.dev/v1alpha1"]
    kind: Literal["DAG"]
    spec: DAGSpec
