"""The reconciler against a real bare repository with two planes and test agents."""

from __future__ import annotations

import json
import subprocess
import threading
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

import pytest

from ledger import errors, gitrepo, layout
from reconciler import planning
from reconciler import reconcile as reconciling
from tests import clock
from tests.conftest import git, record_git
from tests.reconciler.conftest import NOW, TestAgent, World


def _log(world: World, plane: str) -> list[tuple[int, str, str, str]]:
    reconciler = reconciling.Reconciler(world.settings("inspector"))
    view = reconciler.log.read(plane)
    return [(b.sequence, c.action, c.kind, c.name) for b in view.bundles for c in b.commands]


def _commits(world: World, ref: str) -> int:
    bare = world.remote.removeprefix("file://")
    done = git(Path(bare), "rev-list", "--count", ref) if _has(world, ref) else "0"
    return int(done)


def _has(world: World, ref: str) -> bool:
    bare = Path(world.remote.removeprefix("file://"))
    return bool(git(bare, "for-each-ref", ref))


@pytest.mark.effect("DataPlane", "spec.agentKey.public")
def test_a_spec_commit_becomes_exactly_the_expected_commands(world: World) -> None:
    reconciler = reconciling.Reconciler(world.settings())
    first = reconciler.reconcile(NOW)
    assert first.problems == []
    assert sorted(first.issued) == ["local-dev"]  # prod: the model build is blocked by policy
    assert _log(world, "local-dev") == [
        (1, "build", "Model", "churn"),
        (1, "apply", "FeatureSet", "customer-activity"),
    ]
    assert not _has(world, layout.commands_ref("prod-eu"))

    again = reconciler.reconcile(NOW)
    assert again.issued == {}
    assert _commits(world, layout.commands_ref("local-dev")) == 1

    agent = TestAgent(world, "local-dev")
    assert [c.name for c in agent.sync()] == ["churn", "customer-activity"]
    third = reconciler.reconcile(NOW + timedelta(minutes=1))
    assert sorted(third.issued) == ["local-dev"]
    assert _log(world, "local-dev")[2:] == [
        (2, "apply", "Deployment", "churn-dev"),
        (2, "apply", "DAG", "churn-batch"),
    ]
    agent.sync(NOW + timedelta(minutes=2))
    last = reconciler.reconcile(NOW + timedelta(minutes=3))
    assert last.issued == {}
    assert last.plan is not None
    assert [p.actions for p in last.plan.planes if p.plane == "local-dev"] == [()]


def test_a_change_goes_to_the_planes_it_targets_only(world: World) -> None:
    reconciler = reconciling.Reconciler(world.settings())
    reconciler.reconcile(NOW)
    agent = TestAgent(world, "local-dev")
    agent.sync()
    reconciler.reconcile(NOW)
    agent.sync()

    def scale(work: Path) -> None:
        path = work / "deployments" / "churn-dev.yaml"
        path.write_text(path.read_text().replace("maxReplicas: 4", "maxReplicas: 6"))

    world.change("scale churn-dev", scale)
    cycle = reconciler.reconcile(NOW + timedelta(minutes=5))
    assert sorted(cycle.issued) == ["local-dev"]
    assert _log(world, "local-dev")[-1] == (3, "apply", "Deployment", "churn-dev")


def test_invalid_specs_issue_nothing(world: World) -> None:
    def break_it(work: Path) -> None:
        path = work / "models" / "churn.yaml"
        path.write_text(path.read_text().replace('version: "1.2.0"', "version: 1.2"))

    world.change("break", break_it)
    cycle = reconciling.Reconciler(world.settings()).reconcile(NOW)
    assert [p.file for p in cycle.problems] == ["models/churn.yaml"]
    assert cycle.issued == {}
    assert not _has(world, layout.commands_ref("local-dev"))


def test_two_reconcilers_at_once_never_fork_or_duplicate(world: World) -> None:
    reconcilers = [reconciling.Reconciler(world.settings(f"r{i}")) for i in range(2)]
    for reconciler in reconcilers:
        reconciler.reconcile(NOW)  # publish root and warm mirrors
    agent = TestAgent(world, "local-dev")
    agent.sync()
    results = []

    def run(reconciler: reconciling.Reconciler) -> None:
        results.append(reconciler.reconcile(NOW + timedelta(minutes=1)))

    threads = [threading.Thread(target=run, args=(r,)) for r in reconcilers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    entries = _log(world, "local-dev")
    assert [e[0] for e in entries] == [1, 1, 2, 2]
    assert len({e[2:] for e in entries}) == 4
    # the loser of the race decides again and finds nothing left to issue -- or, when both
    # signed in the same second, built the very same commit, which git accepts as a no-op
    assert 1 <= sum(1 for r in results if r.issued) <= 2


def test_gitplane_plan_reads_recorded_state_with_a_root(gitplane_bin: str, world: World) -> None:
    reconciling.Reconciler(world.settings()).reconcile(NOW)
    TestAgent(world, "local-dev").sync()
    base = [gitplane_bin, "plan", str(world.work), "-o", "json"]
    at = clock.env_at(NOW)  # the clock the logs were signed at
    empty = json.loads(
        subprocess.run(base, capture_output=True, text=True, check=True, env=at).stdout
    )
    recorded = json.loads(
        subprocess.run(
            [*base, "--root", str(world.keys_dir / "root.json"), "--state-repo", world.remote],
            capture_output=True,
            text=True,
            check=True,
            env=at,
        ).stdout
    )

    def local(body: dict[str, object]) -> list[tuple[str, str]]:
        planes = body["planes"]
        assert isinstance(planes, list)
        return [
            (a["op"], a["name"]) for p in planes if p["plane"] == "local-dev" for a in p["actions"]
        ]

    assert ("build", "churn") in local(empty)  # as if nothing had happened
    assert local(recorded) == [("create", "churn-dev"), ("create", "churn-batch")]

    frozen = subprocess.run(  # the reconciler stopped: a PR's plan still reads recorded state
        [*base, "--root", str(world.keys_dir / "root.json"), "--state-repo", world.remote],
        capture_output=True,
        text=True,
        check=True,
        env=clock.env_at(NOW + timedelta(days=10)),
    )
    body = json.loads(frozen.stdout)
    assert local(body) == local(recorded)
    flags = {p["plane"]: p["flag"] for p in body["planes"]}
    assert flags["local-dev"] == "timestamp expired 3 days ago: is the reconciler running?"


def test_an_idle_cycle_asks_the_remote_once_for_every_log(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    reconciler = reconciling.Reconciler(world.settings())
    reconciler.reconcile(NOW)
    TestAgent(world, "local-dev").sync()
    reconciler.reconcile(NOW)  # issues what the report unblocked
    TestAgent(world, "local-dev").sync()
    reconciler.reconcile(NOW + timedelta(minutes=1))  # re-signs the timestamp: report seen
    reconciler.reconcile(NOW + timedelta(minutes=2))  # reads that timestamp
    runs = record_git(monkeypatch)
    idle = reconciler.reconcile(NOW + timedelta(minutes=3))
    ran = [args[0] for args in runs]
    assert idle.issued == {}
    # one ls-remote for the spec branch, one for every plane's logs; nothing read again
    assert ran.count("ls-remote") == 2
    assert "fetch" not in ran and "cat-file" not in ran


def test_a_cycle_pushes_the_commands_of_every_plane_at_once(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    world.change("a second dev plane", _another_dev_plane)
    runs = record_git(monkeypatch)
    cycle = reconciling.Reconciler(world.settings()).reconcile(NOW)
    pushes = [
        [a.split(":", 1)[1] for a in args if "gitplane/commands/" in a]
        for args in runs
        if args[0] == "push"
    ]
    assert sorted(cycle.issued) == ["local-dev", "local-dev-2"]
    assert [sorted(p) for p in pushes if p] == [
        [layout.commands_ref("local-dev"), layout.commands_ref("local-dev-2")]
    ]
    assert _log(world, "local-dev-2") == _log(world, "local-dev")


def _another_dev_plane(work: Path) -> None:
    text = (work / "planes" / "local-dev.yaml").read_text()
    text = text.replace("name: local-dev", "name: local-dev-2")
    (work / "planes" / "local-dev-2.yaml").write_text(text)


def test_a_plane_whose_log_does_not_verify_is_flagged_and_the_others_go_on(
    world: World,
) -> None:
    world.change("a second dev plane", _another_dev_plane)
    reconciler = reconciling.Reconciler(world.settings())
    assert sorted(reconciler.reconcile(NOW).issued) == ["local-dev", "local-dev-2"]
    mirror = gitrepo.Mirror.open(world.root / "attacker.git", world.remote)
    ref = layout.commands_ref("local-dev")
    tip = mirror.fetch([ref])[ref]
    who = gitrepo.Identity("attacker", "attacker@example.com")
    mirror.push(mirror.commit(tip, {layout.TIMESTAMP: b"not json"}, message="x", who=who), ref)
    tampered = mirror.fetch([ref])[ref]

    def reschedule(work: Path) -> None:
        path = work / "features" / "customer-activity.yaml"
        path.write_text(path.read_text().replace('cron: "0 */4 * * *"', 'cron: "0 */6 * * *"'))

    world.change("compute customer-activity every 6 hours", reschedule)  # for both planes
    request = planning.PlanRequest(world.work, root=world.keys_dir / "root.json")
    planned = {p.plane: p for p in planning.make_plan(request, NOW).planes}
    assert ("update", "customer-activity") in [
        (a.op, a.name) for a in planned["local-dev-2"].actions
    ]
    assert planned["local-dev"].actions == ()  # as the reconciler: nothing issued to it
    assert (planned["local-dev"].flag or "").startswith("command log refused: malformed:")
    cycle = reconciler.reconcile(NOW + timedelta(minutes=1))
    assert list(cycle.issued) == ["local-dev-2"]
    assert cycle.flags["local-dev"].startswith("command log refused: malformed:")
    assert mirror.fetch([ref])[ref] == tampered  # nothing was written on the refused log


def test_a_reconciler_stopped_past_the_timestamps_life_re_signs_them(world: World) -> None:
    """A reconciler down for a month (a holiday, a broken deploy) finds every timestamp it
    signed expired. They are its own to re-sign: it flags them for that cycle, refreshes
    them, and issues as before; agents, which refused the frozen log, follow again."""
    reconciling.Reconciler(world.settings()).reconcile(NOW)
    agent = TestAgent(world, "local-dev")
    agent.sync()
    with pytest.raises(errors.ExpiredError):
        agent.sync(NOW + timedelta(days=30))  # the agent refuses a frozen log

    later = NOW + timedelta(days=30)
    cycle = reconciling.Reconciler(world.settings("restarted")).reconcile(later)
    assert cycle.flags["local-dev"].startswith("timestamp expired 23 days ago")
    assert cycle.issued["local-dev"].sequence == 2  # the deployment, now the model is ready
    assert [c.name for c in agent.sync(later)] == ["churn-dev", "churn-batch"]
    again = reconciling.Reconciler(world.settings("restarted")).reconcile(later)
    assert again.flags == {}


def test_a_root_near_or_past_its_expiry_is_an_alarm(world: World) -> None:
    """The root expires 365 days after the keys were made (NOW - 1 day): a month before, the
    reconciler says so; after, it says every agent refuses every log."""
    reconciler = reconciling.Reconciler(world.settings())
    assert reconciler.reconcile(NOW).alarms == []
    soon = reconciler.reconcile(NOW + timedelta(days=340)).alarms
    assert soon == ["root version 1 expires at 2027-11-23T12:00:00Z: rotate it before then"]
    late = reconciler.reconcile(NOW + timedelta(days=370)).alarms
    assert len(late) == 1 and late[0].startswith("root version 1 expired at 2027-11-23")


@pytest.mark.effect("DataPlane", "spec.statusStaleAfter")
def test_a_plane_is_stale_when_a_bundle_waits_longer_than_its_status_stale_after(
    world: World,
) -> None:
    """local-dev waits 5 minutes (``statusStaleAfter: 5m``), its copy an hour."""

    def a_patient_plane(work: Path) -> None:
        _another_dev_plane(work)
        path = work / "planes" / "local-dev-2.yaml"
        path.write_text(path.read_text().replace("statusStaleAfter: 5m", "statusStaleAfter: 1h"))

    world.change("a second dev plane, patient", a_patient_plane)
    reconciler = reconciling.Reconciler(world.settings())
    assert sorted(reconciler.reconcile(NOW).issued) == ["local-dev", "local-dev-2"]
    cycle = reconciler.reconcile(NOW + timedelta(minutes=30))  # no agent applied anything
    assert cycle.flags == {
        "local-dev": "stale: bundle 1 issued 2026-11-24T12:00:00Z is not applied yet"
    }


@pytest.mark.effect("DataPlane", "spec.sync.selfHeal")
def test_the_planes_self_heal_setting_is_signed_into_its_bundles(world: World) -> None:
    """The agent heals drift or only reports it by the bundle it applies (the runtimes'
    tests show each); the setting comes from the plane's spec."""

    def report_only(work: Path) -> None:
        path = work / "planes" / "local-dev.yaml"
        path.write_text(path.read_text().replace("selfHeal: true", "selfHeal: false"))

    reconciler = reconciling.Reconciler(world.settings())
    reconciler.reconcile(NOW)
    world.change("report drift on local-dev, do not heal it", report_only)
    agent = TestAgent(world, "local-dev")
    agent.sync()
    reconciler.reconcile(NOW + timedelta(minutes=1))
    view = reconciler.log.read("local-dev")
    assert [(b.sequence, b.self_heal) for b in view.bundles] == [(1, True), (2, False)]


@pytest.mark.effect("DataPlane", "spec.sync.selfHeal")
def test_a_change_of_self_heal_alone_reaches_the_agent_at_once(world: World) -> None:
    """Turning self-healing off to change something by hand must not wait for the next
    command: the reconciler signs a bundle of no commands with the new setting, the agent
    takes it, and nothing else is issued."""

    def self_heal(on: bool) -> Callable[[Path], None]:
        def edit(work: Path) -> None:
            path = work / "planes" / "local-dev.yaml"
            text = path.read_text()
            path.write_text(
                text.replace(f"selfHeal: {str(not on).lower()}", f"selfHeal: {str(on).lower()}")
            )

        return edit

    reconciler = reconciling.Reconciler(world.settings())
    reconciler.reconcile(NOW)
    before = reconciler.log.read("local-dev")
    world.change("hands off local-dev", self_heal(False))
    reconciler.reconcile(NOW + timedelta(minutes=1))
    view = reconciler.log.read("local-dev")
    assert view.head.sequence == before.head.sequence + 1
    assert (view.bundles[-1].self_heal, view.bundles[-1].commands) == (False, [])
    assert reconciler.reconcile(NOW + timedelta(minutes=2)).issued == {}  # said once
    world.change("heal local-dev again", self_heal(True))
    reconciler.reconcile(NOW + timedelta(minutes=3))
    assert reconciler.log.read("local-dev").bundles[-1].self_heal is True
