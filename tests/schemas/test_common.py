"""Durations, quantities, selectors, names: the one syntax each."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from schemas.common import LabelSelector, Metadata, parse_duration, parse_quantity
from schemas.crossref import find_cycle
from schemas.problems import Problem, did_you_mean, format_path


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("500ms", 0.5),
        ("30s", 30),
        ("5m", 300),
        ("1h30m", 5400),
        ("7d", 604800),
        ("1.5h", 5400),
        ("0s", 0),
    ],
)
def test_durations(text: str, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "5", "5 m", "-5s", "5M", "1w", "s", "1h 30m"])
def test_invalid_durations(text: str) -> None:
    with pytest.raises(ValueError, match="invalid duration"):
        parse_duration(text)


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("500m", 0.5),
        ("2", 2),
        ("1.5", 1.5),
        ("512Mi", 512 * 2**20),
        ("4Gi", 4 * 2**30),
        ("1G", 1e9),
        ("100k", 1e5),
    ],
)
def test_quantities(text: str, value: float) -> None:
    assert parse_quantity(text) == value


@pytest.mark.parametrize("text", ["", "1 Gi", "-1", "1gi", "Gi", "1.Gi"])
def test_invalid_quantities(text: str) -> None:
    with pytest.raises(ValueError, match="invalid quantity"):
        parse_quantity(text)


def _selector(data: dict[str, object]) -> LabelSelector:
    return LabelSelector.model_validate(data)


@pytest.mark.parametrize(
    ("selector", "labels", "matches"),
    [
        pytest.param({}, {"env": "dev"}, True, id="empty-matches-all"),
        pytest.param({"matchLabels": {"env": "dev"}}, {"env": "dev", "r": "eu"}, True, id="labels"),
        pytest.param({"matchLabels": {"env": "dev"}}, {"env": "prod"}, False, id="labels-differ"),
        pytest.param({"matchLabels": {"env": "dev"}}, {}, False, id="label-missing"),
        pytest.param(
            {"matchExpressions": [{"key": "env", "operator": "In", "values": ["a", "b"]}]},
            {"env": "b"},
            True,
            id="in",
        ),
        pytest.param(
            {"matchExpressions": [{"key": "env", "operator": "NotIn", "values": ["a"]}]},
            {},
            True,
            id="notin-absent",
        ),
        pytest.param(
            {"matchExpressions": [{"key": "env", "operator": "NotIn", "values": ["a"]}]},
            {"env": "a"},
            False,
            id="notin-present",
        ),
        pytest.param(
            {"matchExpressions": [{"key": "gpu", "operator": "Exists"}]},
            {"gpu": "yes"},
            True,
            id="exists",
        ),
        pytest.param(
            {"matchExpressions": [{"key": "gpu", "operator": "DoesNotExist"}]},
            {"gpu": "yes"},
            False,
            id="does-not-exist",
        ),
        pytest.param(
            {
                "matchLabels": {"env": "prod"},
                "matchExpressions": [{"key": "region", "operator": "In", "values": ["eu"]}],
            },
            {"env": "prod", "region": "us"},
            False,
            id="all-terms-must-hold",
        ),
    ],
)
def test_label_selectors(
    selector: dict[str, object], labels: dict[str, str], matches: bool
) -> None:
    assert _selector(selector).matches(labels) is matches


@pytest.mark.parametrize("name", ["Churn", "churn_prod", "-churn", "churn-", "a" * 64, ""])
def test_names_are_dns_labels(name: str) -> None:
    with pytest.raises(ValidationError):
        Metadata.model_validate({"name": name})


def test_snake_case_keys_are_not_accepted_for_camel_case_fields() -> None:
    with pytest.raises(ValidationError, match="match_labels"):
        _selector({"match_labels": {"env": "dev"}})


@pytest.mark.parametrize(
    ("edges", "cycle"),
    [
        pytest.param({"a": [], "b": ["a"]}, [], id="acyclic"),
        pytest.param({"a": ["a"]}, ["a", "a"], id="self-loop"),
        pytest.param({"a": ["b"], "b": ["a"]}, ["a", "b", "a"], id="two"),
        pytest.param(
            {"x": [], "a": ["c"], "b": ["a"], "c": ["b"]}, ["a", "c", "b", "a"], id="three"
        ),
    ],
)
def test_find_cycle(edges: dict[str, list[str]], cycle: list[str]) -> None:
    assert find_cycle(edges) == cycle


def test_find_cycle_handles_long_chains() -> None:
    chain = {f"s{i}": [f"s{i + 1}"] for i in range(499)} | {"s499": []}
    assert find_cycle(chain) == []


def test_format_path_and_did_you_mean() -> None:
    assert format_path(("spec", "steps", 2, "dependsOn", 0)) == "spec.steps[2].dependsOn[0]"
    assert did_you_mean("replica", ["replicas", "resources"]) == " (did you mean 'replicas'?)"
    assert did_you_mean("max_replicas", ["maxReplicas"]) == " (did you mean 'maxReplicas'?)"
    assert did_you_mean("zzz", ["replicas"]) == ""


def test_problem_text_with_and_without_a_position() -> None:
    assert str(Problem("a.yaml", 3, 5, "spec.x", "bad")) == "a.yaml:3:5: spec.x: bad"
    assert str(Problem("link.yaml", 0, 0, "", "symlink")) == "link.yaml: symlink"
