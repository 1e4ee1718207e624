"""The double's pure parts as tables: field ownership under server-side apply, selector
parsing, and the ``completedIndexes`` form."""

from __future__ import annotations

import pytest

from tests.kubeapi import fields, jobs, selectors


def owner(manager: str, *paths: fields.Path, subresource: str | None = None) -> fields.Json:
    return fields.entry(manager, "Apply", "apps/v1", "t", set(paths), subresource=subresource)


CURRENT = {"spec": {"replicas": 2, "template": {"spec": {"containers": [{"name": "a"}]}}}}
CONTAINERS = ("spec", "template", "spec", "containers")
CONFLICTS = {
    "same-value-is-shared": ({"spec": {"replicas": 2}}, [owner("hpa", ("spec", "replicas"))], []),
    "other-value-conflicts": (
        {"spec": {"replicas": 3}},
        [owner("hpa", ("spec", "replicas"))],
        [("hpa", ("spec", "replicas"))],
    ),
    "own-field-never-conflicts": (
        {"spec": {"replicas": 3}},
        [owner("me", ("spec", "replicas"))],
        [],
    ),
    "status-owners-do-not-count": (
        {"spec": {"replicas": 3}},
        [owner("kcm", ("spec", "replicas"), subresource="status")],
        [],
    ),
    "atomic-list-is-one-field": (
        {"spec": {"template": {"spec": {"containers": [{"name": "b"}]}}}},
        [owner("kubectl", CONTAINERS)],
        [("kubectl", CONTAINERS)],
    ),
}


@pytest.mark.parametrize(
    ("applied", "entries", "expected"), CONFLICTS.values(), ids=CONFLICTS.keys()
)
def test_conflicts(applied: fields.Json, entries: list, expected: list) -> None:
    mine = fields.tracked(applied)
    assert fields.conflicts(CURRENT, applied, mine, entries, "me") == expected


def test_fields_v1_round_trips_and_server_metadata_is_not_tracked() -> None:
    obj = {"metadata": {"name": "x", "uid": "u", "labels": {"a": "1"}}, "spec": {"r": 1, "m": {}}}
    paths = fields.tracked(obj)
    assert paths == {("metadata", "labels", "a"), ("spec", "r"), ("spec", "m")}
    assert fields.from_fields_v1(fields.to_fields_v1(paths)) == paths


def test_disown_drops_managers_left_with_nothing() -> None:
    entries = [owner("a", ("spec", "r")), owner("b", ("spec", "r"), ("spec", "s"))]
    left = fields.disown(entries, {("spec", "r")})
    assert [(e["manager"], e["fieldsV1"]) for e in left] == [("b", {"f:spec": {"f:s": {}}})]


@pytest.mark.parametrize(
    "text",
    ["tier in web)", "=web", "tier in (web", "a b"],
    ids=["paren", "no-key", "open", "space"],
)
def test_unreadable_label_selectors_are_refused(text: str) -> None:
    with pytest.raises(ValueError, match="unable to parse requirement"):
        selectors.parse_labels(text)


def test_only_metadata_fields_can_be_selected() -> None:
    with pytest.raises(ValueError, match=r'field label not supported: "spec\.replicas"'):
        selectors.parse_fields("spec.replicas=1")


RANGES = {
    "none": (set(), ""),
    "one": ({0}, "0"),
    "runs": ({0, 1, 2, 4}, "0-2,4"),
    "gaps": ({1, 3, 4, 5, 7}, "1,3-5,7"),
}


@pytest.mark.parametrize(("indexes", "text"), RANGES.values(), ids=RANGES.keys())
def test_completed_indexes_are_written_as_ranges(indexes: set[int], text: str) -> None:
    assert jobs.ranges(indexes) == text
