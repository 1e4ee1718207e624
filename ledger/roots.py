"""Root of trust: create, rotate, publish, and follow the rotation chain in git."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from ledger import envelope, errors, gitrepo, keys, layout, verify
from schemas import signed


def root_payload(
    *,
    version: int,
    expires: datetime,
    root: Sequence[keys.PublicKey],
    root_threshold: int,
    commands: Sequence[keys.PublicKey],
    timestamp: Sequence[keys.PublicKey],
) -> dict[str, object]:
    """The payload of a root document listing each role's keys."""
    every = {
        k.keyid: {"keytype": "ed25519", "public": k.hex} for k in (*root, *commands, *timestamp)
    }

    def role(members: Sequence[keys.PublicKey], threshold: int) -> dict[str, object]:
        return {"keyids": sorted({k.keyid for k in members}), "threshold": threshold}

    return {
        "_type": "root",
        "spec_version": signed.SPEC_VERSION,
        "version": version,
        "expires": verify.format_time(expires),
        "keys": every,
        "roles": {
            "root": role(root, root_threshold),
            "commands": role(commands, 1),
            "timestamp": role(timestamp, 1),
        },
    }


def sign_root(payload: dict[str, object], signers: Sequence[keys.Signer]) -> bytes:
    """A root envelope signed by ``signers`` (for a rotation: old and new root keys)."""
    return envelope.sign(verify.PAYLOAD_TYPES["root"], envelope.dumps(payload), signers)


def publish(
    mirror: gitrepo.Mirror, root: bytes, *, who: gitrepo.Identity, attempts: int = 5
) -> None:
    """Add a root envelope to the root branch (idempotent: an existing file is left alone)."""
    version = verify.parse_payload(envelope.peek(root, max_bytes=1 << 20), signed.Root).version
    path = layout.root_path(version)
    for _ in range(attempts):
        tip = mirror.fetch([layout.ROOT_REF]).get(layout.ROOT_REF)
        if tip and path in mirror.list_paths(tip):
            return
        commit = mirror.commit(tip, {path: root}, message=f"root: version {version}", who=who)
        try:
            mirror.push(commit, layout.ROOT_REF)
        except gitrepo.PushRejectedError:
            continue
        return
    raise gitrepo.GitError(f"could not publish root version {version}: the branch kept moving")


def repair(
    mirror: gitrepo.Mirror, history: Sequence[bytes], *, who: gitrepo.Identity
) -> str | None:
    """Put the root branch back to the roots in ``history`` (every version the reconciler
    holds, oldest first) when it holds anything else: a version rewritten, or a newer one
    nobody with the root keys signed. What was wrong, or None if nothing was.

    Only the reconciler repairs: it holds the chain from its keys directory. The branch
    moves forward (a new commit whose tree holds exactly ``history``); only objects git
    refuses to fetch, which nothing can build on, are replaced (a compare-and-swap)."""
    refs = mirror.fetch([layout.ROOT_REF])
    tip = refs.get(layout.ROOT_REF)
    held = {layout.root_path(_version(root)): root for root in history}
    if layout.ROOT_REF in refs.broken:
        lease = mirror.remote_heads(layout.ROOT_REF).get(layout.ROOT_REF, "")
        why = f"objects git refused ({refs.broken[layout.ROOT_REF]})"
        commit = mirror.commit(None, held, message=f"root: repaired ({why})", who=who)
        mirror.replace(commit, layout.ROOT_REF, expected=lease)
        return f"the root branch held {why}: repaired"
    found = (
        {path: _read_or_none(mirror, tip, path) for path in mirror.list_paths(tip)} if tip else {}
    )
    anchor = found.pop(layout.APPROVERS_ANCHOR, None)  # signed by root itself: kept as is
    wrong = ", ".join(sorted(p for p in set(found) | set(held) if found.get(p) != held.get(p)))
    if not wrong:
        return None
    message = f"root: repaired ({wrong} did not match the roots the reconciler holds)"
    kept = {layout.APPROVERS_ANCHOR: anchor} if anchor is not None else {}
    fixed = mirror.commit(tip, {**kept, **held}, message=message, who=who, only=True)
    mirror.push(fixed, layout.ROOT_REF)
    return f"the root branch held files that are not the signed chain ({wrong}): repaired"


def _read_or_none(mirror: gitrepo.Mirror, tip: str, path: str) -> bytes | None:
    try:
        return mirror.read(tip, [path], max_bytes=1 << 20).get(path)
    except gitrepo.GitError:  # a link, a submodule, a huge blob: not a root either
        return None


def _version(root: bytes) -> int:
    return verify.parse_payload(envelope.peek(root, max_bytes=1 << 20), signed.Root).version


@dataclass(frozen=True)
class Chain:
    """The roots from the trusted one to the newest, each verified by its predecessor."""

    roots: tuple[signed.Root, ...]
    newest_bytes: bytes

    @property
    def newest(self) -> signed.Root:
        """The root in force."""
        return self.roots[-1]

    def at(self, version: int) -> signed.Root:
        """The root of ``version``; MixAndMatchError if the chain does not hold it."""
        for root in self.roots:
            if root.version == version:
                return root
        raise errors.MixAndMatchError(f"root version {version} is not in the trusted chain")


def follow(
    mirror: gitrepo.Mirror,
    trusted: bytes,
    tip: str | None,
    *,
    limits: verify.Limits = verify.DEFAULT_LIMITS,
) -> Chain:
    """Every root from ``trusted`` to the newest, through the signed chain at ``tip``."""
    chain, data = [verify.load_trusted_root(trusted, limits=limits)], trusted
    present = set(mirror.list_paths(tip)) if tip else set()
    for _ in range(limits.max_root_rotations):
        path = layout.root_path(chain[-1].version + 1)
        if path not in present:
            return Chain(tuple(chain), data)
        data = _read(mirror, tip or "", path, limits.root_bytes)
        chain.append(verify.update_root(chain[-1], data, limits=limits))
    raise errors.RollbackError("more root rotations than the cap in one update")


def read_signed(
    mirror: gitrepo.Mirror, commit: str, paths: list[str], cap: int
) -> dict[str, bytes]:
    """Signed files at ``commit``, refusing links and oversized blobs as verification errors."""
    try:
        return mirror.read(commit, paths, max_bytes=cap)
    except gitrepo.BlobTooLargeError as exc:
        raise errors.OversizedError(str(exc)) from None
    except gitrepo.UnsafeEntryError as exc:
        raise errors.MalformedError(str(exc)) from None


def _read(mirror: gitrepo.Mirror, commit: str, path: str, cap: int) -> bytes:
    return read_signed(mirror, commit, [path], cap)[path]
