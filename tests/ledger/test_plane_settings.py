"""A Kubernetes plane's settings travel in its signed bundles (ADR 0016), as ``selfHeal``
does: a change of them alone is a bundle of no commands; no change signs nothing; a plane
without them signs bundles byte for byte as before."""

from __future__ import annotations

from ledger import commands, envelope, layout, roots, verify
from ledger import reader as log_reader
from schemas import dataplane, signed
from tests.ledger.conftest import NOW, PLANE, KeySet, command

SETTINGS = dataplane.KubernetesRuntime.model_validate(
    {"namespace": "ml", "images": {"serving": "ghcr.io/acme/serve:2.14"}}
)


def append(
    log: commands.CommandLog,
    *cmds: signed.Command,
    kubernetes: dataplane.KubernetesRuntime | None = SETTINGS,
) -> signed.Head | None:
    return log.append(
        PLANE, lambda _: list(cmds), spec_commit="a" * 40, now=NOW, kubernetes=kubernetes
    )


def test_a_change_of_settings_alone_is_a_bundle_of_no_commands(
    log: commands.CommandLog, reader: log_reader.CommandReader
) -> None:
    append(log, command(), kubernetes=None)
    moved = SETTINGS.model_copy(update={"namespace": "ml-2"})
    head = append(log, kubernetes=moved)
    assert head is not None and head.sequence == 2
    (_, first), (_, second) = reader.update(NOW)
    assert (first.kubernetes, second.kubernetes) == (None, moved)
    assert second.commands == []


def test_unchanged_settings_and_no_command_sign_nothing(log: commands.CommandLog) -> None:
    append(log, command())
    assert append(log) is None
    assert log.read(PLANE).head.sequence == 1


def test_settings_round_trip_in_their_camel_case_form(
    log: commands.CommandLog, reader: log_reader.CommandReader
) -> None:
    append(log, command())
    payload = _payload(log, 1)
    assert b'"kubernetes":{' in payload and b'"mlflowTrackingUri":null' in payload
    ((_, bundle),) = reader.update(NOW)
    assert bundle.kubernetes == SETTINGS


def test_a_bundle_without_settings_is_signed_as_before(
    log: commands.CommandLog, keyset: KeySet
) -> None:
    """Bundles signed before ADR 0016 keep their bytes and so their digests."""
    append(log, command(), kubernetes=None)
    before = envelope.sign(
        verify.PAYLOAD_TYPES["commands"],
        envelope.dumps({
            "_type": "commands", "spec_version": "1", "plane": PLANE, "sequence": 1,
            "previous": "", "root_version": 1, "spec_commit": "a" * 40,
            "issued_at": verify.format_time(NOW), "commands": [command().model_dump()],
            "self_heal": True,
        }),
        [keyset.commands],
    )  # fmt: skip
    assert _bundle(log, 1) == before
    assert log.read(PLANE).issued[1] == envelope.digest(before)


def _bundle(log: commands.CommandLog, sequence: int) -> bytes:
    tip = log.mirror.remote_heads(layout.commands_ref(PLANE))[layout.commands_ref(PLANE)]
    log.mirror.fetch([layout.commands_ref(PLANE)])
    path = layout.bundle_path(sequence)
    return roots.read_signed(log.mirror, tip, [path], 1 << 20)[path]


def _payload(log: commands.CommandLog, sequence: int) -> bytes:
    return envelope.peek(_bundle(log, sequence), max_bytes=1 << 20)
