"""Root rotation through git: agents follow the signed chain and persist each root."""

from __future__ import annotations

import pytest

from ledger import commands, envelope, errors, keys, layout, roots, verify
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
    log: commands.CommandLog, reader: commands.CommandReader, keyset: KeySet
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
    log: commands.CommandLog, reader: commands.CommandReader, keyset: KeySet
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
