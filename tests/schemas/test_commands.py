"""Typed commands and observed state: one model per kind, defaults from the schemas."""

from __future__ import annotations

import json

import pytest

from ledger import envelope
from schemas import commands, signed
from schemas.model import MetricGate, metrics_gate_failures
from schemas.observed import EndpointObserved, ModelObserved


def _command(kind: str, body: dict[str, object]) -> signed.Command:
    text = json.dumps(body, sort_keys=True, separators=(",", ":"))
    return signed.Command(
        id=f"{kind}/x", action="apply", kind=kind, name="x",  # type: ignore[arg-type]
        spec=text, digest=envelope.digest(text.encode()),
    )  # fmt: skip


MODEL = {
    "apiVersion": "gitplane.dev/v1alpha1",
    "kind": "Model",
    "metadata": {"name": "x"},
    "spec": {"version": "1.0.0", "source": {"project": {"path": "projects/x"}}},
    "inputs": {"projects/x": "a" * 40},
}


def test_a_command_carries_only_what_was_declared_and_reads_with_every_default() -> None:
    model = commands.read(_command("Model", MODEL), commands.ModelCommand)
    assert model.inputs == {"projects/x": "a" * 40}
    assert (model.spec.scan.fail_on, model.spec.timeout) == ("HIGH", "1h")  # the schema's
    assert model.spec.source.project is not None
    assert model.spec.source.project.entry_point == "main"


def test_a_deployment_command_carries_its_pinned_model() -> None:
    pinned = commands.PinnedModel(
        name="churn", version="1.2.0", registry_version=3, digest="sha256:" + "d" * 64,
        uri="models:/churn/3",
    )  # fmt: skip
    body = {
        "apiVersion": "gitplane.dev/v1alpha1",
        "kind": "Deployment",
        "metadata": {"name": "x"},
        "spec": {"model": {"name": "churn"}, "planeSelector": {"matchLabels": {"env": "dev"}}},
        **commands.resolved(pinned),
    }
    assert body["resolved"]["model"]["registryVersion"] == 3  # type: ignore[index]
    deployment = commands.read(_command("Deployment", body), commands.DeploymentCommand)
    assert deployment.resolved.model == pinned


@pytest.mark.parametrize(
    ("kind", "body", "error"),
    [
        pytest.param("Model", MODEL, "a Model command is not a DAGCommand", id="other-kind"),
        pytest.param(
            "DAG", {**MODEL, "kind": "DAG"}, "not a valid DAG: invalid at ", id="bad-body"
        ),
    ],
)
def test_a_command_that_does_not_fit_its_kind_is_refused(
    kind: str, body: dict[str, object], error: str
) -> None:
    with pytest.raises(commands.CommandSpecError, match=error):
        commands.read(_command(kind, body), commands.DAGCommand)


def test_observed_fields_are_named_once_and_a_wrong_type_reads_as_missing() -> None:
    flat = ModelObserved(version="1.0.0", registry_version=3, scan="passed").flat()
    assert flat == {"version": "1.0.0", "registryVersion": 3, "scan": "passed"}
    status = signed.ResourceStatus(
        kind="Model", name="x", phase="Ready",
        observed={**flat, "registryVersion": "3", "scanWorst": True, "other": 1},
    )  # fmt: skip
    seen = ModelObserved.of(status)
    assert (seen.version, seen.registry_version, seen.scan_worst) == ("1.0.0", None, None)
    assert ModelObserved.of(None) == ModelObserved()
    ready = signed.ResourceStatus(
        kind="Deployment", name="x", phase="Ready", observed={"readyReplicas": True}
    )
    assert EndpointObserved.of(ready).ready_replicas is None  # a bool is not a count


@pytest.mark.parametrize(
    ("op", "value", "why"),
    [
        pytest.param("<", 0.859, "rmse 0.859, needs < 0.7", id="above"),
        pytest.param("<", 0.7, "rmse 0.7, needs < 0.7", id="equal-is-not-less"),
        pytest.param("<=", 0.7, None, id="equal-holds-<="),
        pytest.param(">=", 0.7, None, id="equal-holds->="),
        pytest.param(">", 0.69, "rmse 0.69, needs > 0.7", id="below"),
        pytest.param("<", float("nan"), "rmse nan, needs < 0.7", id="nan-never-holds"),
        pytest.param("<", None, "rmse not logged, needs < 0.7", id="not-logged"),
    ],
)
def test_a_metric_gate_says_why_with_numbers(op: str, value: float | None, why: str | None) -> None:
    gate = MetricGate.model_validate({"metric": "rmse", "op": op, "threshold": 0.7})
    metrics = {} if value is None else {"rmse": value}
    assert gate.failure(metrics) == why
    assert metrics_gate_failures([gate, gate], metrics) == ([why, why] if why else [])


@pytest.mark.parametrize(
    ("message", "cause"),
    [
        pytest.param("", "", id="empty"),
        pytest.param("serving version 1.2.0", "serving version 1.2.0", id="one-line"),
        pytest.param(
            "the project run failed (exit 1):\nTraceback (most recent call last):\n"
            '  File "train.py", line 9\nFileNotFoundError: data/x.csv\n'
            "2026/11/24 INFO mlflow.projects: === Run (ID 'ab') failed ===",
            "FileNotFoundError: data/x.csv (the project run failed (exit 1))",
            id="the-error-line-first",
        ),
        pytest.param("step a failed\nwhy\nthe end", "step a failed the end", id="no-error-line"),
        pytest.param(
            "build failed:\ndata missing\n2026/11/24 12:00:01 ERROR mlflow.cli: === Run failed ===",
            "build failed: data missing",
            id="a-tools-own-log-line-is-never-the-cause",
        ),
    ],
)
def test_a_status_message_in_one_line_names_its_cause(message: str, cause: str) -> None:
    state = signed.ResourceStatus(kind="Model", name="m", phase="Failed", message=message)
    assert state.cause == cause
