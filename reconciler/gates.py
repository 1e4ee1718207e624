"""Gates: what turns a planned action into *wait* or *blocked*, and alias pinning.

Pure functions of the desired documents, the plane's recorded state and
``now``. The observed fields the agent reports for a built model are the
contract with the data plane: ``schemas.observed.ModelObserved`` names them
for both sides.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Literal
from zoneinfo import ZoneInfo

from ledger.approvals import TRAILERS, attested_by
from reconciler.planned import Desired, Signed
from reconciler.recorded import Issued, RecordedPlane
from schemas import commands, kinds, observed, signed
from schemas.deployment import Deployment
from schemas.document import Document
from schemas.model import METRICS_GATE_FAILED, SEVERITIES, Model
from schemas.policy import Policy, Window

DAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")


@dataclass(frozen=True)
class Gate:
    """Why an action cannot go out yet."""

    op: Literal["wait", "blocked"]
    reason: str


def digest(text: str) -> str:
    """``sha256:<hex>`` of a resolved spec's JSON text."""
    return "sha256:" + hashlib.sha256(text.encode()).hexdigest()


def pin_model(
    doc: Deployment, targets: Mapping[str, Document], recorded: RecordedPlane
) -> commands.PinnedModel | Gate:
    """The exact model version and artifact digest a deployment serves, or why not yet."""
    ref = doc.spec.model
    model = targets.get(f"Model/{ref.name}")
    if not isinstance(model, Model):
        return Gate("blocked", f"Model/{ref.name} is not built on this plane")
    if ref.alias is not None and ref.alias not in model.spec.aliases:
        return Gate("blocked", f"no Model sets alias {ref.alias!r} on {ref.name}")
    status = recorded.observed.get(("Model", ref.name))
    gate = _model_gate(model, status)
    if gate is not None or status is None:
        return gate or Gate("wait", f"waiting for Model/{ref.name}")
    name = model.spec.registered_name or model.name
    seen = observed.ModelObserved.of(status)
    if seen.registry_version is None:
        return Gate("wait", f"waiting for Model/{ref.name} to be registered")
    return commands.PinnedModel(
        name=name,
        version=model.spec.version,
        registry_version=seen.registry_version,
        digest=seen.artifact_digest,
        uri=f"models:/{name}/{seen.registry_version}",
    )


def _model_gate(model: Model, status: signed.ResourceStatus | None) -> Gate | None:
    """Why the model's current version cannot be served yet (None: built, scanned, ready)."""
    version = f"Model/{model.name} {model.spec.version}"
    seen = observed.ModelObserved.of(status)
    failing = status is not None and status.phase in signed.FAILING
    if (
        status is None
        or seen.version not in (model.spec.version, None)
        or not (
            seen.version or failing  # a failed build reports no version: it is this one's
        )
    ):
        return Gate("wait", f"waiting for {version} to be built and scanned")
    if status.phase == "Failed" and observed.RetryObserved.of(status).retried_at:
        return Gate("wait", f"waiting for {version}: it failed and its plane retries it")
    if status.phase in signed.FAILING:
        detail = status.message or "see its status"
        if seen.metrics_gate == "failed" and detail.startswith(METRICS_GATE_FAILED):
            return Gate("blocked", f"{version} {detail}")
        return Gate("blocked", f"{version} {status.phase.lower()}: {detail}")
    if status.phase != "Ready":
        return Gate("wait", f"waiting for {version} ({status.phase})")
    missing = _missing_verdict(model, seen)
    return Gate("blocked", f"{version} has no passing {missing}") if missing else None


def _missing_verdict(model: Model, seen: observed.ModelObserved) -> str:
    """Which gate a Ready version has no passing verdict of (a plane whose agent skipped
    it, or an older agent): the reconciler never takes Ready for passed."""
    if seen.scan != "passed":
        return "security scan"
    if model.spec.metrics_gate and seen.metrics_gate != "passed":
        return "metrics gate (its plane did not hold it)"
    return ""


def unsupported(doc: Document, plane: RecordedPlane) -> str | None:
    """Why ``doc`` cannot be carried out as written on ``plane``, by what its agent reports
    its runtime can do (None: it can, or the plane has not said: its agent refuses then)."""
    capabilities = plane.capabilities
    if capabilities is None:
        return None
    have = ", ".join(capabilities.env_managers) or "none"
    for project in kinds.project_refs(doc):
        if project.env_manager not in capabilities.env_managers:
            return (
                f"envManager {project.env_manager!r} ({project.path}) is not available on "
                f"plane {plane.name} (it has: {have})"
            )
    return None


def failed(issued: Issued, status: signed.ResourceStatus | None) -> Gate | None:
    """Why the current command's resource is not done on its plane after a failed apply, or
    None (nothing failed). The reconciler issues nothing for it: the plane retries a failed
    apply itself from the command it holds (``nextRetry``; a feature set's own ``retryAt``),
    and a ``Stalled`` or ``Blocked`` resource waits for a person to change its spec."""
    if status is None or status.digest != issued.digest:
        return None
    cause = signed.cause_of(status.message) or "see its status"
    if status.phase == "Stalled":
        return Gate("blocked", f"{cause}; change its spec to try again (docs/agent.md)")
    if status.phase == "Blocked":  # a gate on the plane refused it: only a new spec helps
        return Gate("blocked", f"blocked on the plane: {cause}")
    if status.phase != "Failed":
        return None
    retries = observed.RetryObserved.of(status)
    at = retries.retried_at
    if at is not None:
        tried = f"attempt {retries.attempts} failed" if retries.attempts else "failed"
        return Gate("wait", f"{tried} ({cause}); the plane retries it at {at}")
    return Gate("blocked", f"failed ({cause}); the plane does not retry it: change its spec")


def feature_sets_ready(names: Sequence[str], recorded: RecordedPlane) -> str | None:
    """Why a reader of feature sets must wait, or None when they all exist."""
    missing = [n for n in names if recorded.observed_phase(("FeatureSet", n)) != "Ready"]
    if not missing:
        return None
    return "waiting for " + ", ".join(f"FeatureSet/{n}" for n in missing) + " to be ready"


def security_block(
    model: str, status: signed.ResourceStatus | None, policies: Sequence[Policy]
) -> str | None:
    """Why a deployment may not serve ``model`` on a plane under ``policies`` (their
    ``security`` gates), or None. A passing scan is required everywhere anyway; a policy's
    ``maxSeverity`` also blocks findings at or above it that the model's own policy let pass."""
    worst = observed.ModelObserved.of(status).scan_worst or ""
    for policy in policies:
        gate = policy.spec.security
        if gate is None or "Deployment" not in policy.spec.kinds or gate.max_severity is None:
            continue
        if worst in SEVERITIES and SEVERITIES.index(worst) >= SEVERITIES.index(gate.max_severity):
            return (
                f"{model} has a {worst} scan finding; Policy/{policy.name} blocks "
                f"{gate.max_severity} and above"
            )
    return None


def policy_block(
    kind: str, policies: Sequence[Policy], desired: Desired, now: datetime
) -> str | None:
    """The first policy gate a change to a ``kind`` resource fails on a plane, or None."""
    for policy in policies:
        if kind not in policy.spec.kinds:
            continue
        reason = policy_reason(policy, desired, now)
        if reason:
            return reason
    return None


def policy_reason(policy: Policy, desired: Desired, now: datetime) -> str | None:
    """Why ``policy`` holds back the change ``desired`` brings at ``now``, or None."""
    reason = _approvals(policy, desired) or _windows(policy, now)
    return f"{reason} (Policy/{policy.name})" if reason else None


def _approvals(policy: Policy, desired: Desired) -> str | None:
    rule = policy.spec.approvals
    if rule is None:
        return None
    if rule.require_merge_commit and not desired.merged:
        return "the change did not arrive through a merged pull request"
    if rule.mode == "signed":
        return _signed(rule.minimum, desired.signed)
    approvals = len(desired.trailers.get(rule.trailer, frozenset()))
    if approvals < rule.minimum:
        return f"needs {rule.minimum} approval(s) ({rule.trailer}: {TRAILERS}), has {approvals}"
    return None


def _signed(minimum: int, signed: Signed | None) -> str | None:
    """Why the signed approvals of a change are not enough (never trailers: ADR 0018)."""
    if signed is None:
        return f"needs {minimum} signed approval(s); no approval records were read"
    if signed.approvers >= minimum:
        return None
    needs = f"needs {minimum} signed approval(s), has {signed.approvers}"
    if signed.attested_by:
        needs += f" ({attested_by(', '.join(signed.attested_by))})"
    return f"{signed.plan_changed}; {needs}" if signed.plan_changed else needs


def _windows(policy: Policy, now: datetime) -> str | None:
    windows = policy.spec.change_windows
    if windows is None:
        return None
    for window in windows.deny:
        if in_window(window, now):
            return f"change window closed: {describe(window)}"
    if windows.allow and not any(in_window(w, now) for w in windows.allow):
        return "outside every allowed change window"
    return None


def in_window(window: Window, now: datetime) -> bool:
    """Whether ``now`` falls inside ``window`` (its days, start and end, in its time zone)."""
    local = now.astimezone(ZoneInfo(window.timezone))
    clock = local.strftime("%H:%M")
    return DAYS[local.weekday()] in window.days and window.start <= clock <= window.end


def describe(window: Window) -> str:
    """``Fri 16:00-23:59 UTC``."""
    return f"{','.join(window.days)} {window.start}-{window.end} {window.timezone}"
