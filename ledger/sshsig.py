"""Verify OpenSSH ``SSHSIG`` signatures (``ssh-keygen -Y sign``) in process.

Pure: bytes in, a verified key or a typed refusal out. No subprocess, so checking ten
approvals costs well under a millisecond each. The format is OpenSSH's PROTOCOL.sshsig:
the armored blob holds the signer's public key, the namespace, the hash algorithm and the
signature over ``"SSHSIG" || namespace || reserved || hash_alg || H(message)``. Only
ed25519 keys are accepted (docs/adr/0018-signed-approvals.md).
"""

from __future__ import annotations

import base64
import binascii
import hashlib

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from ledger import errors
from schemas import sshkey

MAGIC = b"SSHSIG"
BEGIN = "-----BEGIN SSH SIGNATURE-----"
END = "-----END SSH SIGNATURE-----"
HASHES = {"sha256": hashlib.sha256, "sha512": hashlib.sha512}
MAX_ARMOR = 4096
"""Bytes: an ed25519 signature's armor is about 300; anything larger is refused unread."""


class SshSigError(errors.VerificationError):
    """An SSH signature that does not verify; ``reason`` says which check failed."""

    code = "bad-ssh-signature"

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


def verify(armor: str, message: bytes, *, namespace: str, key: sshkey.SshPublicKey) -> None:
    """Accept ``armor`` as ``key``'s signature of ``message`` in ``namespace``, or raise
    :class:`SshSigError` with reason ``malformed``, ``unsupported-key``, ``wrong-key``,
    ``wrong-namespace``, ``unsupported-hash`` or ``bad-signature``."""
    signer = signer_of(armor)
    if signer.blob != key.blob:
        raise SshSigError("wrong-key", f"signed by {signer.fingerprint}, not {key.fingerprint}")
    check(armor, message, namespace=namespace)


def signer_of(armor: str) -> sshkey.SshPublicKey:
    """The public key an ``SSHSIG`` armor claims to be signed by (not yet verified)."""
    return _parse(armor)[0]


def check(armor: str, message: bytes, *, namespace: str) -> sshkey.SshPublicKey:
    """Verify ``armor`` over ``message`` in ``namespace`` against the key it embeds, and
    return that key: the caller decides whether the key is one it trusts."""
    key, signed_namespace, hash_name, signature = _parse(armor)
    if signed_namespace != namespace:
        raise SshSigError(
            "wrong-namespace", f"signed for namespace {signed_namespace!r}, not {namespace!r}"
        )
    digest = HASHES[hash_name](message).digest()
    data = MAGIC + b"".join(
        sshkey.string(part) for part in (namespace.encode(), b"", hash_name.encode(), digest)
    )
    try:
        Ed25519PublicKey.from_public_bytes(key.raw).verify(signature, data)
    except InvalidSignature:
        raise SshSigError("bad-signature", "the signature does not match the message") from None
    return key


def _parse(armor: str) -> tuple[sshkey.SshPublicKey, str, str, bytes]:
    blob = _dearmor(armor)
    try:
        reader = sshkey.Reader(blob)
        if reader.take(6) != MAGIC or reader.uint32() != 1:
            raise SshSigError("malformed", "not an SSHSIG version 1 signature")
        key_blob, namespace, _reserved = reader.string(), reader.text(), reader.string()
        hash_name, wrapped = reader.text(), reader.string()
        reader.end()
        key = _key(key_blob)
        signature = _signature(wrapped)
    except sshkey.SshKeyError as error:
        raise SshSigError("malformed", f"malformed SSH signature: {error}") from None
    if hash_name not in HASHES:
        raise SshSigError("unsupported-hash", f"unsupported hash algorithm {hash_name!r}")
    return key, namespace, hash_name, signature


def _key(blob: bytes) -> sshkey.SshPublicKey:
    try:
        return sshkey.from_blob(blob)
    except sshkey.UnsupportedKeyError as error:
        raise SshSigError("unsupported-key", str(error)) from None


def _signature(wrapped: bytes) -> bytes:
    reader = sshkey.Reader(wrapped)
    algorithm, signature = reader.text(), reader.string()
    reader.end()
    if algorithm != sshkey.ED25519 or len(signature) != 64:
        raise SshSigError("unsupported-key", f"unsupported signature type {algorithm!r}")
    return signature


def _dearmor(armor: str) -> bytes:
    if len(armor) > MAX_ARMOR:
        raise SshSigError("malformed", f"SSH signature larger than {MAX_ARMOR} bytes")
    lines = armor.strip().splitlines()
    if len(lines) < 3 or lines[0] != BEGIN or lines[-1] != END:
        raise SshSigError("malformed", "not an armored SSH signature")
    try:
        return base64.b64decode("".join(lines[1:-1]), validate=True)
    except binascii.Error:
        raise SshSigError("malformed", "the SSH signature's base64 does not decode") from None
