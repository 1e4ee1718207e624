"""Root rotation through git: agents follow the signed chain and persist each root."""

from __future__ import annotations

from datetime import timedelta

import pytest

from ledger import commands, envelope, errors, keys, layout, roots, verify
from ledger import reader as log_reader
from schemas import signed
from tests.ledger.conftest import NOW, PLANE, RECONCILER, KeySet, command, issue, snapshot


def _rotate(
    keyset: KeySet, *, new_timestamp: keys.FileSigner, sign_with_old: bool = True
) -> tuple[bytes, list[keys.FileSigner]]:
    new_root = [keys.FileSigner.generate() for _ in range(2)]
    payload = keyset.rotation(new_root, timestamp=new_timestamp)
    signers = [*keyset.root[:2], *new_root] if sign_with_old else new_root
    return roots.sign_root(payload, signers), new_root


def test_agents_follow_a_rotation_and_drop_a_timestamp_of_rotated_keys(
    log: commands.CommandLog, reader: log_reader.CommandReader, keyset: KeySet
) -> None:
    issue(log)
    reader.update(NOW)
    new_timestamp = keys.FileSigner.generate()
    root_v2, _ = _rotate(keyset, new_timestamp=new_timestamp)
    roots.publish(log.mirror, root_v2, who=RECONCILER)
    rotated = commands.CommandLog(
        log.mirror, log.root, [keyset.commands], [new_timestamp], RECONCILER
    )
    # the reconciler, now holding the new timestamp key, keeps appending to the same log;
    # bundle 1 stays signed under root 1, bundle 2 names root 2
    head = rotated.append(PLANE, lambda _: [command("after")], spec_commit="b" * 40, now=NOW)
    assert head is not None and head.sequence == 2
    pending = reader.update(NOW)
    assert [b.sequence for _, b in pending] == [1, 2]
    trust = reader.load()
    assert verify.load_trusted_root(trust.root).version == 2


def test_a_rotation_not_signed_by_the_old_root_is_refused(
    log: commands.CommandLog, reader: log_reader.CommandReader, keyset: KeySet
) -> None:
    issue(log)
    reader.update(NOW)
    forged, _ = _rotate(keyset, new_timestamp=keys.FileSigner.generate(), sign_with_old=False)
    tip = log.mirror.fetch([layout.ROOT_REF])[layout.ROOT_REF]
    commit = log.mirror.commit(tip, {layout.root_path(2): forged}, message="x", who=RECONCILER)
    log.mirror.push(commit, layout.ROOT_REF)
    before = snapshot(reader)
    with pytest.raises(errors.SignatureError):
        reader.update(NOW)
    assert snapshot(reader) == before


def test_the_writer_refuses_to_append_to_a_log_it_cannot_verify(
    log: commands.CommandLog, keyset: KeySet
) -> None:
    issue(log)
    tip = log.mirror.fetch([layout.commands_ref(PLANE)])[layout.commands_ref(PLANE)]
    stamp = log.mirror.read(tip, [layout.TIMESTAMP], max_bytes=1 << 16)[layout.TIMESTAMP]
    payload = verify.parse_payload(envelope.peek(stamp, max_bytes=1 << 16), signed.Timestamp)
    forged = envelope.sign(
        verify.PAYLOAD_TYPES["timestamp"],
        envelope.dumps(payload.model_dump(by_alias=True) | {"version": 99}),
        [keyset.commands],
    )
    commit = log.mirror.commit(tip, {layout.TIMESTAMP: forged}, message="x", who=RECONCILER)
    log.mirror.push(commit, layout.commands_ref(PLANE))
    with pytest.raises(errors.SignatureError):
        issue(log, command("more"))


def _forge(
    log: commands.CommandLog, *, bundle_root: int, commands_key: keys.Signer, stamp_key: keys.Signer
) -> None:
    """Append a bundle naming ``bundle_root``, signed by ``commands_key``, and a timestamp of
    root 2 naming it as the head: what someone holding those keys can push."""
    view = log.read(PLANE)
    assert view.timestamp is not None
    bundle = envelope.sign(verify.PAYLOAD_TYPES["commands"], envelope.dumps({
        "_type": "commands", "spec_version": signed.SPEC_VERSION, "plane": PLANE,
        "sequence": view.head.sequence + 1, "previous": view.head.digest,
        "root_version": bundle_root, "spec_commit": "c" * 40,
        "issued_at": verify.format_time(NOW), "self_heal": True,
        "commands": [command("forged").model_dump()],
    }), [commands_key])  # fmt: skip
    head = {"sequence": view.head.sequence + 1, "digest": envelope.digest(bundle)}
    stamp = envelope.sign(verify.PAYLOAD_TYPES["timestamp"], envelope.dumps({
        "_type": "timestamp", "spec_version": signed.SPEC_VERSION, "plane": PLANE,
        "version": view.timestamp.version + 1,
        "expires": verify.format_time(NOW + timedelta(days=7)),
        "root_version": 2, "head": head, "status_seen": 0,
    }), [stamp_key])  # fmt: skip
    files = {layout.bundle_path(head["sequence"]): bundle, layout.TIMESTAMP: stamp}
    ref = layout.commands_ref(PLANE)
    log.mirror.push(log.mirror.commit(view.commit, files, message="x", who=RECONCILER), ref)


def test_a_retired_commands_key_cannot_issue_after_its_successor(
    log: commands.CommandLog, reader: log_reader.CommandReader, keyset: KeySet
) -> None:
    """The commands key was rotated out (it leaked). Bundles under the new root follow;
    a bundle naming the old root after them, signed by the retired key, is a rollback for
    every reader, even with a valid timestamp over it."""
    issue(log)
    ((applied, _),) = reader.update(NOW)
    reader.mark_applied(applied)
    new_root = [keys.FileSigner.generate() for _ in range(2)]
    new_commands = keys.FileSigner.generate()
    payload = roots.root_payload(
        version=2, expires=NOW + timedelta(days=365), root=[k.public_key for k in new_root],
        root_threshold=2, commands=[new_commands.public_key],
        timestamp=[keyset.timestamp.public_key],
    )  # fmt: skip
    roots.publish(
        log.mirror, roots.sign_root(payload, [*keyset.root[:2], *new_root]), who=RECONCILER
    )
    rotated = commands.CommandLog(
        log.mirror, log.root, [new_commands], [keyset.timestamp], RECONCILER
    )
    assert issue(rotated, command("after")) is not None  # bundle 2 names root 2
    before = snapshot(reader)  # an agent still on root 1: offline during the rotation
    _forge(rotated, bundle_root=1, commands_key=keyset.commands, stamp_key=keyset.timestamp)
    with pytest.raises(errors.RollbackError, match="names root 1, older than root 2"):
        reader.update(NOW)
    assert snapshot(reader) == before
    fresh = commands.CommandLog(log.mirror, log.root, [], [], RECONCILER)
    with pytest.raises(errors.RollbackError):
        fresh.read(PLANE)
