"""Strict YAML: what is refused, where, and how plain scalars resolve."""

from __future__ import annotations

import math

import pytest

from schemas import _yaml

REFUSED = [
    pytest.param(b"a: &x 1\nb: 2\n", 1, 4, "anchor &x is not allowed", id="anchor"),
    pytest.param(b"a: 1\nb: *x\n", 2, 4, "alias *x is not allowed", id="undefined-alias"),
    pytest.param(b"a: &x [1]\nb: *x\n", 1, 4, "anchor &x", id="alias"),
    pytest.param(b"base: {a: 1}\nother:\n  <<: {b: 2}\n", 3, 3, "merge keys", id="merge-key"),
    pytest.param(b"a: !!str 1\n", 1, 4, "explicit tag tag:yaml.org,2002:str", id="core-tag"),
    pytest.param(b"a: !custom {x: 1}\n", 1, 4, "explicit tag !custom", id="custom-tag"),
    pytest.param(b"a: !!python/object:os.system x\n", 1, 4, "explicit tag", id="python-tag"),
    pytest.param(b"a: 1\n---\nb: 2\n", 2, 1, "only one document", id="two-documents"),
    pytest.param(b"a: 1\nb: 2\na: 3\n", 3, 1, "duplicate key 'a'", id="duplicate-key"),
    pytest.param(b"a:\n  b: 1\n  b: 2\n", 3, 3, "duplicate key 'b'", id="duplicate-nested"),
    pytest.param(b"? [a]\n: 1\n", 1, 3, "mapping keys must be scalars", id="complex-key"),
    pytest.param(b"- 1\n- 2\n", 1, 1, "must be a mapping", id="root-sequence"),
    pytest.param(b"just text\n", 1, 1, "must be a mapping", id="root-scalar"),
    pytest.param(b"", 1, 1, "empty", id="empty"),
    pytest.param(b"# only a comment\n", 1, 1, "empty", id="only-comment"),
    pytest.param(b"a: [1, 2\n", 2, 1, "invalid YAML", id="syntax"),
    pytest.param(b"a: 1\n\tb: 2\n", 2, 1, "invalid YAML", id="tab-indent"),
    pytest.param(b"ok: 1\nbad: \xff\xfe\n", 2, 6, "invalid UTF-8 at byte 11", id="invalid-utf8"),
]


@pytest.mark.parametrize(("data", "line", "column", "message"), REFUSED)
def test_refused_with_position(data: bytes, line: int, column: int, message: str) -> None:
    with pytest.raises(_yaml.YamlError) as caught:
        _yaml.load(data)
    assert message in caught.value.message
    assert (caught.value.line, caught.value.column) == (line, column)


def test_billion_laughs_is_refused_at_the_first_anchor() -> None:
    bomb = b'a: &a ["lol","lol"]\nb: &b [*a,*a]\nc: &c [*b,*b]\nd: &d [*c,*c]\n'
    with pytest.raises(_yaml.YamlError, match="anchor &a"):
        _yaml.load(bomb)


def test_nesting_above_the_cap_is_refused() -> None:
    deep = b"a: " + b"[" * 65 + b"]" * 65 + b"\n"
    with pytest.raises(_yaml.YamlError, match="nesting deeper than 64"):
        _yaml.load(deep)
    shallow = b"a: " + b"[" * 63 + b"]" * 63 + b"\n"
    value = _yaml.load(shallow)[0]["a"]
    for _ in range(62):
        value = value[0]
    assert value == []


def test_size_cap_is_checked_before_parsing() -> None:
    limits = _yaml.Limits(max_bytes=16)
    with pytest.raises(_yaml.YamlError, match="17 bytes, above the 16-byte cap"):
        _yaml.load(b"a: 1\n" + b"#" * 12, limits=limits)
    assert _yaml.load(b"a: 1\n", limits=limits)[0] == {"a": 1}


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("1", 1),
        ("-7", -7),
        ("0x1F", 31),
        ("0o17", 15),
        ("1.5", 1.5),
        ("1e3", 1000.0),
        ("1.20", 1.2),
        ("true", True),
        ("False", False),
        ("null", None),
        ("~", None),
        ("", None),
        ("no", "no"),
        ("yes", "yes"),
        ("on", "on"),
        ("1_000", "1_000"),
        ("2026-01-01", "2026-01-01"),
        ("1.2.0", "1.2.0"),
        ("0777", 777),
        ("+3", 3),
        (".inf", math.inf),
        ("-.inf", -math.inf),
        ("500m", "500m"),
    ],
    ids=repr,
)
def test_plain_scalars_resolve_by_the_yaml_12_core_schema(text: str, value: object) -> None:
    assert _yaml.resolve_plain(text) == value
    assert type(_yaml.resolve_plain(text)) is type(value)


def test_quoted_and_block_scalars_stay_strings() -> None:
    doc, _ = _yaml.load(b"a: \"1\"\nb: 'true'\nc: |\n  null\n")
    assert doc == {"a": "1", "b": "true", "c": "null\n"}


def test_keys_are_strings_even_when_they_look_like_numbers() -> None:
    assert _yaml.load(b"1: a\ntrue: b\n")[0] == {"1": "a", "true": "b"}


def test_positions_point_at_keys_and_values_in_characters() -> None:
    doc = "name: é\nspec:\n  list:\n    - ünï: 1\n      x: [a, b]\n".encode()
    _, positions = _yaml.load(doc, locate=True)
    assert positions[("name",)] == (1, 1, 1, 7)
    assert positions[("spec", "list", 0, "ünï")] == (4, 7, 4, 12)
    assert positions[("spec", "list", 0, "x", 1)] == (5, 14, 5, 14)


def test_the_fast_path_records_no_positions() -> None:
    assert _yaml.load(b"a: 1\n") == ({"a": 1}, {})


def test_nan_parses_but_is_not_equal_to_itself() -> None:
    value = _yaml.load(b"a: .nan\n")[0]["a"]
    assert math.isnan(value)
