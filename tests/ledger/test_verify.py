"""The pure verifier, attack by attack (python-tuf's test_updater_* and Uptane's list)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest

from ledger import envelope, errors, keys, roots, verify
from schemas import signed
from tests.ledger.conftest import NOW, PLANE, KeySet, command

EMPTY = signed.Head(sequence=0, digest="")


def stamp_payload(keyset: KeySet, **changes: Any) -> dict[str, Any]:
    payload: dict[str, Any] = {
        "_type": "timestamp",
        "spec_version": "1",
        "plane": PLANE,
        "version": 1,
        "expires": verify.format_time(NOW + timedelta(days=7)),
        "root_version": 1,
        "head": {"sequence": 0, "digest": ""},
        "status_seen": 0,
    }
    payload.update(changes)
    return payload


def sign(role: str, payload: dict[str, Any], *signers: keys.Signer) -> bytes:
    return envelope.sign(verify.PAYLOAD_TYPES[role], envelope.dumps(payload), signers)


def bundle_payload(sequence: int = 1, previous: str = "", **changes: Any) -> dict[str, Any]:
    payload: dict[str, Any] = {
        "_type": "commands",
        "spec_version": "1",
        "plane": PLANE,
        "sequence": sequence,
        "previous": previous,
        "root_version": 1,
        "spec_commit": "a" * 40,
        "issued_at": verify.format_time(NOW),
        "commands": [command().model_dump()],
    }
    payload.update(changes)
    return payload


@pytest.fixture
def root(keyset: KeySet) -> signed.Root:
    return verify.load_trusted_root(keyset.root_bytes())


# --- root -------------------------------------------------------------------------------


def test_the_pinned_root_must_meet_its_own_threshold(keyset: KeySet) -> None:
    with pytest.raises(errors.SignatureError):
        verify.load_trusted_root(roots.sign_root(keyset.root_payload(), keyset.root[:1]))


def test_a_good_rotation_chain_is_accepted(keyset: KeySet, root: signed.Root) -> None:
    new_root_keys = [keys.FileSigner.generate() for _ in range(2)]
    payload = keyset.rotation(new_root_keys, days=30)
    rotated = roots.sign_root(payload, [*keyset.root[:2], *new_root_keys])
    assert verify.update_root(root, rotated).version == 2


@pytest.mark.parametrize(
    ("signed_by", "version", "error"),
    [
        pytest.param("new-only", 2, errors.SignatureError, id="not-signed-by-old-root"),
        pytest.param("old-only", 2, errors.SignatureError, id="not-signed-by-new-root"),
        pytest.param("both", 3, errors.RollbackError, id="skips-a-version"),
        pytest.param("both", 1, errors.RollbackError, id="same-version"),
    ],
)
def test_a_broken_rotation_chain_is_refused(
    keyset: KeySet, root: signed.Root, signed_by: str, version: int, error: type[Exception]
) -> None:
    new_root_keys = [keys.FileSigner.generate() for _ in range(2)]
    payload = keyset.rotation(new_root_keys, version=version, days=30)
    signers = {
        "new-only": new_root_keys,
        "old-only": keyset.root[:2],
        "both": [*keyset.root[:2], *new_root_keys],
    }[signed_by]
    with pytest.raises(error):
        verify.update_root(root, roots.sign_root(payload, signers))


def test_an_expired_final_root_is_refused(keyset: KeySet) -> None:
    expired = roots.sign_root(keyset.root_payload(expires=verify.format_time(NOW)), keyset.root)
    root = verify.load_trusted_root(expired)
    with pytest.raises(errors.ExpiredError):
        verify.check_root_fresh(root, NOW)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        pytest.param(
            lambda p: p["roles"]["root"].update(threshold=4),
            "threshold 4",
            id="threshold-above-key-count",
        ),
        pytest.param(
            lambda p: p["roles"]["root"]["keyids"].append(p["roles"]["root"]["keyids"][0]),
            "twice",
            id="key-listed-twice",
        ),
        pytest.param(
            lambda p: p["roles"]["commands"].update(keyids=["f" * 64]), "lacks", id="unknown-key"
        ),
    ],
)
def test_a_root_with_bad_roles_is_refused(
    keyset: KeySet, change: Callable[[dict[str, Any]], None], message: str
) -> None:
    payload = keyset.root_payload()
    change(payload)
    root = signed.Root.model_validate(payload)
    with pytest.raises(errors.BadKeyError, match=message):
        for role in ("root", "commands"):
            verify.role_keys(root, role)


def test_a_small_order_key_in_root_is_refused(keyset: KeySet) -> None:
    identity = "01" + "00" * 31
    payload = keyset.root_payload()
    keyid = keys.keyid_of(bytes.fromhex(identity))
    payload["keys"][keyid] = {"keytype": "ed25519", "public": identity}  # type: ignore[index]
    payload["roles"]["commands"]["keyids"] = [keyid]  # type: ignore[index]
    with pytest.raises(errors.BadKeyError, match="small-order"):
        verify.role_keys(signed.Root.model_validate(payload), "commands")


def test_a_keyid_that_does_not_match_its_key_is_refused(keyset: KeySet) -> None:
    payload = keyset.root_payload()
    real = keyset.commands.public_key
    payload["keys"]["e" * 64] = {"keytype": "ed25519", "public": real.hex}  # type: ignore[index]
    payload["roles"]["commands"]["keyids"] = ["e" * 64]  # type: ignore[index]
    with pytest.raises(errors.BadKeyError, match="does not match"):
        verify.role_keys(signed.Root.model_validate(payload), "commands")


# --- timestamp --------------------------------------------------------------------------


def test_a_timestamp_is_accepted(keyset: KeySet, root: signed.Root) -> None:
    data = sign("timestamp", stamp_payload(keyset), keyset.timestamp)
    assert verify.update_timestamp(root, None, data, plane=PLANE, now=NOW).version == 1


@pytest.mark.parametrize(
    ("changes", "signer", "error"),
    [
        pytest.param({}, "commands", errors.SignatureError, id="signed-by-the-wrong-role"),
        pytest.param({"plane": "prod-eu"}, "timestamp", errors.WrongPlaneError, id="other-plane"),
        pytest.param(
            {"expires": verify.format_time(NOW)}, "timestamp", errors.ExpiredError, id="freeze"
        ),
        pytest.param({"root_version": 2}, "timestamp", errors.MixAndMatchError, id="other-root"),
        pytest.param({"version": 1.5}, "timestamp", errors.MalformedError, id="float"),
        pytest.param({"_type": "commands"}, "timestamp", errors.MalformedError, id="wrong-type"),
        pytest.param({"extra": 1}, "timestamp", errors.MalformedError, id="unknown-field"),
        pytest.param(
            {"expires": "2026-02-30T00:00:00Z"}, "timestamp", errors.MalformedError, id="feb-30"
        ),
    ],
)
def test_a_bad_timestamp_is_refused(
    keyset: KeySet,
    root: signed.Root,
    changes: dict[str, Any],
    signer: str,
    error: type[Exception],
) -> None:
    payload = stamp_payload(keyset, **changes)
    data = sign("timestamp", payload, getattr(keyset, signer))
    with pytest.raises(error):
        verify.update_timestamp(root, None, data, plane=PLANE, now=NOW)


@pytest.mark.parametrize(
    ("trusted", "new", "error"),
    [
        pytest.param({"version": 5}, {"version": 4}, errors.RollbackError, id="older-version"),
        pytest.param(
            {"version": 5},
            {"version": 5, "status_seen": 9},
            errors.RollbackError,
            id="same-version-other-content",
        ),
        pytest.param(
            {"version": 5, "head": {"sequence": 3, "digest": "sha256:" + "a" * 64}},
            {"version": 6, "head": {"sequence": 2, "digest": "sha256:" + "b" * 64}},
            errors.RollbackError,
            id="head-moves-back",
        ),
    ],
)
def test_a_rolled_back_timestamp_is_refused(
    keyset: KeySet,
    root: signed.Root,
    trusted: dict[str, Any],
    new: dict[str, Any],
    error: type[Exception],
) -> None:
    old = signed.Timestamp.model_validate(stamp_payload(keyset, **trusted))
    data = sign("timestamp", stamp_payload(keyset, **new), keyset.timestamp)
    with pytest.raises(error):
        verify.update_timestamp(root, old, data, plane=PLANE, now=NOW)


def test_the_same_timestamp_again_is_accepted(keyset: KeySet, root: signed.Root) -> None:
    payload = stamp_payload(keyset, version=5)
    old = signed.Timestamp.model_validate(payload)
    data = sign("timestamp", payload, keyset.timestamp)
    assert verify.update_timestamp(root, old, data, plane=PLANE, now=NOW) == old


# --- bundles ----------------------------------------------------------------------------


def test_a_bundle_chain_is_accepted(keyset: KeySet, root: signed.Root) -> None:
    first = sign("commands", bundle_payload(1), keyset.commands)
    one = signed.Head(sequence=1, digest=envelope.digest(first))
    second = sign("commands", bundle_payload(2, one.digest), keyset.commands)
    head = signed.Head(sequence=2, digest=envelope.digest(second))
    assert verify.update_bundle([root], EMPTY, head, first, plane=PLANE).sequence == 1
    assert verify.update_bundle([root], one, head, second, plane=PLANE).sequence == 2


def test_bad_bundles_are_refused(keyset: KeySet, root: signed.Root) -> None:
    good = sign("commands", bundle_payload(1), keyset.commands)
    head = signed.Head(sequence=1, digest=envelope.digest(good))
    bad_spec = bundle_payload(1)
    bad_spec["commands"][0]["spec"] = '{"replicas":200}'
    cases: list[tuple[bytes, signed.Head, signed.Head, type[Exception]]] = [
        (sign("commands", bundle_payload(1), keyset.timestamp), EMPTY, head, errors.SignatureError),
        (
            sign("commands", bundle_payload(1, plane="prod-eu"), keyset.commands),
            EMPTY,
            head,
            errors.WrongPlaneError,
        ),
        (
            sign("commands", bundle_payload(2), keyset.commands),
            EMPTY,
            head,
            errors.MixAndMatchError,
        ),
        (
            sign("commands", bundle_payload(1, "sha256:" + "0" * 64), keyset.commands),
            EMPTY,
            head,
            errors.MixAndMatchError,
        ),
        (
            sign("commands", bundle_payload(1, issued_at="2026-11-23T12:00:01Z"), keyset.commands),
            EMPTY,
            head,
            errors.MixAndMatchError,
        ),
        (good, EMPTY, EMPTY, errors.MixAndMatchError),
        (
            sign("commands", bundle_payload(1, root_version=2), keyset.commands),
            EMPTY,
            head,
            errors.SignatureError,
        ),
        (
            sign("commands", bad_spec, keyset.commands),
            EMPTY,
            signed.Head(
                sequence=1, digest=envelope.digest(sign("commands", bad_spec, keyset.commands))
            ),
            errors.MalformedError,
        ),
    ]
    for data, previous, signed_head, error in cases:
        with pytest.raises(error):
            verify.update_bundle([root], previous, signed_head, data, plane=PLANE)


def bundle_chain(keyset: KeySet, count: int) -> list[bytes]:
    chain: list[bytes] = []
    for sequence in range(1, count + 1):
        previous = envelope.digest(chain[-1]) if chain else ""
        chain.append(sign("commands", bundle_payload(sequence, previous), keyset.commands))
    return chain


def head_of(chain: list[bytes]) -> signed.Head:
    return signed.Head(sequence=len(chain), digest=envelope.digest(chain[-1]))


@pytest.mark.parametrize("run_bytes", [1, 5_000, 1 << 20], ids=["one-per-run", "runs", "one-run"])
def test_update_bundles_is_update_bundle_on_each(
    keyset: KeySet, root: signed.Root, monkeypatch: pytest.MonkeyPatch, run_bytes: int
) -> None:
    monkeypatch.setattr(verify, "RUN_BYTES", run_bytes)
    chain = bundle_chain(keyset, 7)
    verified = verify.update_bundles([root], EMPTY, head_of(chain), chain, plane=PLANE)
    previous, expected = EMPTY, []
    for data in chain:
        bundle = verify.update_bundle([root], previous, head_of(chain), data, plane=PLANE)
        previous = signed.Head(sequence=bundle.sequence, digest=envelope.digest(data))
        expected.append((previous, bundle))
    assert verified == expected


def test_update_bundles_raises_the_first_failure_in_order(
    keyset: KeySet, root: signed.Root, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A later bad signature is checked first (same run) but an earlier broken link is raised."""
    monkeypatch.setattr(verify, "RUN_BYTES", 1 << 20)
    chain = bundle_chain(keyset, 4)
    chain[3] = sign("commands", bundle_payload(4, envelope.digest(chain[2])), keyset.timestamp)
    with pytest.raises(errors.SignatureError):
        verify.update_bundles([root], EMPTY, head_of(chain), chain, plane=PLANE)
    chain[1] = sign("commands", bundle_payload(2, "sha256:" + "0" * 64), keyset.commands)
    with pytest.raises(errors.MixAndMatchError, match="bundle 2 does not follow bundle 1"):
        verify.update_bundles([root], EMPTY, head_of(chain), chain, plane=PLANE)


def test_update_bundles_of_nothing_is_nothing(root: signed.Root) -> None:
    assert verify.update_bundles([root], EMPTY, EMPTY, [], plane=PLANE) == []


# --- status -----------------------------------------------------------------------------


def status_bytes(signer: keys.Signer, **changes: Any) -> bytes:
    payload: dict[str, Any] = {
        "_type": "status",
        "spec_version": "1",
        "plane": PLANE,
        "counter": 3,
        "time": verify.format_time(NOW),
        "applied": {"sequence": 1, "digest": "sha256:" + "1" * 64},
        "timestamp_version": 1,
        "resources": [],
        "error": None,
    }
    payload.update(changes)
    return sign("status", payload, signer)


def test_status_checks() -> None:
    agent, other = keys.FileSigner.generate(), keys.FileSigner.generate()
    head = signed.Head(sequence=1, digest="sha256:" + "1" * 64)
    issued = {1: head.digest}

    def check(data: bytes, seen: int = 2) -> signed.Status:
        return verify.verify_status(
            data, plane=PLANE, key=agent.public_key, seen=seen, head=head, issued=issued
        )

    assert check(status_bytes(agent)).counter == 3
    with pytest.raises(errors.SignatureError):
        check(status_bytes(other))
    assert check(status_bytes(agent), seen=3).counter == 3  # the same report, read again
    with pytest.raises(errors.ReplayError):
        check(status_bytes(agent), seen=4)
    with pytest.raises(errors.WrongPlaneError):
        check(status_bytes(agent, plane="prod-eu"))
    with pytest.raises(errors.UnknownCommandError):
        check(status_bytes(agent, applied={"sequence": 2, "digest": "sha256:" + "2" * 64}))
    with pytest.raises(errors.UnknownCommandError):
        check(status_bytes(agent, applied={"sequence": 1, "digest": "sha256:" + "9" * 64}))
