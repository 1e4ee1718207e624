"""``FeatureSet``: features computed on a schedule into an online and an offline store."""

from __future__ import annotations

from typing import Annotated, ClassVar, Literal

from pydantic import Field

from schemas.common import Duration, LabelSelector, Resources, Retry, Schedule, Strict
from schemas.document import Document

Identifier = Annotated[str, Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")]
DType = Literal["int64", "float64", "string", "bool", "timestamp"]


class Entity(Strict):
    """What features are keyed by (Feast ``Entity``)."""

    name: Identifier
    """A label: rows are keyed, and looked up, by ``joinKeys`` alone."""
    join_keys: list[Identifier] = Field(min_length=1)
    value_type: DType = "string"


class Source(Strict):
    """Where raw rows come from; on the local runtime, a file inside the data plane."""

    type: Literal["file", "sqlite", "table"]
    path: str
    """File path, database path or table name, as the data plane sees it."""
    format: Literal["csv", "parquet"] | None = None
    timestamp_field: Identifier
    """Event time of each row."""
    read_policy: Literal["full", "new-only", "window"] = "new-only"
    """Read everything, only rows newer than the last run, or the last ``window``."""
    window: Duration | None = None


class Transformation(Strict):
    """SQL run over the source, exposed to the query as the table ``source``."""

    sql: Annotated[str, Field(min_length=1)]


class Feature(Strict):
    """One output column."""

    name: Identifier
    dtype: DType


class Backfill(Strict):
    """Historical population, computed in chunks once the feature set is created."""

    start: Annotated[str, Field(pattern=r"^\d{4}-\d{2}-\d{2}$")]
    end: Annotated[str, Field(pattern=r"^\d{4}-\d{2}-\d{2}$")] | None = None
    chunk: Duration = "1d"
    parallelism: Annotated[int, Field(ge=1, le=64)] = 1


class OnlineStore(Strict):
    """Latest value per entity key, read by endpoints."""

    enabled: bool = True


class OfflineStore(Strict):
    """Full history, read for training."""

    enabled: bool = True
    format: Literal["parquet", "csv"] = "parquet"


class Stores(Strict):
    """Where computed features are written."""

    online: OnlineStore = Field(default_factory=OnlineStore)
    offline: OfflineStore = Field(default_factory=OfflineStore)


class FeatureSetSpec(Strict):
    """Entities, source, transformation, output schema and when to run."""

    entities: list[Entity] = Field(min_length=1)
    source: Source
    transformation: Transformation
    features: list[Feature] = Field(min_length=1)
    plane_selector: LabelSelector
    schedule: Schedule | None = None
    """Omit for manual runs only."""
    backfill: Backfill | None = None
    ttl: Duration | None = None
    """How long a value stays valid in the online store."""
    stores: Stores = Field(default_factory=Stores)
    resources: Resources = Field(default_factory=Resources)
    retry: Retry = Field(default_factory=Retry)
    timeout: Duration = "1h"


class FeatureSet(Document):
    """A feature set."""

    KIND: ClassVar[str] = "FeatureSet"
    api_version: Literal["gitplane.dev/v1alpha1"]
    kind: Literal["FeatureSet"]
    spec: FeatureSetSpec
