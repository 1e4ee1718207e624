"""Ed25519 keys: validated public keys, computed key ids, and signers.

Every public key is checked when it is loaded (32 bytes, a canonical encoding
of a curve point, not one of the small-order points whose "wildcard"
signatures verify for any message), and key ids are always computed as
``sha256(raw public key)``, never taken from the data. Signing goes through
the :class:`Signer` protocol: :class:`FileSigner` for key files, and
:class:`UriSigner` for an Ed25519 key securesystemslib can address (Vault, ...).
"""

from __future__ import annotations

import functools
import hashlib
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from ledger import errors
from schemas import ed25519


def keyid_of(raw: bytes) -> str:
    """The key id of a raw 32-byte public key: its sha256, lower-case hex."""
    return hashlib.sha256(raw).hexdigest()


@dataclass(frozen=True)
class PublicKey:
    """A validated Ed25519 public key; build it with :func:`load_public_key`."""

    raw: bytes
    keyid: str
    _key: Ed25519PublicKey = field(repr=False, compare=False)

    @property
    def hex(self) -> str:
        """The raw key, lower-case hex: the form specs and metadata carry."""
        return self.raw.hex()

    def verify(self, signature: bytes, data: bytes) -> bool:
        """Whether ``signature`` is this key's signature of ``data``."""
        try:
            self._key.verify(signature, data)
        except InvalidSignature:
            return False
        return True


def load_public_key(value: bytes | str) -> PublicKey:
    """Validate raw bytes or 64 hex digits as an Ed25519 public key."""
    return _load(_raw(value))


@functools.lru_cache(maxsize=4096)
def _load(raw: bytes) -> PublicKey:
    """Validation costs two 255-bit exponentiations (more than a signature check), and
    the same few keys verify every document: validate each once. Failures are not cached."""
    why = ed25519.problem(raw)
    if why is not None:
        raise errors.BadKeyError(why)
    return PublicKey(raw, keyid_of(raw), Ed25519PublicKey.from_public_bytes(raw))


def _raw(value: bytes | str) -> bytes:
    if isinstance(value, bytes):
        return value
    if len(value) != 64 or value.lower() != value:
        raise errors.BadKeyError("a public key is 64 lower-case hex digits")
    try:
        return bytes.fromhex(value)
    except ValueError:
        raise errors.BadKeyError("a public key is 64 lower-case hex digits") from None


class Signer(Protocol):
    """Anything that signs bytes with one Ed25519 key."""

    @property
    def public_key(self) -> PublicKey:
        """The key signatures verify under."""
        ...

    def sign(self, data: bytes) -> bytes:
        """The 64-byte Ed25519 signature of ``data``."""
        ...


@dataclass(frozen=True)
class FileSigner:
    """A private key held in memory, loaded from or saved to a PEM (PKCS#8) file."""

    _private: Ed25519PrivateKey = field(repr=False)

    @classmethod
    def generate(cls) -> FileSigner:
        """A new random key."""
        return cls(Ed25519PrivateKey.generate())

    @classmethod
    def load(cls, path: Path) -> FileSigner:
        """Read a key written by :meth:`save`; refuses files others can read (once it is
        known to be a key: a wrong file is named as not a key, not as one exposed)."""
        try:
            mode = path.stat().st_mode
            data = path.read_bytes()
        except OSError as exc:
            raise errors.BadKeyError(
                f"{path}: cannot read the private key: {exc.strerror}"
            ) from None
        try:
            key = serialization.load_pem_private_key(data, password=None)
        except (ValueError, TypeError):
            raise errors.BadKeyError(f"{path}: not an unencrypted PEM private key") from None
        if not isinstance(key, Ed25519PrivateKey):
            raise errors.BadKeyError(f"{path}: not an Ed25519 private key")
        if mode & 0o077:
            raise errors.BadKeyError(f"{path}: private key readable by others; chmod 600 it")
        return cls(key)

    def save(self, path: Path) -> None:
        """Write the key as PEM, created with mode 0600 (never readable by others)."""
        pem = self._private.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as handle:
            handle.write(pem)

    @property
    def public_key(self) -> PublicKey:
        """The key signatures verify under."""
        raw = self._private.public_key().public_bytes(
            serialization.Encoding.Raw, serialization.PublicFormat.Raw
        )
        return load_public_key(raw)

    def sign(self, data: bytes) -> bytes:
        """The 64-byte Ed25519 signature of ``data``."""
        return self._private.sign(data)


class UriSigner:
    """A securesystemslib signer URI holding an Ed25519 key: ``hv:`` (a HashiCorp Vault
    transit key), ``file2:`` (a PEM file), or any scheme that signs Ed25519.

    The private key never enters this process when the URI names a KMS; the
    public key is given, validated like any other, and checked against every
    signature the signer returns. securesystemslib 1.x signs only ECDSA and RSA
    through ``gcpkms:``, ``awskms:``, ``azurekms:`` and ``hsm:``, so keys there
    are refused at the first signature (docs/security.md).
    """

    def __init__(self, uri: str, public_key: PublicKey) -> None:
        from securesystemslib import signer as sslib  # noqa: PLC0415 - KMS users only

        key = sslib.SSlibKey(public_key.keyid, "ed25519", "ed25519", {"public": public_key.hex})  # type: ignore[attr-defined]
        try:
            self._signer = sslib.Signer.from_priv_key_uri(uri, key)  # type: ignore[attr-defined]
        except Exception as exc:  # securesystemslib's, or its backend's (a missing library)
            raise errors.BadKeyError(f"signer {uri.split(':', maxsplit=1)[0]}: {exc}") from None
        self._public = public_key

    @property
    def public_key(self) -> PublicKey:
        """The key signatures verify under."""
        return self._public

    def sign(self, data: bytes) -> bytes:
        """Sign through securesystemslib; refuse a signature the public key does not verify."""
        try:
            signature = bytes.fromhex(self._signer.sign(data).signature)
        except Exception as exc:  # the backend's own errors (hvac, a cloud SDK): nothing signed
            raise errors.SignatureError(f"the signer could not sign: {exc}") from None
        if not self._public.verify(signature, data):
            raise errors.SignatureError("the signer returned a signature its key does not verify")
        return signature
