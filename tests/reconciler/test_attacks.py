"""Attacks by anyone with push access, against the reconciler and the read-only views.

Each test pushes what an attacker can push (raw git on the shared remote), runs the real
reconciler or the real CLI, and asserts the typed code, that nothing was issued, and that
the trust the reconciler keeps did not move back.
"""

from __future__ import annotations

import json
import re
import subprocess
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from ledger import envelope, errors, gitrepo, keys, layout, verify
from reconciler import reconcile as reconciling
from schemas import signed
from tests import clock
from tests.conftest import git
from tests.reconciler.conftest import NOW, TestAgent, World


def _tip(world: World, ref: str) -> str | None:
    bare = Path(world.remote.removeprefix("file://"))
    done = subprocess.run(
        ["git", "-C", str(bare), "rev-parse", "--verify", "-q", ref],
        capture_output=True,
        text=True,
        check=False,
    )
    return done.stdout.strip() or None


def _force(world: World, ref: str, commit: str) -> None:
    """What a pusher can do: move a branch of the shared remote anywhere."""
    bare = Path(world.remote.removeprefix("file://"))
    git(bare, "update-ref", ref, commit)


def _retune(replicas: int):  # type: ignore[no-untyped-def]
    def edit(work: Path) -> None:
        path = work / "deployments" / "churn-dev.yaml"
        path.write_text(re.sub(r"maxReplicas: \d+", f"maxReplicas: {replicas}", path.read_text()))

    return edit


def _three_bundles_applied(world: World) -> tuple[reconciling.Reconciler, TestAgent, str]:
    """local-dev applied #1 (the build), #2 (what waited for it) and #3 (a change); returns
    the reconciler, the agent and the commit of the log when #1 was its head."""
    reconciler = reconciling.Reconciler(world.settings())
    agent = TestAgent(world, "local-dev")
    reconciler.reconcile(NOW)
    first = _tip(world, layout.commands_ref("local-dev"))
    assert first is not None
    agent.sync(NOW + timedelta(minutes=1))
    reconciler.reconcile(NOW + timedelta(minutes=2))
    agent.sync(NOW + timedelta(minutes=3))
    world.change("six replicas", _retune(6), at=NOW + timedelta(minutes=4))
    assert reconciler.reconcile(NOW + timedelta(minutes=5)).issued["local-dev"].sequence == 3
    agent.sync(NOW + timedelta(minutes=6))
    return reconciler, agent, first


def _alarm(agent: TestAgent, now: object) -> None:
    """The agent meets the rolled-back log, refuses it and says so in signed status, as the
    real agent does."""
    with pytest.raises(errors.RollbackError) as refused:
        agent.reader.update(now)  # type: ignore[arg-type]
    agent.writer.write(
        applied=agent.applied,
        timestamp_version=0,
        resources=sorted(agent.resources.values(), key=lambda r: (r.kind, r.name)),
        error=signed.StatusError(code="rollback", message=str(refused.value)),
        now=now,  # type: ignore[arg-type]
    )


def test_a_rolled_back_log_is_refused_by_the_reconciler_and_nothing_is_issued(
    world: World, gitplane_bin: str
) -> None:
    reconciler, agent, first = _three_bundles_applied(world)
    ref = layout.commands_ref("local-dev")
    backup = _tip(world, ref)  # what an operator's backup of the remote holds
    assert backup is not None
    _force(world, ref, first)  # back to when #1 was the head
    _alarm(agent, NOW + timedelta(minutes=7))
    world.change("eight replicas", _retune(8), at=NOW + timedelta(minutes=8))

    # the reconciler that issued #3 remembers it (its watermarks)
    cycle = reconciler.reconcile(NOW + timedelta(minutes=9))
    assert "local-dev" not in cycle.issued
    assert cycle.flags["local-dev"].startswith("command log refused: rollback: ")
    assert _tip(world, ref) == first

    # a reconciler installed afresh (no watermarks) sees the agent's signed word for #3
    done = subprocess.run(
        [gitplane_bin, "reconcile", "--once", "--repo", world.remote, "--keys",
         str(world.keys_dir), "--work-dir", str(world.root / "fresh"), "--output", "json"],
        capture_output=True, text=True, check=False, env=clock.env_at(NOW + timedelta(minutes=10)),
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    body = json.loads(done.stdout)
    assert "local-dev" not in body["issued"]
    flag = body["flags"]["local-dev"]
    assert flag.startswith("command log refused: rollback: status signed by the plane's agent")
    assert "bundle #3" in flag and "the agent reports rollback:" in flag
    assert _tip(world, ref) == first  # nothing appended: no second, different #2

    # status shows the same refusal, with the agent's alarm, not "unknown-command"
    status = subprocess.run(
        [gitplane_bin, "status", world.remote.removeprefix("file://"), "--root",
         str(world.keys_dir / "root.json"), "--output", "json"],
        capture_output=True, text=True, check=False, env=clock.env_at(NOW + timedelta(minutes=10)),
    )  # fmt: skip
    local = next(p for p in json.loads(status.stdout)["planes"] if p["name"] == "local-dev")
    assert local["flags"][0].startswith("command log refused: rollback:")
    assert "unknown-command" not in json.dumps(local["flags"])

    # recovery: the real history is pushed back (from a backup): issuing resumes at #4
    _force(world, ref, backup)
    cycle = reconciler.reconcile(NOW + timedelta(minutes=11))
    assert cycle.issued["local-dev"].sequence == 4


def _hostile_report(world: World, plane: str, edit: Callable[[dict[str, Any]], None]) -> None:
    """A report signed with ``plane``'s real agent key (a compromised agent), edited first."""
    agent = TestAgent(world, plane)
    agent.sync()
    ref = layout.status_ref(plane)
    mirror = agent.writer.mirror
    tip = mirror.fetch([ref])[ref]
    shown = git(mirror.repo.path, "show", f"{tip}:{layout.STATUS}")
    current = json.loads(envelope.peek(shown.encode(), max_bytes=1 << 20))
    edit(current)
    data = envelope.sign(
        verify.PAYLOAD_TYPES["status"], envelope.dumps(current), [world.agent_keys[plane]]
    )
    who = gitrepo.Identity("mallory", "mallory@example.invalid")
    mirror.push(mirror.commit(tip, {layout.STATUS: data}, message="status", who=who), ref)


def _status_cli(gitplane_bin: str, world: World, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [gitplane_bin, "status", world.remote.removeprefix("file://"), "--root",
         str(world.keys_dir / "root.json"), *args],
        capture_output=True, text=True, check=False, env=clock.env_at(NOW + timedelta(minutes=5)),
    )  # fmt: skip


def _bump(report: dict[str, Any], **changes: Any) -> None:
    report.update(counter=report["counter"] + 1, **changes)


@pytest.mark.parametrize(
    ("edit", "code"),
    [
        pytest.param(lambda r: _bump(r, time="2026-02-30T00:00:00Z"), "malformed", id="feb-30"),
        pytest.param(
            lambda r: _bump(r, error={"code": "x", "message": "ok\nprod-eu (kubernetes): reported"
                                      " 1s ago, applied #9 of #9\x1b[2K\r"}),
            None,
            id="forged-line",
        ),
    ],
)  # fmt: skip
def test_a_compromised_agent_cannot_break_or_spoof_another_plane(
    world: World,
    gitplane_bin: str,
    edit: Callable[[dict[str, Any]], None],
    code: str | None,
) -> None:
    reconciling.Reconciler(world.settings()).reconcile(NOW)
    _hostile_report(world, "local-dev", edit)
    for args in ((), ("--plane", "prod-eu"), ("--output", "json")):
        done = _status_cli(gitplane_bin, world, *args)
        refused = "--plane" not in args  # local-dev shown: refused, or reporting an attack
        assert done.returncode == (1 if refused else 0), done.stderr
        assert ("error: local-dev: " in done.stderr) == refused
        assert "Traceback" not in done.stderr
        assert "\x1b" not in done.stdout and "\r" not in done.stdout
    text = _status_cli(gitplane_bin, world).stdout
    assert [line for line in text.splitlines() if line.startswith("prod-eu")] == [
        "prod-eu (kubernetes): never reported, applied #0 of #0"
    ]  # nothing local-dev's agent signed is a line of another plane
    flags = _status_cli(gitplane_bin, world, "--output", "json").stdout
    local = next(p for p in json.loads(flags)["planes"] if p["name"] == "local-dev")
    if code is not None:
        assert local["flags"][0].startswith(f"status refused: {code}:")
    else:
        assert "\\nprod-eu (kubernetes)" in text  # shown, escaped, on local-dev's own line
    cycle = reconciling.Reconciler(world.settings("again")).reconcile(NOW + timedelta(minutes=6))
    assert cycle.commit is not None  # the reconciler goes on


def _push_duplicate_entries(world: World, ref: str) -> str:
    """A commit whose tree lists status.json twice: a default bare repository takes it, git's
    fsck refuses to fetch it."""
    work = world.root / "mallory"
    if not work.exists():
        git(world.root, "init", "-q", str(work))
    (work / "status.json").write_text("{}")
    blob = git(work, "hash-object", "-w", "status.json")
    entry = b"100644 status.json\x00" + bytes.fromhex(blob)
    raw = work / "tree.bin"
    raw.write_bytes(entry + entry)
    tree = git(work, "hash-object", "-t", "tree", "-w", "--literally", str(raw))
    commit = git(work, "commit-tree", tree, "-m", "hostile")
    git(work, "push", "-q", "-f", world.remote, f"{commit}:{ref}")
    return commit


@pytest.mark.parametrize("log", ["status", "commands"])
def test_a_hostile_git_object_in_one_planes_branch_fails_only_that_plane(
    world: World, gitplane_bin: str, log: str
) -> None:
    reconciler = reconciling.Reconciler(world.settings())
    reconciler.reconcile(NOW)
    TestAgent(world, "local-dev").sync()
    ref = layout.status_ref("local-dev") if log == "status" else layout.commands_ref("local-dev")
    hostile = _push_duplicate_entries(world, ref)

    world.change("a change for every plane", _retune(6), at=NOW + timedelta(minutes=1))
    cycle = reconciler.reconcile(NOW + timedelta(minutes=2))
    assert cycle.flags["local-dev"].startswith(
        "command log refused: malformed: git refused" if log == "commands"
        else "status refused: malformed: git refused"
    )  # fmt: skip
    assert "prod-eu" not in cycle.flags or "malformed" not in cycle.flags["prod-eu"]
    assert _tip(world, ref) == hostile  # the reconciler wrote nothing over it
    for args in (("--plane", "prod-eu"), ("--output", "json")):
        done = _status_cli(gitplane_bin, world, *args)
        assert done.returncode == (0 if "--plane" in args else 1), done.stderr  # refused: 1
    body = json.loads(_status_cli(gitplane_bin, world, "--output", "json").stdout)
    local = next(p for p in body["planes"] if p["name"] == "local-dev")
    assert "malformed: git refused" in local["flags"][0]
    audited = subprocess.run(
        [gitplane_bin, "audit", "deployment/churn-dev", str(world.work), "--root",
         str(world.keys_dir / "root.json"), "--state-repo", world.remote, "--output", "json"],
        capture_output=True, text=True, check=False, env=clock.env_at(NOW + timedelta(minutes=5)),
    )  # fmt: skip
    assert audited.returncode == 0, audited.stderr
    report = json.loads(audited.stdout)
    assert report["verified"] is False  # not "every signature verified, no gaps"
    gaps = [e for e in report["events"] if e["type"] == "gap"]
    assert [(g["plane"], g["error"]["code"]) for g in gaps] == [("local-dev", "malformed")]


def test_a_bad_root_file_is_repaired_by_the_reconciler_not_a_fleet_wide_stop(world: World) -> None:
    """A root/2.json nobody with the root keys signed: agents and the reconciler refuse to
    follow it, so until it is gone no plane gets commands. The reconciler, which holds the
    real chain, puts the branch back and reports it."""
    path = "root/2.json"
    reconciler = reconciling.Reconciler(world.settings())
    reconciler.reconcile(NOW)
    agent = TestAgent(world, "local-dev")
    agent.sync()
    mirror = gitrepo.Mirror.open(world.root / "mallory.git", world.remote)
    tip = mirror.fetch([layout.ROOT_REF])[layout.ROOT_REF]
    who = gitrepo.Identity("mallory", "mallory@example.invalid")
    mirror.push(
        mirror.commit(tip, {path: b'{"not": "a root"}'}, message="x", who=who), layout.ROOT_REF
    )

    world.change("six replicas", _retune(6), at=NOW + timedelta(minutes=1))
    cycle = reconciler.reconcile(NOW + timedelta(minutes=2))
    assert len(cycle.alarms) == 1 and f"({path})" in cycle.alarms[0]
    assert cycle.issued["local-dev"].sequence == 2  # the fleet goes on
    repaired = mirror.fetch([layout.ROOT_REF])[layout.ROOT_REF]
    assert mirror.list_paths(repaired) == ["root/1.json"]
    assert "churn-dev" in [c.name for c in agent.sync(NOW + timedelta(minutes=3))]
    assert reconciler.reconcile(NOW + timedelta(minutes=4)).alarms == []


def _replace_timestamp(world: World, data: bytes) -> None:
    mirror = gitrepo.Mirror.open(world.root / "mallory.git", world.remote)
    ref = layout.commands_ref("local-dev")
    tip = mirror.fetch([ref])[ref]
    who = gitrepo.Identity("mallory", "mallory@example.invalid")
    mirror.push(mirror.commit(tip, {layout.TIMESTAMP: data}, message="x", who=who), ref)


def _bundle_of(world: World) -> bytes:
    """The log's own bundle 1: validly signed, of another role."""
    bare = Path(world.remote.removeprefix("file://"))
    ref = layout.commands_ref("local-dev")
    return git(bare, "show", f"{ref}:{layout.bundle_path(1)}").encode() + b"\n"


@pytest.mark.parametrize(
    ("forge", "code"),
    [
        pytest.param(
            lambda world: envelope.sign(
                verify.PAYLOAD_TYPES["timestamp"],
                envelope.dumps({"\n! forged line\x1b[2K\r": 1}),
                [keys.FileSigner.generate()],
            ),
            "bad-signature",
            id="unsigned-hostile-key-names",
        ),
        pytest.param(
            _bundle_of,
            "wrong-type",
            id="a-bundle-as-the-timestamp",
        ),
    ],
)
def test_a_timestamp_is_verified_before_it_is_parsed(
    world: World, gitplane_bin: str, forge: Callable[[World], bytes], code: str
) -> None:
    """Nothing of an unverified timestamp reaches a parser, so nothing an attacker wrote
    reaches an error message, and the codes are the agent's."""
    reconciler = reconciling.Reconciler(world.settings())
    reconciler.reconcile(NOW)
    _replace_timestamp(world, forge(world))
    cycle = reconciler.reconcile(NOW + timedelta(minutes=1))
    flag = cycle.flags["local-dev"]
    assert flag.startswith(f"command log refused: {code}: "), flag
    assert "forged" not in flag and "\x1b" not in flag and "\n" not in flag
    agent = TestAgent(world, "local-dev")
    with pytest.raises(errors.VerificationError) as refused:
        agent.reader.update(NOW + timedelta(minutes=1))
    assert refused.value.code == code  # the agent says the same
    text = _status_cli(gitplane_bin, world).stdout
    assert "forged" not in text and "\x1b" not in text


def test_a_hostile_git_object_on_the_root_branch_is_replaced_by_the_reconciler(
    world: World,
) -> None:
    """Every agent refuses a root branch git will not fetch (malformed); the reconciler,
    which holds the chain, replaces it within a cycle and reports it."""
    reconciler = reconciling.Reconciler(world.settings())
    reconciler.reconcile(NOW)
    agent = TestAgent(world, "local-dev")
    agent.sync()
    _push_duplicate_entries(world, layout.ROOT_REF)
    with pytest.raises(errors.MalformedError, match="git refused the objects"):
        agent.reader.update(NOW + timedelta(minutes=1))
    world.change("six replicas", _retune(6), at=NOW + timedelta(minutes=1))
    cycle = reconciler.reconcile(NOW + timedelta(minutes=2))
    assert len(cycle.alarms) == 1 and "objects git refused" in cycle.alarms[0]
    assert cycle.issued["local-dev"].sequence == 2
    assert "churn-dev" in [c.name for c in agent.sync(NOW + timedelta(minutes=3))]


def _reconcile_cli(gitplane_bin: str, world: World) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [gitplane_bin, "reconcile", "--once", "--repo", world.remote, "--keys",
         str(world.keys_dir), "--work-dir", str(world.root / "cli")],
        capture_output=True, text=True, check=False, env=clock.env_at(NOW),
    )  # fmt: skip


@pytest.mark.parametrize("role", ["commands", "timestamp"])
def test_a_reconciler_whose_keys_its_root_does_not_name_refuses_to_start(
    world: World, gitplane_bin: str, role: str
) -> None:
    """A key mixed up with another install's used to sign ``issued bundle 2`` and exit 0;
    every agent then refused the plane's log for good (``bad-signature``). Now nothing is
    signed or pushed: one line names the key and the root, exit 2."""
    path = world.keys_dir / "reconciler" / f"{role}.key"
    path.unlink()
    keys.FileSigner.generate().save(path)
    before = git(Path(world.remote.removeprefix("file://")), "for-each-ref")
    done = _reconcile_cli(gitplane_bin, world)
    assert done.returncode == 2, done.stdout + done.stderr
    [line] = done.stderr.strip().splitlines()
    assert line.startswith(f"error: {path} is not a {role} key of root version 1 (")
    assert f"rotate the role (`gitplane keys rotate --role {role}`" in line
    assert git(Path(world.remote.removeprefix("file://")), "for-each-ref") == before


@pytest.mark.parametrize(
    ("damage", "says"),
    [
        (lambda path: path.unlink(), "cannot read the private key: No such file or directory"),
        (lambda path: path.write_text("not a key\n"), "not an unencrypted PEM private key"),
    ],
    ids=["missing", "not-pem"],
)
def test_a_reconciler_key_file_that_is_missing_or_not_a_key_is_named(
    world: World, gitplane_bin: str, damage: Callable[[Path], None], says: str
) -> None:
    path = world.keys_dir / "reconciler" / "commands.key"
    damage(path)
    done = _reconcile_cli(gitplane_bin, world)
    assert done.returncode != 0 and "Traceback" not in done.stderr, done.stderr
    assert done.stderr.strip().splitlines() == [f"error: {path}: {says}"]
