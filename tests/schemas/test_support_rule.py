"""The rule that keeps "accepted and ignored" out: every leaf field of every kind's JSON
Schema has a test showing its effect (``@pytest.mark.effect(kind, *fields)``, on a plan, a
signed command or what a runtime did) or a row of ``schemas.support.TABLE`` (the generated
docs/reference/support.md) saying which runtime does not apply it. A new field with neither
fails here; so does a mark or a row naming a field that does not exist.

Marks are read from the test sources (``ast``), not by running them: the rule holds for the
whole suite whichever tests a run selects.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

from schemas import fields, support
from schemas.kinds import KINDS

TESTS = Path(__file__).resolve().parents[1]

Mark = tuple[str, str, str]
"""Kind (or ``*``), field, and the test that claims it (``file::function``)."""


def effect_marks(root: Path = TESTS) -> list[Mark]:
    """Every ``pytest.mark.effect`` on a test function below ``root``."""
    return [mark for path in sorted(root.rglob("test_*.py")) for mark in _marks(path, root)]


def _marks(path: Path, root: Path) -> Iterator[Mark]:
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    for node in ast.walk(tree):
        if not isinstance(node, ast.FunctionDef) or not node.name.startswith("test_"):
            continue
        for decorator in node.decorator_list:
            if not (isinstance(decorator, ast.Call) and _is_effect(decorator.func)):
                continue
            kind, *names = (ast.literal_eval(arg) for arg in decorator.args)
            test = f"{path.relative_to(root)}::{node.name}"
            yield from ((kind, name, test) for name in names)


def _is_effect(func: ast.expr) -> bool:
    return isinstance(func, ast.Attribute) and func.attr == "effect" and "mark" in ast.unparse(func)


def uncovered(
    leaves: dict[str, list[str]], marks: list[Mark], table: tuple[support.Unsupported, ...]
) -> list[str]:
    """``Kind field`` for every leaf with neither a mark nor a row."""
    covered = {(kind, name) for kind, name, _ in marks}
    covered |= {(row.kind, row.path) for row in table}
    return [
        f"{kind} {leaf}"
        for kind, names in leaves.items()
        for leaf in names
        if (kind, leaf) not in covered and ("*", leaf) not in covered
    ]


def unknown(
    leaves: dict[str, list[str]], marks: list[Mark], table: tuple[support.Unsupported, ...]
) -> list[str]:
    """Marks and rows naming a field no kind has."""
    every = {leaf for names in leaves.values() for leaf in names}
    stale = [
        f"{test}: {kind} {name}"
        for kind, name, test in marks
        if (name not in leaves.get(kind, ()) if kind != "*" else name not in every)
    ]
    stale += [
        f"support.TABLE: {row.kind} {row.path}"
        for row in table
        if row.path not in leaves.get(row.kind, ())
    ]
    return stale


LEAVES = {kind: fields.leaves(kind) for kind in KINDS}


def test_every_field_has_an_effect_shown_by_a_test_or_a_row_in_the_support_table() -> None:
    missing = uncovered(LEAVES, effect_marks(), support.TABLE)
    assert missing == [], (
        "spec fields with no test showing their effect (@pytest.mark.effect) and no row in "
        "schemas/support.py TABLE:\n  " + "\n  ".join(missing)
    )


def test_every_mark_and_row_names_a_real_field() -> None:
    assert unknown(LEAVES, effect_marks(), support.TABLE) == []


def test_the_rule_catches_a_new_field_and_a_stale_mark(tmp_path: Path) -> None:
    """The rule can fail: a field added to a kind with neither is named; so is a mark on a
    field that is gone."""
    leaves = {"Model": ["spec.version", "spec.newField"], "DAG": ["spec.timeout"]}
    (tmp_path / "test_x.py").write_text(
        "import pytest\n\n\n"
        '@pytest.mark.effect("Model", "spec.version")\n'
        '@pytest.mark.effect("*", "spec.gone")\n'
        "def test_it() -> None: ...\n"
    )
    marks = effect_marks(tmp_path)
    assert marks == [
        ("Model", "spec.version", "test_x.py::test_it"),
        ("*", "spec.gone", "test_x.py::test_it"),
    ]
    row = support.Unsupported("local", "DAG", "spec.timeout", "ignored")
    assert uncovered(leaves, marks, (row,)) == ["Model spec.newField"]
    assert unknown(leaves, marks, (row,)) == ["test_x.py::test_it: * spec.gone"]
