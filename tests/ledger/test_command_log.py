"""Command logs in real git: append, follow, and every attack through the git server.

Each refusal asserts the typed error *and* that the agent's persisted trust
state did not change (python-tuf's rule for its own attack tests).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import replace
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from ledger import commands, envelope, errors, gitrepo, layout, state, verify, watermark
from ledger import reader as log_reader
from schemas import signed
from tests.conftest import record_git
from tests.ledger.conftest import NOW, PLANE, RECONCILER, KeySet, command, issue, snapshot


def test_appended_bundles_are_verified_in_order(
    log: commands.CommandLog, reader: log_reader.CommandReader
) -> None:
    first = issue(log, command("a"))
    second = issue(log, command("b"), command("c"))
    assert first is not None and second is not None
    assert (first.sequence, second.sequence) == (1, 2)
    pending = reader.update(NOW)
    assert [b.sequence for _, b in pending] == [1, 2]
    assert [c.name for _, b in pending for c in b.commands] == ["a", "b", "c"]
    assert pending[-1][0] == second
    trust = reader.load()
    assert (trust.verified, trust.applied) == (second, state.EMPTY)


def test_applied_bundles_are_not_returned_again(
    log: commands.CommandLog, reader: log_reader.CommandReader
) -> None:
    issue(log)
    ((head, _),) = reader.update(NOW)
    reader.mark_applied(head)
    assert reader.update(NOW) == []
    issue(log, command("next"))
    assert [b.sequence for _, b in reader.update(NOW)] == [2]


def test_verified_but_unapplied_bundles_survive_a_restart(
    log: commands.CommandLog, reader: log_reader.CommandReader
) -> None:
    issue(log)
    issue(log, command("b"))
    reader.update(NOW)  # verified and persisted, then the agent "crashes" before applying
    again = log_reader.CommandReader(reader.mirror, PLANE, reader.state_path, reader.pinned_root)
    assert [b.sequence for _, b in again.update(NOW)] == [1, 2]


def test_an_empty_log_yields_nothing(reader: log_reader.CommandReader) -> None:
    assert reader.update(NOW) == []


def test_the_reconciler_sees_what_it_issued(log: commands.CommandLog) -> None:
    issue(log)
    view = log.read(PLANE)
    assert view.head.sequence == 1
    assert list(view.issued) == [1]
    assert view.bundles[0].commands[0].name == "churn-dev"


def test_deciding_nothing_writes_nothing(log: commands.CommandLog, remote: str) -> None:
    assert log.append(PLANE, lambda _: [], spec_commit="a" * 40, now=NOW) is None
    assert log.mirror.remote_heads() == {
        layout.ROOT_REF: log.mirror.remote_heads()[layout.ROOT_REF]
    }


# --- attacks through git -------------------------------------------------------------------


def _push_files(
    log: commands.CommandLog,
    files: dict[str, bytes],
    *,
    plane: str = PLANE,
    parent: str | None = None,
    force: bool = True,
) -> None:
    """What an attacker with push access does: write any files, force-push any commit."""
    mirror = log.mirror
    tip = (
        parent
        if parent is not None
        else mirror.fetch([layout.commands_ref(plane)]).get(layout.commands_ref(plane))
    )
    commit = mirror.commit(tip, files, message="attack", who=RECONCILER)
    mirror.repo.run(
        "push",
        "--force" if force else "--quiet",
        mirror.url,
        f"{commit}:{layout.commands_ref(plane)}",
    )


def _file(log: commands.CommandLog, path: str, plane: str = PLANE) -> bytes:
    tip = log.mirror.fetch([layout.commands_ref(plane)])[layout.commands_ref(plane)]
    return log.mirror.read(tip, [path], max_bytes=1 << 20)[path]


def _refused(
    reader: log_reader.CommandReader, error: type[errors.VerificationError], now: object = NOW
) -> None:
    before = snapshot(reader)
    with pytest.raises(error):
        reader.update(now)  # type: ignore[arg-type]
    assert snapshot(reader) == before


def test_force_push_to_an_older_signed_commit_is_a_rollback(
    log: commands.CommandLog, reader: log_reader.CommandReader
) -> None:
    issue(log)
    old = log.mirror.fetch([layout.commands_ref(PLANE)])[layout.commands_ref(PLANE)]
    issue(log, command("b"))
    reader.update(NOW)
    log.mirror.repo.run("push", "--force", log.mirror.url, f"{old}:{layout.commands_ref(PLANE)}")
    _refused(reader, errors.RollbackError)


def test_a_deleted_log_is_a_rollback(
    log: commands.CommandLog, reader: log_reader.CommandReader
) -> None:
    issue(log)
    reader.update(NOW)
    log.mirror.repo.run("push", log.mirror.url, f":{layout.commands_ref(PLANE)}")
    _refused(reader, errors.RollbackError)


def test_tampered_bundle_bytes_are_refused(
    log: commands.CommandLog, reader: log_reader.CommandReader
) -> None:
    issue(log)
    data = _file(log, layout.bundle_path(1)).replace(b'"signatures":[{', b'"signatures":[{"x":1,')
    _push_files(log, {layout.bundle_path(1): data})
    _refused(reader, errors.MalformedError)


def test_a_bundle_signed_by_an_unknown_key_is_refused(
    log: commands.CommandLog, reader: log_reader.CommandReader, keyset: KeySet
) -> None:
    """An attacker with push access signs with a key root does not list for commands."""
    rogue = commands.CommandLog(
        log.mirror,
        log.root,
        [keyset.timestamp],
        [keyset.timestamp],
        RECONCILER,
        sleep=lambda _: None,
    )
    issue(rogue)
    _refused(reader, errors.SignatureError)


def test_files_mixed_from_two_versions_are_refused(
    log: commands.CommandLog, reader: log_reader.CommandReader
) -> None:
    issue(log)
    issue(log, command("b"))
    old_stamp_tip = log.mirror.fetch([layout.commands_ref(PLANE)])[layout.commands_ref(PLANE)]
    bundle_two = _file(log, layout.bundle_path(2))
    issue(log, command("c"))
    # the newest timestamp (head 3) beside bundle 3 replaced by bundle 2's bytes
    _push_files(log, {layout.bundle_path(3): bundle_two})
    _refused(reader, errors.MixAndMatchError)
    assert old_stamp_tip


def test_a_log_replayed_to_another_plane_is_refused(
    log: commands.CommandLog, reader: log_reader.CommandReader
) -> None:
    issue(log, plane="prod-eu")
    other = log.mirror.fetch([layout.commands_ref("prod-eu")])[layout.commands_ref("prod-eu")]
    log.mirror.repo.run("push", "--force", log.mirror.url, f"{other}:{layout.commands_ref(PLANE)}")
    _refused(reader, errors.WrongPlaneError)


def test_an_empty_log_replayed_to_another_plane_is_refused(
    log: commands.CommandLog, reader: log_reader.CommandReader
) -> None:
    log.append("prod-eu", lambda _: [command()], spec_commit="a" * 40, now=NOW)
    stamp = _file(log, layout.TIMESTAMP, plane="prod-eu")
    payload = verify.parse_payload(envelope.peek(stamp, max_bytes=1 << 16), signed.Timestamp)
    assert payload.plane == "prod-eu"
    _push_files(log, {layout.TIMESTAMP: stamp}, parent="")
    _refused(reader, errors.WrongPlaneError)


def test_an_expired_timestamp_is_a_freeze(
    log: commands.CommandLog, reader: log_reader.CommandReader
) -> None:
    issue(log)
    _refused(reader, errors.ExpiredError, now=NOW + timedelta(days=8))


def test_an_oversized_bundle_is_refused_before_reading(
    log: commands.CommandLog, reader: log_reader.CommandReader
) -> None:
    issue(log)
    _push_files(log, {layout.bundle_path(1): b" " * (verify.DEFAULT_LIMITS.bundle_bytes + 1)})
    _refused(reader, errors.OversizedError)


def test_a_symlink_in_the_log_is_refused(
    log: commands.CommandLog, reader: log_reader.CommandReader
) -> None:
    issue(log)
    mirror = log.mirror
    tip = mirror.fetch([layout.commands_ref(PLANE)])[layout.commands_ref(PLANE)]
    link = mirror.repo.run("hash-object", "-w", "--stdin", stdin=b"/etc/passwd").decode().strip()
    with_link = _tree_with(mirror, tip, layout.TIMESTAMP, "120000", link)
    mirror.repo.run("push", "--force", mirror.url, f"{with_link}:{layout.commands_ref(PLANE)}")
    _refused(reader, errors.MalformedError)


def _tree_with(mirror: gitrepo.Mirror, parent: str, path: str, mode: str, oid: str) -> str:
    import tempfile  # noqa: PLC0415

    with tempfile.TemporaryDirectory() as tmp:
        env = {**RECONCILER.env(), "GIT_INDEX_FILE": str(Path(tmp) / "index")}
        mirror.repo.run("read-tree", parent, env=env)
        mirror.repo.run("update-index", "--add", "--cacheinfo", f"{mode},{oid},{path}", env=env)
        tree = mirror.repo.run("write-tree", env=env).decode().strip()
        return (
            mirror.repo.run("commit-tree", tree, "-p", parent, "-m", "link", env=env)
            .decode()
            .strip()
        )


def test_a_rewritten_history_of_the_same_length_is_refused(
    log: commands.CommandLog, reader: log_reader.CommandReader, keyset: KeySet
) -> None:
    issue(log)
    reader.update(NOW)
    base = log.mirror.remote_heads()[layout.ROOT_REF]
    log.mirror.repo.run("push", log.mirror.url, f":{layout.commands_ref(PLANE)}")
    assert base
    # a second, validly signed history: the reconciler's keys (without its watermarks, which
    # would refuse: see below) re-issue bundle 1 differently
    amnesiac = commands.CommandLog(
        log.mirror, log.root, [keyset.commands], [keyset.timestamp], RECONCILER
    )
    issue(amnesiac, command("other"))
    _refused(reader, errors.VerificationError)


@pytest.mark.parametrize(
    "attack",
    [
        pytest.param(lambda tip, first: first, id="pushed-back-to-an-older-commit"),
        pytest.param(lambda tip, first: None, id="deleted"),
    ],
)
def test_the_reconciler_never_appends_below_a_head_it_saw(
    log: commands.CommandLog,
    tmp_path: Path,
    attack: Callable[[str, str], str | None],
) -> None:
    """A pusher moves the log back: the reconciler refuses it as the agent would, issues
    nothing, and still refuses after a restart (its watermarks persist)."""
    log.watermarks = watermark.Watermarks.load(tmp_path / "watermarks.json")
    issue(log, command("a"))
    first = log.mirror.remote_heads()[layout.commands_ref(PLANE)]
    issue(log, command("b"))
    tip = log.mirror.remote_heads()[layout.commands_ref(PLANE)]
    target = attack(tip, first)
    log.mirror.repo.run(
        "push", "-f", log.mirror.url, f"{target or ''}:{layout.commands_ref(PLANE)}"
    )
    with pytest.raises(errors.RollbackError):
        issue(log, command("c"))
    restarted = replace(log, watermarks=watermark.Watermarks.load(tmp_path / "watermarks.json"))
    with pytest.raises(errors.RollbackError):
        issue(restarted, command("c"))
    assert log.mirror.remote_heads().get(layout.commands_ref(PLANE)) == target  # nothing written
    log.mirror.repo.run("push", "-f", log.mirror.url, f"{tip}:{layout.commands_ref(PLANE)}")
    assert issue(restarted, command("c")) is not None  # restored from a backup: on it goes


# --- writers -----------------------------------------------------------------------------


def test_two_writers_at_once_never_fork_the_log(
    keyset: KeySet,
    make_mirror: Callable[[str], gitrepo.Mirror],
    log: commands.CommandLog,
    reader: log_reader.CommandReader,
) -> None:
    writers = [
        commands.CommandLog(
            make_mirror(f"w{i}"), log.root, [keyset.commands], [keyset.timestamp], RECONCILER
        )
        for i in range(2)
    ]
    results: list[signed.Head | None] = []

    def run(writer: commands.CommandLog, n: int) -> None:
        results.extend(issue(writer, command(f"w{n}-{i}")) for i in range(5))

    threads = [threading.Thread(target=run, args=(w, n)) for n, w in enumerate(writers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    sequences = sorted(h.sequence for h in results if h)
    assert sequences == list(range(1, 11))
    names = [c.name for _, b in reader.update(NOW) for c in b.commands]
    assert sorted(names) == sorted(f"w{n}-{i}" for n in range(2) for i in range(5))


def test_a_race_makes_the_writer_decide_again(
    keyset: KeySet, make_mirror: Callable[[str], gitrepo.Mirror], log: commands.CommandLog
) -> None:
    other = commands.CommandLog(
        make_mirror("other"), log.root, [keyset.commands], [keyset.timestamp], RECONCILER
    )
    seen: list[int] = []

    def decide(view: commands.LogView) -> list[signed.Command]:
        seen.append(view.head.sequence)
        if len(seen) == 1:
            other.append(PLANE, lambda _: [command("theirs")], spec_commit="b" * 40, now=NOW)
        issued = {c.name for b in view.bundles for c in b.commands}
        return [] if "theirs" in issued else [command("theirs")]

    assert log.append(PLANE, decide, spec_commit="a" * 40, now=NOW) is None
    assert seen == [0, 1]
    assert [c.name for b in log.read(PLANE).bundles for c in b.commands] == ["theirs"]


def test_refresh_re_signs_only_near_expiry(log: commands.CommandLog) -> None:
    issue(log)
    assert not log.refresh(PLANE, NOW + timedelta(days=1))
    assert log.refresh(PLANE, NOW + timedelta(days=4))
    view = log.read(PLANE)
    assert view.timestamp is not None and view.timestamp.version == 2
    assert view.head.sequence == 1


def test_a_crash_before_persisting_keeps_the_previous_state(
    log: commands.CommandLog, reader: log_reader.CommandReader, monkeypatch: pytest.MonkeyPatch
) -> None:
    issue(log)
    reader.update(NOW)
    before = snapshot(reader)
    issue(log, command("b"))

    def crash(self: Path, target: Path) -> Path:
        raise KeyboardInterrupt("power cut")

    monkeypatch.setattr(Path, "replace", crash)
    with pytest.raises(KeyboardInterrupt):
        reader.update(NOW)
    monkeypatch.undo()
    assert snapshot(reader) == before
    assert reader.load().verified.sequence == 1
    assert not list(reader.state_path.parent.glob(".trust.json.*"))
    assert [b.sequence for _, b in reader.update(NOW)] == [1, 2]


def test_an_idle_update_writes_nothing_locally(
    log: commands.CommandLog, reader: log_reader.CommandReader
) -> None:
    issue(log)
    reader.update(NOW)
    before = reader.state_path.stat().st_mtime_ns
    assert reader.update(NOW + timedelta(minutes=1))
    assert reader.state_path.stat().st_mtime_ns == before


# --- the reconciler's reads --------------------------------------------------------------


def _fresh(log: commands.CommandLog) -> commands.CommandLog:
    """Another reconciler on the same state repository: it has verified nothing yet."""
    return commands.CommandLog(
        log.mirror, log.root, log.commands_signers, log.timestamp_signers, RECONCILER
    )


def _verified(view: commands.LogView) -> tuple[object, ...]:
    """What a read verified: compare with :func:`_fresh`'s read of the whole log."""
    return (view.commit, view.timestamp, view.bundles, view.issued)


def _counting(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """How many bundles each call of ``verify.update_bundles`` checks."""
    checked: list[int] = []
    real = verify.update_bundles

    def update_bundles(*args: object, **kwargs: object) -> object:
        checked.append(len(args[3]))  # type: ignore[arg-type]
        return real(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(verify, "update_bundles", update_bundles)
    return checked


def test_a_read_verifies_only_the_bundles_appended_since_the_last(
    log: commands.CommandLog, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("a", "b", "c"):
        issue(log, command(name))
    log.read(PLANE)
    checked = _counting(monkeypatch)
    issue(log, command("d"))  # append reads the log first: nothing new to verify then
    view = log.read(PLANE)
    assert checked == [1]  # bundle 4 alone: 1 to 3 were verified by the reads before
    assert _verified(view) == _verified(_fresh(log).read(PLANE))
    assert [c.name for b in view.bundles for c in b.commands] == ["a", "b", "c", "d"]


def test_a_read_of_an_unchanged_log_verifies_no_bundle_but_the_timestamp_again(
    log: commands.CommandLog, monkeypatch: pytest.MonkeyPatch
) -> None:
    issue(log)
    log.read(PLANE)
    checked = _counting(monkeypatch)
    assert log.read(PLANE).head.sequence == 1
    assert checked == []
    checks = _counting_timestamps(monkeypatch)
    later = log.read(PLANE)  # the reconciler's own, 30 days on: re-signed, not refused
    assert later.timestamp is not None and verify.is_expired(
        later.timestamp, NOW + timedelta(days=30)
    )
    assert len(checks) == 1  # but verified again, as on every read


def _counting_timestamps(monkeypatch: pytest.MonkeyPatch) -> list[object]:
    """From now on, every timestamp ``verify.read_timestamp`` checks."""
    seen: list[object] = []
    original = verify.read_timestamp

    def counting(*args: Any, **kwargs: Any) -> signed.Timestamp:
        seen.append(args)
        return original(*args, **kwargs)

    monkeypatch.setattr(verify, "read_timestamp", counting)
    return seen


def test_a_log_rewritten_after_a_read_is_verified_whole_again(
    log: commands.CommandLog, monkeypatch: pytest.MonkeyPatch
) -> None:
    issue(log, command("a"))
    issue(log, command("b"))
    assert log.read(PLANE).head.sequence == 2
    # another history, validly signed, replaces the branch: bundle 3 chains to a bundle 2
    # that is not the one verified before
    other = _fresh(log)
    log.mirror.repo.run("push", log.mirror.url, f":{layout.commands_ref(PLANE)}")
    for name in ("x", "y", "z"):
        issue(other, command(name))
    checked = _counting(monkeypatch)
    with pytest.raises(errors.RollbackError, match="rewritten: it no longer holds #2"):
        log.read(PLANE)
    assert checked == [1, 3]  # the new bundle alone fails to chain; then the whole log
    view = _fresh(log).read(PLANE)  # a reader that never saw the first history
    assert [c.name for b in view.bundles for c in b.commands] == ["x", "y", "z"]


def test_a_log_force_pushed_to_an_older_commit_is_a_rollback_to_who_saw_it(
    log: commands.CommandLog,
) -> None:
    issue(log, command("a"))
    old = log.mirror.fetch([layout.commands_ref(PLANE)])[layout.commands_ref(PLANE)]
    issue(log, command("b"))
    assert log.read(PLANE).head.sequence == 2
    log.mirror.repo.run("push", "--force", log.mirror.url, f"{old}:{layout.commands_ref(PLANE)}")
    with pytest.raises(errors.RollbackError, match="moved back to #1: #2 was issued before"):
        log.read(PLANE)
    view = _fresh(log).read(PLANE)  # to a reader that never saw #2, it is that commit
    assert view.commit == old
    assert [c.name for b in view.bundles for c in b.commands] == ["a"]
    assert view.issued == _fresh(log).read(PLANE).issued


def test_a_read_from_a_snapshot_is_pinned_to_it(log: commands.CommandLog) -> None:
    issue(log, command("a"))
    snapshot = log.mirror.fetch_all()
    issue(_fresh(log), command("b"))  # the log moves on after the snapshot
    assert [c.name for b in log.read(PLANE, refs=snapshot).bundles for c in b.commands] == ["a"]
    assert log.read(PLANE).head.sequence == 2  # without a snapshot: fetched


def test_an_append_from_a_stale_snapshot_decides_again_on_the_fetched_log(
    log: commands.CommandLog,
) -> None:
    issue(log, command("a"))
    snapshot = log.mirror.fetch_all()
    issue(_fresh(log), command("b"))
    seen: list[int] = []

    def decide(view: commands.LogView) -> list[signed.Command]:
        seen.append(view.head.sequence)
        return [command("c")]

    head = log.append(PLANE, decide, spec_commit="a" * 40, now=NOW, refs=snapshot)
    assert seen == [1, 2]  # the snapshot's log, refused at push; then the fetched one
    assert head is not None and head.sequence == 3
    names = [c.name for b in _fresh(log).read(PLANE).bundles for c in b.commands]
    assert names == ["a", "b", "c"]


def test_updates_of_many_logs_are_published_together_and_a_moved_one_is_refused(
    log: commands.CommandLog,
) -> None:
    planes = ["plane-a", "plane-b", "plane-c"]
    for plane in planes:
        issue(log, command("first"), plane=plane)
    snapshot = log.mirror.fetch_all()
    issue(_fresh(log), command("theirs"), plane="plane-b")  # after the snapshot
    updates = [
        log.prepare_append(
            plane, lambda _: [command("second")], spec_commit="a" * 40, now=NOW, refs=snapshot
        )
        for plane in planes
    ]
    assert all(u is not None and u.head is not None and u.head.sequence == 2 for u in updates)
    assert log.publish([u for u in updates if u]) == {"plane-b"}
    logs = {p: [c.name for b in _fresh(log).read(p).bundles for c in b.commands] for p in planes}
    assert logs == {
        "plane-a": ["first", "second"],
        "plane-b": ["first", "theirs"],  # ours was refused: prepared on a log that moved
        "plane-c": ["first", "second"],
    }


def test_a_log_just_appended_to_is_known_without_reading_it_back(
    log: commands.CommandLog, monkeypatch: pytest.MonkeyPatch
) -> None:
    issue(log, command("a"))
    issue(log, command("b"))
    snapshot = log.mirror.fetch_all()
    ran = record_git(monkeypatch)
    view = log.read(PLANE, refs=snapshot)
    assert ran == []  # bundle 2 and its timestamp were verified when they were pushed
    monkeypatch.undo()
    assert _verified(view) == _verified(_fresh(log).read(PLANE))


def test_a_hostile_git_object_on_the_log_is_malformed_not_unreachable(
    log: commands.CommandLog, reader: log_reader.CommandReader, tmp_path: Path
) -> None:
    """A tree listing one file twice passes a default bare repository but not git's fsck:
    the agent refuses it with a code it can report, instead of taking git for unreachable."""
    issue(log)
    reader.update(NOW)
    repo = gitrepo.GitRepo(tmp_path / "mallory")
    repo.path.mkdir()
    repo.run("init", "--quiet")
    (repo.path / "f").write_text("{}")
    entry = b"100644 timestamp.json\x00" + bytes.fromhex(
        repo.run("hash-object", "-w", "f").decode().strip()
    )
    (repo.path / "tree").write_bytes(entry + entry)
    tree = repo.run("hash-object", "-t", "tree", "-w", "--literally", "tree").decode().strip()
    commit = repo.run("commit-tree", tree, "-m", "hostile").decode().strip()
    repo.run("push", "--quiet", "--force", log.mirror.url, f"{commit}:{layout.commands_ref(PLANE)}")
    _refused(reader, errors.MalformedError)
    with pytest.raises(errors.MalformedError, match="git refused the objects"):
        log.read(PLANE)


def test_an_agent_clock_earlier_than_a_signed_time_is_clock_skew(
    log: commands.CommandLog, reader: log_reader.CommandReader
) -> None:
    """A clock set back 10 days would take a frozen log for a fresh one: the agent refuses
    to judge expiry with it, applies nothing, and its trust state stays as it was."""
    issue(log, now=NOW)
    ((head, _),) = reader.update(NOW)
    reader.mark_applied(head)
    issue(log, command("b"), now=NOW + timedelta(days=10))
    _refused(reader, errors.ClockSkewError, NOW)  # a bundle signed 10 days from "now"
    assert len(reader.update(NOW + timedelta(days=10))) == 1
    _refused(reader, errors.ClockSkewError, NOW + timedelta(days=1))  # set back after
    assert len(reader.update(NOW + timedelta(days=10, minutes=-9))) == 1  # within tolerance
