"""``gitplane audit`` output: the stable JSON form (docs/audit.md) and a 100-column text form.

Pure. The text answers first what each plane runs now and where it came from (who
changed the spec, who merged and approved it, when the plane reported it live), then
lists the history oldest first; anything unverified or missing is marked with ``!``.
"""

from __future__ import annotations

import textwrap
from collections.abc import Mapping
from typing import Any

from ledger import approvals as approval_records
from ledger import verify
from ledger.approvals import TRAILERS
from reconciler.audit import model as audit
from reconciler.audit.read import AuditReport
from schemas.inert import inert

JSON_VERSION = 1
WIDTH = 100
_LIVE = 14
"""Column where a plane's live state starts."""
_DETAIL = 33
"""Column where an event's detail starts."""


def as_json(report: AuditReport) -> dict[str, Any]:
    """The stable JSON form (``apiVersion`` bumps on any incompatible change)."""
    result = report.audit
    return {
        "apiVersion": f"gitplane.dev/audit/v{JSON_VERSION}",
        "resource": {"kind": result.kind, "name": result.name},
        "branch": report.branch,
        "head": report.head,
        "files": list(report.files),
        "verified": result.verified,
        "live": [_live_json(live) for live in result.live],
        "events": [_event_json(event) for event in result.events],
    }


def _live_json(live: audit.Live) -> dict[str, Any]:
    status, command = live.status, live.command
    return {
        "plane": live.plane,
        "phase": status.phase if status else None,
        "digest": status.digest if status else None,
        "since": verify.format_time(status.time) if status else None,
        "counter": status.counter if status else None,
        "sequence": command.sequence if command else None,
        "specCommit": command.spec_commit if command else None,
        "change": live.change.change.commit.commit if live.change else None,
    }


def _event_json(event: audit.Event) -> dict[str, Any]:
    if isinstance(event, audit.SpecEvent):
        return _spec_json(event)
    if isinstance(event, audit.GapEvent):
        return {
            **_common("gap", event),
            "log": event.log,
            "commit": event.commit,
            "verified": False,
            "error": _error(event.error),
        }
    if isinstance(event, audit.CommandEvent):
        return _command_json(event)
    return {
        **_common("status", event),
        "counter": event.counter,
        "commit": event.commit,
        "phase": event.phase,
        "digest": event.digest,
        "appliedSequence": event.applied,
        "message": event.message,
        **_signature(event),
        "keyReplacedIn": event.key_replaced,
    }


def _command_json(event: audit.CommandEvent) -> dict[str, Any]:
    return {
        **_common("command", event),
        "sequence": event.sequence,
        "logCommit": event.commit,
        "specCommit": event.spec_commit,
        "change": event.change,
        "action": event.action,
        "digest": event.digest,
        **_signature(event),
    }


def _common(
    kind: str, event: audit.CommandEvent | audit.StatusEvent | audit.GapEvent
) -> dict[str, Any]:
    return {"type": kind, "time": verify.format_time(event.time), "plane": event.plane}


def _signature(event: audit.CommandEvent | audit.StatusEvent) -> dict[str, Any]:
    return {
        "keyids": list(event.keyids),
        "verified": event.error is None,
        "error": _error(event.error),
    }


def _spec_json(event: audit.SpecEvent) -> dict[str, Any]:
    change, commit = event.change, event.change.commit
    merge = change.merge
    return {
        "type": "spec",
        "time": verify.format_time(event.time),
        "commit": commit.commit,
        "path": change.path,
        "subject": commit.subject,
        "author": _person(commit.author),
        "authoredAt": verify.format_time(commit.authored_at),
        "committer": _person(commit.committer),
        "committedAt": verify.format_time(commit.committed_at),
        "trailers": _trailers(commit.trailers),
        "merge": None if merge is None else _merge_json(merge),
        "approvedBy": list(change.approved_by),
        "approvedByVerified": False,
        "approvals": [_approval_json(v) for v in change.approvals],
    }


def _approval_json(verdict: approval_records.Verdict) -> dict[str, Any]:
    """A signed approval record as ``approvals --output json`` names its fields."""
    record = verdict.approval
    return {
        "name": verdict.name or (record.approver if record else ""),
        "key": verdict.signer or (record.key if record else ""),
        "commit": record.commit if record else "",
        "plans": dict(record.plans) if record else {},
        "time": record.time if record else "",
        "verified": verdict.counted,
        "reason": verdict.reason,
        "detail": verdict.detail,
    }


def _merge_json(merge: audit.GitCommit) -> dict[str, Any]:
    return {
        "commit": merge.commit,
        "subject": merge.subject,
        "committer": _person(merge.committer),
        "committedAt": verify.format_time(merge.committed_at),
        "trailers": _trailers(merge.trailers),
    }


def _person(person: audit.Person) -> dict[str, str]:
    return {"name": person.name, "email": person.email}


def _trailers(trailers: Mapping[str, frozenset[str]]) -> dict[str, list[str]]:
    return {key: sorted(values) for key, values in sorted(trailers.items())}


def _error(verdict: audit.Verdict | None) -> dict[str, str] | None:
    return None if verdict is None else {"code": verdict.code, "message": verdict.message}


def text(report: AuditReport) -> str:
    """What each plane runs and where it came from, then the history, oldest first."""
    result = report.audit
    bad = sum(1 for e in result.events if audit.has_problem(e))
    lines = [
        f"{result.kind}/{result.name} on {report.branch} at {report.head[:12]}",
        f"  spec file(s): {', '.join(report.files)}",
        "  every signature verified, no gaps"
        if result.verified
        else f"  ! {bad} unverified document(s) or gap(s), marked ! below",
        "",
        "NOW",
    ]
    for live in result.live:
        lines += _live_text(live)
    lines += ["", "HISTORY (oldest first)"]
    for event in result.events:
        lines += _event_text(event)
    return "\n".join(inert(line.rstrip()) for line in lines) + "\n"


def _wrap(indent: int, details: list[str], first: str = "") -> list[str]:
    """``details`` wrapped to fit 100 columns below ``indent``; ``first`` starts line one."""
    lines: list[str] = []
    for detail in details:
        lines += textwrap.wrap(detail, WIDTH - indent, subsequent_indent="  ") or [""]
    return [(first if i == 0 else "").ljust(indent) + line for i, line in enumerate(lines)]


def _live_text(live: audit.Live) -> list[str]:
    status, command = live.status, live.command
    plane = f"  {live.plane}"
    if status is None:
        return _wrap(_LIVE, ["never reported this resource"], plane)
    since = f"{status.phase} since {verify.format_time(status.time)}, {_short(status.digest)}"
    issued = f"command #{command.sequence}" if command else "! no verified command carried it"
    change = _change_text(live.change.change, dated=True) if live.change else []
    return _wrap(_LIVE, [f"{since}, {issued}", *change], plane)


def _change_text(change: audit.SpecChange, *, dated: bool = False) -> list[str]:
    commit, merge = change.commit, change.merge
    lines = [f'{commit.commit[:12]} "{commit.subject}" by {_who(commit.author)}']
    if merge is not None:
        at = f" at {verify.format_time(merge.committed_at)}" if dated else ""
        lines.append(f"merged in {merge.commit[:12]} by {_who(merge.committer)}{at}")
    lines += [_approval_text(v) for v in change.approvals]
    if change.approved_by:
        lines.append(f"approved by {', '.join(change.approved_by)} (Approved-by: {TRAILERS})")
    elif not change.approvals:
        lines.append("approved by nobody (no Approved-by: trailer)")
    return lines


def _approval_text(verdict: approval_records.Verdict) -> str:
    record = verdict.approval
    name = verdict.name or (record.approver if record else "?")
    key = verdict.signer or (record.key if record else "unknown key")
    if verdict.counted:
        return f"approved by {name} ({key}), signature verified"
    return f"! approval by {name} ({key}) not verified: {verdict.reason}: {verdict.detail}"


def _event_text(event: audit.Event) -> list[str]:
    head = f"  {verify.format_time(event.time)}  {_KINDS[type(event)]}"
    return _wrap(_DETAIL, _details(event), head)


_KINDS = {
    audit.SpecEvent: "spec",
    audit.CommandEvent: "command",
    audit.StatusEvent: "status",
    audit.GapEvent: "gap",
}


def _details(event: audit.Event) -> list[str]:
    if isinstance(event, audit.SpecEvent):
        return _change_text(event.change)
    if isinstance(event, audit.GapEvent):
        return [f"! {event.plane} {event.log} log: {event.error.code}: {event.error.message}"]
    if event.error is not None:
        what = f"bundle #{event.sequence}" if isinstance(event, audit.CommandEvent) else "report"
        claim = " ".join(p for p in _claims(event) if p)
        where = f"in commit {event.commit[:12]}" + (f", claims {claim}" if claim else "")
        return [
            f"! {event.plane} {what} UNVERIFIED, {event.error.code}: {event.error.message}",
            where,
        ]
    signers = ", ".join(k[:12] for k in event.keyids)
    if isinstance(event, audit.CommandEvent):
        issued = f"{event.plane} #{event.sequence} {event.action} {_short(event.digest)}"
        return [f"{issued} from {event.spec_commit[:12]}", f"signed by commands key {signers}"]
    reported = f"{event.plane} #{event.counter} {event.phase} {_short(event.digest)}"
    earlier = (
        f" (an earlier key, replaced in {event.key_replaced[:12]})" if event.key_replaced else ""
    )
    return [
        f"{reported} (applied bundle #{event.applied})",
        f"signed by agent key {signers}{earlier}",
    ]


def _claims(event: audit.CommandEvent | audit.StatusEvent) -> list[str]:
    if isinstance(event, audit.CommandEvent):
        return [event.action, _short(event.digest)]
    return [f"#{event.counter}" if event.counter else "", event.phase, _short(event.digest)]


def _short(digest: str) -> str:
    return digest[: len("sha256:") + 12] if digest else ""


def _who(person: audit.Person) -> str:
    return f"{person.name} <{person.email}>"
