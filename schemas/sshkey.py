"""OpenSSH public keys as written in ``authorized_keys``: ``ssh-ed25519 AAAA… comment``.

Pure parsing, shared by the Policy schema (``approvers[].key``, so that ``validate``
refuses a key the ledger would refuse, at its file, line and column) and
:mod:`ledger.sshsig`. Only ed25519 keys are approver keys in this version.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from dataclasses import dataclass

from schemas import ed25519

ED25519 = "ssh-ed25519"
SUPPORTED = (ED25519,)


class SshKeyError(ValueError):
    """A public key line that is not a usable approver key; the message says why."""


class UnsupportedKeyError(SshKeyError):
    """A well-formed key of a type approvers cannot use (RSA, ECDSA, security keys)."""


@dataclass(frozen=True)
class SshPublicKey:
    """One parsed public key: its algorithm, wire blob and raw key bytes."""

    algorithm: str
    blob: bytes
    """The SSH wire encoding (``string algorithm, string key``), what fingerprints hash."""
    raw: bytes
    """The 32 bytes of the ed25519 point."""

    @property
    def fingerprint(self) -> str:
        """``SHA256:…`` as ``ssh-keygen -l`` prints it."""
        return fingerprint(self.blob)

    @property
    def line(self) -> str:
        """``ssh-ed25519 AAAA…`` without a comment."""
        return f"{self.algorithm} {base64.b64encode(self.blob).decode()}"


def fingerprint(blob: bytes) -> str:
    """``SHA256:`` and unpadded base64 of the SHA-256 of a key's wire blob."""
    return "SHA256:" + base64.b64encode(hashlib.sha256(blob).digest()).decode().rstrip("=")


def parse(line: str) -> SshPublicKey:
    """The key of an ``authorized_keys``-style line (algorithm, base64, optional comment)."""
    fields = line.split()
    if len(fields) < 2:
        raise SshKeyError("an SSH public key is 'ssh-ed25519 AAAA… [comment]'")
    try:
        blob = base64.b64decode(fields[1], validate=True)
    except binascii.Error:
        raise SshKeyError("the key's base64 does not decode") from None
    key = from_blob(blob)
    if key.algorithm != fields[0]:
        raise SshKeyError(f"the line says {fields[0]!r} but the key is {key.algorithm!r}")
    return key


def from_blob(blob: bytes) -> SshPublicKey:
    """The key of an SSH wire blob (as inside an ``SSHSIG`` signature)."""
    reader = Reader(blob)
    algorithm = reader.text()
    if algorithm not in SUPPORTED:
        supported = ", ".join(SUPPORTED)
        raise UnsupportedKeyError(f"unsupported key type {algorithm!r} (supported: {supported})")
    raw = reader.string()
    reader.end()
    problem = ed25519.problem(raw)
    if problem:
        raise SshKeyError(problem)
    return SshPublicKey(algorithm, blob, raw)


class Reader:
    """Reads the SSH wire format (RFC 4251 §5): ``uint32`` and length-prefixed strings."""

    def __init__(self, data: bytes) -> None:
        self._data = data
        self._at = 0

    def take(self, count: int) -> bytes:
        """The next ``count`` bytes; :class:`SshKeyError` past the end."""
        if count > len(self._data) - self._at:
            raise SshKeyError("truncated SSH encoding")
        chunk = self._data[self._at : self._at + count]
        self._at += count
        return chunk

    def uint32(self) -> int:
        """The next big-endian 32-bit integer."""
        return int.from_bytes(self.take(4), "big")

    def string(self) -> bytes:
        """The next length-prefixed string."""
        return self.take(self.uint32())

    def text(self) -> str:
        """The next string, as ASCII."""
        try:
            return self.string().decode("ascii")
        except UnicodeDecodeError:
            raise SshKeyError("non-ASCII name in SSH encoding") from None

    def end(self) -> None:
        """Refuse trailing bytes."""
        if self._at != len(self._data):
            raise SshKeyError("trailing bytes after SSH encoding")


def string(data: bytes) -> bytes:
    """``data`` as a length-prefixed SSH string."""
    return len(data).to_bytes(4, "big") + data
