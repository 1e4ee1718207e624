"""Approval records: signed by real ``ssh-keygen`` keys, counted by ``ledger.approvals``.

Each attack of issue 21 that this layer can show has a test asserting its typed reason and
that the record does not count (the gate issues nothing without enough counted ones).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest

from ledger import approvals, sshkeygen
from schemas.policy import Approver
from tests.sshkeys import Key, make_key

REPO = "sha256:" + "1" * 64
OTHER_REPO = "sha256:" + "2" * 64
HEAD, PARENT, OTHER = "a" * 40, "b" * 40, "c" * 40
TREE, PARENT_TREE, OTHER_TREE = "d" * 40, "e" * 40, "f" * 40
PLAN, CHANGED = "sha256:" + "3" * 64, "sha256:" + "4" * 64
TARGET = approvals.Target(REPO, HEAD, {HEAD: TREE}, {"prod": PLAN})


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Key]:
    folder = tmp_path_factory.mktemp("keys")
    return {name: make_key(folder, name) for name in ("ann", "bob", "cat", "mallory")}


def approver(keys: dict[str, Key], name: str, as_name: str = "") -> Approver:
    return Approver(name=as_name or name, key=keys[name].public_line)


@pytest.fixture(scope="module")
def policy(keys: dict[str, Key]) -> approvals.Approvers:
    return approvals.Approvers.of([approver(keys, n) for n in ("ann", "bob", "cat")])


def record(signer: Key, /, **changes: Any) -> bytes:
    """A record of HEAD approving PLAN on prod, signed by ``signer``, with ``changes``."""
    fields: dict[str, Any] = {
        "repository": REPO,
        "commit": HEAD,
        "tree": TREE,
        "plans": {"prod": PLAN},
        "approver": signer.path.name,
        "key": signer.public.fingerprint,
        "time": "2026-12-06T12:00:00Z",
    }
    approval = approvals.Approval.model_validate(fields | changes)
    armor = sshkeygen.sign(approval.payload(), key=signer.path, namespace=approvals.NAMESPACE)
    return approvals.stored(approval, armor)


def files(*records: bytes) -> dict[str, bytes]:
    return {f"approvals/{HEAD}/{i}.json": data for i, data in enumerate(records)}


def test_distinct_approvers_count(keys: dict[str, Key], policy: approvals.Approvers) -> None:
    tally = approvals.tally(
        files(record(keys["ann"]), record(keys["bob"])), approvers=policy, target=TARGET
    )
    assert [(v.reason, v.name) for v in tally.verdicts] == [("", "ann"), ("", "bob")]
    assert tally.approvers == {keys["ann"].public.fingerprint, keys["bob"].public.fingerprint}


def test_stored_files_are_content_addressed(keys: dict[str, Key]) -> None:
    data = record(keys["ann"])
    assert approvals.path_of(HEAD, data) == approvals.path_of(HEAD, bytes(data))
    assert approvals.path_of(HEAD, data).startswith(f"approvals/{HEAD}/")


def reasons(tally: approvals.Tally) -> list[str]:
    return [v.reason for v in tally.verdicts]


@pytest.mark.parametrize(
    ("make", "reason", "detail"),
    [
        (lambda k: record(k["mallory"]), "unknown-key", "not an approver"),
        (
            lambda k: record(k["ann"], repository=OTHER_REPO),
            "wrong-repo",
            "approves repository",
        ),
        (
            lambda k: record(k["ann"], commit=OTHER, tree=OTHER_TREE),
            "wrong-commit",
            "approves cccccccccccc",
        ),
        (lambda k: record(k["ann"], tree=OTHER_TREE), "wrong-commit", "not this change"),
        (
            lambda k: record(k["ann"], plans={"prod": CHANGED}),
            "plan-changed",
            "plane prod: plan changed since approval (approved 44444444…, now 33333333…)",
        ),
        (lambda k: record(k["ann"], plans={}), "plan-changed", "not in the approved plan"),
        (
            lambda k: record(k["mallory"], key=k["ann"].public.fingerprint),
            "tampered",
            "but SHA256:",
        ),
    ],
    ids=[
        "key-not-in-policy",
        "replayed-onto-another-repository",
        "replayed-onto-another-commit",
        "same-commit-other-tree",
        "plan-changed",
        "plane-not-approved",
        "claims-another-key",
    ],
)
def test_refused_records_do_not_count(
    keys: dict[str, Key],
    policy: approvals.Approvers,
    make: Callable[[dict[str, Key]], bytes],
    reason: str,
    detail: str,
) -> None:
    tally = approvals.tally(files(make(keys)), approvers=policy, target=TARGET)
    (verdict,) = tally.verdicts
    assert (verdict.reason, verdict.counted, tally.approvers) == (reason, False, frozenset())
    assert detail in verdict.detail


def test_a_removed_key_is_named_as_removed(keys: dict[str, Key]) -> None:
    before = [approver(keys, "ann"), approver(keys, "bob")]
    now = approvals.Approvers.of([approver(keys, "bob")], former=before)
    tally = approvals.tally(files(record(keys["ann"])), approvers=now, target=TARGET)
    assert reasons(tally) == ["removed-key"]


def test_a_self_added_key_is_checked_against_the_policy_before_it(
    keys: dict[str, Key], policy: approvals.Approvers
) -> None:
    # the PR adds mallory to the approvers and mallory approves it: the change to the
    # approvers is judged by the set in force at its parent, which does not list mallory
    with_mallory = approvals.Approvers.of(
        [approver(keys, n) for n in ("ann", "bob", "cat", "mallory")]
    )
    mallory = files(record(keys["mallory"]))
    assert approvals.tally(mallory, approvers=with_mallory, target=TARGET).approvers
    assert reasons(approvals.tally(mallory, approvers=policy, target=TARGET)) == ["unknown-key"]


def test_one_key_counts_once(keys: dict[str, Key], policy: approvals.Approvers) -> None:
    ann = record(keys["ann"])
    renamed = record(keys["ann"], approver="someone else")
    tally = approvals.tally(files(ann, ann, renamed), approvers=policy, target=TARGET)
    assert reasons(tally) == ["", "duplicate", "duplicate"]
    assert len(tally.approvers) == 1


def test_one_key_under_two_names_in_a_policy_counts_once(keys: dict[str, Key]) -> None:
    twice = approvals.Approvers.of([approver(keys, "ann"), approver(keys, "ann", "ann2")])
    tally = approvals.tally(
        files(record(keys["ann"]), record(keys["ann"], approver="ann2")),
        approvers=twice,
        target=TARGET,
    )
    assert len(tally.approvers) == 1


def test_an_approval_of_the_head_counts_for_its_merge_commit(
    keys: dict[str, Key], policy: approvals.Approvers
) -> None:
    merge = approvals.Target(REPO, OTHER, {OTHER: OTHER_TREE, HEAD: TREE}, {"prod": PLAN})
    squash = approvals.Target(REPO, OTHER, {OTHER: TREE, PARENT: PARENT_TREE}, {"prod": PLAN})
    data = files(record(keys["ann"]))
    assert reasons(approvals.tally(data, approvers=policy, target=merge)) == [""]
    assert reasons(approvals.tally(data, approvers=policy, target=squash)) == [""]


def _edit(data: bytes, change: Callable[[dict[str, Any]], None]) -> bytes:
    outer = json.loads(data)
    inner = json.loads(outer["record"])
    change(inner)
    outer["record"] = json.dumps(inner, sort_keys=True, separators=(",", ":"))
    return json.dumps(outer).encode()


@pytest.mark.parametrize(
    ("modify", "reason"),
    [
        (lambda d: _edit(d, lambda r: r.update(approver="bob")), "tampered"),
        (lambda d: _edit(d, lambda r: r.update(plans={"prod": CHANGED})), "tampered"),
        (lambda d: d.replace(b"BEGIN SSH", b"BEGIN SHH"), "tampered"),
        (lambda d: _edit(d, lambda r: r.update(extra=1)), "malformed"),
        (lambda d: _edit(d, lambda r: r.pop("tree")), "malformed"),
        (lambda d: d.replace(b'{"record":', b'{"record":"x","record":'), "malformed"),
        (lambda d: b" " * (approvals.MAX_FILE + 1), "malformed"),
        (lambda d: json.dumps({"record": "{}", "signature": 1}).encode(), "malformed"),
        (
            lambda d: _edit(d, lambda r: None).replace(b'\\"commit\\"', b'\\"commit\\" '),
            "malformed",
        ),
    ],
    ids=[
        "approver-edited",
        "plan-edited",
        "signature-armor-broken",
        "extra-field",
        "missing-field",
        "duplicate-key",
        "oversized",
        "signature-not-a-string",
        "not-canonical",
    ],
)
def test_tampered_records_do_not_count(
    keys: dict[str, Key],
    policy: approvals.Approvers,
    modify: Callable[[bytes], bytes],
    reason: str,
) -> None:
    tally = approvals.tally(files(modify(record(keys["ann"]))), approvers=policy, target=TARGET)
    assert (reasons(tally), tally.approvers) == ([reason], frozenset())


def test_ten_records_count_three_distinct_approvers(
    keys: dict[str, Key], policy: approvals.Approvers
) -> None:
    """Ten records, duplicates among them: each verified, each key counted once (how long
    this takes is measured by benchmarks/plan.py, part 2b, not here)."""
    many = files(*[record(keys[n]) for n in ("ann", "bob", "cat", "mallory", "ann")] * 2)
    tally = approvals.tally(many, approvers=policy, target=TARGET)
    assert len(tally.verdicts) == 10 and len(tally.approvers) == 3
