"""Forge attestors: a bot key of the policy signs the approvals the forge reports.

The world of tests/reconciler/test_approving.py, with a prod policy that lists a forge
bot besides ann, bob and cat. Real ``ssh-keygen`` keys, the real ``gitplane attest`` and
``approvals`` commands, the real reconciler. An attestation counts only as far as the
policy's ``attested`` allows, never added to signed approvals, and is always shown as
weaker by the bot's name.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
from pydantic import ValidationError

from ledger import approvals, gitrepo, roots, sshkeygen
from reconciler import approving
from reconciler.reconcile import RECONCILER
from schemas.errors import UsageError
from schemas.policy import Approvals
from tests import clock
from tests.conftest import commit_all, git
from tests.reconciler.conftest import NOW, World
from tests.reconciler.test_approving import (
    APPROVERS,
    merge,
    pin,
    prod_after_merge,
    request,
    scale,
    set_policy,
    signed_policy,
)
from tests.sshkeys import Key, make_key

WEAKER = "attested by forge bot forge-bot, not signed by the approvers"


@pytest.fixture
def keys(tmp_path: Path) -> dict[str, Key]:
    folder = tmp_path / "ssh"
    folder.mkdir()
    return {name: make_key(folder, name) for name in (*APPROVERS, "bot", "rogue-bot")}


def open_pr(world: World, keys: dict[str, Key], attested: int) -> str:
    """The prod policy with the bot as attestor on main; a PR scaling prod: its head."""
    mirror = gitrepo.Mirror.open(world.root / "publisher.git", world.remote)
    roots.publish(mirror, (world.keys_dir / "root.json").read_bytes(), who=RECONCILER)
    bot = f"    attestors:\n      - {{name: forge-bot, key: {keys['bot'].public_line}}}\n"
    block = signed_policy(keys) + bot + f"    attested: {attested}\n"
    world.change("signed approvals for prod, forge bot", lambda w: set_policy(w, block))
    pin(world)  # the root key holders anchor the rule (ADR 0018)
    git(world.work, "checkout", "-q", "-b", "scale-prod")
    scale(world.work, 4)
    return commit_all(world.work, "scale prod to 4")


def run(gitplane_bin: str, world: World, *args: str) -> subprocess.CompletedProcess[str]:
    root = ["--base", "main", "--root", str(world.keys_dir / "root.json")]
    return subprocess.run(
        [gitplane_bin, *args, str(world.work), *root],
        capture_output=True,
        text=True,
        env=clock.env_at(NOW),
        check=False,
    )


def attest(world: World, key: Key, head: str, logins: list[str]) -> approving.Attested:
    return approving.attest(request(world, head), key.path, 7, logins, NOW)


@pytest.mark.effect(
    "Policy",
    "spec.approvals.attestors[].name",
    "spec.approvals.attestors[].key",
    "spec.approvals.attested",
)
def test_the_bot_attests_two_forge_approvals_and_prod_is_issued(
    world: World, keys: dict[str, Key], gitplane_bin: str
) -> None:
    head = open_pr(world, keys, attested=2)
    bot = str(keys["bot"].path)
    done = run(gitplane_bin, world, "attest", "--rev", head, "--key", bot, "--pr", "7",
               "--approved-by", "alice, bob,alice")  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert f"attested {head[:12]} (PR 7): approved by alice, bob, {WEAKER}" in done.stdout
    shown = run(gitplane_bin, world, "approvals", "--rev", head, "-o", "json")
    body = json.loads(shown.stdout)
    assert (body["approvers"], body["signed"], body["attested"]) == (2, 0, ["alice", "bob"])
    (record,) = body["records"]
    assert record["verified"] and record["name"] == "forge-bot" and record["weaker"] == WEAKER
    assert record["attestation"] == {"pr": 7, "approvedBy": ["alice", "bob"]}
    text = run(gitplane_bin, world, "approvals", "--rev", head).stdout
    assert "prod-eu: needs 2, has 2" in text
    assert f"verified: alice, bob on PR 7, {WEAKER}" in text
    merge(world)
    issued, _ = prod_after_merge(world)
    assert issued


def test_attestations_count_only_as_far_as_the_policy_allows(
    world: World, keys: dict[str, Key]
) -> None:
    head = open_pr(world, keys, attested=1)
    attest(world, keys["bot"], head, ["alice", "bob"])
    approving.approve(request(world, head), keys["ann"].path, NOW)  # never added up
    merge(world)
    issued, actions = prod_after_merge(world)
    assert not issued
    reasons = [reason for _, ref, reason in actions if ref == "Model/churn"]
    assert reasons == ["needs 2 signed approval(s), has 1 (Policy/prod-gates)"]


def test_a_plan_held_with_attested_approvals_names_the_bot(
    world: World, keys: dict[str, Key]
) -> None:
    head = open_pr(world, keys, attested=1)
    attest(world, keys["bot"], head, ["alice", "bob"])
    merge(world)
    issued, actions = prod_after_merge(world)
    assert not issued
    reasons = [reason for _, ref, reason in actions if ref == "Model/churn"]
    assert reasons == [f"needs 2 signed approval(s), has 1 ({WEAKER}) (Policy/prod-gates)"]


def test_bad_logins_are_refused_in_words_and_nothing_is_pushed(
    world: World, keys: dict[str, Key], gitplane_bin: str
) -> None:
    head = open_pr(world, keys, attested=2)
    bot = str(keys["bot"].path)
    for logins, said in [("alice,rm -rf", "cannot attest: "), (" , ", "name at least one login")]:
        done = run(gitplane_bin, world, "attest", "--rev", head, "--key", bot, "--pr", "7",
                   "--approved-by", logins)  # fmt: skip
        assert done.returncode == 2 and said in done.stderr, done.stderr
        assert "Traceback" not in done.stderr
    assert approving.listing(request(world, head), NOW).tally.verdicts == ()


def test_a_bot_outside_the_policy_vouches_for_nothing(world: World, keys: dict[str, Key]) -> None:
    head = open_pr(world, keys, attested=2)
    with pytest.raises(UsageError, match="is not a forge attestor in the policy in force"):
        attest(world, keys["rogue-bot"], head, ["alice", "bob"])
    with pytest.raises(UsageError, match="is not an approver"):  # a bot key is not a person's
        approving.approve(request(world, head), keys["bot"].path, NOW)
    found = approving.listing(request(world, head), NOW)
    assert found.tally.verdicts == () and found.tally.count == 0


def test_an_attestation_does_not_survive_a_plan_change(world: World, keys: dict[str, Key]) -> None:
    head = open_pr(world, keys, attested=2)
    attest(world, keys["bot"], head, ["alice", "bob"])
    scale(world.work, 8, was=4)
    later = commit_all(world.work, "scale prod to 8 after the review")
    (verdict,) = approving.listing(request(world, later), NOW).tally.verdicts
    assert verdict.reason == "plan-changed" and verdict.attestation is not None
    merge(world)
    issued, actions = prod_after_merge(world)
    assert not issued
    assert any("plan changed since approval" in reason for _, _, reason in actions)


def test_a_bot_signature_is_never_an_approval(world: World, keys: dict[str, Key]) -> None:
    head = open_pr(world, keys, attested=2)
    found = approving.listing(request(world, head), NOW)
    target = found.context.target
    draft = approvals.Approval(
        repository=target.repository,
        commit=head,
        tree=target.trees[head],
        plans=dict(target.plans),
        approver="forge-bot",
        key=keys["bot"].public.fingerprint,
        time="2026-11-24T12:00:00Z",
    )
    armor = sshkeygen.sign(draft.payload(), key=keys["bot"].path, namespace=approvals.NAMESPACE)
    data = approvals.stored(draft, armor)
    verdict = approvals.verify("x.json", data, approvers=found.context.approvers, target=target)
    assert verdict.reason == "unknown-key"
    done = attest(world, keys["bot"], head, ["alice"])  # its attestation, as an approval
    forged = approvals.stored(done.attestation, armor)
    verdict = approvals.verify("y.json", forged, approvers=found.context.approvers, target=target)
    assert verdict.reason == "tampered"


def test_attestors_are_read_only_in_signed_mode() -> None:
    with pytest.raises(ValidationError, match="no attestors are listed"):
        Approvals.model_validate({"mode": "signed", "minimum": 0, "attested": 1})
    key = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl"
    bot = [{"name": "bot", "key": key}]
    with pytest.raises(ValidationError, match="read only with mode: signed"):
        Approvals.model_validate({"mode": "trailers", "attestors": bot})
