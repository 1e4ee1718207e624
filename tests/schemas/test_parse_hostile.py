"""Hostile and mangled input: parse_spec reports problems, it never raises or hangs."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from schemas.parse import parse_spec
from tests.conftest import EXAMPLE_REPO

GOOD = (EXAMPLE_REPO / "deployments" / "churn-dev.yaml").read_bytes()


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=2048))
def test_random_bytes_never_raise(data: bytes) -> None:
    result = parse_spec("x.yaml", data)
    assert result.document is not None or result.problems
    assert all(p.line >= 1 and p.column >= 1 for p in result.problems)


@settings(max_examples=300, deadline=None)
@given(st.integers(0, len(GOOD) - 1), st.integers(1, 20), st.binary(max_size=8))
def test_mangled_good_specs_never_raise(at: int, cut: int, insert: bytes) -> None:
    data = GOOD[:at] + insert + GOOD[at + cut :]
    result = parse_spec("x.yaml", data)
    assert result.document is not None or result.problems
    for problem in result.problems:
        assert problem.line <= data.count(b"\n") + 2


def test_a_valid_spec_parses() -> None:
    result = parse_spec("churn-dev.yaml", GOOD)
    assert result.problems == []
    assert result.document is not None
    assert result.document.ref == "Deployment/churn-dev"


def test_a_wide_flat_document_is_fine_but_a_deep_one_is_refused() -> None:
    wide = (
        b"apiVersion: gitplane.dev/v1alpha1\nkind: Model\nmetadata: {name: m}\nspec:\n"
        + b"".join(b"  k%d: 1\n" % i for i in range(5000))
    )
    assert parse_spec("wide.yaml", wide).problems  # unknown fields, reported, no crash
    deep = b"a: " + b"{b: " * 10000 + b"1" + b"}" * 10000 + b"\n"
    problems = parse_spec("deep.yaml", deep).problems
    assert [p.message for p in problems] == ["nesting deeper than 64 levels"]
