"""Building blocks shared by every spec kind.

One syntax each, documented in docs/specs.md:

* durations are Kubernetes/Go style strings: ``500ms``, ``30s``, ``5m``,
  ``1h30m``, ``7d``;
* quantities are Kubernetes quantities: ``500m`` (milli), ``2``, ``1.5``,
  ``512Mi``, ``4Gi``, ``1G``;
* versions are strings (``"1.2.0"``, ``"3"``), never numbers: quote them;
* names are DNS-1123 labels (``churn-prod``), as in Kubernetes.
"""

from __future__ import annotations

import re
from typing import Annotated, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    PlainValidator,
    StringConstraints,
    WithJsonSchema,
)
from pydantic.alias_generators import to_camel

API_VERSION = "gitplane.dev/v1alpha1"


class Strict(BaseModel):
    """Base of every spec model: camelCase keys, unknown keys forbidden, no coercion."""

    model_config = ConfigDict(
        extra="forbid",
        strict=True,
        frozen=True,
        alias_generator=to_camel,
        use_attribute_docstrings=True,
    )


Name = Annotated[
    str,
    StringConstraints(max_length=63, pattern=r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"),
    Field(title="name"),
]
Version = Annotated[
    str,
    StringConstraints(max_length=128, pattern=r"^[A-Za-z0-9][A-Za-z0-9._+-]*$"),
    Field(title="version"),
]
LabelKey = Annotated[
    str,
    StringConstraints(
        max_length=253,
        pattern=r"^([a-z0-9]([-a-z0-9.]*[a-z0-9])?/)?[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$",
    ),
]
LabelValue = Annotated[
    str, StringConstraints(max_length=63, pattern=r"^([A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?)?$")
]


def _relative_path(text: str) -> str:
    parts = text.split("/")
    if text.startswith("/") or ".." in parts or "\\" in text or "\x00" in text:
        raise ValueError("must be a path relative to the repository root, without '..'")
    return text.rstrip("/")


RelativePath = Annotated[
    str,
    StringConstraints(min_length=1, max_length=1024),
    AfterValidator(_relative_path),
    Field(title="path"),
]


def _param_value(value: object) -> str | int | float | bool:
    if isinstance(value, str | int | float | bool):
        return value
    raise ValueError("a parameter value must be a string, number or boolean")


ParamValue = Annotated[
    str | int | float | bool,
    PlainValidator(_param_value),
    WithJsonSchema({"type": ["string", "number", "boolean"]}),
]

_DURATION_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
_DURATION_PART = re.compile(r"([0-9]+(?:\.[0-9]+)?)(ms|s|m|h|d)")
_DURATION = re.compile(r"^([0-9]+(\.[0-9]+)?(ms|s|m|h|d))+$")

_QUANTITY_SUFFIX = {
    "m": 1e-3,
    "": 1.0,
    "k": 1e3,
    "M": 1e6,
    "G": 1e9,
    "T": 1e12,
    "Ki": 2.0**10,
    "Mi": 2.0**20,
    "Gi": 2.0**30,
    "Ti": 2.0**40,
}
_QUANTITY = re.compile(r"^([0-9]+(?:\.[0-9]+)?)(m|k|M|G|T|Ki|Mi|Gi|Ti)?$")


def parse_duration(text: str) -> float:
    """Seconds in a duration string such as ``1h30m`` or ``250ms``."""
    if not _DURATION.match(text):
        raise ValueError(f"invalid duration {text!r}: use forms like 500ms, 30s, 5m, 1h30m, 7d")
    return sum(float(n) * _DURATION_UNITS[u] for n, u in _DURATION_PART.findall(text))


def parse_quantity(text: str) -> float:
    """The number a Kubernetes quantity such as ``500m`` or ``2Gi`` stands for."""
    match = _QUANTITY.match(text)
    if match is None:
        raise ValueError(f"invalid quantity {text!r}: use forms like 500m, 2, 512Mi, 4Gi")
    return float(match.group(1)) * _QUANTITY_SUFFIX[match.group(2) or ""]


def _duration(text: str) -> str:
    parse_duration(text)
    return text


def _quantity(text: str) -> str:
    parse_quantity(text)
    return text


Duration = Annotated[
    str,
    AfterValidator(_duration),
    Field(pattern=_DURATION.pattern, title="duration"),
]
Quantity = Annotated[
    str,
    AfterValidator(_quantity),
    Field(pattern=_QUANTITY.pattern, title="quantity"),
]

_CRON_FIELD = r"(\*|[0-9A-Za-z]+(-[0-9A-Za-z]+)?)(/[0-9]+)?"
_CRON = re.compile(
    rf"^(@(yearly|annually|monthly|weekly|daily|hourly)|({_CRON_FIELD}(,{_CRON_FIELD})*\s+){{4}}"
    rf"{_CRON_FIELD}(,{_CRON_FIELD})*)$"
)
Cron = Annotated[
    str,
    StringConstraints(pattern=_CRON.pattern),
    Field(title="cron"),
]


class Metadata(Strict):
    """Kubernetes-style metadata of every document."""

    name: Name
    """Unique per kind in the repository."""
    labels: dict[LabelKey, LabelValue] = Field(default_factory=dict)
    """Key/value labels, matched by plane selectors and policies."""
    annotations: dict[LabelKey, str] = Field(default_factory=dict)
    """Free-form notes for people and tools; never interpreted."""
    description: str | None = None
    """One line saying what this is for."""
    owner: str | None = None
    """Team or person accountable for it."""


class SelectorRequirement(Strict):
    """One set-based requirement, as in Kubernetes label selectors."""

    key: LabelKey
    operator: Literal["In", "NotIn", "Exists", "DoesNotExist"]
    values: list[LabelValue] = Field(default_factory=list)


class LabelSelector(Strict):
    """Chooses data planes by their labels; all terms must hold (Kubernetes semantics)."""

    match_labels: dict[LabelKey, LabelValue] = Field(default_factory=dict)
    match_expressions: list[SelectorRequirement] = Field(default_factory=list)

    def matches(self, labels: dict[str, str]) -> bool:
        """True when ``labels`` satisfy every term; an empty selector matches all."""
        if any(labels.get(k) != v for k, v in self.match_labels.items()):
            return False
        return all(_requirement_holds(r, labels) for r in self.match_expressions)


def _requirement_holds(req: SelectorRequirement, labels: dict[str, str]) -> bool:
    present = req.key in labels
    match req.operator:
        case "In":
            return present and labels[req.key] in req.values
        case "NotIn":
            return not present or labels[req.key] not in req.values
        case "Exists":
            return present
        case _:
            return not present


class Resources(Strict):
    """Compute requested per replica or per job."""

    cpu: Quantity | None = None
    """CPU cores, e.g. 500m or 2."""
    memory: Quantity | None = None
    """Memory, e.g. 512Mi or 4Gi."""
    gpu: Annotated[int, Field(ge=0)] = 0
    """Whole GPUs."""


class ProjectRef(Strict):
    """An MLflow Project: a directory holding an ``MLproject`` file."""

    path: RelativePath
    """Directory of the project in this repository, e.g. projects/churn."""
    entry_point: str = "main"
    """Entry point named in the MLproject file."""
    parameters: dict[str, ParamValue] = Field(default_factory=dict)
    """Values for the entry point's parameters."""
    env_manager: Literal["local", "virtualenv", "uv", "conda"] = "local"
    """How MLflow creates the run's environment: local uses the agent's own; uv, virtualenv
    and conda make one from the project's python_env.yaml (conda.yaml), reused by
    requirements. A plane without the manager's tool refuses it."""


class Schedule(Strict):
    """When a job runs, as a Kubernetes CronJob would."""

    cron: Cron
    timezone: str = "UTC"
    """IANA time zone the cron fields are read in."""
    concurrency_policy: Literal["Forbid", "Allow", "Replace"] = "Forbid"
    """What to do when the previous run is still going (Kubernetes CronJob semantics)."""
    suspend: bool = False
    """Stop scheduling new runs without deleting anything."""


class Retry(Strict):
    """Retries of a failed job with exponential backoff."""

    limit: Annotated[int, Field(ge=0, le=100)] = 0
    backoff: Duration = "10s"
    """Delay before the first retry; doubles each time."""
    max_backoff: Duration = "10m"


def parse_listen(text: str) -> tuple[str, int]:
    """``HOST:PORT`` (host left out: 127.0.0.1) as a host and a port from 1 to 65535; a
    ``ValueError`` saying what is wrong otherwise."""
    host, _, port = text.rpartition(":")
    if not (port.isascii() and port.isdigit()):
        raise ValueError(f"{text!r}: expected host:port, e.g. 127.0.0.1:9090")
    if not 1 <= int(port) <= 65535:
        raise ValueError(f"{text!r}: port {int(port)} is not between 1 and 65535")
    return host or "127.0.0.1", int(port)
