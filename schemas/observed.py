"""What a plane reports of a resource and the reconciler's gates read, typed.

A status report carries each resource's ``observed`` fields as a flat mapping
(strings, integers, booleans), so that it stays small and strict. The fields
that gates depend on are named here once: the runtime that reports them and
the reconciler that reads them use these models, never bare strings.
"""

from __future__ import annotations

from typing import Self

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
        type reads as missing: a plane cannot make a gate crash."""
        if status is None:
            return cls()
        fields = {name: value for name, value in status.observed.items() if _fits(cls, name, value)}
        return cls.model_validate(fields)

    def flat(self) -> Flat:
        """The fields set, as a report carries them."""
        dumped: Flat = self.model_dump(by_alias=True, exclude_none=True)
        return dumped


def _fits(cls: type[_Observed], name: str, value: object) -> bool:
    field = next((f for f in cls.model_fields.values() if f.alias == name), None)
    if field is None:
        return False
    wanted = field.annotation
    kinds = getattr(wanted, "__args__", (wanted,))
    return any(
        isinstance(value, k) and not (k is int and isinstance(value, bool))
        for k in kinds
        if isinstance(k, type)
    )


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
    run_id: str | None = None
    """The MLflow run that produced it."""


class EndpointObserved(_Observed):
    """A served Deployment, as its plane reports it."""

    url: str | None = None
    served_version: str | None = None
    ready_replicas: int | None = None
    desired_replicas: int | None = None
    restarts: int | None = None
