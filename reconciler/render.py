"""A plan for people (terraform-like text, Markdown for pull requests) and for machines (JSON)."""

from __future__ import annotations

from collections import Counter
from typing import Any

from reconciler.plan import Action, Plan, PlanePlan
from schemas.inert import inert

SYMBOLS = {"create": "+", "build": "+", "update": "~", "delete": "-", "blocked": "!", "wait": "…"}
SUMMARY_ORDER = ("build", "create", "update", "delete", "wait", "blocked")


def summary(plan: Plan) -> str:
    """``Plan: 1 to build, 2 to create, ... 1 waiting, 0 blocked.``"""
    counts: Counter[str] = Counter(a.op for p in plan.planes for a in p.actions)
    if not counts:
        return "No changes. Every plane matches git."
    done = ", ".join(f"{counts[op]} to {op}" for op in SUMMARY_ORDER[:4])
    return f"Plan: {done}; {counts['wait']} waiting, {counts['blocked']} blocked."


def _plane_header(plane: PlanePlan) -> str:
    labels = ", ".join(f"{k}={v}" for k, v in sorted(plane.labels.items()))
    return f"plane {plane.plane} ({plane.runtime}; {labels})"


def _line(action: Action, width: int) -> str:
    return f"{SYMBOLS[action.op]} {action.op:<7} {action.ref:<{width}}  {inert(action.reason)}"


def _lines(plane: PlanePlan) -> list[str]:
    width = max((len(a.ref) for a in plane.actions), default=0)
    out: list[str] = []
    for action in plane.actions:
        out.append(_line(action, width))
        out += [f"      {inert(c.text())}" for c in action.changes]
    return out


def text(plan: Plan, *, title: str) -> str:
    """Terraform-like text, grouped by plane."""
    out = [f"{title} (commit {plan.commit[:12]})", ""]
    for plane in plan.planes:
        out.append(_plane_header(plane))
        if plane.flag:
            out.append(f"  ! warning: {inert(plane.flag)}")
        out += [f"  {line}" for line in _lines(plane)] or ["  (no changes)"]
        mode = plan.approvals.get(plane.plane)
        if mode is not None and mode.mode == "trailers":
            out.append(f"  ! {mode.describe()}")
        out.append("")
    out += [f"warning: {inert(str(w))}" for w in plan.warnings]
    out += _digest_text(plan)
    out.append(summary(plan))
    return "\n".join(out)


def markdown(plan: Plan, *, title: str) -> str:
    """A pull-request comment: one diff block per plane with changes (Atlantis style)."""
    out = [f"### {title}", "", f"Commit `{plan.commit[:12]}` · **{summary(plan)}**", ""]
    for plane in plan.planes:
        if not plane.actions and not plane.flag:
            continue
        out.append(f"#### `{plane.plane}` ({plane.runtime})")
        if plane.flag:
            out.append(f"> ⚠️ {inert(plane.flag)}")
        out += ["", "```diff", *_lines(plane), "```", ""]
    unchanged = [p.plane for p in plan.planes if not p.actions and not p.flag]
    if unchanged:
        out.append("No changes on: " + ", ".join(f"`{p}`" for p in unchanged))
    out += _digest_lines(plan)
    if plan.warnings:
        out += ["", "**Not enforced** (the specs set them; nothing applies them):", ""]
        out += [f"* `{inert(str(w))}`" for w in plan.warnings]
    return "\n".join(out).rstrip() + "\n"


UNBOUND = (
    "a plane is protected by signed approvals, but this plan was made without `--root`: "
    "its digests are not the ones the reconciler compares"
)
"""Shown when a plan cannot carry the plan digests an approval must sign."""


def _digest_lines(plan: Plan) -> list[str]:
    """The plan binding: each protected plane's plan digest, which ``gitplane approve``
    signs and the reconciler compares at merge (docs/adr/0019-plan-digest.md)."""
    if plan.digests is None:
        return ["", f"> ⚠️ {UNBOUND}"]
    if not plan.digests:
        return []
    out = ["", "**Plan digests** (signed by `gitplane approve`, compared at merge):", ""]
    return out + [f"* `{plane}`: `{digest}`" for plane, digest in sorted(plan.digests.items())]


def _digest_text(plan: Plan) -> list[str]:
    if plan.digests is None:
        return [f"warning: {UNBOUND.replace('`', '')}"]
    if not plan.digests:
        return []
    out = ["plan digests (signed by gitplane approve, compared at merge):"]
    return [*out, *(f"  {p}: {d}" for p, d in sorted(plan.digests.items())), ""]


def as_json(plan: Plan) -> dict[str, Any]:
    """The plan as data: every action with its command digest."""
    counts: Counter[str] = Counter(a.op for p in plan.planes for a in p.actions)
    return {
        "commit": plan.commit,
        "changes": plan.has_changes,
        "summary": {op: counts[op] for op in SUMMARY_ORDER},
        "warnings": [w.as_dict() for w in plan.warnings],
        "digests": None if plan.digests is None else dict(sorted(plan.digests.items())),
        "planes": [
            {
                "plane": p.plane,
                "runtime": p.runtime,
                "labels": dict(p.labels),
                "flag": p.flag,
                "approvals": mode.as_dict() if (mode := plan.approvals.get(p.plane)) else None,
                "actions": [
                    {
                        "op": a.op,
                        "kind": a.kind,
                        "name": a.name,
                        "reason": a.reason,
                        "digest": a.command.digest if a.command else None,
                        "changes": [c.as_dict() for c in a.changes],
                    }
                    for a in p.actions
                ],
            }
            for p in plan.planes
        ],
    }
