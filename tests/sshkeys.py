"""SSH keys made by the real ``ssh-keygen`` for tests of signed approvals."""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path

from schemas import sshkey


@dataclass(frozen=True)
class Key:
    """A key pair on disk: ``path`` is the private key, ``path.pub`` the public one."""

    path: Path

    @property
    def public_line(self) -> str:
        """``ssh-ed25519 AAAA… comment``."""
        return Path(f"{self.path}.pub").read_text().strip()

    @property
    def public(self) -> sshkey.SshPublicKey:
        """The parsed public key."""
        return sshkey.parse(self.public_line)


def make_key(folder: Path, name: str, kind: str = "ed25519") -> Key:
    """A new unencrypted key pair ``folder/name`` of type ``kind``."""
    path = folder / name
    args = ["ssh-keygen", "-q", "-t", kind, "-N", "", "-C", name, "-f", str(path)]
    subprocess.run(args, check=True, capture_output=True)
    return Key(path)
