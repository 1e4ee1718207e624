"""DSSE envelopes and strict JSON: every way to forge, stretch or confuse them is refused."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ledger import envelope, errors, keys

TYPE = "application/vnd.gitplane.test.v1+json"
A, B, C = (keys.FileSigner.generate() for _ in range(3))
TRUSTED = {s.public_key.keyid: s.public_key for s in (A, B)}
PAYLOAD = b'{"x":1}'


def verify(data: bytes, threshold: int = 1, trusted: dict[str, keys.PublicKey] = TRUSTED) -> bytes:
    return envelope.verify(
        data, payload_type=TYPE, trusted=trusted, threshold=threshold, max_bytes=4096
    )


def modified(fn: Callable[[dict[str, Any]], None], *signers: keys.Signer) -> bytes:
    """A good envelope changed by ``fn`` (python-tuf's modify_metadata pattern)."""
    body = json.loads(envelope.sign(TYPE, PAYLOAD, signers or (A,)))
    fn(body)
    return json.dumps(body).encode()


def test_round_trip() -> None:
    assert verify(envelope.sign(TYPE, PAYLOAD, [A])) == PAYLOAD
    assert verify(envelope.sign(TYPE, PAYLOAD, [A, B]), threshold=2) == PAYLOAD


def _unsign(body: dict[str, Any]) -> None:
    body["signatures"] = []


def _tamper(body: dict[str, Any]) -> None:
    body["payload"] = base64.b64encode(b'{"x":2}').decode()


def _retype(body: dict[str, Any]) -> None:
    body["payloadType"] = "application/vnd.gitplane.other.v1+json"


def _duplicate_signature(body: dict[str, Any]) -> None:
    body["signatures"] = body["signatures"] * 2


def _lie_about_keyid(body: dict[str, Any]) -> None:
    body["signatures"][0]["keyid"] = B.public_key.keyid


REFUSED = [
    pytest.param(lambda: modified(_unsign), 1, errors.SignatureError, id="unsigned"),
    pytest.param(
        lambda: envelope.sign(TYPE, PAYLOAD, [C]), 1, errors.SignatureError, id="wrong-key"
    ),
    pytest.param(
        lambda: envelope.sign(TYPE, PAYLOAD, [A]), 2, errors.SignatureError, id="below-threshold"
    ),
    pytest.param(
        lambda: modified(_duplicate_signature), 2, errors.SignatureError, id="one-key-twice"
    ),
    pytest.param(lambda: modified(_lie_about_keyid), 1, errors.SignatureError, id="keyid-lie"),
    pytest.param(lambda: modified(_tamper), 1, errors.SignatureError, id="tampered-payload"),
    pytest.param(lambda: modified(_retype), 1, errors.WrongTypeError, id="wrong-type"),
    pytest.param(lambda: b"x" * 5000, 1, errors.OversizedError, id="oversized"),
    pytest.param(
        lambda: b'{"payload":"","payload":"","payloadType":"t","signatures":[]}',
        1,
        errors.MalformedError,
        id="duplicate-json-key",
    ),
    pytest.param(
        lambda: modified(lambda b: b.update(extra=1)), 1, errors.MalformedError, id="extra-field"
    ),
    pytest.param(
        lambda: modified(lambda b: b.update(signatures=[{"keyid": "a", "sig": "b"}] * 17)),
        1,
        errors.MalformedError,
        id="too-many-signatures",
    ),
    pytest.param(
        lambda: modified(lambda b: b.update(payload="not base64!")),
        1,
        errors.MalformedError,
        id="bad-base64",
    ),
    pytest.param(lambda: b"\xff\xfe", 1, errors.MalformedError, id="not-utf8"),
    pytest.param(lambda: b"[]", 1, errors.MalformedError, id="not-an-object"),
]


@pytest.mark.parametrize(("make", "threshold", "error"), REFUSED)
def test_refused(make: Callable[[], bytes], threshold: int, error: type[Exception]) -> None:
    with pytest.raises(error):
        verify(make(), threshold)


def test_one_key_under_two_keyids_counts_once() -> None:
    """The python-tuf 7.0.1 bug class: thresholds must count key material, not key ids."""
    trusted = {A.public_key.keyid: A.public_key, "0" * 64: A.public_key}
    forged = modified(lambda b: b["signatures"].append({**b["signatures"][0], "keyid": "0" * 64}))
    with pytest.raises(errors.SignatureError, match="1 valid signature"):
        verify(forged, threshold=2, trusted=trusted)


def test_a_zero_threshold_is_refused() -> None:
    with pytest.raises(errors.SignatureError, match="threshold below 1"):
        verify(envelope.sign(TYPE, PAYLOAD, [A]), threshold=0)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        pytest.param(b'{"a":1,"a":2}', 'duplicate key "a" at line 1 column 12', id="duplicate"),
        pytest.param(b'{"a":1,"\\u0061":2}', 'duplicate key "a"', id="duplicate-escaped"),
        pytest.param(b'{"b":{"a":1,"a":2}}', 'duplicate key "a"', id="duplicate-nested"),
        pytest.param(b'{"a":NaN}', "expected value at line 1 column 6", id="nan"),
        pytest.param(b'{"a":Infinity}', "expected value", id="infinity"),
        pytest.param(b'{"a":1.5}', "floats", id="float"),
        pytest.param(b'{"a":1e3}', "floats", id="exponent"),
        pytest.param(b'{"a":[{"b":1.0}]}', "floats", id="nested-float"),
        pytest.param(b'{"a":9007199254740993}', r"2\^53", id="big-int"),
        pytest.param(b'{"a":-9007199254740993}', r"2\^53", id="big-negative-int"),
        pytest.param(b'{"a":', "not strict JSON", id="truncated"),
        pytest.param(b'{"a":1} {}', "trailing characters", id="two-documents"),
        pytest.param(b'{"a":1}\xc2\xa0', "trailing characters", id="trailing-non-json-space"),
        pytest.param(b"\x0c{}", "not strict JSON", id="leading-non-json-space"),
        pytest.param(b" \n", "not strict JSON", id="only-whitespace"),
        pytest.param(b'{"a":[1,]}', "trailing comma", id="trailing-comma"),
        pytest.param(b'{"a":"\xff"}', "invalid unicode", id="invalid-utf8"),
        pytest.param(b'{"a":"\\ud800"}', "not strict JSON", id="lone-surrogate"),
        pytest.param(b"\xef\xbb\xbf{}", "not strict JSON", id="byte-order-mark"),
        pytest.param(b"[" * 100_000 + b"]" * 100_000, "recursion limit", id="deep-nesting"),
    ],
)
def test_strict_json_refuses(text: bytes, message: str) -> None:
    with pytest.raises(errors.MalformedError, match=message):
        envelope.loads(text)


def test_a_deeply_nested_envelope_is_refused_before_any_signature_check() -> None:
    nested = b'{"payload":' * 5_000 + b"1" + b"}" * 5_000
    with pytest.raises(errors.MalformedError, match="recursion limit"):
        envelope.verify(nested, payload_type=TYPE, trusted=TRUSTED, threshold=1, max_bytes=1 << 20)


JSON_VALUES = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-envelope.MAX_INT, envelope.MAX_INT)
    | st.text(st.characters(exclude_categories=["Cs"])),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=20,
)


@given(JSON_VALUES)
def test_strict_json_reads_what_dumps_writes_as_the_standard_parser_does(value: Any) -> None:
    """No parser differential on what signers write: the value, as Python's own json reads it."""
    text = envelope.dumps(value)
    assert envelope.loads(text) == json.loads(text) == value


def test_strict_json_allows_json_whitespace_around_a_document() -> None:
    assert envelope.loads(b' \t\r\n{"a":[1]}\n\r\t ') == {"a": [1]}


@pytest.mark.parametrize(
    "text",
    [
        pytest.param("YQ", id="unpadded"),
        pytest.param("YQ=", id="short-padding"),
        pytest.param("=YQ=", id="leading-padding"),
        pytest.param("YQ==YQ==", id="data-after-padding"),
        pytest.param("YQ==\n", id="newline"),
        pytest.param("Y Q==", id="space"),
        pytest.param("YQ-_", id="url-safe-alphabet"),
        pytest.param("é", id="not-ascii"),
    ],
)
def test_strict_base64_refuses(text: str) -> None:
    with pytest.raises(errors.MalformedError, match="invalid base64"):
        envelope.decode_b64(text)


def test_dumps_is_deterministic_ascii() -> None:
    assert envelope.dumps({"b": 1, "a": "é"}) == b'{"a":"\\u00e9","b":1}'
    assert envelope.digest(b"") == (
        "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    )


def test_pae_is_dsse_v1() -> None:
    assert envelope.pae("t", b"ab") == b"DSSEv1 1 t 2 ab"
