"""``gitplane approve`` and ``approvals`` on a real repository, with real ``ssh-keygen`` keys.

The world of tests/reconciler/conftest.py (a bare remote, real keys); its prod policy asks
for two signed approvals by ann, bob or cat. A pull request changes prod's deployment.
Each attack of issue 21 this layer can show asserts its typed reason and that the record
does not count.
"""

from __future__ import annotations

import base64
import json
import subprocess
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from ledger import anchor, approvallog, approvals, gitrepo, keyring, layout, roots, sshkeygen
from reconciler import approval_gate, approving, planning, render
from reconciler import reconcile as reconciling
from reconciler.audit import read as audit_read
from reconciler.audit import view as audit_view
from reconciler.reconcile import RECONCILER
from schemas.errors import UsageError
from tests import clock
from tests.conftest import commit_all, git
from tests.reconciler.conftest import NOW, TestAgent, World
from tests.sshkeys import Key, make_key

APPROVERS = ("ann", "bob", "cat")


@pytest.fixture
def keys(tmp_path: Path) -> dict[str, Key]:
    folder = tmp_path / "ssh"
    folder.mkdir()
    return {name: make_key(folder, name) for name in (*APPROVERS, "mallory")}


def signed_policy(keys: dict[str, Key], names: tuple[str, ...] = APPROVERS) -> str:
    listed = "".join(f"      - {{name: {n}, key: {keys[n].public_line}}}\n" for n in names)
    return f"    mode: signed\n    minimum: 2\n    approvers:\n{listed}"


def set_policy(work: Path, approvals_block: str) -> None:
    path = work / "policies/prod.yaml"
    text = path.read_text()
    start = text.index("  approvals:\n") + len("  approvals:\n")
    end = text.index("  security:")
    path.write_text(text[:start] + approvals_block + text[end:])


def scale(work: Path, replicas: int, was: int = 2) -> None:
    path = work / "deployments/churn-prod.yaml"
    text = path.read_text()
    assert f"minReplicas: {was}" in text
    path.write_text(text.replace(f"minReplicas: {was}", f"minReplicas: {replicas}"))


@pytest.fixture
def pr(world: World, keys: dict[str, Key]) -> str:
    """Root published, the signed policy on main, and a PR branch scaling prod: its head."""
    mirror = gitrepo.Mirror.open(world.root / "publisher.git", world.remote)
    roots.publish(mirror, (world.keys_dir / "root.json").read_bytes(), who=RECONCILER)
    world.change("signed approvals for prod", lambda w: set_policy(w, signed_policy(keys)))
    pin(world)
    git(world.work, "checkout", "-q", "-b", "scale-prod")
    scale(world.work, 4)
    return commit_all(world.work, "scale prod to 4")


def pin(world: World, rev: str = "main") -> approving.Pinned:
    """The root key holders pin the approval rule of ``rev`` (``gitplane keys approvers``)."""
    return approving.pin(world.keys_dir, planning.PlanRequest(world.work, rev), RECONCILER)


def request(world: World, rev: str) -> approving.ApprovalRequest:
    root = world.keys_dir / "root.json"
    return approving.ApprovalRequest(planning.PlanRequest(world.work, rev, "main", root))


def listed(world: World, rev: str) -> approval_gate.Listing:
    return approving.listing(request(world, rev), NOW)


def approvals_tip(world: World) -> str | None:
    mirror = gitrepo.Mirror.open(world.root / "reader.git", world.remote)
    return mirror.fetch([layout.APPROVALS_REF]).get(layout.APPROVALS_REF)


@pytest.mark.effect("Policy", "spec.approvals.approvers[].name", "spec.approvals.approvers[].key")
def test_two_approvers_approve_the_prod_plan(world: World, keys: dict[str, Key], pr: str) -> None:
    for name in ("ann", "bob"):
        done = approving.approve(request(world, pr), keys[name].path, NOW)
        assert (done.name, done.approval.commit) == (name, pr)
    found = listed(world, pr)
    assert set(found.context.target.plans) == {"prod-eu"}
    assert found.context.needs == {"prod-eu": 2}
    assert sorted((v.name, v.reason) for v in found.tally.verdicts) == [("ann", ""), ("bob", "")]
    assert found.tally.approvers == {keys[n].public.fingerprint for n in ("ann", "bob")}


def test_a_key_outside_the_policy_cannot_approve(
    world: World, keys: dict[str, Key], pr: str
) -> None:
    with pytest.raises(UsageError, match="is not an approver in the policy in force"):
        approving.approve(request(world, pr), keys["mallory"].path, NOW)
    assert approvals_tip(world) is None  # nothing was pushed


def test_a_pr_that_adds_its_author_as_approver_cannot_approve_itself(
    world: World, keys: dict[str, Key], pr: str
) -> None:
    set_policy(world.work, signed_policy(keys, ("ann", "mallory")))
    head = commit_all(world.work, "mallory approves prod now")
    with pytest.raises(UsageError, match="not an approver"):
        approving.approve(request(world, head), keys["mallory"].path, NOW)
    forged = _signed_record(world, keys["mallory"], head)  # pushed around the CLI
    verdicts = listed(world, head).tally.verdicts
    assert [(v.path, v.reason) for v in verdicts] == [(forged, "unknown-key")]


def _signed_record(world: World, key: Key, commit: str) -> str:
    """A record of ``commit`` as approve would draft it, signed by ``key``, appended."""
    path, data = _record(world, key, commit)
    mirror = gitrepo.Mirror.open(world.root / "forger.git", world.remote)
    approvallog.append(mirror, path, data, who=RECONCILER)
    return path


def _record(world: World, key: Key, commit: str) -> tuple[str, bytes]:
    """A record of ``commit`` as approve would draft it, signed by ``key``: path, bytes."""
    target = listed(world, commit).context.target
    draft = approvals.Approval(
        repository=target.repository,
        commit=commit,
        tree=target.trees[commit],
        plans=dict(target.plans),
        approver=key.path.name,
        key=key.public.fingerprint,
        time="2026-11-24T12:00:00Z",
    )
    armor = sshkeygen.sign(draft.payload(), key=key.path, namespace=approvals.NAMESPACE)
    data = approvals.stored(draft, armor)
    return approvals.path_of(commit, data), data


def test_an_approval_does_not_survive_a_plan_change(
    world: World, keys: dict[str, Key], pr: str
) -> None:
    approving.approve(request(world, pr), keys["ann"].path, NOW)
    scale(world.work, 8, was=4)
    head = commit_all(world.work, "scale prod to 8")
    (verdict,) = listed(world, head).tally.verdicts
    assert verdict.reason == "plan-changed"
    assert "plane prod-eu: plan changed since approval (approved " in verdict.detail


def test_an_approval_is_not_replayed_onto_another_commit(
    world: World, keys: dict[str, Key], pr: str
) -> None:
    approving.approve(request(world, pr), keys["ann"].path, NOW)
    git(world.work, "checkout", "-q", "main")
    git(world.work, "checkout", "-q", "-b", "other")
    scale(world.work, 5)
    other = commit_all(world.work, "another change")
    mirror = gitrepo.Mirror.open(world.root / "replayer.git", world.remote)
    tip = mirror.fetch([layout.APPROVALS_REF])[layout.APPROVALS_REF]
    (data,) = approvallog.read(mirror, tip, [pr]).values()
    approvallog.append(mirror, approvals.path_of(other, data), data, who=RECONCILER)
    (verdict,) = listed(world, other).tally.verdicts
    assert verdict.reason == "wrong-commit"


def test_a_rewritten_history_leaves_its_approvals_behind(
    world: World, keys: dict[str, Key], pr: str
) -> None:
    approving.approve(request(world, pr), keys["ann"].path, NOW)
    scale(world.work, 9, was=4)
    git(world.work, "commit", "-q", "-a", "--amend", "-m", "scale prod to 9")
    rewritten = git(world.work, "rev-parse", "HEAD").strip()
    found = listed(world, rewritten)
    assert found.tally.verdicts == () and not found.tally.approvers


def test_the_commands_approve_and_list(
    world: World, keys: dict[str, Key], pr: str, gitplane_bin: str
) -> None:
    common = ["--rev", pr, "--base", "main", "--root", str(world.keys_dir / "root.json")]
    env = clock.env_at(NOW)
    for name in ("ann", "bob"):
        done = subprocess.run(
            [gitplane_bin, "approve", str(world.work), *common, "--key", str(keys[name].path)],
            capture_output=True,
            text=True,
            env=env,
            check=False,
        )
        assert done.returncode == 0, done.stderr
        assert f"approved {pr[:12]} as {name} (SHA256:" in done.stdout
    shown = subprocess.run(
        [gitplane_bin, "approvals", str(world.work), *common, "-o", "json"],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    assert shown.returncode == 0, shown.stderr
    body = json.loads(shown.stdout)
    assert body["needs"] == {"prod-eu": 2} and body["approvers"] == 2
    assert sorted(r["name"] for r in body["records"] if r["verified"]) == ["ann", "bob"]
    assert {r["key"] for r in body["records"]} == {
        keys[n].public.fingerprint for n in ("ann", "bob")
    }
    text = subprocess.run(
        [gitplane_bin, "approvals", str(world.work), *common],
        capture_output=True, text=True, env=env, check=False,
    ).stdout  # fmt: skip
    assert f"approvals of {pr[:12]}\n  prod-eu: needs 2, has 2\n" in text
    assert f"ann              {keys['ann'].public.fingerprint}" in text and "verified" in text


def merge(world: World) -> str:
    """Merge the PR branch into main with a merge commit and push main."""
    git(world.work, "checkout", "-q", "main")
    git(world.work, "merge", "-q", "--no-ff", "scale-prod", "-m", "Merge scale-prod")
    git(world.work, "push", "-q", "origin", "main")
    return git(world.work, "rev-parse", "HEAD").strip()


def prod_after_merge(world: World) -> tuple[bool, list[tuple[str, str, str]]]:
    """Whether the reconciler issued to prod-eu, and prod-eu's actions (op, ref, reason)."""
    cycle = reconciling.Reconciler(world.settings()).reconcile(NOW)
    assert cycle.plan is not None
    (prod,) = [p for p in cycle.plan.planes if p.plane == "prod-eu"]
    assert "local-dev" in cycle.issued  # the unprotected plane is not held back
    return "prod-eu" in cycle.issued, [(a.op, a.ref, a.reason) for a in prod.actions]


def test_two_approvals_then_merge_issue_to_prod(
    world: World, keys: dict[str, Key], pr: str
) -> None:
    for name in ("ann", "bob"):
        approving.approve(request(world, pr), keys[name].path, NOW)
    merge(world)
    issued, actions = prod_after_merge(world)
    assert issued
    assert ("build", "Model/churn") in [(op, ref) for op, ref, _ in actions]


def test_one_approval_is_not_enough(world: World, keys: dict[str, Key], pr: str) -> None:
    approving.approve(request(world, pr), keys["ann"].path, NOW)
    merge(world)
    issued, actions = prod_after_merge(world)
    assert not issued
    assert (
        "blocked",
        "Model/churn",
        "needs 2 signed approval(s), has 1 (Policy/prod-gates)",
    ) in actions


def test_forged_trailers_count_for_nothing(world: World, keys: dict[str, Key], pr: str) -> None:
    git(world.work, "checkout", "-q", "main")
    trailers = "Approved-by: Ann <ann@example.com>\nApproved-by: Bob <bob@example.com>"
    git(world.work, "merge", "-q", "--no-ff", "scale-prod", "-m", "Merge", "-m", trailers)
    git(world.work, "push", "-q", "origin", "main")
    issued, actions = prod_after_merge(world)
    assert not issued
    assert all(op in ("blocked", "wait") for op, _, _ in actions)


def test_approved_then_changed_before_merge_is_blocked(
    world: World, keys: dict[str, Key], pr: str
) -> None:
    for name in ("ann", "bob"):
        approving.approve(request(world, pr), keys[name].path, NOW)
    scale(world.work, 7, was=4)
    commit_all(world.work, "scale prod to 7 after the review")
    merge(world)
    issued, actions = prod_after_merge(world)
    assert not issued
    blocked = [reason for op, ref, reason in actions if ref == "Model/churn"]
    assert blocked and "plan changed since approval (approved " in blocked[0]


def test_keys_added_without_approval_never_approve(
    world: World, keys: dict[str, Key], pr: str
) -> None:
    # an attacker with push access: first a commit adding two keys of their own, then a
    # prod change both keys approve; the reconciler runs before, between and after
    git(world.work, "checkout", "-q", "main")
    reconciler = reconciling.Reconciler(world.settings())
    assert not reconciler.reconcile(NOW).problems
    eve = make_key(keys["mallory"].path.parent, "eve")
    keys = {**keys, "eve": eve}
    world.change(
        "more approvers", lambda w: set_policy(w, signed_policy(keys, ("ann", "mallory", "eve")))
    )
    refused = reconciler.reconcile(NOW)
    assert refused.issued == {}
    assert "changes who approves or what needs approval, and has 0 of the 2" in str(
        refused.problems
    )
    head = world.change("scale prod", lambda w: scale(w, 3))
    for name in ("mallory", "eve"):
        _signed_record(world, keys[name], head)
    again = reconciler.reconcile(NOW)
    assert again.issued == {} and "has 0 of the 2" in str(again.problems)


def test_an_approved_change_of_approvers_takes_effect(
    world: World, keys: dict[str, Key], pr: str
) -> None:
    git(world.work, "checkout", "-q", "main")
    reconciler = reconciling.Reconciler(world.settings())
    reconciler.reconcile(NOW)
    git(world.work, "checkout", "-q", "-b", "drop-bob")
    set_policy(world.work, signed_policy(keys, ("ann", "cat", "mallory")))
    change = commit_all(world.work, "bob leaves, mallory joins")
    for name in ("ann", "bob"):  # approved under the rule in force: ann and bob
        approving.approve(request(world, change), keys[name].path, NOW)
    git(world.work, "checkout", "-q", "main")
    git(world.work, "merge", "-q", "--ff-only", "drop-bob")
    git(world.work, "push", "-q", "origin", "main")
    merged = reconciler.reconcile(NOW)  # approved by ann and bob: its plan too (prod's build)
    assert not merged.problems and "prod-eu" in merged.issued
    agent = TestAgent(world, "prod-eu")
    assert agent.sync()  # the model is built on prod: the deployment is next
    head = world.change("scale prod", lambda w: scale(w, 3))
    for name in ("mallory", "bob"):
        _signed_record(world, keys[name], head)
    cycle = reconciler.reconcile(NOW)
    assert "prod-eu" not in cycle.issued and agent.sync() == []  # bob's key: 1 of 2
    reasons = {v.signer: v.reason for v in cycle.approvals}
    assert reasons[keys["bob"].public.fingerprint] == "removed-key"
    assert cycle.plan is not None
    (prod,) = [p for p in cycle.plan.planes if p.plane == "prod-eu"]
    assert any("needs 2 signed approval(s), has 1" in a.reason for a in prod.actions), [
        (a.op, a.ref, a.reason) for a in prod.actions
    ]


def test_a_rewritten_approvals_branch_is_read_as_it_was(
    world: World, keys: dict[str, Key], pr: str
) -> None:
    approving.approve(request(world, pr), keys["ann"].path, NOW)
    merge(world)
    reconciler = reconciling.Reconciler(world.settings())
    assert "prod-eu" not in reconciler.reconcile(NOW).issued  # one approval of two
    mirror = gitrepo.Mirror.open(world.root / "rewriter.git", world.remote)
    tip = mirror.fetch([layout.APPROVALS_REF])[layout.APPROVALS_REF]
    files = approvallog.read(mirror, tip, [pr])
    files.update([_record(world, keys["bob"], pr)])
    orphan = mirror.commit(None, files, message="rewritten", who=RECONCILER)
    mirror.replace(orphan, layout.APPROVALS_REF, expected=tip)
    cycle = reconciler.reconcile(NOW)
    assert cycle.alarms == [f"{layout.APPROVALS_REF} was rewritten: kept {tip[:12]}"]
    assert "prod-eu" not in cycle.issued  # bob's record came with the rewrite: not read


def approve_all(world: World, keys: dict[str, Key], rev: str) -> None:
    """ann and bob approve ``rev`` with ``gitplane approve``: the two the policy needs."""
    for name in ("ann", "bob"):
        approving.approve(request(world, rev), keys[name].path, NOW)


# The trust anchor (ADR 0018): the first approval rule is signed by root, never taken on
# first use. Each refusal asserts that prod's agent receives nothing.


def prod_receives(world: World) -> list[str]:
    """What prod-eu's agent reads from its verified command log: ``kind/name`` of each."""
    return [f"{c.kind}/{c.name}" for c in TestAgent(world, "prod-eu").sync()]


def test_signed_mode_without_an_anchor_reconciles_nothing(
    world: World, keys: dict[str, Key]
) -> None:
    mirror = gitrepo.Mirror.open(world.root / "publisher.git", world.remote)
    roots.publish(mirror, (world.keys_dir / "root.json").read_bytes(), who=RECONCILER)
    world.change("signed approvals for prod", lambda w: set_policy(w, signed_policy(keys)))
    cycle = reconciling.Reconciler(world.settings()).reconcile(NOW)
    assert cycle.issued == {}
    assert "no approvers anchor signed by root is in force" in str(cycle.problems)
    assert prod_receives(world) == []


def test_a_first_run_after_an_attackers_push_counts_under_the_anchor(
    world: World, keys: dict[str, Key], pr: str
) -> None:
    # pinned at main (ann, bob, cat); before any reconciler ran, an attacker with push
    # access adds their keys and approves a prod change with them
    git(world.work, "checkout", "-q", "main")
    eve = make_key(keys["mallory"].path.parent, "eve")
    keys = {**keys, "eve": eve}
    world.change("approvers", lambda w: set_policy(w, signed_policy(keys, ("mallory", "eve"))))
    head = world.change("scale prod", lambda w: scale(w, 3))
    for name in ("mallory", "eve"):
        _signed_record(world, keys[name], head)
    cycle = reconciling.Reconciler(world.settings()).reconcile(NOW)
    assert cycle.issued == {}
    assert "changes who approves or what needs approval, and has 0 of the 2" in str(cycle.problems)
    assert prod_receives(world) == []


def _anchor_payload(world: World, edit: Callable[[dict[str, Any]], None]) -> None:
    """Rewrite the anchor's payload on the root branch, keeping its signatures."""
    mirror = gitrepo.Mirror.open(world.root / "tamperer.git", world.remote)
    tip = mirror.fetch([layout.ROOT_REF])[layout.ROOT_REF]
    outer = json.loads(mirror.read(tip, [anchor.PATH], max_bytes=1 << 20)[anchor.PATH])
    body = json.loads(base64.b64decode(outer["payload"]))
    edit(body)
    outer["payload"] = base64.b64encode(json.dumps(body).encode()).decode()
    data = json.dumps(outer).encode()
    mirror.push(
        mirror.commit(tip, {anchor.PATH: data}, message="x", who=RECONCILER), layout.ROOT_REF
    )


def test_a_tampered_anchor_is_never_taken(world: World, keys: dict[str, Key], pr: str) -> None:
    git(world.work, "checkout", "-q", "main")

    def lower(body: dict[str, Any]) -> None:
        body["rule"]["minimum"] = 0

    _anchor_payload(world, lower)
    reconciler = reconciling.Reconciler(world.settings())
    cycle = reconciler.reconcile(NOW)
    assert cycle.issued == {} and prod_receives(world) == []
    assert "the approvers anchor on refs/heads/gitplane/root was not taken: " in str(cycle.problems)
    assert "no approvers anchor signed by root is in force" in str(cycle.problems)
    assert pin(world).version == 2  # the root key holders pin it again
    assert not reconciler.reconcile(NOW).problems
    _anchor_payload(world, lambda body: body.update(version=3))  # once taken: an alarm
    again = reconciler.reconcile(NOW)
    assert not again.problems and any("was not taken" in a for a in again.alarms)


def test_an_anchor_signed_by_other_root_keys_is_not_taken(
    world: World, keys: dict[str, Key], pr: str, tmp_path: Path
) -> None:
    git(world.work, "checkout", "-q", "main")
    world.change("approvers", lambda w: set_policy(w, signed_policy(keys, ("ann", "mallory"))))
    forged = tmp_path / "forged-keys"
    keyring.init_keys(forged, root_keys=1, threshold=1, now=NOW, lifetime=timedelta(days=9))
    approving.pin(forged, planning.PlanRequest(world.work, "main"), RECONCILER)
    cycle = reconciling.Reconciler(world.settings()).reconcile(NOW)
    assert cycle.issued == {} and prod_receives(world) == []
    assert "was not taken: 0 valid signature(s) from trusted keys, 2 required" in str(
        cycle.problems
    )


def test_a_pull_request_adding_its_authors_key_cannot_approve_itself(
    world: World, keys: dict[str, Key], pr: str
) -> None:
    reconciler = reconciling.Reconciler(world.settings())
    git(world.work, "checkout", "-q", "main")
    reconciler.reconcile(NOW)
    git(world.work, "checkout", "-q", "scale-prod")
    set_policy(world.work, signed_policy(keys, ("ann", "bob", "cat", "mallory")))
    head = commit_all(world.work, "mallory approves prod too")
    approving.approve(request(world, head), keys["ann"].path, NOW)
    _signed_record(world, keys["mallory"], head)  # mallory's own key, added by this PR
    merge(world)
    cycle = reconciler.reconcile(NOW)
    assert "prod-eu" not in cycle.issued and prod_receives(world) == []
    assert "changes who approves or what needs approval, and has 1 of the 2" in str(cycle.problems)


def test_root_can_replace_the_approvers(world: World, keys: dict[str, Key], pr: str) -> None:
    reconciler = reconciling.Reconciler(world.settings())
    git(world.work, "checkout", "-q", "main")
    reconciler.reconcile(NOW)
    world.change(
        "dan and mallory", lambda w: set_policy(w, signed_policy(keys, ("mallory", "cat")))
    )
    assert "has 0 of the 2" in str(reconciler.reconcile(NOW).problems)
    assert pin(world).version == 2
    head = world.change("scale prod", lambda w: scale(w, 3))
    for name in ("mallory", "cat", "ann"):
        _signed_record(world, keys[name], head)
    cycle = reconciler.reconcile(NOW)
    assert not cycle.problems and "prod-eu" in cycle.issued
    reasons = {v.name or v.approval.approver: v.reason for v in cycle.approvals if v.approval}
    assert reasons == {"mallory": "", "cat": "", "ann": "removed-key"}  # re-pinned away


def test_a_repaired_root_branch_keeps_the_anchor(
    world: World, keys: dict[str, Key], pr: str
) -> None:
    mirror = gitrepo.Mirror.open(world.root / "mallory.git", world.remote)
    tip = mirror.fetch([layout.ROOT_REF])[layout.ROOT_REF]
    junk = mirror.commit(tip, {"root/2.json": b"{}"}, message="x", who=RECONCILER)
    mirror.push(junk, layout.ROOT_REF)
    git(world.work, "checkout", "-q", "main")
    cycle = reconciling.Reconciler(world.settings()).reconcile(NOW)
    assert "(root/2.json)" in cycle.alarms[0] and not cycle.problems  # the anchor was taken
    repaired = mirror.fetch([layout.ROOT_REF])[layout.ROOT_REF]
    assert mirror.list_paths(repaired) == [anchor.PATH, "root/1.json"]


def _variant(world: World, key: Key, commit: str, **changes: str) -> tuple[str, bytes]:
    """A record of ``commit`` signed by ``key`` with ``changes`` to what approve drafts."""
    _, data = _record(world, key, commit)
    draft, _ = approvals.parse(data)
    draft = draft.model_copy(update=changes)
    armor = sshkeygen.sign(draft.payload(), key=key.path, namespace=approvals.NAMESPACE)
    data = approvals.stored(draft, armor)
    return approvals.path_of(commit, data), data


def _tampered(world: World, key: Key, commit: str) -> tuple[str, bytes]:
    """``key``'s record of ``commit`` with its approver name changed after signing."""
    _, data = _record(world, key, commit)
    draft, armor = approvals.parse(data)
    data = approvals.stored(draft.model_copy(update={"approver": "someone"}), armor)
    return approvals.path_of(commit, data), data


def _copied(world: World, key: Key, commit: str) -> tuple[str, bytes]:
    """``key``'s counted record of ``commit``, stored again under another path."""
    mirror = gitrepo.Mirror.open(world.root / "copier.git", world.remote)
    tip = mirror.fetch([layout.APPROVALS_REF])[layout.APPROVALS_REF]
    ((path, data),) = approvallog.read(mirror, tip, [commit]).items()
    return path.replace(".json", "0.json"), data


@pytest.mark.parametrize(
    ("forge", "reason"),
    [
        pytest.param(lambda w, k, c: _copied(w, k["ann"], c), "", id="same-record-copied"),
        pytest.param(
            lambda w, k, c: _variant(w, k["ann"], c, time="2026-11-25T00:00:00Z"),
            "duplicate",
            id="two-records-of-one-key",
        ),
        pytest.param(
            lambda w, k, c: _variant(
                w, k["ann"], c, approver="ann-too", time="2026-11-25T00:00:00Z"
            ),
            "duplicate",
            id="one-key-two-names",
        ),
        pytest.param(lambda w, k, c: _tampered(w, k["bob"], c), "tampered", id="tampered"),
        pytest.param(
            lambda w, k, c: _variant(w, k["bob"], c, repository="sha256:" + "0" * 64),
            "wrong-repo",
            id="another-repository",
        ),
    ],
)
def test_a_second_approval_that_is_not_one_issues_nothing(
    world: World,
    keys: dict[str, Key],
    pr: str,
    forge: Callable[[World, dict[str, Key], str], tuple[str, bytes]],
    reason: str,
) -> None:
    approving.approve(request(world, pr), keys["ann"].path, NOW)  # one real approval of two
    path, data = forge(world, keys, pr)
    mirror = gitrepo.Mirror.open(world.root / "forger.git", world.remote)
    approvallog.append(mirror, path, data, who=RECONCILER)
    merge(world)
    cycle = reconciling.Reconciler(world.settings()).reconcile(NOW)
    assert "prod-eu" not in cycle.issued and prod_receives(world) == []
    expected = ["", reason] if reason else [""]  # the same bytes twice are read once
    assert sorted(v.reason for v in cycle.approvals) == expected


def squash(world: World) -> str:
    """Squash-merge the PR branch into main (as a forge's squash button does) and push."""
    git(world.work, "checkout", "-q", "main")
    git(world.work, "merge", "-q", "--squash", "scale-prod")
    return world.change("scale prod to 4 (#1)", lambda w: None)


def test_approvals_of_the_head_count_for_its_squash_merge(
    world: World, keys: dict[str, Key], pr: str
) -> None:
    approve_all(world, keys, pr)
    squashed = squash(world)
    assert git(world.work, "rev-parse", f"{squashed}^{{tree}}") == git(
        world.work, "rev-parse", f"{pr}^{{tree}}"
    )
    cycle = reconciling.Reconciler(world.settings()).reconcile(NOW)
    assert "prod-eu" in cycle.issued and "Model/churn" in prod_receives(world)
    assert [v.reason for v in cycle.approvals] == ["", ""]


def test_a_squash_onto_a_moved_base_needs_its_own_approvals(
    world: World, keys: dict[str, Key], pr: str
) -> None:
    approve_all(world, keys, pr)
    git(world.work, "checkout", "-q", "main")
    world.change("a note", lambda w: (w / "NOTES.md").write_text("moved\n"))
    squash(world)  # another tree than the approved head's: its records are not this commit's
    cycle = reconciling.Reconciler(world.settings()).reconcile(NOW)
    assert "prod-eu" not in cycle.issued and prod_receives(world) == []
    assert cycle.approvals == ()


def test_audit_shows_each_approval_verified_or_not_and_trailers_unverified(
    world: World, keys: dict[str, Key], pr: str
) -> None:
    approve_all(world, keys, pr)
    _signed_record(world, keys["mallory"], pr)
    git(world.work, "checkout", "-q", "main")
    trailer = "Approved-by: Eve <eve@example.com>"
    git(world.work, "merge", "-q", "--no-ff", "scale-prod", "-m", "Merge", "-m", trailer)
    root = world.keys_dir / "root.json"
    report = audit_read.load_audit(
        audit_read.AuditRequest(world.work, "deployment/churn-prod", root, "main")
    )
    shown = " ".join(audit_view.text(report).split())  # as wrapped to 100 columns
    for name in ("ann", "bob"):
        fingerprint = keys[name].public.fingerprint
        assert f"approved by {name} ({fingerprint}), signature verified" in shown
    mallory = keys["mallory"].public.fingerprint
    assert f"! approval by mallory ({mallory}) not verified: unknown-key: " in shown
    assert f"approved by Eve <eve@example.com> (Approved-by: {approvals.TRAILERS})" in shown
    (spec,) = [e for e in audit_view.as_json(report)["events"] if e.get("commit") == pr]
    assert spec["approvedBy"] == ["Eve <eve@example.com>"] and not spec["approvedByVerified"]
    assert sorted((a["name"], a["key"], a["verified"], a["reason"]) for a in spec["approvals"]) == [
        ("ann", keys["ann"].public.fingerprint, True, ""),
        ("bob", keys["bob"].public.fingerprint, True, ""),
        ("mallory", mallory, False, "unknown-key"),
    ]


WEAKER = "approvals in trailer mode (weaker: Approved-by: is not verified; Policy/prod-gates)"


def test_plan_and_status_name_the_weaker_trailer_mode(world: World, gitplane_bin: str) -> None:
    result = planning.make_plan(planning.PlanRequest(world.work, "HEAD"), NOW)
    shown = render.text(result, title="plan")
    assert f"! {WEAKER}" in shown.split("plane prod-eu")[1]
    assert WEAKER not in shown.split("plane prod-eu")[0]  # local-dev asks no approvals
    planes = {p["plane"]: p for p in render.as_json(result)["planes"]}
    assert planes["prod-eu"]["approvals"] == {
        "mode": "trailers",
        "verified": False,
        "policies": ["prod-gates"],
    }
    assert planes["local-dev"]["approvals"] is None
    reconciling.Reconciler(world.settings()).reconcile(NOW)
    common = [gitplane_bin, "status", str(world.work), "--root", str(world.keys_dir / "root.json")]
    env = clock.env_at(NOW)
    text = subprocess.run(common, capture_output=True, text=True, env=env, check=False)
    assert f"! prod-eu: {WEAKER}\n" in text.stdout, text.stderr
    body = json.loads(
        subprocess.run(
            [*common, "-o", "json"], capture_output=True, text=True, env=env, check=True
        ).stdout
    )
    assert body["approvals"]["prod-eu"]["mode"] == "trailers"


def test_a_signed_plane_is_not_called_weaker(world: World, keys: dict[str, Key], pr: str) -> None:
    result = planning.make_plan(planning.PlanRequest(world.work, pr), NOW)
    assert WEAKER not in render.text(result, title="plan")
    (prod,) = [p for p in render.as_json(result)["planes"] if p["plane"] == "prod-eu"]
    assert prod["approvals"] == {"mode": "signed", "verified": True, "policies": ["prod-gates"]}


def test_an_alias_moved_after_approval_issues_nothing(
    world: World, keys: dict[str, Key], pr: str
) -> None:
    approve_all(world, keys, pr)
    merge(world)
    reconciler = reconciling.Reconciler(world.settings())
    assert "prod-eu" in reconciler.reconcile(NOW).issued  # the model's build
    agent = TestAgent(world, "prod-eu")
    assert agent.sync()  # built and registered: champion is registry version 1
    git(world.work, "checkout", "-q", "-b", "scale-5")
    scale(world.work, 5, was=4)
    head = commit_all(world.work, "scale prod to 5")
    approve_all(world, keys, head)  # they approve serving registry version 1
    built = agent.resources[("Model", "churn")]
    moved = {**built.observed, "registryVersion": 2, "artifactDigest": "sha256:" + "f" * 64}
    agent.resources[("Model", "churn")] = built.model_copy(update={"observed": moved})
    assert agent.sync() == []  # the plane now reports version 2 under the alias
    git(world.work, "checkout", "-q", "main")
    git(world.work, "merge", "-q", "--no-ff", "scale-5", "-m", "Merge scale-5")
    git(world.work, "push", "-q", "origin", "main")
    cycle = reconciler.reconcile(NOW)
    assert "prod-eu" not in cycle.issued and agent.sync() == []
    assert [v.reason for v in cycle.approvals] == ["plan-changed", "plan-changed"]
    assert cycle.plan is not None
    (prod,) = [p for p in cycle.plan.planes if p.plane == "prod-eu"]
    assert any("plan changed since approval" in a.reason for a in prod.actions)


def test_keys_approvers_pins_the_rule_and_refuses_clearly(
    world: World, keys: dict[str, Key], gitplane_bin: str
) -> None:
    mirror = gitrepo.Mirror.open(world.root / "publisher.git", world.remote)
    roots.publish(mirror, (world.keys_dir / "root.json").read_bytes(), who=RECONCILER)

    def pin_cli(rev: str) -> subprocess.CompletedProcess[str]:
        args = [gitplane_bin, "keys", "approvers", "--dir", str(world.keys_dir), str(world.work)]
        run = [*args, "--rev", rev]
        return subprocess.run(run, capture_output=True, text=True, check=False, timeout=60)

    trailers = pin_cli("main")
    assert trailers.returncode == 2 and "Traceback" not in trailers.stderr
    assert "asks for signed approvals: there is no rule to pin" in trailers.stderr
    head = world.change("signed approvals for prod", lambda w: set_policy(w, signed_policy(keys)))
    spare = world.root / "spare-root-keys"
    spare.mkdir()
    for n in (2, 3):  # one root key of the two the threshold needs
        (world.keys_dir / "root" / f"root-{n}.key").rename(spare / f"root-{n}.key")
    short = pin_cli("main")
    assert short.returncode == 2 and "Traceback" not in short.stderr
    assert "holds 1 of the 2 root key(s) of root version 1" in short.stderr
    assert anchor.read(mirror, mirror.fetch([layout.ROOT_REF])[layout.ROOT_REF]) is None
    (spare / "root-2.key").rename(world.keys_dir / "root" / "root-2.key")
    done = pin_cli("main")
    assert done.returncode == 0, done.stderr
    pinned = f"pinned the approval rule of {head[:12]} as approvers anchor version 1: ann, bob, cat"
    assert f"{pinned} (at least 2)" in done.stdout
    cycle = reconciling.Reconciler(world.settings()).reconcile(NOW)
    assert not cycle.problems  # taken: main's rule is the anchored one
