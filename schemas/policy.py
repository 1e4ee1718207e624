"""``Policy``: approval and security gates and change windows, per environment."""

from __future__ import annotations

from typing import Annotated, ClassVar, Literal

from pydantic import Field

from schemas.common import LabelSelector, Strict
from schemas.document import Document
from schemas.model import Severity

Kind = Literal["Model", "Deployment", "FeatureSet", "DAG"]
Day = Literal["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"]
Clock = Annotated[str, Field(pattern=r"^([01][0-9]|2[0-3]):[0-5][0-9]$")]


class Approvals(Strict):
    """Approvals a change needs, counted from trailers of the commit that made it."""

    minimum: Annotated[int, Field(ge=0, le=20)] = 1
    trailer: str = "Approved-by"
    """Commit trailer naming one approver each, written by the merge (one per person)."""
    require_merge_commit: bool = False
    """Only changes that arrived through a merge commit (a merged pull request) count."""


class SecurityGate(Strict):
    """What a model must pass before it is served."""

    require_scan: bool = True
    """The version's scan ran and passed its policy."""
    max_severity: Severity | None = None
    """Also block findings at or above this severity, whatever the model's own policy says."""


class Window(Strict):
    """A weekly time window."""

    days: list[Day] = Field(min_length=1)
    start: Clock
    end: Clock
    timezone: str = "UTC"


class ChangeWindows(Strict):
    """When changes may be applied; deny wins over allow."""

    allow: list[Window] = Field(default_factory=list)
    """If any are set, changes apply only inside one of them."""
    deny: list[Window] = Field(default_factory=list)
    """Freezes: changes never apply inside these."""


class PolicySpec(Strict):
    """Gates applied to resources of ``kinds`` on the selected planes."""

    plane_selector: LabelSelector
    kinds: list[Kind] = Field(
        default_factory=lambda: list[Kind](["Model", "Deployment", "FeatureSet", "DAG"])
    )
    approvals: Approvals | None = None
    security: SecurityGate | None = None
    change_windows: ChangeWindows | None = None


class Policy(Document):
    """A gate on changes to an environment."""

    KIND: ClassVar[str] = "Policy"
    api_version: Literal["gitplane.dev/v1alpha1"]
    kind: Literal["Policy"]
    spec: PolicySpec
