"""What a plane reports of a resource and the reconciler's gates read, typed.

A status report carries each resource's ``observed`` fields as a flat mapping
(strings, integers, booleans), so that it stays small and strict. The fields
that gates depend on are named here once: the runtime that reports them and
the reconciler that reads them use these models, never bare strings.
"""

from __future__ import annotations

import functools
from typing import Self, get_args

from pydantic import BaseModel, ConfigDict
from pydantic.alias_generators import to_camel

from schemas import signed

Flat = dict[str, str | int | bool]


class _Observed(BaseModel):
    """Fields of ``observed`` under their camelCase names; others are left to whoever
    reports them (``extra="ignore"`` when read)."""

    model_config = ConfigDict(
        alias_generator=to_camel, populate_by_name=True, frozen=True, extra="ignore"
    )

    @classmethod
    def of(cls, status: signed.ResourceStatus | None) -> Self:
        """The fields ``status`` reports (all None without a status); a field of the wrong
        type reads as missing: a plane cannot make a gate crash. Cheap: gates call it for
        every deployment on every plane."""
        wanted = _fields(cls)
        found: dict[str, object] = {}
        if status is None:
            return cls.model_validate(found)
        for alias, value in status.observed.items():
            field = wanted.get(alias)
            if field is not None and type(value) in field[1]:  # exact: a bool is no count
                found[field[0]] = value
        return cls.model_validate(found)  # exact types, checked: this cannot fail

    def flat(self) -> Flat:
        """The fields set, as a report carries them."""
        dumped: Flat = self.model_dump(by_alias=True, exclude_none=True)
        return dumped


@functools.cache
def _fields(cls: type[_Observed]) -> dict[str, tuple[str, tuple[type, ...]]]:
    """Per alias, the field's name and the types its values may have."""
    return {
        info.alias or name: (name, tuple(a for a in get_args(info.annotation) if a is not NONE))
        for name, info in cls.model_fields.items()
    }


NONE = type(None)


class ModelObserved(_Observed):
    """A built model, as its plane reports it."""

    version: str | None = None
    """The Model spec's version it was built from."""
    registry_version: int | None = None
    """The version number the plane's registry gave it (absent while blocked)."""
    artifact_digest: str | None = None
    """sha256 over the model's artifact files."""
    scan: str | None = None
    """``passed`` or ``failed``: the security scan's verdict."""
    scan_worst: str | None = None
    """The most severe finding (``NONE`` when none)."""
    scan_files: str | None = None
    """What was scanned, by format and scanner: ``skops 1 (skops), text 5 (data only)``."""
    self_registered: str | None = None
    """Registry versions the build's project registered itself (``wine/3``): never scanned
    or gated by Gitplane."""
    run_id: str | None = None
    """The MLflow run that produced it."""
    metrics_gate: str | None = None
    """``passed`` or ``failed``: the spec's ``metricsGate`` on the run's metrics (absent when
    the spec has none)."""


class EndpointObserved(_Observed):
    """A served Deployment, as its plane reports it."""

    url: str | None = None
    served_version: str | None = None
    ready_replicas: int | None = None
    desired_replicas: int | None = None
    restarts: int | None = None
    scaler: str | None = None
    """What scales it on a Kubernetes plane: ``keda`` (on the proxies' metrics) or
    ``hpa-cpu`` (an HPA on CPU); absent without ``autoscaling``."""
    scaler_warning: str | None = None
    """What of the spec's ``autoscaling`` that scaler does not honour, and why."""


class RetryObserved(_Observed):
    """A failed resource's retries, as its plane reports them (any kind)."""

    attempts: int | None = None
    """Failed applies of the current command so far (set by the agent)."""
    next_retry: str | None = None
    """When the agent applies the command again (absent once it is Stalled)."""
    retry_at: str | None = None
    """When a runtime that retries the resource itself (a feature set) runs it again."""

    @property
    def retried_at(self) -> str | None:
        """When the plane tries again, whoever does; None: it does not."""
        return self.next_retry or self.retry_at

    @classmethod
    def cleared(cls, observed: Flat) -> Flat:
        """``observed`` without the agent's count and time (a new command counts from one)."""
        names = {alias for alias, (name, _) in _fields(cls).items() if name != "retry_at"}
        return {key: value for key, value in observed.items() if key not in names}
