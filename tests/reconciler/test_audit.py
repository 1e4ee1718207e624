"""``gitplane audit``: a resource's whole life from git alone, every signature verified.

End to end against a real bare remote, the real reconciler and a test agent that signs
with the plane's real key; then the pure core (``reconciler.audit.build``) against a
simulator of one plane's logs, named as such: signed bundles and reports built here.
"""

from __future__ import annotations

import base64
import json
import os
import re
import subprocess
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from ledger import commands, envelope, errors, gitrepo, keyring, keys, layout, roots, verify
from reconciler import reconcile as reconciling
from reconciler.audit import model as audit
from reconciler.audit import read as audit_read
from reconciler.audit import view as audit_view
from schemas import signed
from tests import clock
from tests.conftest import git
from tests.reconciler.conftest import NOW, TestAgent, World

# ---------------------------------------------------------------------------------------
# End to end: pull requests merged with approvals, reconciled, applied, audited, tampered.

ANN = ("Ann Author", "ann@example.com")
EVE = ("Eve Editor", "eve@example.com")
BOB = ("Bob Merger", "bob@example.com")
APPROVERS = ("Carol Checker <carol@example.com>", "Dan Deployer <dan@example.com>")


def _git_as(cwd: Path, author: tuple[str, str], when: datetime, *args: str) -> str:
    """git with a given author and committer identity and date."""
    stamp = when.strftime("%Y-%m-%dT%H:%M:%S+00:00")
    env = {
        **os.environ,
        "GIT_AUTHOR_NAME": author[0],
        "GIT_AUTHOR_EMAIL": author[1],
        "GIT_COMMITTER_NAME": author[0],
        "GIT_COMMITTER_EMAIL": author[1],
        "GIT_AUTHOR_DATE": stamp,
        "GIT_COMMITTER_DATE": stamp,
    }
    done = subprocess.run(
        ["git", *args], cwd=cwd, env=env, capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, f"git {' '.join(args)}: {done.stderr}"
    return done.stdout.strip()


def _scale(replicas: int) -> Callable[[Path], str]:
    def edit(work: Path) -> str:
        path = work / "deployments" / "churn-dev.yaml"
        path.write_text(re.sub(r"maxReplicas: \d+", f"maxReplicas: {replicas}", path.read_text()))
        return f"Scale churn-dev to {replicas}"

    return edit


def _remove(work: Path) -> str:
    git(work, "rm", "-q", "deployments/churn-dev.yaml")
    return "Retire churn-dev"


def _pull_request(
    world: World, number: int, author: tuple[str, str], edit: Callable[[Path], str], at: datetime
) -> tuple[str, str]:
    """A PR by ``author``, merged --no-ff by Bob five minutes later with two approvals.

    Returns the PR's commit and the merge commit."""
    work, branch = world.work, f"pr-{number}"
    git(work, "checkout", "-q", "-b", branch)
    subject = edit(work)
    _git_as(work, author, at, "commit", "-q", "-am", subject)
    commit = git(work, "rev-parse", "HEAD")
    git(work, "checkout", "-q", "main")
    trailers = "\n".join(f"Approved-by: {a}" for a in APPROVERS)
    message = f"Merge pull request #{number} from {branch}\n\n{trailers}\n"
    _git_as(work, BOB, at + timedelta(minutes=5), "merge", "-q", "--no-ff", "-m", message, branch)
    git(work, "push", "-q", "origin", "main")
    return commit, git(work, "rev-parse", "HEAD")


@dataclass
class Story:
    """Two pull requests to churn-dev, each reconciled and applied on local-dev."""

    initial: str
    first: tuple[str, str]
    second: tuple[str, str]
    reconciler: reconciling.Reconciler
    agent: TestAgent


def _story(world: World) -> Story:
    initial = git(world.work, "rev-parse", "HEAD")
    reconciler = reconciling.Reconciler(world.settings())
    agent = TestAgent(world, "local-dev")
    first = _pull_request(world, 1, ANN, _scale(6), NOW - timedelta(minutes=40))
    reconciler.reconcile(NOW)  # builds the model first: churn-dev waits for it
    agent.sync(NOW + timedelta(minutes=1))
    reconciler.reconcile(NOW + timedelta(minutes=2))
    agent.sync(NOW + timedelta(minutes=3))
    second = _pull_request(world, 2, EVE, _scale(8), NOW + timedelta(minutes=10))
    reconciler.reconcile(NOW + timedelta(minutes=16))
    agent.sync(NOW + timedelta(minutes=17))
    return Story(initial, first, second, reconciler, agent)


def _run(
    gitplane_bin: str, world: World, *args: str, at: datetime = NOW
) -> subprocess.CompletedProcess[str]:
    root = str(world.keys_dir / "root.json")
    command = [gitplane_bin, "audit", *args, "--root", root, "--state-repo", world.remote]
    return subprocess.run(
        command, capture_output=True, text=True, check=False, env=clock.env_at(at)
    )


def _audit_json(gitplane_bin: str, world: World, *args: str, at: datetime = NOW) -> dict[str, Any]:
    done = _run(gitplane_bin, world, *args, "--output", "json", at=at)
    assert done.returncode == 0, done.stderr
    body: dict[str, Any] = json.loads(done.stdout)
    return body


def _step(event: dict[str, Any]) -> tuple[object, ...]:
    if event["type"] == "spec":
        return ("spec", event["commit"], event["merge"] and event["merge"]["commit"])
    if event["type"] == "command":
        return ("command", event["plane"], event["sequence"], event["action"], event["change"])
    if event["type"] == "status":
        return ("status", event["plane"], event["counter"], event["phase"], event["verified"])
    return ("gap", event["plane"], event["error"]["code"])


def test_audit_shows_every_step_in_order_verified(world: World, gitplane_bin: str) -> None:
    story = _story(world)
    body = _audit_json(gitplane_bin, world, "deployment/churn-dev", str(world.work))
    years_on = NOW + timedelta(days=400)  # every timestamp long expired: history stands
    assert (
        _audit_json(gitplane_bin, world, "deployment/churn-dev", str(world.work), at=years_on)
        == body
    )
    events = [e for e in body["events"] if e.get("commit") != story.initial]
    first, second = story.first[0], story.second[0]
    assert [_step(e) for e in events] == [
        ("spec", first, story.first[1]),
        ("command", "local-dev", 2, "apply", first),
        ("status", "local-dev", 2, "Ready", True),
        ("spec", second, story.second[1]),
        ("command", "local-dev", 3, "apply", second),
        ("status", "local-dev", 3, "Ready", True),
    ]
    assert body["apiVersion"] == "gitplane.dev/audit/v1"
    assert body["verified"] is True
    assert body["files"] == ["deployments/churn-dev.yaml"]
    spec = events[0]
    assert (spec["author"]["name"], spec["merge"]["committer"]["name"]) == (ANN[0], BOB[0])
    assert spec["approvedBy"] == list(APPROVERS)
    assert spec["time"] == verify.format_time(NOW - timedelta(minutes=35))
    commands_key = keyring.load_reconciler_signers(world.keys_dir)[0].public_key.keyid
    assert events[1]["keyids"] == [commands_key]
    assert events[1]["specCommit"] == story.first[1]
    assert events[2]["keyids"] == [world.agent_keys["local-dev"].public_key.keyid]
    assert events[2]["digest"] == events[1]["digest"] != events[5]["digest"]
    assert body["live"] == [
        {
            "plane": "local-dev",
            "phase": "Ready",
            "digest": events[4]["digest"],
            "since": verify.format_time(NOW + timedelta(minutes=17)),
            "counter": 3,
            "sequence": 3,
            "specCommit": story.second[1],
            "change": second,
        },
        _never("prod-eu"),
    ]


def _never(plane: str) -> dict[str, object]:
    fields = ("phase", "digest", "since", "counter", "sequence", "specCommit", "change")
    return {"plane": plane, **dict.fromkeys(fields)}


def _forge_status(
    world: World, monkeypatch: pytest.MonkeyPatch, at: datetime, forge: Callable[[bytes], bytes]
) -> str:
    """An attacker's commit on local-dev's status branch: ``forge`` of the current report."""
    mirror = gitrepo.Mirror.open(world.root / "attacker.git", world.remote)
    ref = layout.status_ref("local-dev")
    tip = mirror.fetch([ref])[ref]
    current = mirror.read(tip, [layout.STATUS], max_bytes=1 << 20)[layout.STATUS]
    who = gitrepo.Identity("Mallory", "mallory@example.invalid")
    with monkeypatch.context() as patch:
        patch.setenv("GIT_COMMITTER_DATE", at.isoformat())
        commit = mirror.commit(tip, {layout.STATUS: forge(current)}, message="status", who=who)
    mirror.push(commit, ref)
    return commit


def _failed(data: bytes) -> bytes:
    """The payload of a report, edited to say churn-dev failed."""
    report = envelope.loads(envelope.peek(data, max_bytes=1 << 20))
    for resource in report["resources"]:
        if resource["name"] == "churn-dev":
            resource["phase"] = "Failed"
    return envelope.dumps(report)


def _resigned(signer: keys.Signer) -> Callable[[bytes], bytes]:
    return lambda data: envelope.sign(verify.PAYLOAD_TYPES["status"], _failed(data), [signer])


def _edited(data: bytes) -> bytes:
    """The same signatures over edited payload bytes."""
    value = envelope.loads(data)
    value["payload"] = base64.b64encode(_failed(data)).decode()
    return envelope.dumps(value)


@pytest.mark.effect("DataPlane", "spec.agentKey.public", "spec.agentKey.type")
def test_a_forged_status_is_shown_unverified_never_skipped(
    world: World, gitplane_bin: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    story = _story(world)
    stranger = keys.FileSigner.generate()
    later = NOW + timedelta(minutes=20)
    resigned = _forge_status(world, monkeypatch, later, _resigned(stranger))
    edited = _forge_status(world, monkeypatch, later + timedelta(minutes=1), _edited)
    story.agent.sync(NOW + timedelta(minutes=25))  # the agent overwrites what it cannot verify
    body = _audit_json(gitplane_bin, world, "deployment/churn-dev", str(world.work))
    refused = [e for e in body["events"] if not e.get("verified", True)]
    assert [(e["type"], e["commit"], e["error"]["code"], e["phase"]) for e in refused] == [
        ("status", resigned, "bad-signature", "Failed"),
        ("status", edited, "bad-signature", "Failed"),
    ]
    assert [e["time"] for e in refused] == [verify.format_time(later), "2026-11-24T12:21:00Z"]
    assert all(e["keyids"] == [] for e in refused)
    assert body["verified"] is False
    live = body["live"][0]
    assert (live["phase"], live["since"], live["counter"]) == ("Ready", "2026-11-24T12:17:00Z", 3)
    assert not [e for e in body["events"] if e["type"] == "gap"]  # report #4 follows #3

    done = _run(gitplane_bin, world, "Deployment/churn-dev", str(world.work))
    assert done.returncode == 0, done.stderr
    assert "! 2 unverified document(s) or gap(s)" in done.stdout
    assert done.stdout.count("report UNVERIFIED, bad-signature") == 2
    assert max(len(line) for line in done.stdout.splitlines()) <= 100


def test_a_resource_deleted_from_git_keeps_its_history(world: World) -> None:
    story = _story(world)
    removal, _ = _pull_request(world, 3, ANN, _remove, NOW + timedelta(minutes=30))
    story.reconciler.reconcile(NOW + timedelta(minutes=40))  # local-dev prunes
    request = audit_read.AuditRequest(
        world.work,
        "deployment/churn-dev",
        world.keys_dir / "root.json",
        state_repo=world.remote,
        plane="local-dev",
    )
    report = audit_read.load_audit(request)
    assert report.files == ("deployments/churn-dev.yaml",)
    specs = [e.change.commit.commit for e in report.audit.events if isinstance(e, audit.SpecEvent)]
    assert specs == [story.initial, story.first[0], story.second[0], removal]
    commands = [e for e in report.audit.events if isinstance(e, audit.CommandEvent)]
    assert [(c.sequence, c.action, c.change) for c in commands][-1] == (4, "delete", removal)
    assert [live.plane for live in report.audit.live] == ["local-dev"]


def test_since_keeps_later_events_and_the_live_state(world: World, gitplane_bin: str) -> None:
    story = _story(world)
    body = _audit_json(
        gitplane_bin,
        world,
        "deployment/churn-dev",
        str(world.work),
        "--since",
        "2026-11-24T12:10:00",
        "--plane",
        "local-dev",
    )
    assert [e["type"] for e in body["events"]] == ["spec", "command", "status"]
    assert body["events"][0]["commit"] == story.second[0]
    assert [live["plane"] for live in body["live"]] == ["local-dev"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["nonsense/churn-dev"], "expected KIND/NAME"),
        (["deployment/nothing-here"], "no spec on main or in its history declares"),
        (["deployment/churn-dev", "--plane", "mars"], "no DataPlane named 'mars'"),
        (["deployment/churn-dev", "--since", "yesterday"], "is not a date or time"),
        (["deployment/churn-dev", "--rev", "nope"], "cannot read branch nope"),
        (
            ["deployment/churn-dev", "--branch", "nope"],
            "warning: --branch is deprecated; use --rev\nerror: cannot read branch nope",
        ),
        (["deployment/churn-dev", "--branch", "a", "--rev", "b"], "both given; keep --rev"),
    ],
    ids=[
        "bad-kind",
        "unknown-resource",
        "unknown-plane",
        "bad-since",
        "unknown-rev",
        "deprecated-branch",
        "rev-and-branch",
    ],
)
def test_usage_errors(world: World, gitplane_bin: str, args: list[str], message: str) -> None:
    done = _run(gitplane_bin, world, *args[:1], str(world.work), *args[1:])
    assert done.returncode == 2
    assert message in done.stderr


# ---------------------------------------------------------------------------------------
# The pure core, against a simulator of one plane's logs.

PLANE = "local-dev"
RESOURCE = ("Deployment", "churn-dev")
BRANCH = tuple(c * 40 for c in "abcd")
"""The spec branch's first-parent line: the resource changed at ``b`` (a merge) and ``d``."""


def _who(name: str) -> audit.Person:
    return audit.Person(name, f"{name.lower()}@example.com")


def _git_commit(sha: str, minute: int, trailers: dict[str, frozenset[str]]) -> audit.GitCommit:
    at = NOW + timedelta(minutes=minute)
    return audit.GitCommit(sha, _who("Ann"), at, _who("Bob"), at, f"change {sha[:4]}", trailers)


APPROVED = {"Approved-by": frozenset({"Carol <carol@example.com>"})}
CHANGES = (
    audit.SpecChange(
        _git_commit("e" * 40, 0, {}),
        "deployments/churn-dev.yaml",
        merge=_git_commit(BRANCH[1], 1, APPROVED),
    ),
    audit.SpecChange(_git_commit(BRANCH[3], 30, {}), "deployments/churn-dev.yaml"),
)


def _command(spec: str) -> signed.Command:
    return commands.new_command("Deployment", "churn-dev", spec, command_id="churn-dev")


@dataclass
class LogSimulator:
    """A simulator of one plane's command and status logs, as the versions git would hold:
    bundles signed by the commands key and chained, reports signed by the agent key."""

    commands: keys.FileSigner
    agent: keys.FileSigner
    bundles: list[audit.LogFile] = field(default_factory=list)
    reports: list[audit.LogFile] = field(default_factory=list)
    digests: dict[int, str] = field(default_factory=lambda: {0: ""})
    minute: int = 0

    def issue(self, spec: str, spec_commit: str = BRANCH[2], plane: str = PLANE) -> str:
        sequence = len(self.digests)
        payload = {
            "_type": "commands",
            "spec_version": "1",
            "plane": plane,
            "sequence": sequence,
            "previous": self.digests[sequence - 1],
            "root_version": 1,
            "spec_commit": spec_commit,
            "issued_at": verify.format_time(self._tick()),
            "commands": [_command(spec).model_dump()],
            "self_heal": True,
        }
        data = envelope.sign(
            verify.PAYLOAD_TYPES["commands"], envelope.dumps(payload), [self.commands]
        )
        self.digests[sequence] = envelope.digest(data)
        self.bundles.append(self.file(layout.bundle_path(sequence), data))
        return envelope.digest(_command(spec).spec.encode())

    def report(self, phase: str | None, digest: str = "", **changes: object) -> bytes:
        applied = max(self.digests)
        resources = (
            []
            if phase is None
            else [{"kind": "Deployment", "name": "churn-dev", "phase": phase, "digest": digest}]
        )
        payload = {
            "_type": "status",
            "spec_version": "1",
            "plane": PLANE,
            "counter": len(self.reports) + 1,
            "time": verify.format_time(self._tick()),
            "applied": {"sequence": applied, "digest": self.digests[applied]},
            "timestamp_version": 1,
            "resources": resources,
            "error": None,
            **changes,
        }
        data = envelope.sign(verify.PAYLOAD_TYPES["status"], envelope.dumps(payload), [self.agent])
        self.reports.append(self.file(layout.STATUS, data))
        return data

    def file(self, path: str, data: bytes | None, **changes: Any) -> audit.LogFile:
        commit = f"{len(self.bundles) + len(self.reports) + 1:040x}"
        made = audit.LogFile(commit, NOW + timedelta(minutes=self.minute), path, data)
        return replace(made, **changes)

    def _tick(self) -> datetime:
        self.minute += 1
        return NOW + timedelta(minutes=self.minute)

    def build(
        self,
        agent_key: audit.AgentKey | None = None,
        earlier: tuple[audit.EarlierKey, ...] = (),
        **options: Any,
    ) -> audit.Audit:
        payload = roots.root_payload(
            version=1,
            expires=NOW + timedelta(days=365),
            root=[self.commands.public_key],
            root_threshold=1,
            commands=[self.commands.public_key],
            timestamp=[self.commands.public_key],
        )
        root = verify.load_trusted_root(roots.sign_root(payload, [self.commands]))
        key = self.agent.public_key if agent_key is None else agent_key
        plane = audit.PlaneLog(PLANE, key, self.bundles, self.reports, earlier)
        data = audit.AuditInput(*RESOURCE, BRANCH, CHANGES, (root,), (plane,))
        return audit.build(data, **options)


@pytest.fixture
def sim() -> LogSimulator:
    return LogSimulator(keys.FileSigner.generate(), keys.FileSigner.generate())


def _codes(result: audit.Audit) -> list[tuple[str, int | None, str]]:
    """(event kind, sequence or counter, code) of every problem, in order."""
    found: list[tuple[str, int | None, str]] = []
    for event in result.events:
        if isinstance(event, audit.GapEvent):
            found.append(("gap", None, event.error.code))
        elif isinstance(event, audit.CommandEvent) and event.error:
            found.append(("command", event.sequence, event.error.code))
        elif isinstance(event, audit.StatusEvent) and event.error:
            found.append(("status", event.counter, event.error.code))
    return found


def test_a_clean_history_traces_what_runs_to_who_changed_and_approved_it(
    sim: LogSimulator,
) -> None:
    first = sim.issue('{"replicas":2}', spec_commit=BRANCH[2])
    sim.report("Ready", first)
    sim.report("Ready", first)  # another resource changed: not a transition of this one
    sim.minute = 30  # the second change lands (CHANGES)
    second = sim.issue('{"replicas":3}', spec_commit=BRANCH[3])
    sim.report("Progressing", second)
    sim.report("Ready", second)
    result = sim.build()
    assert result.verified
    steps = [
        (type(e).__name__, getattr(e, "phase", getattr(e, "sequence", None))) for e in result.events
    ]
    assert steps == [
        ("SpecEvent", None),
        ("CommandEvent", 1),
        ("StatusEvent", "Ready"),
        ("SpecEvent", None),
        ("CommandEvent", 2),
        ("StatusEvent", "Progressing"),
        ("StatusEvent", "Ready"),
    ]
    commands = [e for e in result.events if isinstance(e, audit.CommandEvent)]
    assert [c.change for c in commands] == ["e" * 40, BRANCH[3]]
    assert commands[0].keyids == (sim.commands.public_key.keyid,)
    (live,) = result.live
    assert live.status is not None and live.command is not None and live.change is not None
    assert (live.status.counter, live.status.digest, live.command.sequence) == (4, second, 2)
    assert live.change.change.commit.commit == BRANCH[3]


def test_approvals_come_from_the_merge_that_brought_the_change() -> None:
    merged, direct = CHANGES
    assert merged.approved_by == ("Carol <carol@example.com>",)
    assert (merged.landed.commit, direct.landed.commit) == (BRANCH[1], BRANCH[3])
    assert direct.approved_by == ()


@pytest.mark.parametrize(
    "spec_commit", [BRANCH[0], "f" * 40], ids=["before-any-change", "not-on-the-branch"]
)
def test_a_command_from_no_known_change_names_none(sim: LogSimulator, spec_commit: str) -> None:
    sim.issue("{}", spec_commit=spec_commit)
    (command,) = [e for e in sim.build().events if isinstance(e, audit.CommandEvent)]
    assert command.error is None
    assert command.change is None


def _other_key(sim: LogSimulator) -> None:
    data = sim.bundles[0].data or b""
    payload = envelope.peek(data, max_bytes=1 << 20)
    stranger = keys.FileSigner.generate()
    forged = envelope.sign(verify.PAYLOAD_TYPES["commands"], payload, [stranger])
    sim.bundles[0] = replace(sim.bundles[0], data=forged)


def _edited_bundle(sim: LogSimulator) -> None:
    data = sim.bundles[0].data or b""
    value = envelope.loads(data)
    payload = base64.b64decode(value["payload"]).replace(b'"apply"', b'"delete"')
    value["payload"] = base64.b64encode(payload).decode()
    sim.bundles[0] = replace(sim.bundles[0], data=envelope.dumps(value))


@pytest.mark.parametrize(
    ("modify", "expected"),
    [
        (_other_key, [("command", 1, "bad-signature"), ("command", 2, "mix-and-match")]),
        (_edited_bundle, [("command", 1, "bad-signature"), ("command", 2, "mix-and-match")]),
        (lambda s: s.bundles.pop(0), [("gap", None, "gap"), ("command", 2, "mix-and-match")]),
        (
            lambda s: s.bundles.append(s.file(s.bundles[0].path, None)),
            [("gap", None, "gap"), ("command", 2, "mix-and-match")],
        ),
        (
            lambda s: s.bundles.append(s.file(s.bundles[1].path, s.bundles[1].data)),
            [("command", 2, "mix-and-match")],
        ),
        (
            lambda s: s.bundles.__setitem__(
                0, replace(s.bundles[0], data=None, problem=errors.OversizedError("big"))
            ),
            [("command", 1, "oversized"), ("command", 2, "mix-and-match")],
        ),
        (
            lambda s: s.bundles.append(s.file("bundles/notes.txt", b"hi")),
            [("gap", None, "malformed")],
        ),
    ],
    ids=["other-key", "edited", "missing", "deleted", "rewritten", "oversized", "stray-file"],
)
def test_a_bad_bundle_is_shown_with_its_code_never_skipped(
    sim: LogSimulator, modify: Callable[[LogSimulator], object], expected: list[object]
) -> None:
    sim.issue('{"replicas":2}')
    sim.issue('{"replicas":3}')
    modify(sim)
    result = sim.build()
    assert _codes(result) == expected
    assert not result.verified
    refused = [e for e in result.events if isinstance(e, audit.CommandEvent) and e.error]
    assert all(e.keyids == () and e.change is None for e in refused)


def _replayed(sim: LogSimulator) -> None:
    sim.reports.append(sim.file(layout.STATUS, sim.reports[0].data))


@pytest.mark.parametrize(
    ("modify", "code"),
    [
        (lambda s: s.report("Failed", note="not in the schema"), "malformed"),
        (_replayed, "replay"),
        (lambda s: s.report("Failed", applied={"sequence": 5, "digest": ""}), "unknown-command"),
        (lambda s: s.report("Failed", plane="prod-eu"), "wrong-plane"),
        (
            lambda s: s.reports.append(
                s.file(layout.STATUS, None, problem=errors.OversizedError("big"))
            ),
            "oversized",
        ),
    ],
    ids=["extra-field", "replayed", "unissued-bundle", "other-plane", "oversized"],
)
def test_a_bad_report_is_shown_with_its_code_and_trusted_for_nothing(
    sim: LogSimulator, modify: Callable[[LogSimulator], object], code: str
) -> None:
    digest = sim.issue('{"replicas":2}')
    sim.report("Ready", digest)
    modify(sim)
    result = sim.build()
    assert [c for _, _, c in _codes(result)] == [code]
    (live,) = result.live
    assert live.status is not None
    assert (live.status.counter, live.status.phase) == (1, "Ready")


@pytest.mark.parametrize("forge", ["other-key", "edited-payload"])
def test_a_forged_report_shows_what_it_claims_but_is_not_trusted(
    sim: LogSimulator, forge: str
) -> None:
    digest = sim.issue('{"replicas":2}')
    sim.report("Ready", digest)
    real = sim.agent
    if forge == "other-key":
        sim.agent = keys.FileSigner.generate()
        sim.report("Failed", digest)
        sim.agent = real
    else:
        data = sim.report("Failed", digest)
        good = envelope.loads(sim.reports[0].data or b"")
        value = {**envelope.loads(data), "signatures": good["signatures"]}
        sim.reports[-1] = replace(sim.reports[-1], data=envelope.dumps(value))
    result = sim.build()
    refused = [e for e in result.events if isinstance(e, audit.StatusEvent) and e.error]
    assert [(e.counter, e.phase, e.keyids, e.error and e.error.code) for e in refused] == [
        (2, "Failed", (), "bad-signature")
    ]
    assert result.live[0].status is not None
    assert result.live[0].status.phase == "Ready"


def test_without_a_registered_agent_key_no_report_is_trusted(sim: LogSimulator) -> None:
    digest = sim.issue('{"replicas":2}')
    sim.report("Ready", digest)
    result = sim.build(agent_key=errors.SignatureError("no agentKey is registered"))
    assert _codes(result) == [("status", 1, "bad-signature")]
    assert result.live[0].status is None


def test_a_hole_in_the_status_counters_is_a_gap(sim: LogSimulator) -> None:
    digest = sim.issue('{"replicas":2}')
    sim.report("Progressing", digest)
    sim.report("Progressing", digest)
    sim.report("Ready", digest)
    del sim.reports[1]
    result = sim.build()
    (gap,) = [e for e in result.events if isinstance(e, audit.GapEvent)]
    assert (gap.log, gap.error.message) == (
        "status",
        "status reports #2..#2 are not in the history",
    )


def test_status_events_are_transitions_of_this_resource_only(sim: LogSimulator) -> None:
    digest = sim.issue('{"replicas":2}')
    for phase in (None, "Ready", "Ready", "Failed", "Failed", None, None):
        sim.report(phase, digest)
    phases = [(e.counter, e.phase) for e in sim.build().events if isinstance(e, audit.StatusEvent)]
    assert phases == [(2, "Ready"), (4, "Failed"), (6, audit.ABSENT)]


def test_since_hides_older_events_but_not_what_runs_now(sim: LogSimulator) -> None:
    digest = sim.issue('{"replicas":2}')
    sim.report("Ready", digest)
    sim.issue('{"replicas":3}')
    result = sim.build(since=NOW + timedelta(minutes=3))
    assert [type(e).__name__ for e in result.events] == ["CommandEvent", "SpecEvent"]
    assert result.live[0].status is not None
    assert result.live[0].status.phase == "Ready"


def test_who_deployed_to_prod_who_approved_it_and_when_it_went_live(
    world: World, gitplane_bin: str
) -> None:
    def deploy(work: Path) -> str:
        path = work / "deployments" / "churn-prod.yaml"
        path.write_text(path.read_text().replace("minReplicas: 2", "minReplicas: 3"))
        return "Deploy churn 1.2.0 to prod-eu"

    change, merge = _pull_request(world, 42, ANN, deploy, NOW - timedelta(minutes=30))
    reconciler = reconciling.Reconciler(world.settings())
    agent = TestAgent(world, "prod-eu")
    reconciler.reconcile(NOW)  # the policy's gates pass: a merge with two approvals
    agent.sync(NOW + timedelta(minutes=1))
    reconciler.reconcile(NOW + timedelta(minutes=2))
    agent.sync(NOW + timedelta(minutes=4))
    args = ("deployment/churn-prod", str(world.work), "--plane", "prod-eu")
    body = _audit_json(gitplane_bin, world, *args)
    (live,) = body["live"]
    assert (live["phase"], live["since"], live["change"]) == (
        "Ready",
        "2026-11-24T12:04:00Z",
        change,
    )
    (spec,) = [e for e in body["events"] if e["type"] == "spec" and e["commit"] == change]
    assert (spec["author"]["name"], spec["merge"]["commit"]) == (ANN[0], merge)
    assert (spec["merge"]["committer"]["name"], spec["approvedBy"]) == (BOB[0], list(APPROVERS))
    done = _run(gitplane_bin, world, *args)
    assert "prod-eu     Ready since 2026-11-24T12:04:00Z" in done.stdout
    assert f"merged in {merge[:12]} by Bob Merger <bob@example.com> at" in done.stdout


REKEYED = "f" * 40
"""The branch commit that registered the plane's new agent key."""


def test_reports_signed_before_a_re_key_verify_under_the_earlier_key(sim: LogSimulator) -> None:
    digest = sim.issue('{"replicas":2}')
    sim.report("Progressing", digest)
    old = sim.agent
    sim.agent = keys.FileSigner.generate()  # the plane is re-keyed on the branch
    sim.report("Ready", digest)
    result = sim.build(earlier=(audit.EarlierKey(old.public_key, REKEYED),))
    assert _codes(result) == []
    reports = [e for e in result.events if isinstance(e, audit.StatusEvent)]
    assert [(e.counter, e.keyids, e.key_replaced) for e in reports] == [
        (1, (old.public_key.keyid,), REKEYED),
        (2, (sim.agent.public_key.keyid,), None),
    ]
    shown = audit_view.text(audit_read.AuditReport("main", BRANCH[-1], ("x.yaml",), result))
    assert "(an earlier key, replaced in ffffffffffff)" in " ".join(shown.split())
    assert _codes(sim.build()) == [("status", 1, "bad-signature")]  # without the key history


def test_a_replaced_key_signing_after_its_successor_is_refused(sim: LogSimulator) -> None:
    digest = sim.issue('{"replicas":2}')
    old, new = sim.agent, keys.FileSigner.generate()
    sim.agent = new
    sim.report("Ready", digest)
    sim.agent = old  # the old key, perhaps leaked, signs after the new one took over
    sim.report("Failed", digest)
    sim.agent = new
    result = sim.build(earlier=(audit.EarlierKey(old.public_key, REKEYED),))
    assert _codes(result) == [("status", 2, "bad-signature")]
    assert result.live[0].status is not None
    assert result.live[0].status.phase == "Ready"


def test_a_re_keyed_plane_keeps_its_older_reports_verified(world: World) -> None:
    story = _story(world)
    old = world.agent_keys["local-dev"]
    new = keys.FileSigner.generate()

    def re_key(work: Path) -> None:
        path = work / "planes" / "local-dev.yaml"
        path.write_text(path.read_text().replace(old.public_key.hex, new.public_key.hex))

    rekeyed = world.change("Re-key local-dev", re_key, at=NOW + timedelta(minutes=20))
    world.agent_keys["local-dev"] = new
    agent = TestAgent(world, "local-dev")
    agent.resources = dict(story.agent.resources)
    agent.applied = story.agent.applied
    agent.sync(NOW + timedelta(minutes=25))  # the same report, now under the new key
    _pull_request(world, 3, ANN, _scale(10), NOW + timedelta(minutes=30))
    story.reconciler.reconcile(NOW + timedelta(minutes=40))
    agent.sync(NOW + timedelta(minutes=41))

    request = audit_read.AuditRequest(
        world.work, "deployment/churn-dev", world.keys_dir / "root.json", state_repo=world.remote
    )
    result = audit_read.load_audit(request).audit
    assert result.verified
    reports = [e for e in result.events if isinstance(e, audit.StatusEvent)]
    assert [(e.keyids, e.key_replaced) for e in reports] == [
        *[((old.public_key.keyid,), rekeyed)] * (len(reports) - 1),
        ((new.public_key.keyid,), None),
    ]
    assert len(reports) >= 3


def test_a_rewound_status_branch_is_a_replay_not_the_live_state(
    world: World, gitplane_bin: str
) -> None:
    """A pusher resets the status branch to an older report: the reconciler signed (in its
    timestamp) that it saw a newer one, so the audit says so, as ``gitplane status`` does."""
    story = _story(world)
    story.reconciler.reconcile(NOW + timedelta(minutes=18))  # signs that it saw the newest
    bare = Path(world.remote.removeprefix("file://"))
    ref = layout.status_ref("local-dev")
    first = git(bare, "rev-list", "--max-parents=0", ref)
    git(bare, "update-ref", ref, first)
    body = _audit_json(gitplane_bin, world, "deployment/churn-dev", str(world.work))
    assert body["verified"] is False
    gaps = [e for e in body["events"] if e["type"] == "gap"]
    assert [(g["plane"], g["error"]["code"]) for g in gaps] == [("local-dev", "replay")]
    assert "the branch was rewound" in gaps[0]["error"]["message"]


def test_what_a_refused_document_claims_is_shown_inert(sim: LogSimulator) -> None:
    """A report nobody trusted signed (another key) claims a phase with ESC, CR and a
    newline: the audit shows the claim, escaped, on its own line."""
    digest = sim.issue('{"replicas":2}')
    sim.report("Ready", digest)
    liar = sim.agent
    sim.agent = keys.FileSigner.generate()
    sim.report("Ready\x1b[2K\r\nlocal-dev #9 Ready (forged)", digest)
    sim.agent = liar
    result = sim.build()
    shown = audit_view.text(audit_read.AuditReport("main", BRANCH[-1], ("x.yaml",), result))
    assert "\x1b" not in shown and "\r" not in shown
    assert "\n  local-dev #9" not in shown and "\nlocal-dev #9" not in shown
    assert "Ready\\x1b[2K" in shown  # shown, escaped


def test_trailer_approvals_are_shown_unverified() -> None:
    merged, direct = CHANGES
    text = "\n".join(audit_view._change_text(merged))
    assert "approved by Carol <carol@example.com> (Approved-by: trailers, unverified: " in text
    assert audit_view._change_text(direct)[-1] == "approved by nobody (no Approved-by: trailer)"
