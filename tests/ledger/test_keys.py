"""Keys: validation of every public key, computed key ids, private key files."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from ledger import errors, keys
from schemas import ed25519

SMALL_ORDER = sorted(k.hex() for k in ed25519.SMALL_ORDER)


@pytest.mark.parametrize("hex_key", SMALL_ORDER)
def test_small_order_keys_are_refused(hex_key: str) -> None:
    with pytest.raises(errors.BadKeyError):
        keys.load_public_key(bytes.fromhex(hex_key))


def test_the_identity_key_accepts_a_wildcard_signature_unless_refused() -> None:
    """Why the table exists: cryptography verifies (R=identity, S=0) under the identity key."""
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey  # noqa: PLC0415

    identity = bytes.fromhex("01" + "00" * 31)
    wildcard = identity + bytes(32)
    Ed25519PublicKey.from_public_bytes(identity).verify(wildcard, b"any message at all")
    with pytest.raises(errors.BadKeyError, match="small-order"):
        keys.load_public_key(identity)


@pytest.mark.parametrize(
    ("value", "message"),
    [
        pytest.param(b"\x01" * 31, "32 bytes", id="short"),
        pytest.param(b"\x01" * 33, "32 bytes", id="long"),
        pytest.param("AB" * 32, "lower-case hex", id="upper-case-hex"),
        pytest.param("zz" * 32, "hex", id="not-hex"),
        pytest.param("ab" * 31, "hex", id="short-hex"),
        pytest.param(bytes.fromhex("ff" * 31 + "7f"), "not a canonical", id="y-not-below-p"),
    ],
)
def test_malformed_keys_are_refused(value: bytes | str, message: str) -> None:
    with pytest.raises(errors.BadKeyError, match=message):
        keys.load_public_key(value)


def test_a_value_that_is_not_a_curve_point_is_refused() -> None:
    refused = 0
    for i in range(64):
        candidate = hashlib.sha256(b"%d" % i).digest()
        try:
            keys.load_public_key(candidate)
        except errors.BadKeyError:
            refused += 1
    assert 16 < refused < 48  # about half of all 32-byte strings are not points


def test_keyids_are_computed_from_the_key() -> None:
    signer = keys.FileSigner.generate()
    key = signer.public_key
    assert key.keyid == hashlib.sha256(key.raw).hexdigest()
    assert keys.load_public_key(key.hex) == key
    assert key.verify(signer.sign(b"m"), b"m")
    assert not key.verify(signer.sign(b"m"), b"n")


def test_private_keys_are_written_0600_and_loaded(tmp_path: Path) -> None:
    signer = keys.FileSigner.generate()
    path = tmp_path / "k" / "commands.key"
    signer.save(path)
    assert path.stat().st_mode & 0o777 == 0o600
    assert keys.FileSigner.load(path).public_key == signer.public_key
    with pytest.raises(FileExistsError):
        signer.save(path)


def test_a_private_key_readable_by_others_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "commands.key"
    keys.FileSigner.generate().save(path)
    path.chmod(0o644)
    with pytest.raises(errors.BadKeyError, match="chmod 600"):
        keys.FileSigner.load(path)


def test_uri_signer_signs_through_securesystemslib(tmp_path: Path) -> None:
    path = tmp_path / "kms-stand-in.key"
    signer = keys.FileSigner.generate()
    signer.save(path)
    uri = keys.UriSigner(f"file2:{path}", signer.public_key)
    assert uri.public_key == signer.public_key
    assert signer.public_key.verify(uri.sign(b"payload"), b"payload")


def test_uri_signer_refuses_a_key_that_does_not_match(tmp_path: Path) -> None:
    path = tmp_path / "other.key"
    keys.FileSigner.generate().save(path)
    with pytest.raises(errors.BadKeyError, match="does not match"):
        keys.UriSigner(f"file2:{path}", keys.FileSigner.generate().public_key)


def test_uri_signer_turns_a_backend_failure_into_one_signature_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from securesystemslib import signer as sslib  # noqa: PLC0415 - only this test registers

    class Unreachable(sslib.Signer):
        """A key service that is down: securesystemslib's registry, a scheme of our own."""

        public_key = None

        @classmethod
        def from_priv_key_uri(cls, *_args: object, **_kwargs: object) -> Unreachable:
            return cls()

        def sign(self, payload: bytes) -> object:
            raise ConnectionError("vault.example.com: connection refused")

    monkeypatch.setitem(sslib.SIGNER_FOR_URI_SCHEME, "down", Unreachable)
    uri = keys.UriSigner("down:key/1", keys.FileSigner.generate().public_key)
    with pytest.raises(errors.SignatureError, match=r"could not sign: vault\.example\.com"):
        uri.sign(b"payload")
