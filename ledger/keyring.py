"""Key directories: what ``gitplane keys init`` and ``gitplane keys agent`` create.

::

    DIR/root.json                      signed root v1: install it on every agent (pinned root)
    DIR/root/root-1.key ... root-N.key offline root keys: move them to offline media
    DIR/reconciler/commands.key        online key signing command bundles
    DIR/reconciler/timestamp.key       online key signing timestamps
                                       (either may instead be a key URI: a key service)
    DIR/agents/<plane>.key             one agent's status key (lives on that data plane)

Private keys are PEM (PKCS#8) files created with mode 0600; existing files
are never overwritten.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from ledger import errors, keys, roots, verify
from schemas import files, signed
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


def root_files(directory: Path) -> list[Path]:
    """Every root version the directory holds, oldest first: ``roots/root-vN.json`` archived
    by rotations, then ``root.json`` (the newest)."""
    archived = sorted(
        (directory / "roots").glob("root-v*.json"),
        key=lambda p: int(p.stem.removeprefix("root-v")),
    )
    return [*archived, directory / ROOT_FILE]


def create_agent_key(directory: Path, plane: str) -> keys.PublicKey:
    """A new status-signing key for ``plane``'s agent; returns its public half. ``plane`` is
    a name, never a path: the key is written nowhere but ``<directory>/agents/``."""
    if not re.fullmatch(r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?", plane):
        raise UsageError(f"{plane!r} is not a DataPlane name")
    return _new(directory / "agents" / f"{plane}.key").public_key


ONLINE_ROLES = ("commands", "timestamp")
"""The roles the reconciler signs with, each from ``reconciler/<role>.key`` or a key URI."""


def load_reconciler_signers(
    directory: Path, *, uris: Mapping[str, str] | None = None
) -> tuple[keys.Signer, keys.Signer]:
    """The commands and timestamp signers, refused unless they are keys the directory's
    newest root (``root.json``) names for their roles: a bundle signed by any other key would
    be refused by every agent and break the plane's log for good.

    A role in ``uris`` signs through that securesystemslib URI (a key service such as Vault)
    and needs no key file; the others load ``reconciler/<role>.key`` as ``init`` created it."""
    path = directory / ROOT_FILE
    try:
        root = verify.load_trusted_root(path.read_bytes())
    except OSError as exc:
        raise UsageError(f"cannot read {path}: {exc.strerror}") from None
    given = uris or {}
    unknown = sorted(set(given) - set(ONLINE_ROLES))
    if unknown:
        raise UsageError(f"no online role {unknown[0]!r}: key URIs are for commands or timestamp")
    signers = {
        role: _uri_signer(role, given[role], root, path)
        if role in given
        else _file_signer(directory, role, root, path)
        for role in ONLINE_ROLES
    }
    return signers["commands"], signers["timestamp"]


def _file_signer(directory: Path, role: str, root: signed.Root, path: Path) -> keys.FileSigner:
    key_file = directory / "reconciler" / f"{role}.key"
    signer = keys.FileSigner.load(key_file)
    named = getattr(root.roles, role).keyids
    if signer.public_key.keyid not in named:
        raise UsageError(
            f"{key_file} is not a {role} key of root version {root.version} ({path}): its key "
            f"id {signer.public_key.keyid[:12]} is not among {', '.join(k[:12] for k in named)}; "
            "restore the key that root names, or rotate the role (`gitplane keys rotate --role "
            f"{role}`, docs/operations.md), before signing anything"
        )
    return signer


PROBE = b"gitplane key probe: is this signer's key one that root names?"
"""Signed once per key URI at start. Never mistaken for a document: every signed document
is signed over its DSSE pre-authentication encoding, which starts ``DSSEv1``."""


def _uri_signer(role: str, uri: str, root: signed.Root, path: Path) -> keys.UriSigner:
    """The signer at ``uri`` as the key of ``role`` in ``root`` whose signature of
    :data:`PROBE` verifies. A key service does not say which key it holds before it signs, so a URI
    naming a key root does not name is refused here, before it signs anything real."""
    reason = "no key matched"
    for keyid in getattr(root.roles, role).keyids:
        try:
            signer = keys.UriSigner(uri, keys.load_public_key(root.keys[keyid].public))
            signer.sign(PROBE)
        except (errors.BadKeyError, errors.SignatureError) as exc:
            reason = str(exc)
            continue
        return signer
    scheme = uri.split(":", maxsplit=1)[0]
    raise UsageError(
        f"cannot sign {role} through the key URI {scheme}:...: {reason.rstrip('.')}; it must "
        f"hold a {role} key that root version {root.version} ({path}) names (or rotate the role: "
        f"`gitplane keys rotate --role {role}`)"
    )


def _new(path: Path) -> keys.FileSigner:
    if path.exists():
        raise UsageError(f"{path} exists; refusing to overwrite a private key")
    signer = keys.FileSigner.generate()
    signer.save(path)
    return signer


@dataclass(frozen=True)
class Rotation:
    """What ``rotate`` changed."""

    version: int
    replaced: list[str]
    """Roles given new keys."""
    archived: Path
    """Where the previous root went."""


def rotate_keys(
    directory: Path,
    *,
    roles: set[str],
    root_keys: int | None,
    threshold: int | None,
    now: datetime,
    lifetime: timedelta,
    public_keys: Mapping[str, keys.PublicKey] | None = None,
) -> Rotation:
    """Root N+1: new keys for ``roles`` (``commands``, ``timestamp``, ``root``), signed by the
    root threshold of N and of N+1. The old root is kept in ``roots/``; agents follow the
    chain from the root they pinned, so nothing is reinstalled.

    An online role in ``public_keys`` gets that key, held elsewhere (a key service the reconciler
    reaches by key URI), instead of a new key file."""
    given = public_keys or {}
    stray = sorted(set(given) - (roles & set(ONLINE_ROLES)))
    if stray:
        raise UsageError(
            f"--public-key {stray[0]}=... needs --role {stray[0]}: it is a rotated role's new key"
        )
    current_bytes = (directory / ROOT_FILE).read_bytes()
    current = verify.load_trusted_root(current_bytes)
    old_signers = _root_signers(directory, current)
    version = current.version + 1
    new_root = _new_root_signers(directory, version, root_keys) if "root" in roles else old_signers
    k = threshold if threshold is not None else current.roles.root.threshold
    if not 1 <= k <= len(new_root):
        raise UsageError(f"need 1 <= threshold ({k}) <= root keys ({len(new_root)})")
    online = {
        role: _online(directory, role, version, given.get(role))
        if role in roles
        else _kept(current, role)
        for role in ONLINE_ROLES
    }
    payload = roots.root_payload(
        version=version,
        expires=now + lifetime,
        root=[s.public_key for s in new_root],
        root_threshold=k,
        commands=online["commands"],
        timestamp=online["timestamp"],
    )
    signers = {s.public_key.keyid: s for s in (*old_signers, *new_root)}
    archived = directory / "roots" / f"root-v{current.version}.json"
    archived.parent.mkdir(exist_ok=True)
    archived.write_bytes(current_bytes)
    files.atomic_write(directory / ROOT_FILE, roots.sign_root(payload, list(signers.values())))
    return Rotation(version, sorted(roles), archived)


def _root_signers(directory: Path, root: signed.Root) -> list[keys.FileSigner]:
    """Every root key file in ``directory`` the current root lists; at least its threshold."""
    wanted = set(root.roles.root.keyids)
    found = [
        signer
        for path in sorted((directory / "root").rglob("*.key"))
        if (signer := keys.FileSigner.load(path)).public_key.keyid in wanted
    ]
    if len(found) < root.roles.root.threshold:
        raise UsageError(
            f"root v{root.version} needs {root.roles.root.threshold} of its root keys to sign "
            f"its successor; found {len(found)} under {directory / 'root'} (bring them online "
            "for the rotation)"
        )
    return found


def _new_root_signers(directory: Path, version: int, count: int | None) -> list[keys.FileSigner]:
    if count is None or not 1 <= count <= 32:
        raise UsageError("rotating the root keys needs --root-keys N (1..32)")
    return [_new(directory / "root" / f"v{version}" / f"root-{i}.key") for i in range(1, count + 1)]


def _online(
    directory: Path, role: str, version: int, held_elsewhere: keys.PublicKey | None
) -> list[keys.PublicKey]:
    """A new key for ``role`` (``held_elsewhere``, or a new key file); the old file, if any,
    kept as ``.retired-vN``."""
    path = directory / "reconciler" / f"{role}.key"
    if path.exists():
        path.rename(path.with_name(f"{role}.key.retired-v{version - 1}"))
    return [held_elsewhere or _new(path).public_key]


def _kept(current: signed.Root, role: str) -> list[keys.PublicKey]:
    """The keys ``current`` names for a role not rotated: read from root, not from key files,
    so a role whose key is in a key service (a key URI) needs no file here."""
    return [
        keys.load_public_key(current.keys[k].public) for k in getattr(current.roles, role).keyids
    ]
