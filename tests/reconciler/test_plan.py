"""Table tests of the pure planner: every action, ordering, gates, pruning, pinning."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest

from reconciler.plan import Desired, Plan, plan
from reconciler.planned import Signed
from reconciler.recorded import Issued, RecordedPlane
from schemas import signed
from schemas.document import Document
from schemas.observed import ModelObserved
from schemas.parse import parse_spec

FRIDAY_EVENING = datetime(2026, 11, 27, 18, 0, tzinfo=UTC)
TUESDAY_NOON = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)
COMMIT = "c" * 40
H = "apiVersion: gitplane.dev/v1alpha1\n"

PLANES = [
    H + "kind: DataPlane\nmetadata: {name: dev, labels: {env: dev}}\n"
    "spec: {runtime: local, sync: {prune: true}}\n",
    H
    + "kind: DataPlane\nmetadata: {name: prod, labels: {env: prod}}\nspec: {runtime: kubernetes}\n",
]
MODEL = (
    H
    + """kind: Model
metadata: {name: churn}
spec: {version: "1.2.0", source: {project: {path: projects/churn}}, aliases: [champion]}
"""
)
FEATURES = (
    H
    + """kind: FeatureSet
metadata: {name: activity}
spec:
  entities: [{name: customer, joinKeys: [id]}]
  source: {type: file, path: events.csv, timestampField: ts}
  transformation: {sql: "SELECT 1"}
  features: [{name: n, dtype: int64}]
  planeSelector: {matchLabels: {env: dev}}
"""
)


def deployment(
    name: str = "churn-dev", env: str = "dev", model: str = "{name: churn}", extra: str = ""
) -> str:
    return (
        H
        + f"""kind: Deployment
metadata: {{name: {name}}}
spec:
  model: {model}
  planeSelector: {{matchLabels: {{env: {env}}}}}
  replicas: 2
{extra}"""
    )


DAG = (
    H
    + """kind: DAG
metadata: {name: nightly}
spec:
  planeSelector: {matchLabels: {env: dev}}
  featureSets: [activity]
  steps: [{name: a, project: {path: projects/churn}}]
"""
)
POLICY = (
    H
    + """kind: Policy
metadata: {name: prod-gates}
spec:
  planeSelector: {matchLabels: {env: prod}}
  kinds: [Deployment]
  approvals: {minimum: 2}
  changeWindows:
    deny: [{days: [Fri], start: "16:00", end: "23:59"}]
"""
)


def docs(*texts: str) -> list[Document]:
    out = []
    for text in (*PLANES, *texts):
        parsed = parse_spec("x.yaml", text.encode())
        assert parsed.document is not None, parsed.problems
        out.append(parsed.document)
    return out


def built(
    version: str = "1.2.0",
    phase: str = "Ready",
    scan: str = "passed",
    message: str = "",
    worst: str = "NONE",
    *,
    metrics_gate: str | None = None,
) -> signed.ResourceStatus:
    return signed.ResourceStatus(
        kind="Model",
        name="churn",
        phase=phase,
        message=message,
        observed=ModelObserved(
            version=version,
            scan=scan,
            registry_version=3,
            artifact_digest="sha256:" + "d" * 64,
            scan_worst=worst,
            metrics_gate=metrics_gate,
        ).flat(),
    )


READY_FEATURES = signed.ResourceStatus(kind="FeatureSet", name="activity", phase="Ready")


def recorded_after(first: Plan, plane: str, **observed: signed.ResourceStatus) -> RecordedPlane:
    """The plane after it applied everything ``first`` issued to it."""
    issued = {
        (c.kind, c.name): Issued(c.action, c.digest, 1, spec=c.spec)
        for p in first.planes
        if p.plane == plane
        for c in p.commands
    }
    return RecordedPlane(plane, issued, {(s.kind, s.name): s for s in observed.values()}, 1, 1)


def ops(result: Plan, plane: str) -> list[tuple[str, str]]:
    return [(a.op, a.ref) for p in result.planes if p.plane == plane for a in p.actions]


@pytest.mark.effect("*", "metadata.name")
@pytest.mark.effect("DAG", "spec.featureSets[]")
def test_a_fresh_plane_builds_first_and_waits_for_dependencies() -> None:
    result = plan(Desired(COMMIT, docs(MODEL, FEATURES, deployment(), DAG)), {}, TUESDAY_NOON)
    assert ops(result, "dev") == [
        ("build", "Model/churn"),
        ("create", "FeatureSet/activity"),
        ("wait", "Deployment/churn-dev"),
        ("wait", "DAG/nightly"),
    ]
    wait = [a for a in result.planes[0].actions if a.op == "wait"]
    assert "Model/churn 1.2.0 to be built and scanned" in wait[0].reason
    assert "FeatureSet/activity" in wait[1].reason
    assert ops(result, "prod") == []


def test_an_update_lists_the_fields_it_changes_from_what_was_issued() -> None:
    """What ``plan --root`` shows under ``~ update``: the resolved spec last issued to the
    plane against the one about to be, field by field (the pinned model did not move)."""
    desired = Desired(COMMIT, docs(MODEL, FEATURES, deployment(), DAG))
    first = plan(desired, {}, TUESDAY_NOON)
    recorded = recorded_after(first, "dev", model=built(), features=READY_FEATURES)
    created = recorded_after(plan(desired, {"dev": recorded}, TUESDAY_NOON), "dev")
    state = RecordedPlane("dev", {**recorded.issued, **created.issued}, recorded.observed, 2, 2)
    scaled = deployment().replace("replicas: 2", "replicas: 3")
    again = plan(Desired(COMMIT, docs(MODEL, FEATURES, scaled, DAG)), {"dev": state}, TUESDAY_NOON)
    (update,) = [a for a in again.planes[0].actions if a.op == "update"]
    assert update.ref == "Deployment/churn-dev"
    assert [c.text() for c in update.changes] == ["replicas: 2 → 3"]
    assert plan(desired, {"dev": state}, TUESDAY_NOON).planes[0].actions == ()


@pytest.mark.effect("Deployment", "spec.model.name")
def test_once_the_model_passed_its_scan_the_deployment_is_created_pinned() -> None:
    desired = Desired(COMMIT, docs(MODEL, FEATURES, deployment(), DAG))
    first = plan(desired, {}, TUESDAY_NOON)
    recorded = recorded_after(first, "dev", model=built(), features=READY_FEATURES)
    second = plan(desired, {"dev": recorded}, TUESDAY_NOON)
    assert ops(second, "dev") == [("create", "Deployment/churn-dev"), ("create", "DAG/nightly")]
    command = second.planes[0].actions[0].command
    assert command is not None
    resolved = json.loads(command.spec)["resolved"]["model"]
    assert resolved == {
        "name": "churn",
        "version": "1.2.0",
        "registryVersion": 3,
        "digest": "sha256:" + "d" * 64,
        "uri": "models:/churn/3",
    }


@pytest.mark.effect("Deployment", "spec.featureSets[]")
def test_a_deployment_waits_for_the_feature_sets_it_reads() -> None:
    reader = deployment(extra="  featureSets: [activity]\n")
    first = plan(Desired(COMMIT, docs(MODEL, FEATURES, reader)), {}, TUESDAY_NOON)
    building = recorded_after(first, "dev", model=built())  # the FeatureSet is not Ready yet
    for spec, op, reason in [
        (reader, "wait", "waiting for FeatureSet/activity to be ready"),
        (deployment(), "create", "new in git"),
    ]:
        result = plan(Desired(COMMIT, docs(MODEL, FEATURES, spec)), {"dev": building}, TUESDAY_NOON)
        action = result.planes[0].actions[-1]
        assert (action.op, action.ref, action.reason) == (op, "Deployment/churn-dev", reason)
    ready = recorded_after(first, "dev", model=built(), features=READY_FEATURES)
    action = plan(Desired(COMMIT, docs(MODEL, FEATURES, reader)), {"dev": ready}, TUESDAY_NOON)
    assert action.planes[0].actions[-1].op == "create"


def _sync(desired: Desired) -> RecordedPlane:
    first = plan(desired, {}, TUESDAY_NOON)
    observed = {"model": built(), "features": READY_FEATURES}
    second = plan(desired, {"dev": recorded_after(first, "dev", **observed)}, TUESDAY_NOON)
    issued = {**recorded_after(first, "dev").issued, **recorded_after(second, "dev").issued}
    return RecordedPlane("dev", issued, recorded_after(first, "dev", **observed).observed, 2, 2)


def test_nothing_to_do_when_everything_issued_is_current() -> None:
    desired = Desired(COMMIT, docs(MODEL, FEATURES, deployment(), DAG))
    result = plan(desired, {"dev": _sync(desired)}, TUESDAY_NOON)
    assert ops(result, "dev") == []
    assert not result.has_changes


CHANGES: list[tuple[str, Callable[[], list[Document]], list[tuple[str, str]]]] = [
    (
        "spec-changed",
        lambda: docs(MODEL, FEATURES, deployment(extra="  env: {A: b}\n"), DAG),
        [("update", "Deployment/churn-dev")],
    ),
    (
        "new-model-version",
        lambda: docs(MODEL.replace("1.2.0", "1.3.0"), FEATURES, deployment(), DAG),
        [("build", "Model/churn"), ("wait", "Deployment/churn-dev")],
    ),
    (
        "explicit-default-is-a-declared-field",
        lambda: docs(MODEL, FEATURES, deployment(extra="  protocol: mlflow-v2\n"), DAG),
        [("update", "Deployment/churn-dev")],
    ),
    (
        "removed-with-pruning-on",
        lambda: docs(MODEL, FEATURES, deployment()),
        [("delete", "DAG/nightly")],
    ),
]


@pytest.mark.parametrize(("case", "make", "expected"), CHANGES, ids=[c[0] for c in CHANGES])
def test_changes_against_a_synced_plane(
    case: str, make: Callable[[], list[Document]], expected: list[tuple[str, str]]
) -> None:
    base = Desired(COMMIT, docs(MODEL, FEATURES, deployment(), DAG))
    recorded = _sync(base)
    assert ops(plan(base, {"dev": recorded}, TUESDAY_NOON), "dev") == []
    assert ops(plan(Desired(COMMIT, make()), {"dev": recorded}, TUESDAY_NOON), "dev") == expected


def test_defaults_are_not_part_of_the_command() -> None:
    result = plan(Desired(COMMIT, docs(MODEL, FEATURES, deployment())), {}, TUESDAY_NOON)
    feature_set = next(a for a in result.planes[0].actions if a.kind == "FeatureSet")
    assert feature_set.command is not None
    spec = json.loads(feature_set.command.spec)["spec"]
    assert "stores" not in spec and "retry" not in spec and "timeout" not in spec


@pytest.mark.effect("DataPlane", "spec.sync.prune")
def test_deletions_come_last_in_reverse_dependency_order() -> None:
    recorded = _sync(Desired(COMMIT, docs(MODEL, FEATURES, deployment(), DAG)))
    result = plan(Desired(COMMIT, docs()), {"dev": recorded}, TUESDAY_NOON)
    assert ops(result, "dev") == [
        ("delete", "DAG/nightly"),
        ("delete", "Deployment/churn-dev"),
        ("delete", "FeatureSet/activity"),
        ("delete", "Model/churn"),
    ]


def test_pruning_off_shows_the_removal_as_blocked() -> None:
    desired = Desired(COMMIT, docs(MODEL, deployment("churn-prod", "prod")))
    first = plan(desired, {}, TUESDAY_NOON)
    recorded = recorded_after(first, "prod", model=built())
    result = plan(Desired(COMMIT, docs()), {"prod": recorded}, TUESDAY_NOON)
    (action,) = result.planes[1].actions
    assert (action.op, action.ref, action.command) == ("blocked", "Model/churn", None)
    assert "pruning is off" in action.reason


@pytest.mark.effect("Model", "spec.version")
@pytest.mark.parametrize(
    ("status", "op", "reason"),
    [
        pytest.param(built(phase="Progressing"), "wait", "(Progressing)", id="building"),
        pytest.param(
            built(phase="Failed", message="train.py exited 1"),
            "blocked",
            "failed: train.py exited 1",
            id="build-failed",
        ),
        pytest.param(
            built(phase="Blocked", scan="failed", message="HIGH: os.system"),
            "blocked",
            "blocked: HIGH: os.system",
            id="scan-blocked",
        ),
        pytest.param(built(scan="failed"), "blocked", "no passing security scan", id="scan-failed"),
        pytest.param(built(version="1.1.0"), "wait", "1.2.0 to be built", id="older-version-ready"),
    ],
)
def test_model_gates(status: signed.ResourceStatus, op: str, reason: str) -> None:
    desired = Desired(COMMIT, docs(MODEL, deployment()))
    recorded = recorded_after(plan(desired, {}, TUESDAY_NOON), "dev", model=status)
    action = plan(desired, {"dev": recorded}, TUESDAY_NOON).planes[0].actions[-1]
    assert (action.op, action.ref) == (op, "Deployment/churn-dev")
    assert reason in action.reason
    assert action.command is None


GATED = MODEL.replace(
    "aliases: [champion]}",
    'aliases: [champion], metricsGate: [{metric: rmse, op: "<", threshold: 0.7}]}',
)


@pytest.mark.parametrize(
    ("status", "op", "reason"),
    [
        pytest.param(
            built(
                phase="Blocked",
                metrics_gate="failed",
                message="failed its metrics gate: rmse 0.859, needs < 0.7",
            ),
            "blocked",
            "Model/churn 1.2.0 failed its metrics gate: rmse 0.859, needs < 0.7",
            id="gate-failed",
        ),
        pytest.param(
            built(),  # Ready, scanned, but no verdict on the gate: an agent that skipped it
            "blocked",
            "Model/churn 1.2.0 has no passing metrics gate (its plane did not hold it)",
            id="gate-not-held",
        ),
        pytest.param(built(metrics_gate="passed"), "create", "new in git", id="gate-passed"),
    ],
)
def test_a_metrics_gate_blocks_every_deployment_of_the_version(
    status: signed.ResourceStatus, op: str, reason: str
) -> None:
    desired = Desired(COMMIT, docs(GATED, deployment()))
    recorded = recorded_after(plan(desired, {}, TUESDAY_NOON), "dev", model=status)
    action = plan(desired, {"dev": recorded}, TUESDAY_NOON).planes[0].actions[-1]
    assert (action.op, action.ref, action.reason) == (op, "Deployment/churn-dev", reason)
    assert (action.command is None) == (op == "blocked")


@pytest.mark.effect("Policy", "spec.approvals.minimum")
@pytest.mark.parametrize(
    ("approvals", "now", "op", "reason"),
    [
        pytest.param(0, TUESDAY_NOON, "blocked", "needs 2 approval(s)", id="no-approvals"),
        pytest.param(
            2, FRIDAY_EVENING, "blocked", "change window closed: Fri 16:00-23:59 UTC", id="freeze"
        ),
        pytest.param(2, TUESDAY_NOON, "create", "new in git", id="approved-in-window"),
    ],
)
def test_policy_gates(approvals: int, now: datetime, op: str, reason: str) -> None:
    approvers = frozenset(f"person{i} <p{i}@example.com>" for i in range(approvals))
    desired = Desired(
        COMMIT,
        docs(MODEL, POLICY, deployment("churn-prod", "prod")),
        trailers={"Approved-by": approvers},
    )
    recorded = recorded_after(plan(desired, {}, now), "prod", model=built())
    action = plan(desired, {"prod": recorded}, now).planes[1].actions[-1]
    assert (action.op, action.ref) == (op, "Deployment/churn-prod")
    assert reason in action.reason


def prod_policy(gates: str) -> str:
    """A policy on the prod plane's deployments with ``gates`` (YAML lines of its spec)."""
    return (
        H
        + "kind: Policy\nmetadata: {name: gates}\nspec:\n"
        + "  planeSelector: {matchLabels: {env: prod}}\n  kinds: [Deployment]\n"
        + gates
    )


def prod_deployment_action(desired: Desired, now: datetime) -> tuple[str, str]:
    """The prod deployment's op and reason once its model is built and scanned."""
    recorded = recorded_after(plan(desired, {}, now), "prod", model=built())
    action = plan(desired, {"prod": recorded}, now).planes[1].actions[-1]
    assert action.ref == "Deployment/churn-prod"
    return action.op, action.reason


APPROVED = frozenset({"Ann <ann@example.com>"})


@pytest.mark.effect("Policy", "spec.approvals.trailer", "spec.approvals.requireMergeCommit")
@pytest.mark.parametrize(
    ("approvals", "trailers", "merged", "expected"),
    [
        pytest.param(
            "{trailer: Reviewed-by}",
            {"Reviewed-by": APPROVED},
            False,
            ("create", "new in git"),
            id="its-trailer-counts",
        ),
        pytest.param(
            "{trailer: Reviewed-by}",
            {"Approved-by": APPROVED},
            False,
            (
                "blocked",
                "needs 1 approval(s) (Reviewed-by: trailers, unverified: anyone who can push can "
                "write one), has 0 (Policy/gates)",
            ),
            id="another-trailer-does-not",
        ),
        pytest.param(
            "{minimum: 0, requireMergeCommit: true}",
            {},
            False,
            (
                "blocked",
                "the change did not arrive through a merged pull request (Policy/gates)",
            ),
            id="pushed-directly",
        ),
        pytest.param(
            "{minimum: 0, requireMergeCommit: true}",
            {},
            True,
            ("create", "new in git"),
            id="merged",
        ),
    ],
)
def test_approvals_are_counted_from_the_policys_trailer_and_merges(
    approvals: str,
    trailers: dict[str, frozenset[str]],
    merged: bool,
    expected: tuple[str, str],
) -> None:
    policy = prod_policy(f"  approvals: {approvals}\n")
    documents = docs(MODEL, policy, deployment("churn-prod", "prod"))
    desired = Desired(COMMIT, documents, trailers=trailers, merged=merged)
    assert prod_deployment_action(desired, TUESDAY_NOON) == expected


ANN_KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBCqa3waRYIcsyHINKxvksLFXoAdSqjuFGtFh4jIOx1X ann"
BOB_KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIEyki4B695UbDbMXQGORA2Q7Hl2dD0qODkRCAybpubo+ bob"


@pytest.mark.effect("Policy", "spec.approvals.mode")
@pytest.mark.parametrize(
    ("signed", "expected"),
    [
        pytest.param(None, "needs 2 signed approval(s); no approval records were read", id="none"),
        pytest.param(Signed(1), "needs 2 signed approval(s), has 1", id="one"),
        pytest.param(
            Signed(0, "plane prod-eu: plan changed since approval (approved 1a2b…, now 3c4d…)"),
            "plane prod-eu: plan changed since approval (approved 1a2b…, now 3c4d…); "
            "needs 2 signed approval(s), has 0",
            id="plan-changed",
        ),
    ],
)
def test_signed_mode_counts_signed_approvals_never_trailers(
    signed: Signed | None, expected: str
) -> None:
    # forged Approved-by: trailers in signed mode: nothing is issued (issue 21)
    keys = f"[{{name: ann, key: {ANN_KEY}}}, {{name: bob, key: {BOB_KEY}}}]"
    policy = prod_policy(f"  approvals: {{mode: signed, minimum: 2, approvers: {keys}}}\n")
    documents = docs(MODEL, policy, deployment("churn-prod", "prod"))
    trailers = {"Approved-by": APPROVED | {"Bo <bo@example.com>"}}
    desired = Desired(COMMIT, documents, trailers=trailers, merged=True, signed=signed)
    assert prod_deployment_action(desired, TUESDAY_NOON) == (
        "blocked",
        f"{expected} (Policy/gates)",
    )
    approved = Desired(COMMIT, documents, signed=Signed(2))
    assert prod_deployment_action(approved, TUESDAY_NOON) == ("create", "new in git")


FRIDAY_FREEZE = '{days: [Fri], start: "16:00", end: "23:59"}'
CLOSED = ("blocked", "change window closed: Fri 16:00-23:59 UTC (Policy/gates)")
OUTSIDE = ("blocked", "outside every allowed change window (Policy/gates)")
OPEN = ("create", "new in git")


@pytest.mark.effect(
    "Policy",
    "spec.changeWindows.deny[].days[]",
    "spec.changeWindows.deny[].start",
    "spec.changeWindows.deny[].end",
    "spec.changeWindows.deny[].timezone",
    "spec.changeWindows.allow[].days[]",
    "spec.changeWindows.allow[].start",
    "spec.changeWindows.allow[].end",
    "spec.changeWindows.allow[].timezone",
)
@pytest.mark.parametrize(
    ("windows", "expected"),
    [
        pytest.param(f"deny: [{FRIDAY_FREEZE}]", CLOSED, id="deny"),
        pytest.param(
            'deny: [{days: [Thu], start: "16:00", end: "23:59"}]', OPEN, id="deny-another-day"
        ),
        pytest.param(
            'deny: [{days: [Fri], start: "18:01", end: "23:59"}]', OPEN, id="deny-not-started"
        ),
        pytest.param('deny: [{days: [Fri], start: "16:00", end: "17:59"}]', OPEN, id="deny-over"),
        pytest.param(
            'deny: [{days: [Fri], start: "16:00", end: "23:59", timezone: America/New_York}]',
            OPEN,  # 13:00 in New York
            id="deny-in-another-time-zone",
        ),
        pytest.param(f"allow: [{FRIDAY_FREEZE}]", OPEN, id="allow"),
        pytest.param(
            'allow: [{days: [Thu], start: "16:00", end: "23:59"}]', OUTSIDE, id="allow-another-day"
        ),
        pytest.param(
            'allow: [{days: [Fri], start: "18:01", end: "23:59"}]',
            OUTSIDE,
            id="allow-not-started",
        ),
        pytest.param(
            'allow: [{days: [Fri], start: "16:00", end: "17:59"}]', OUTSIDE, id="allow-over"
        ),
        pytest.param(
            'allow: [{days: [Fri], start: "16:00", end: "23:59", timezone: America/New_York}]',
            OUTSIDE,
            id="allow-in-another-time-zone",
        ),
    ],
)
def test_change_windows_by_day_time_and_time_zone(windows: str, expected: tuple[str, str]) -> None:
    """Friday 18:00 UTC against windows that differ from a Friday evening one in one field."""
    policy = prod_policy(f"  changeWindows: {{{windows}}}\n")
    desired = Desired(COMMIT, docs(MODEL, policy, deployment("churn-prod", "prod")))
    assert prod_deployment_action(desired, FRIDAY_EVENING) == expected


@pytest.mark.effect("Policy", "spec.kinds[]")
@pytest.mark.parametrize(
    ("kinds", "expected"),
    [
        pytest.param("[Deployment]", ("build", "build version 1.2.0"), id="not-named"),
        pytest.param(
            "[Model, Deployment]",
            (
                "blocked",
                "needs 1 approval(s) (Approved-by: trailers, unverified: anyone who can push can "
                "write one), has 0 (Policy/gates)",
            ),
            id="named",
        ),
    ],
)
def test_a_policy_gates_only_the_kinds_it_names(kinds: str, expected: tuple[str, str]) -> None:
    policy = prod_policy("  approvals: {minimum: 1}\n").replace("[Deployment]", kinds)
    desired = Desired(COMMIT, docs(MODEL, policy, deployment("churn-prod", "prod")))
    build = plan(desired, {}, TUESDAY_NOON).planes[1].actions[0]
    assert (build.ref, (build.op, build.reason)) == ("Model/churn", expected)


@pytest.mark.effect("Policy", "spec.security.maxSeverity")
@pytest.mark.parametrize(
    ("worst", "op", "reason"),
    [
        pytest.param("NONE", "create", "new in git", id="clean"),
        pytest.param("LOW", "create", "new in git", id="below"),
        pytest.param(
            "MEDIUM",
            "blocked",
            "Model/churn 1.2.0 has a MEDIUM scan finding; "
            "Policy/prod-gates blocks MEDIUM and above",
            id="at-max-severity",
        ),
    ],
)
def test_a_policy_security_gate_tightens_the_models_own(worst: str, op: str, reason: str) -> None:
    secured = POLICY.replace("  approvals: {minimum: 2}\n", "  security: {maxSeverity: MEDIUM}\n")
    desired = Desired(COMMIT, docs(MODEL, secured, deployment("churn-prod", "prod")))
    recorded = recorded_after(plan(desired, {}, TUESDAY_NOON), "prod", model=built(worst=worst))
    action = plan(desired, {"prod": recorded}, TUESDAY_NOON).planes[1].actions[-1]
    assert (action.op, action.ref, action.reason) == (op, "Deployment/churn-prod", reason)


@pytest.mark.effect("Model", "spec.registeredName")
def test_a_deployment_is_pinned_to_the_models_registered_name() -> None:
    named = MODEL.replace("aliases: [champion]}", "aliases: [champion], registeredName: churn-lr}")
    desired = Desired(COMMIT, docs(named, deployment()))
    recorded = recorded_after(plan(desired, {}, TUESDAY_NOON), "dev", model=built())
    action = plan(desired, {"dev": recorded}, TUESDAY_NOON).planes[0].actions[-1]
    assert action.command is not None
    pinned = json.loads(action.command.spec)["resolved"]["model"]
    assert (pinned["name"], pinned["uri"]) == ("churn-lr", "models:/churn-lr/3")


@pytest.mark.effect("Model", "spec.aliases[]")
@pytest.mark.effect("Deployment", "spec.model.alias")
def test_an_alias_is_pinned_to_the_version_and_digest() -> None:
    desired = Desired(COMMIT, docs(MODEL, deployment(model="{name: churn, alias: champion}")))
    recorded = recorded_after(plan(desired, {}, TUESDAY_NOON), "dev", model=built())
    action = plan(desired, {"dev": recorded}, TUESDAY_NOON).planes[0].actions[-1]
    assert action.command is not None
    assert json.loads(action.command.spec)["resolved"]["model"]["uri"] == "models:/churn/3"


@pytest.mark.effect("Deployment", "spec.model.alias")
def test_an_alias_no_model_sets_is_blocked() -> None:
    desired = Desired(COMMIT, docs(MODEL, deployment(model="{name: churn, alias: canary}")))
    action = plan(desired, {}, TUESDAY_NOON).planes[0].actions[-1]
    assert (action.op, action.reason) == ("blocked", "no Model sets alias 'canary' on churn")


@pytest.mark.effect("*", "spec.planeSelector.matchLabels")
@pytest.mark.effect("DataPlane", "metadata.labels")
def test_resources_go_only_to_the_planes_they_select() -> None:
    result = plan(Desired(COMMIT, docs(MODEL, deployment("churn-prod", "prod"))), {}, TUESDAY_NOON)
    assert ops(result, "dev") == []
    assert ops(result, "prod") == [("build", "Model/churn"), ("wait", "Deployment/churn-prod")]


def test_plans_are_deterministic() -> None:
    desired = Desired(COMMIT, docs(MODEL, FEATURES, deployment(), DAG, POLICY))
    assert plan(desired, {}, TUESDAY_NOON) == plan(desired, {}, TUESDAY_NOON)


def test_a_flagged_plane_carries_its_flag() -> None:
    flagged = RecordedPlane("dev", flag="agent reports rollback: timestamp 3 < 5")
    result = plan(Desired(COMMIT, docs(MODEL)), {"dev": flagged}, TUESDAY_NOON)
    assert result.planes[0].flag == "agent reports rollback: timestamp 3 < 5"


@pytest.mark.parametrize(
    ("phase", "observed", "op", "reason"),
    [
        pytest.param(
            "Failed",
            {"attempts": 2, "nextRetry": "2026-11-24T12:01:00Z"},
            "wait",
            "attempt 2 failed (port in use); the plane retries it at 2026-11-24T12:01:00Z",
            id="the-plane-retries",
        ),
        pytest.param(
            "Failed",
            {"retryAt": "2026-11-24T12:05:00Z"},
            "wait",
            "failed (port in use); the plane retries it at 2026-11-24T12:05:00Z",
            id="the-runtime-retries",
        ),
        pytest.param(
            "Failed",
            {},
            "blocked",
            "failed (port in use); the plane does not retry it: change its spec",
            id="no-retry-reported",
        ),
        pytest.param(
            "Stalled",
            {"attempts": 5},
            "blocked",
            "port in use; change its spec to try again (docs/agent.md)",
            id="stalled",
        ),
    ],
)
@pytest.mark.parametrize("hours_later", [0, 8])
def test_a_failed_apply_is_never_issued_again(
    phase: str, observed: dict[str, str | int], op: str, reason: str, hours_later: int
) -> None:
    """The plane retries a failed apply from the command it holds (no new signed command,
    however long it takes); the plan says so, or that a person must act."""
    desired = Desired(COMMIT, docs(MODEL, FEATURES, deployment(), DAG))
    recorded = _sync(desired)
    key = ("Deployment", "churn-dev")
    failed = signed.ResourceStatus(
        kind="Deployment",
        name="churn-dev",
        phase=phase,  # type: ignore[arg-type]
        digest=recorded.issued[key].digest,
        message="port in use",
        observed=observed,
    )
    state = RecordedPlane("dev", recorded.issued, {**recorded.observed, key: failed}, 2, 2)
    now = TUESDAY_NOON + timedelta(hours=hours_later)
    (action,) = plan(desired, {"dev": state}, now).planes[0].actions
    assert (action.op, action.ref, action.reason) == (op, "Deployment/churn-dev", reason)
    assert action.command is None


def test_a_blocked_resource_is_not_retried() -> None:
    desired = Desired(COMMIT, docs(MODEL, FEATURES, deployment(), DAG))
    recorded = _sync(desired)
    key = ("Deployment", "churn-dev")
    blocked = signed.ResourceStatus(
        kind="Deployment",
        name="churn-dev",
        phase="Blocked",
        digest=recorded.issued[key].digest,
        message="envManager 'conda' is not available on this plane",
    )
    observed = {**recorded.observed, key: blocked}
    later = TUESDAY_NOON.replace(hour=20)
    result = plan(desired, {"dev": RecordedPlane("dev", recorded.issued, observed)}, later)
    [action] = result.planes[0].actions  # shown, with why, and never issued again
    assert (action.op, action.ref, action.command) == ("blocked", "Deployment/churn-dev", None)
    assert action.reason == (
        "blocked on the plane: envManager 'conda' is not available on this plane"
    )


@pytest.mark.effect(
    "*",
    "spec.planeSelector.matchExpressions[].key",
    "spec.planeSelector.matchExpressions[].operator",
    "spec.planeSelector.matchExpressions[].values[]",
)
def test_planes_share_actions_only_when_nothing_plane_specific_differs() -> None:
    model = MODEL.replace(
        "aliases: [champion]}", "aliases: [champion], planeSelector: {matchLabels: {env: dev}}}"
    )
    both = deployment(extra="").replace(
        "planeSelector: {matchLabels: {env: dev}}",
        "planeSelector: {matchExpressions: [{key: env, operator: In, values: [dev, prod]}]}",
    )
    desired = Desired(COMMIT, docs(model, both))
    result = plan(desired, {}, TUESDAY_NOON)
    dev, prod = (next(a for a in p.actions if a.kind == "Deployment") for p in result.planes)
    assert (dev.op, prod.op) == ("wait", "blocked")  # the model is built on dev only
    assert "not built on this plane" in prod.reason
    recorded = recorded_after(result, "dev", model=built())
    again = plan(desired, {"dev": recorded}, TUESDAY_NOON)
    dev_action = next(a for a in again.planes[0].actions if a.kind == "Deployment")
    assert dev_action.op == "create"  # the dev plane's own record, not a shared memo


@pytest.mark.effect("*", "metadata.annotations")
def test_an_annotation_is_the_way_to_retry_a_stalled_resource() -> None:
    """As ``kubectl rollout restart``: a changed annotation is a changed spec, so a new
    command (its attempts count from one); docs/agent.md gives this recipe."""
    desired = Desired(COMMIT, docs(MODEL, deployment()))
    first = plan(desired, {}, TUESDAY_NOON)
    [command] = first.planes[0].commands  # the build; the deployment waits for it
    stalled = signed.ResourceStatus(
        kind="Model", name="churn", phase="Stalled", digest=command.digest, message="boom"
    )
    state = recorded_after(first, "dev", model=stalled)
    assert ops(plan(desired, {"dev": state}, TUESDAY_NOON), "dev") == [
        ("blocked", "Model/churn"),
        ("blocked", "Deployment/churn-dev"),
    ]
    retried = MODEL.replace(
        "metadata: {name: churn}",
        'metadata: {name: churn, annotations: {gitplane.dev/retry: "2026-12-06"}}',
    )
    again = plan(Desired(COMMIT, docs(retried, deployment())), {"dev": state}, TUESDAY_NOON)
    action = again.planes[0].actions[0]
    assert (action.op, action.ref) == ("build", "Model/churn")
    assert action.command is not None and action.command.digest != command.digest


@pytest.mark.effect("Model", "spec.source.project.envManager")
@pytest.mark.parametrize(
    ("capabilities", "op", "reason"),
    [
        pytest.param(None, "build", "build version 1.2.0", id="not-reported-yet"),
        pytest.param(
            signed.PlaneCapabilities(env_managers=["local"], enforces_resources=False),
            "blocked",
            "envManager 'conda' (projects/churn) is not available on plane dev (it has: local)",
            id="the-plane-lacks-it",
        ),
        pytest.param(
            signed.PlaneCapabilities(env_managers=["conda", "local"], enforces_resources=True),
            "build",
            "build version 1.2.0",
            id="the-plane-has-it",
        ),
    ],
)
def test_what_a_plane_reports_it_cannot_do_is_never_sent_to_it(
    capabilities: signed.PlaneCapabilities | None, op: str, reason: str
) -> None:
    """The agent reports its runtime's capabilities in its signed status; a build in an
    environment it lacks would run in the agent's own, ignoring the project's pins."""
    conda = MODEL.replace(
        "source: {project: {path: projects/churn}}",
        "source: {project: {path: projects/churn, envManager: conda}}",
    )
    desired = Desired(COMMIT, docs(conda, deployment()))
    state = RecordedPlane("dev", capabilities=capabilities)
    action = plan(desired, {"dev": state}, TUESDAY_NOON).planes[0].actions[0]
    assert (action.op, action.ref, action.reason) == (op, "Model/churn", reason)
    assert (action.command is None) == (op == "blocked")


def capped(capacity: str) -> list[str]:
    """The planes, the dev plane with ``spec.capacity``."""
    return [PLANES[0].replace("spec: {", f"spec: {{capacity: {capacity}, "), PLANES[1]]


def deployments(*names_and_replicas: tuple[str, int]) -> list[str]:
    return [deployment(n).replace("replicas: 2", f"replicas: {r}") for n, r in names_and_replicas]


def plan_capped(capacity: str, specs: list[str], recorded: RecordedPlane | None = None) -> Plan:
    texts = [*capped(capacity), MODEL, *specs]
    parsed = [parse_spec("x.yaml", t.encode()).document for t in texts]
    desired = Desired(COMMIT, [d for d in parsed if d is not None])
    state = recorded or RecordedPlane("dev", {}, {("Model", "churn"): built()}, 1, 1)
    return plan(desired, {"dev": state}, TUESDAY_NOON)


@pytest.mark.effect("Deployment", "spec.replicas")
@pytest.mark.effect("DataPlane", "spec.capacity.maxDeployments", "spec.capacity.maxReplicas")
@pytest.mark.parametrize(
    ("capacity", "specs", "expected", "reason"),
    [
        (
            "{maxDeployments: 2}",
            [("a", 1), ("b", 1), ("c", 1)],
            {"a": "create", "b": "create", "c": "blocked"},
            "over DataPlane/dev capacity: its 2 deployment(s) (spec.capacity.maxDeployments) "
            "are taken",
        ),
        (
            "{maxReplicas: 5}",
            [("a", 2), ("b", 4), ("c", 3)],
            {"a": "create", "b": "blocked", "c": "create"},  # what fits is admitted, like a quota
            "over DataPlane/dev capacity: needs 4 replica(s), 3 of 5 (spec.capacity.maxReplicas) "
            "left",
        ),
    ],
)
def test_the_reconciler_plans_no_deployment_past_a_planes_capacity(
    capacity: str, specs: list[tuple[str, int]], expected: dict[str, str], reason: str
) -> None:
    result = plan_capped(capacity, deployments(*specs))
    dev = next(p for p in result.planes if p.plane == "dev")
    got = {a.name: a.op for a in dev.actions if a.kind == "Deployment"}
    assert got == expected
    blocked = next(a for a in dev.actions if a.op == "blocked")
    assert blocked.reason == reason
    assert blocked.command is None
    assert all(c.kind != "Deployment" or c.name != blocked.name for c in dev.commands)


@pytest.mark.effect("Deployment", "spec.autoscaling.maxReplicas")
def test_autoscaling_counts_what_it_may_scale_up_to() -> None:
    scaled = deployment("big").replace(
        "  replicas: 2\n",
        "  autoscaling: {minReplicas: 1, maxReplicas: 4, targets: {rpsPerReplica: 10}}\n",
    )
    result = plan_capped("{maxReplicas: 5}", [scaled, *deployments(("small", 2))])
    dev = next(p for p in result.planes if p.plane == "dev")
    assert {a.name: a.op for a in dev.actions if a.kind == "Deployment"} == {
        "big": "create",
        "small": "blocked",
    }


def test_capacity_admits_and_never_evicts_what_is_running() -> None:
    """A deployment already issued to the plane keeps its place when a new one, earlier by
    name, arrives; and when the capacity is lowered under what runs, nothing is deleted."""
    issued = {("Deployment", "z-old"): Issued("apply", "sha256:" + "e" * 64, 1)}
    state = RecordedPlane("dev", issued, {("Model", "churn"): built()}, 1, 1)
    result = plan_capped("{maxDeployments: 1}", deployments(("a-new", 1), ("z-old", 1)), state)
    dev = next(p for p in result.planes if p.plane == "dev")
    ops_by_name = {a.name: (a.op, a.reason) for a in dev.actions}
    assert ops_by_name["a-new"][0] == "blocked"
    assert ops_by_name["z-old"][0] == "update"  # its own spec moved: it still fits
    lowered = plan_capped("{maxReplicas: 1}", deployments(("z-old", 3)), state)
    actions = next(p for p in lowered.planes if p.plane == "dev").actions
    assert [(a.op, a.name) for a in actions if a.kind == "Deployment"] == [("blocked", "z-old")]
    assert actions[-1].reason.endswith("; it keeps running as last applied")


@pytest.mark.effect(
    "*", "metadata.description", "metadata.owner", "metadata.labels", "metadata.annotations"
)
def test_metadata_is_signed_into_the_command_and_a_change_to_it_is_an_update() -> None:
    """Who owns a resource and what it is for are part of what was approved: the plane (and
    the audit trail) gets them in the signed command, and changing them is a new command."""
    desired = Desired(COMMIT, docs(MODEL, FEATURES, deployment(), DAG))
    metadata = (
        "metadata:\n  name: churn-dev\n  description: churn scores for the CRM\n"
        "  owner: team-ml\n  labels: {tier: gold}\n  annotations: {ticket: ML-42}\n"
    )
    changed = deployment().replace("metadata: {name: churn-dev}\n", metadata)
    result = plan(
        Desired(COMMIT, docs(MODEL, FEATURES, changed, DAG)), {"dev": _sync(desired)}, TUESDAY_NOON
    )
    [action] = next(p for p in result.planes if p.plane == "dev").actions
    assert (action.op, action.ref) == ("update", "Deployment/churn-dev")
    assert action.command is not None
    assert json.loads(action.command.spec)["metadata"] == {
        "name": "churn-dev",
        "description": "churn scores for the CRM",
        "owner": "team-ml",
        "labels": {"tier": "gold"},
        "annotations": {"ticket": "ML-42"},
    }
