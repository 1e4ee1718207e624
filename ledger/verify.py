"""Verification of the ledger's signed documents: pure functions over bytes.

Nothing here reads a file, a clock or the network: callers pass bytes, the
trusted state, and ``now``. Each ``update_*`` function returns the newly
trusted document or raises a :mod:`ledger.errors` error; on error the caller
keeps its previous trusted state unchanged (python-tuf's TrustedMetadataSet).

Order of checks for every document: size cap, strict envelope, payload type,
signatures by a threshold of distinct keys, strict payload, then semantics
(plane, versions, chain, expiry).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TypeVar

from pydantic import BaseModel, ValidationError

from ledger import envelope, errors, keys
from schemas import signed

PAYLOAD_TYPES = {
    "root": "application/vnd.gitplane.root.v1+json",
    "timestamp": "application/vnd.gitplane.timestamp.v1+json",
    "commands": "application/vnd.gitplane.commands.v1+json",
    "status": "application/vnd.gitplane.status.v1+json",
}


@dataclass(frozen=True)
class Limits:
    """Size caps, checked before anything is parsed."""

    root_bytes: int = 64 << 10  # a root lists at most 128 keys
    timestamp_bytes: int = 16 << 10
    bundle_bytes: int = 32 << 20  # up to 10,000 resolved specs
    status_bytes: int = 8 << 20
    max_root_rotations: int = 1024  # TUF's recommended cap on one update's root chain


DEFAULT_LIMITS = Limits()
Model = TypeVar("Model", bound=BaseModel)


def parse_time(text: str) -> datetime:
    """An RFC 3339 UTC time as written in signed documents."""
    return datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)


def format_time(moment: datetime) -> str:
    """The RFC 3339 UTC form signed documents carry (seconds precision)."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_payload(payload: bytes, model: type[Model]) -> Model:
    """Strict JSON into a strict model; anything else is MalformedError."""
    try:
        return model.model_validate(envelope.loads(payload))
    except ValidationError as exc:
        first = exc.errors(include_url=False)[0]
        where = ".".join(str(part) for part in first["loc"])
        raise errors.MalformedError(f"{model.__name__}: {where}: {first['msg']}") from None


def role_keys(root: signed.Root, role: str) -> tuple[dict[str, keys.PublicKey], int]:
    """The validated keys of ``role`` in ``root`` and its threshold."""
    spec: signed.Role = getattr(root.roles, role)
    if len(set(spec.keyids)) != len(spec.keyids):
        raise errors.BadKeyError(f"root lists a key twice for role {role}")
    if spec.threshold > len(spec.keyids):
        raise errors.BadKeyError(f"role {role}: threshold {spec.threshold} above its key count")
    trusted = {}
    for keyid in spec.keyids:
        entry = root.keys.get(keyid)
        if entry is None:
            raise errors.BadKeyError(f"role {role} names key {keyid[:12]}, which root lacks")
        key = keys.load_public_key(entry.public)
        if key.keyid != keyid:
            raise errors.BadKeyError(f"key id {keyid[:12]} does not match its key")
        trusted[keyid] = key
    return trusted, spec.threshold


def _open(data: bytes, role: str, root: signed.Root, signer_role: str, cap: int) -> bytes:
    trusted, threshold = role_keys(root, signer_role)
    return envelope.verify(
        data, payload_type=PAYLOAD_TYPES[role], trusted=trusted, threshold=threshold, max_bytes=cap
    )


def load_trusted_root(data: bytes, *, limits: Limits = DEFAULT_LIMITS) -> signed.Root:
    """The root installed out of band: it must be signed by its own root threshold."""
    unverified = parse_payload(envelope.peek(data, max_bytes=limits.root_bytes), signed.Root)
    payload = _open(data, "root", unverified, "root", limits.root_bytes)
    return parse_payload(payload, signed.Root)


def update_root(
    trusted: signed.Root, data: bytes, *, limits: Limits = DEFAULT_LIMITS
) -> signed.Root:
    """Root N+1, signed by the root thresholds of both N (``trusted``) and N+1 itself."""
    _open(data, "root", trusted, "root", limits.root_bytes)
    new = parse_payload(envelope.peek(data, max_bytes=limits.root_bytes), signed.Root)
    _open(data, "root", new, "root", limits.root_bytes)
    if new.version != trusted.version + 1:
        raise errors.RollbackError(f"root version {new.version}, expected {trusted.version + 1}")
    return new


def check_root_fresh(root: signed.Root, now: datetime) -> None:
    """The final root of an update must not be expired (intermediate ones may be)."""
    if parse_time(root.expires) <= now:
        raise errors.ExpiredError(f"root version {root.version} expired at {root.expires}")


def update_timestamp(
    root: signed.Root,
    trusted: signed.Timestamp | None,
    data: bytes,
    *,
    plane: str,
    now: datetime,
    limits: Limits = DEFAULT_LIMITS,
) -> signed.Timestamp:
    """A plane's new timestamp: signed, for this plane, not older, not expired (the agent's
    check: it applies nothing from a log whose timestamp has expired)."""
    new = read_timestamp(root, trusted, data, plane=plane, limits=limits)
    if is_expired(new, now):
        raise errors.ExpiredError(f"timestamp version {new.version} expired at {new.expires}")
    return new


def read_timestamp(
    root: signed.Root,
    trusted: signed.Timestamp | None,
    data: bytes,
    *,
    plane: str,
    limits: Limits = DEFAULT_LIMITS,
) -> signed.Timestamp:
    """A plane's timestamp, verified in every way but expiry: how its writer (which re-signs
    it) and read-only views (which flag it, :func:`is_expired`) read it. Nothing is applied
    from a timestamp read this way."""
    payload = _open(data, "timestamp", root, "timestamp", limits.timestamp_bytes)
    new = parse_payload(payload, signed.Timestamp)
    if new.plane != plane:
        raise errors.WrongPlaneError(f"timestamp is for plane {new.plane!r}, not {plane!r}")
    if new.root_version != root.version:
        raise errors.MixAndMatchError(
            f"timestamp names root {new.root_version}, trusted root is {root.version}"
        )
    if trusted is not None:
        _check_not_older(trusted, new)
    return new


def read_timestamp_under(
    chain: Sequence[signed.Root], data: bytes, *, plane: str, limits: Limits = DEFAULT_LIMITS
) -> signed.Timestamp:
    """A timestamp verified (but for expiry) under the root it was signed under, found by
    trying the chain's roots newest first: nothing of it is parsed before a signature
    verifies (one check, unless a rotation is under way)."""
    *older, newest = chain
    try:
        return read_timestamp(newest, None, data, plane=plane, limits=limits)
    except (errors.SignatureError, errors.MixAndMatchError) as exc:
        for root in reversed(older):  # signed under an older root, or not ours at all
            with contextlib.suppress(errors.SignatureError, errors.MixAndMatchError):
                return read_timestamp(root, None, data, plane=plane, limits=limits)
        raise exc from None


def is_expired(stamp: signed.Timestamp, now: datetime) -> bool:
    """Whether ``stamp`` is past its expiry at ``now`` (a freeze, or a stopped reconciler)."""
    return parse_time(stamp.expires) <= now


def _check_not_older(trusted: signed.Timestamp, new: signed.Timestamp) -> None:
    if new.version < trusted.version:
        raise errors.RollbackError(
            f"timestamp version {new.version} is older than trusted {trusted.version}"
        )
    if new.version == trusted.version and new != trusted:
        raise errors.RollbackError(f"two different timestamps carry version {new.version}")
    if new.head.sequence < trusted.head.sequence:
        raise errors.RollbackError(
            f"command log head {new.head.sequence} is behind trusted {trusted.head.sequence}"
        )


RoleKeys = tuple[dict[str, keys.PublicKey], int]


def update_bundle(
    chain: Sequence[signed.Root],
    previous: signed.Head,
    head: signed.Head,
    data: bytes,
    *,
    plane: str,
    limits: Limits = DEFAULT_LIMITS,
    commands_keys: Mapping[int, RoleKeys] | None = None,
) -> signed.Bundle:
    """The bundle after ``previous``, chained to it and, if it is the head, matching it.

    ``chain`` is the verified root chain, oldest first: a bundle issued before a
    rotation verifies under the root it names, which must be in the chain.
    """
    payload, root = _open_under_chain(data, chain, limits.bundle_bytes, commands_keys)
    known = commands_keys if commands_keys is not None else commands_keys_of(chain)
    return _check_bundle(
        payload, root, data, previous=previous, head=head, plane=plane, known=known
    )


def update_bundles(
    chain: Sequence[signed.Root],
    previous: signed.Head,
    head: signed.Head,
    data: Sequence[bytes],
    *,
    plane: str,
    limits: Limits = DEFAULT_LIMITS,
    commands_keys: Mapping[int, RoleKeys] | None = None,
    floor: int = 1,
) -> list[tuple[signed.Head, signed.Bundle]]:
    """The bundles after ``previous``, in order, each with its head: :func:`update_bundle` on each.

    Root versions only go up along a log: a bundle naming a root older than the one the
    bundle before it named (``floor`` for the first: the root of ``previous``) is a
    rollback, even when a key of that older root signed it (a retired, perhaps leaked key).

    The signatures of a run of bundles (up to :data:`RUN_BYTES` of envelopes) are
    checked before the run's payloads are parsed, so that the signature code and the
    parsers each stay warm in the CPU cache. Each bundle still goes through every check
    in the same order, and the error raised is the one checking bundle by bundle
    raises: that of the first bundle that fails, at its first failing check.
    """
    known = commands_keys if commands_keys is not None else commands_keys_of(chain)
    verified: list[tuple[signed.Head, signed.Bundle]] = []
    for run in _runs(data, RUN_BYTES):
        opened = [_open_or_error(item, chain, limits.bundle_bytes, known) for item in run]
        for item, outcome in zip(run, opened, strict=True):
            if isinstance(outcome, errors.VerificationError):
                raise outcome
            bundle = _check_bundle(
                *outcome, item, previous=previous, head=head, plane=plane, known=known
            )
            if bundle.root_version < floor:
                raise errors.RollbackError(
                    f"bundle {bundle.sequence} names root {bundle.root_version}, older than "
                    f"root {floor} named before it: a retired key cannot issue after its successor"
                )
            floor = bundle.root_version
            previous = signed.Head(sequence=bundle.sequence, digest=envelope.digest(item))
            verified.append((previous, bundle))
    return verified


RUN_BYTES = 256 << 10
"""Envelope bytes whose signatures :func:`update_bundles` checks before parsing their payloads
(the decoded payloads of a run are held at once: about 0.75 of this)."""


def _runs(data: Sequence[bytes], budget: int) -> Iterator[Sequence[bytes]]:
    """``data`` in consecutive runs of at most ``budget`` bytes; a larger item runs alone."""
    start = size = 0
    for end, item in enumerate(data):
        if size and size + len(item) > budget:
            yield data[start:end]
            start, size = end, 0
        size += len(item)
    if start < len(data):
        yield data[start:]


def _open_or_error(
    data: bytes, chain: Sequence[signed.Root], cap: int, known: Mapping[int, RoleKeys]
) -> tuple[bytes, signed.Root] | errors.VerificationError:
    try:
        return _open_under_chain(data, chain, cap, known)
    except errors.VerificationError as exc:
        return exc


def _check_bundle(
    payload: bytes,
    root: signed.Root,
    data: bytes,
    *,
    previous: signed.Head,
    head: signed.Head,
    plane: str,
    known: Mapping[int, RoleKeys],
) -> signed.Bundle:
    """The checks after the signatures: strict payload, root, plane, chain, head, specs.
    ``root`` is the root whose ``commands`` keys verified it; ``known``, each trusted root's
    keys: the bundle must name a root of the chain with those very keys."""
    bundle = parse_payload(payload, signed.Bundle)
    named = known.get(bundle.root_version)
    if bundle.root_version != root.version and (named is None or named != known[root.version]):
        raise errors.SignatureError(
            f"bundle names root {bundle.root_version}, whose commands keys did not sign it"
        )
    if bundle.plane != plane:
        raise errors.WrongPlaneError(f"bundle is for plane {bundle.plane!r}, not {plane!r}")
    if bundle.sequence != previous.sequence + 1 or bundle.previous != previous.digest:
        raise errors.MixAndMatchError(
            f"bundle {bundle.sequence} does not follow bundle {previous.sequence} in the hash chain"
        )
    if bundle.sequence > head.sequence:
        raise errors.MixAndMatchError(f"bundle {bundle.sequence} is beyond the signed head")
    if bundle.sequence == head.sequence and envelope.digest(data) != head.digest:
        raise errors.MixAndMatchError(f"bundle {bundle.sequence} is not the signed head")
    for command in bundle.commands:
        if envelope.digest(command.spec.encode()) != command.digest:
            raise errors.MalformedError(f"command {command.id}: spec does not match its digest")
    return bundle


def commands_keys_of(chain: Sequence[signed.Root]) -> dict[int, RoleKeys]:
    """Each root's validated ``commands`` keys, computed once for a run of bundles."""
    return {root.version: role_keys(root, "commands") for root in chain}


def _open_under_chain(
    data: bytes,
    chain: Sequence[signed.Root],
    cap: int,
    known: Mapping[int, RoleKeys] | None = None,
) -> tuple[bytes, signed.Root]:
    """Verify a bundle under the roots of the verified chain, newest first, and return its
    payload with the root whose ``commands`` keys signed it (:func:`_check_bundle` then
    requires that the bundle names a root with those very keys).

    Nothing of the payload is read before a signature verifies: roots are tried by their
    distinct ``commands`` keys, so without a rotation of that role there is one check.
    """
    if len(chain) == 1:  # no rotation: one set of keys to try
        return _open_with(data, chain[0], cap, known), chain[0]
    first: errors.SignatureError | None = None
    tried: list[RoleKeys] = []
    for root in reversed(chain):
        keys_ = (known or {}).get(root.version) or role_keys(root, "commands")
        if keys_ in tried:
            continue
        tried.append(keys_)
        try:
            return _open_with(data, root, cap, known), root
        except errors.SignatureError as exc:
            first = first or exc
    raise first or errors.SignatureError("no root of the chain verifies the bundle")


def _open_with(
    data: bytes, root: signed.Root, cap: int, known: Mapping[int, RoleKeys] | None
) -> bytes:
    trusted, threshold = (known or {}).get(root.version) or role_keys(root, "commands")
    return envelope.verify(
        data,
        payload_type=PAYLOAD_TYPES["commands"],
        trusted=trusted,
        threshold=threshold,
        max_bytes=cap,
    )


def verify_status(
    data: bytes,
    *,
    plane: str,
    key: keys.PublicKey,
    seen: int,
    head: signed.Head,
    issued: dict[int, str],
    limits: Limits = DEFAULT_LIMITS,
) -> signed.Status:
    """A plane's status report, signed by its registered agent key, not older than ``seen``.

    ``seen`` is the newest counter accepted before (the same report read again
    is fine: status is written on change only).

    ``issued`` maps each sequence the reconciler issued to its bundle digest.
    """
    payload = envelope.verify(
        data,
        payload_type=PAYLOAD_TYPES["status"],
        trusted={key.keyid: key},
        threshold=1,
        max_bytes=limits.status_bytes,
    )
    status = parse_payload(payload, signed.Status)
    if status.plane != plane:
        raise errors.WrongPlaneError(f"status is for plane {status.plane!r}, not {plane!r}")
    if status.counter < seen:
        raise errors.ReplayError(f"status counter {status.counter} is older than {seen}")
    applied = status.applied
    if applied.sequence > head.sequence or (
        applied.sequence and issued.get(applied.sequence) != applied.digest
    ):
        raise errors.AheadOfLogError(
            f"status signed by the plane's agent says bundle #{applied.sequence} "
            f"({applied.digest[:19]}) was applied; this log holds up to #{head.sequence}"
            + ("" if applied.sequence > head.sequence else " and another bundle at that number"),
            status,
        )
    return status
