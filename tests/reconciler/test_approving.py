"""``gitplane approve`` and ``approvals`` on a real repository, with real ``ssh-keygen`` keys.

The world of tests/reconciler/conftest.py (a bare remote, real keys); its prod policy asks
for two signed approvals by ann, bob or cat. A pull request changes prod's deployment.
Each attack of issue 21 this layer can show asserts its typed reason and that the record
does not count.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from ledger import approvallog, approvals, gitrepo, layout, roots, sshkeygen
from reconciler import approval_gate, approving, planning
from reconciler import reconcile as reconciling
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
    git(world.work, "checkout", "-q", "-b", "scale-prod")
    scale(world.work, 4)
    return commit_all(world.work, "scale prod to 4")


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
    TestAgent(world, "prod-eu").sync()  # the model is built on prod: the deployment is next
    head = world.change("scale prod", lambda w: scale(w, 3))
    for name in ("mallory", "bob"):
        _signed_record(world, keys[name], head)
    cycle = reconciler.reconcile(NOW)
    assert "prod-eu" not in cycle.issued  # bob's key no longer counts: 1 of 2
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
