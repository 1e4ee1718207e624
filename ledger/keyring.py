"""Key directories: what ``gitplane keys init`` and ``gitplane keys agent`` create.

::

    DIR/root.json                      signed root v1: install it on every agent (pinned root)
    DIR/root/root-1.key ... root-N.key offline root keys: move them to offline media
    DIR/reconciler/commands.key        online key signing command bundles
    DIR/reconciler/timestamp.key       online key signing timestamps
    DIR/agents/<plane>.key             one agent's status key (lives on that data plane)

Private keys are PEM (PKCS#8) files created with mode 0600; existing files
are never overwritten.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from ledger import keys, roots
from schemas.errors import UsageError

ROOT_FILE = "root.json"


@dataclass(frozen=True)
class Keyring:
    """What ``init`` created."""

    root_file: Path
    root_keys: list[keys.PublicKey]
    threshold: int
    commands: keys.PublicKey
    timestamp: keys.PublicKey
    expires: datetime


def init_keys(
    directory: Path, *, root_keys: int, threshold: int, now: datetime, lifetime: timedelta
) -> Keyring:
    """Create a root of trust (k-of-n offline root keys) and the reconciler's online keys."""
    if not 1 <= threshold <= root_keys <= 32:
        raise UsageError(f"need 1 <= threshold ({threshold}) <= root keys ({root_keys}) <= 32")
    if (directory / ROOT_FILE).exists():
        raise UsageError(f"{directory / ROOT_FILE} exists: this directory already holds a root")
    root_signers = [_new(directory / "root" / f"root-{i}.key") for i in range(1, root_keys + 1)]
    commands = _new(directory / "reconciler" / "commands.key")
    timestamp = _new(directory / "reconciler" / "timestamp.key")
    payload = roots.root_payload(
        version=1,
        expires=now + lifetime,
        root=[s.public_key for s in root_signers],
        root_threshold=threshold,
        commands=[commands.public_key],
        timestamp=[timestamp.public_key],
    )
    root_file = directory / ROOT_FILE
    root_file.write_bytes(roots.sign_root(payload, root_signers))
    return Keyring(
        root_file,
        [s.public_key for s in root_signers],
        threshold,
        commands.public_key,
        timestamp.public_key,
        now + lifetime,
    )


def create_agent_key(directory: Path, plane: str) -> keys.PublicKey:
    """A new status-signing key for ``plane``'s agent; returns its public half."""
    return _new(directory / "agents" / f"{plane}.key").public_key


def load_reconciler_signers(directory: Path) -> tuple[keys.FileSigner, keys.FileSigner]:
    """The commands and timestamp signers ``init`` created."""
    return (
        keys.FileSigner.load(directory / "reconciler" / "commands.key"),
        keys.FileSigner.load(directory / "reconciler" / "timestamp.key"),
    )


def _new(path: Path) -> keys.FileSigner:
    if path.exists():
        raise UsageError(f"{path} exists; refusing to overwrite a private key")
    signer = keys.FileSigner.generate()
    signer.save(path)
    return signer
