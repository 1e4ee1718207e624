"""DSSE envelopes over exact payload bytes, and the strict JSON both are written in.

Verification order (reference/security.md 5.4): cap the size, parse the
envelope strictly, check the payload type, verify signatures over
``PAE(type, payload)`` counting *distinct public keys* towards the threshold,
and only then hand the payload bytes to a strict parser. Key ids in an
envelope are hints for finding a key, never trusted for anything else.

Strict JSON: no duplicate keys, no NaN or Infinity, no floats, integers
within +/-2^53, no lone surrogates, nesting at most 200 deep; ASCII output
with sorted keys, so that any two implementations agree on what was signed.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from collections.abc import Iterable, Mapping
from typing import Any

import jiter

from ledger import errors, keys

MAX_SIGNATURES = 16
MAX_INT = 2**53


def _parse(data: bytes) -> Any:
    """Parse JSON refusing duplicate keys, NaN and Infinity, invalid UTF-8, lone surrogates
    and nesting deeper than 200; numbers are checked by the caller.

    jiter (pydantic's JSON parser) does in Rust what ``json`` needs a Python hook per
    object for, and ends a deeply nested document with an error, not a ``RecursionError``.
    """
    try:
        return jiter.from_json(
            data,
            catch_duplicate_keys=True,
            allow_inf_nan=False,
            float_mode="lossless-float",  # kept as a LosslessFloat, so a float can be refused
            cache_mode="keys",
        )
    except ValueError as exc:
        raise errors.MalformedError(f"not strict JSON: {exc}") from None


def loads(data: bytes) -> Any:
    """Parse strict JSON; any deviation is a :class:`~ledger.errors.MalformedError`."""
    value = _parse(data)
    _check_numbers(value)
    return value


def _check_numbers(value: Any) -> None:
    """Refuse floats and integers beyond +/-2^53 anywhere in a parsed document."""
    pending = [value]
    while pending:
        item = pending.pop()
        kind = type(item)
        if kind is dict:
            pending.extend(item.values())
        elif kind is list:
            pending.extend(item)
        elif kind is int and not -MAX_INT <= item <= MAX_INT:
            raise errors.MalformedError("integers above 2^53 are not allowed in signed JSON")
        elif kind is jiter.LosslessFloat:
            raise errors.MalformedError(f"floats are not allowed in signed JSON ({item})")


def dumps(value: Any) -> bytes:
    """Serialize deterministically: sorted keys, compact, ASCII, no NaN."""
    return json.dumps(
        value, sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=False
    ).encode()


def digest(data: bytes) -> str:
    """``sha256:<hex>`` of exact bytes."""
    return "sha256:" + hashlib.sha256(data).hexdigest()


def pae(payload_type: str, payload: bytes) -> bytes:
    """DSSE pre-authentication encoding: what is actually signed."""
    kind = payload_type.encode()
    return b"DSSEv1 %d %s %d %s" % (len(kind), kind, len(payload), payload)


def sign(payload_type: str, payload: bytes, signers: Iterable[keys.Signer]) -> bytes:
    """A DSSE envelope of ``payload`` signed by every signer."""
    message = pae(payload_type, payload)
    signatures = [
        {"keyid": s.public_key.keyid, "sig": base64.b64encode(s.sign(message)).decode()}
        for s in signers
    ]
    envelope = {
        "payload": base64.b64encode(payload).decode(),
        "payloadType": payload_type,
        "signatures": signatures,
    }
    return dumps(envelope) + b"\n"


def verify(
    data: bytes,
    *,
    payload_type: str,
    trusted: Mapping[str, keys.PublicKey],
    threshold: int,
    max_bytes: int,
) -> bytes:
    """The payload of an envelope signed by ``threshold`` distinct ``trusted`` keys.

    ``trusted`` maps key id to key; the threshold counts distinct raw keys, so
    one key listed twice, or signing twice, counts once.
    """
    if threshold < 1:
        raise errors.SignatureError("a threshold below 1 accepts anything; refused")
    if len(data) > max_bytes:
        raise errors.OversizedError(f"{len(data)} bytes, above the {max_bytes}-byte cap")
    envelope = _envelope(_parse(data))
    if envelope["payloadType"] != payload_type:
        raise errors.WrongTypeError(
            f"payload type {envelope['payloadType']!r}, expected {payload_type!r}"
        )
    payload = decode_b64(envelope["payload"])
    message = pae(payload_type, payload)
    signed_by = {
        key.raw
        for sig in envelope["signatures"]
        if (key := trusted.get(sig["keyid"])) is not None
        and key.verify(decode_b64(sig["sig"]), message)
    }
    if len(signed_by) < threshold:
        raise errors.SignatureError(
            f"{len(signed_by)} valid signature(s) from trusted keys, {threshold} required"
        )
    return payload


_ENVELOPE_KEYS = frozenset({"payload", "payloadType", "signatures"})
_SIGNATURE_KEYS = frozenset({"keyid", "sig"})


def _envelope(value: Any) -> dict[str, Any]:
    """The envelope, every key and the type of every value checked: nothing in it is a
    number, so :func:`_parse` without the number check is strict enough."""
    if not isinstance(value, dict) or value.keys() != _ENVELOPE_KEYS:
        raise errors.MalformedError("not a DSSE envelope (payload, payloadType, signatures)")
    signatures = value["signatures"]
    if not isinstance(signatures, list) or len(signatures) > MAX_SIGNATURES:
        raise errors.MalformedError(f"signatures must be a list of at most {MAX_SIGNATURES}")
    for sig in signatures:
        if not isinstance(sig, dict) or sig.keys() != _SIGNATURE_KEYS:
            raise errors.MalformedError("each signature has exactly keyid and sig")
        if not isinstance(sig["keyid"], str) or not isinstance(sig["sig"], str):
            raise errors.MalformedError("keyid and sig are strings")
    if not isinstance(value["payload"], str) or not isinstance(value["payloadType"], str):
        raise errors.MalformedError("payload and payloadType are strings")
    return value


def decode_b64(text: str) -> bytes:
    """Strict base64: the standard alphabet, correct padding, nothing else (no whitespace).

    ``strict_mode`` checks in C what ``b64decode(validate=True)`` checks with a
    regular expression (and refuses misplaced padding too), without a regex engine
    that falls out of the CPU cache between two signature checks.
    """
    try:
        return binascii.a2b_base64(text, strict_mode=True)
    except (binascii.Error, ValueError):
        raise errors.MalformedError("invalid base64") from None


def peek(data: bytes, *, max_bytes: int) -> bytes:
    """The payload of an envelope *without* verifying it: only to learn which keys to check."""
    if len(data) > max_bytes:
        raise errors.OversizedError(f"{len(data)} bytes, above the {max_bytes}-byte cap")
    return decode_b64(_envelope(_parse(data))["payload"])
