"""Field diffs of two resolved specs, as ``plan`` shows them under an update."""

from __future__ import annotations

import json

from hypothesis import given
from hypothesis import strategies as st

from reconciler.fielddiff import MISSING, Change, changes


def spec(body: dict[str, object], **top: object) -> str:
    document = {"apiVersion": "gitplane.dev/v1alpha1", "kind": "Deployment"}
    return json.dumps({**document, "metadata": {"name": "api"}, "spec": body, **top})


def test_fields_are_named_as_users_write_them_and_sorted() -> None:
    before = spec({"replicas": 1, "model": {"name": "churn", "version": "1.1.0"}})
    after = spec({"replicas": 2, "model": {"name": "churn", "version": "1.2.0"}})
    assert [c.text() for c in changes(before, after)] == [
        "model.version: 1.1.0 → 1.2.0",
        "replicas: 1 → 2",
    ]


def test_added_removed_and_list_items() -> None:
    before = spec({"gate": [{"metric": "auc", "min": 0.8}], "canary": 10}, inputs={"p": "a1"})
    after = spec(
        {"gate": [{"metric": "auc", "min": 0.9}], "shadow": True},
        metadata={"name": "api", "labels": {"team": "growth"}},
    )
    assert [c.text() for c in changes(before, after)] == [
        "- canary (was 10)",
        "gate[0].min: 0.8 → 0.9",
        '- inputs (was {"p": "a1"})',
        '+ metadata.labels: {"team": "growth"}',
        "+ shadow: true",
    ]
    removed = next(c for c in changes(before, after) if c.field == "canary")
    assert removed.as_dict() == {"field": "canary", "before": 10}


def test_a_list_that_changes_length_is_one_change_and_long_values_are_cut() -> None:
    before = spec({"args": ["x" * 40]})
    after = spec({"args": ["x" * 40, "y" * 40]})
    (change,) = changes(before, after)
    assert change.field == "args"
    assert change.text().endswith("…") and len(change.text()) < 140
    assert change.as_dict()["after"] == ["x" * 40, "y" * 40]  # JSON keeps it whole


def test_text_that_is_not_a_spec_compares_as_nothing() -> None:
    assert changes("", spec({})) == ()
    assert changes("[1]", spec({})) == ()
    assert changes(spec({"a": 1}), spec({"a": 1})) == ()


def test_a_string_that_needs_quotes_keeps_them() -> None:
    (change,) = changes(spec({"cmd": "a b"}), spec({"cmd": "a: b"}))
    assert change.text() == 'cmd: "a b" → "a: b"'
    assert Change("x", MISSING, "y").as_dict() == {"field": "x", "after": "y"}
    assert [c.text() for c in changes(spec({"n": 1}), spec({"n": True}))] == ["n: 1 → true"]


leaves = st.none() | st.booleans() | st.integers(-3, 3) | st.sampled_from(["a", "b", "1.0"])
values = st.recursive(
    leaves,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.sampled_from("abc"), inner),
    max_leaves=8,
)


@given(
    st.dictionaries(st.sampled_from("pqr"), values), st.dictionaries(st.sampled_from("pqr"), values)
)
def test_no_change_exactly_when_the_specs_are_equal(
    a: dict[str, object], b: dict[str, object]
) -> None:
    found = changes(spec(a), spec(b))
    assert (found == ()) == (json.dumps(a, sort_keys=True) == json.dumps(b, sort_keys=True))
    assert all(c.as_dict() != {"field": c.field} for c in found)
