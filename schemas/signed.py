"""The signed documents of the ledger: root, timestamp, command bundle, status report.

Machine formats, so keys are snake_case as in TUF, and every model is strict:
unknown fields, floats and coercions are errors. Resource specs travel inside
a command as exact JSON text with its sha256 digest, so that a spec's floats
(an error-rate target) never enter the signed JSON itself.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from schemas import dataplane

SPEC_VERSION = "1"


def _a_real_time(text: str) -> str:
    """A time that exists: ``2026-02-30T00:00:00Z`` matches the pattern and is refused.
    (The pattern fixed the form: ``fromisoformat`` checks the calendar, 30 times faster
    than ``strptime``, and every bundle's verification pays for it.)"""
    datetime.fromisoformat(text[:-1])
    return text


Time = Annotated[
    str,
    Field(pattern=r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z$"),
    AfterValidator(_a_real_time),
]
Digest = Annotated[str, Field(pattern=r"^sha256:[0-9a-f]{64}$")]
KeyId = Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")]
PlaneName = Annotated[str, Field(pattern=r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$", max_length=63)]
Count = Annotated[int, Field(ge=0, le=2**53)]
Positive = Annotated[int, Field(ge=1, le=2**53)]


class Signed(BaseModel):
    """Base of signed payloads: strict, closed, immutable."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


class KeyEntry(Signed):
    """A public key listed in root."""

    keytype: Literal["ed25519"]
    public: Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")]


class Role(Signed):
    """The keys of one role and how many of them must sign."""

    keyids: Annotated[list[KeyId], Field(min_length=1, max_length=32)]
    threshold: Annotated[int, Field(ge=1, le=32)]


class Roles(Signed):
    """Root (offline) signs root; commands and timestamp (online) sign the logs."""

    root: Role
    commands: Role
    timestamp: Role


class Root(Signed):
    """The root of trust; version N+1 is signed by thresholds of both N's and its own root keys."""

    type: Literal["root"] = Field(alias="_type")
    spec_version: Literal["1"]
    version: Positive
    expires: Time
    keys: Annotated[dict[KeyId, KeyEntry], Field(max_length=128)]
    roles: Roles


class Head(Signed):
    """A point in a command log: a sequence number and the digest of that bundle's envelope."""

    sequence: Count
    digest: Digest | Literal[""]
    """Empty only for sequence 0, the empty log."""


class Timestamp(Signed):
    """Freshness and the head of one plane's command log (Uptane's per-vehicle timestamp)."""

    type: Literal["timestamp"] = Field(alias="_type")
    spec_version: Literal["1"]
    plane: PlaneName
    version: Positive
    expires: Time
    root_version: Positive
    head: Head
    status_seen: Count
    """The newest status counter the reconciler accepted: older reports are replays."""


class Command(Signed):
    """One action on one resource, with its fully resolved spec."""

    id: Annotated[str, Field(max_length=128)]
    action: Literal["apply", "delete", "build", "run"]
    kind: Literal["Model", "Deployment", "FeatureSet", "DAG"]
    name: PlaneName
    spec: Annotated[str, Field(max_length=1 << 20)]
    """The resolved spec as JSON text (aliases pinned, digests included)."""
    digest: Digest
    """sha256 of ``spec``'s UTF-8 bytes."""
    reason: Annotated[str, Field(max_length=1024)] = ""


class Bundle(Signed):
    """One append to a plane's command log; bundles chain by digest."""

    type: Literal["commands"] = Field(alias="_type")
    spec_version: Literal["1"]
    plane: PlaneName
    sequence: Positive
    previous: Digest | Literal[""]
    """Digest of the envelope of bundle ``sequence - 1``; empty for the first."""
    root_version: Positive
    """The root whose ``commands`` keys signed this bundle."""
    spec_commit: Annotated[str, Field(pattern=r"^[0-9a-f]{40}([0-9a-f]{24})?$")]
    issued_at: Time
    commands: Annotated[list[Command], Field(max_length=10_000)]
    self_heal: bool = True
    """The plane's ``sync.selfHeal`` when this bundle was issued: whether the agent corrects
    drift of what it applied back to the commands."""
    kubernetes: dataplane.KubernetesRuntime | None = None
    """The plane's ``spec.kubernetes`` when this bundle was issued, in its camelCase form
    (ADR 0016): the images, namespace and source its runtime builds objects with. Absent
    (never serialized) for a plane without it, so bundles signed before it stay as they were.
    The block travels whole: a field added to it is signed without a change here."""


FAILING = ("Failed", "Stalled", "Blocked")
"""Phases of a resource that did not become what its command asked: shown with their
message, logged by the agent, and holding back what depends on them."""


class ResourceStatus(Signed):
    """What the agent observes of one resource."""

    kind: Literal["Model", "Deployment", "FeatureSet", "DAG"]
    name: PlaneName
    phase: Literal["Pending", "Progressing", "Ready", "Failed", "Stalled", "Deleted", "Blocked"]
    digest: Digest | Literal[""] = ""
    """Digest of the command spec this state was applied from."""
    observed: dict[str, str | int | bool] = Field(default_factory=dict)
    message: Annotated[str, Field(max_length=4096)] = ""

    @property
    def cause(self) -> str:
        """The message in one line: its first line; when more follow (a log's tail), the last
        one that names an error first (``FileNotFoundError: data/x.csv (the project run
        failed …)``), else the first and the last."""
        return cause_of(self.message)


_TOOL_LOG = re.compile(r"^\d{4}[/-]\d\d[/-]\d\d[ T]\d\d:\d\d:\d\d\S* +(DEBUG|INFO|WARNING|ERROR)\b")
"""A tool's own timestamped log line (MLflow's ``=== Run ... failed ===``): never the cause."""
_ERROR_LINE = re.compile(r"^\s*(?:[A-Za-z_][\w.]*(?:Error|Exception|Exit)\b|error:|ERROR\b)")


def cause_of(message: str) -> str:
    """See :attr:`ResourceStatus.cause`."""
    lines = [line.strip() for line in message.strip().splitlines() if line.strip()]
    if len(lines) <= 1:
        return lines[0] if lines else ""
    lines = [lines[0], *(line for line in lines[1:] if not _TOOL_LOG.match(line))]
    errors = [line for line in lines[1:] if _ERROR_LINE.match(line)]
    if errors:
        return f"{errors[-1]} ({lines[0].rstrip(':')})"
    return f"{lines[0]} {lines[-1]}"


class StatusError(Signed):
    """Why the agent refused or failed, with the stable code of ``ledger.errors``."""

    code: Annotated[str, Field(max_length=64)]
    message: Annotated[str, Field(max_length=4096)]


class PlaneCapabilities(Signed):
    """What the plane's runtime can enforce of a spec, as its agent reports it: the
    reconciler refuses to send what the plane would have to ignore."""

    env_managers: Annotated[
        list[Annotated[str, Field(pattern=r"^[a-z][a-z0-9-]{0,31}$")]], Field(max_length=16)
    ]
    """The MLflow Project ``envManager`` values its builds and steps honour: those whose
    tool the plane found (ADR 0013)."""
    enforces_resources: bool
    """Whether ``resources`` (cpu, memory, gpu) are limits it applies."""


class Status(Signed):
    """A signed status report (Uptane's ECU version report)."""

    type: Literal["status"] = Field(alias="_type")
    spec_version: Literal["1"]
    plane: PlaneName
    counter: Positive
    time: Time
    applied: Head
    timestamp_version: Count
    resources: Annotated[list[ResourceStatus], Field(max_length=10_000)] = Field(
        default_factory=list
    )
    error: StatusError | None = None
    capabilities: PlaneCapabilities | None = None
    """What its runtime can enforce (absent from agents of earlier releases)."""
