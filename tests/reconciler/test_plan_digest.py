"""ADR 0019: the plan digest hashes what a plane will be told, nothing transient."""

from __future__ import annotations

import hashlib
from dataclasses import replace

import pytest

from reconciler import approvals as rules
from reconciler.planned import Action, PlanePlan
from schemas import signed

SPEC = '{"kind":"Deployment"}'
DIGEST = "sha256:" + "a" * 64
SOURCE = "sha256:" + "b" * 64


def command(**changes: str) -> signed.Command:
    fields = {
        "id": "Deployment/churn-prod@aaaaaaaaaaaa",
        "action": "apply",
        "kind": "Deployment",
        "name": "churn-prod",
        "spec": SPEC,
        "digest": DIGEST,
        "reason": "new in git",
    }
    return signed.Command.model_validate(fields | changes)


def plane(*actions: Action, name: str = "prod-eu") -> PlanePlan:
    return PlanePlan(name, "kubernetes", {"env": "prod"}, actions)


CREATE = Action("create", "Deployment", "churn-prod", "new in git", command(), SOURCE)
BASE = rules.plan_digest(plane(CREATE))


@pytest.mark.parametrize(
    "same",
    [
        plane(replace(CREATE, reason="spec changed")),
        plane(replace(CREATE, command=command(id="other", reason="x"))),
        plane(replace(CREATE, declared='{"x":1}')),
        PlanePlan("prod-eu", "local", {"other": "labels"}, (CREATE,), flag="stale"),
    ],
    ids=["reason", "command-id-and-reason", "declared-text", "runtime-labels-flag"],
)
def test_transient_fields_do_not_change_it(same: PlanePlan) -> None:
    assert rules.plan_digest(same) == BASE


@pytest.mark.parametrize(
    "other",
    [
        plane(replace(CREATE, command=command(digest="sha256:" + "c" * 64))),
        plane(replace(CREATE, op="update")),
        plane(CREATE, name="prod-us"),
        plane(CREATE, replace(CREATE, name="churn-2")),
        plane(replace(CREATE, op="wait", command=None)),
    ],
    ids=["resolved-spec", "op", "plane", "another-action", "not-resolved-yet"],
)
def test_what_the_plane_is_told_changes_it(other: PlanePlan) -> None:
    assert rules.plan_digest(other) != BASE


def test_it_is_sha256_of_the_canonical_form() -> None:
    text = (
        '{"_type":"gitplane.dev/plan-digest/v1","actions":[{"op":"create",'
        f'"ref":"Deployment/churn-prod","spec":"{DIGEST}"}}],"plane":"prod-eu"}}'
    )
    assert "sha256:" + hashlib.sha256(text.encode()).hexdigest() == BASE
