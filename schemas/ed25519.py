"""Ed25519 public keys as points: which 32-byte encodings are keys at all.

Pure arithmetic, shared by the ledger (every key it verifies with) and the spec
schemas (``DataPlane.spec.agentKey``, so that ``gitplane validate`` refuses a key
the ledger would refuse, at its file, line and column).
"""

from __future__ import annotations

_P = 2**255 - 19
_D = (-121665 * pow(121666, _P - 2, _P)) % _P
# Encodings of the eight small-order points, canonical and not (y >= p), from
# "Taming the many EdDSAs" (Chalkias et al.) and quirks.ed25519.info.
SMALL_ORDER = frozenset(
    bytes.fromhex(h)
    for h in (
        "0100000000000000000000000000000000000000000000000000000000000000",
        "ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
        "0000000000000000000000000000000000000000000000000000000000000000",
        "0000000000000000000000000000000000000000000000000000000000000080",
        "c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac037a",
        "c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac03fa",
        "26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc05",
        "26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc85",
        "eeffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
        "eeffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff",
        "edffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
        "edffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff",
        "ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff",
        "0100000000000000000000000000000000000000000000000000000000000080",
    )
)


def problem(raw: bytes) -> str | None:
    """Why ``raw`` is not a usable Ed25519 public key, or None if it is one."""
    if len(raw) != 32:
        return f"an Ed25519 public key is 32 bytes, not {len(raw)}"
    if raw in SMALL_ORDER:
        return "public key is a small-order point (wildcard signatures)"
    if not is_curve_point(raw):
        return "public key is not a canonical edwards25519 point"
    return None


def is_curve_point(raw: bytes) -> bool:
    """Whether ``raw`` is the canonical encoding of a point on edwards25519 (RFC 8032 5.1.3)."""
    y = int.from_bytes(raw, "little") & ((1 << 255) - 1)
    if y >= _P:
        return False
    u, v = (y * y - 1) % _P, (_D * y * y + 1) % _P
    x2 = u * pow(v, _P - 2, _P) % _P
    if x2 == 0:
        return not raw[31] & 0x80
    return pow(x2, (_P - 1) // 2, _P) == 1
