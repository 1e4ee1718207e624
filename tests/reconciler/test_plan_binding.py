"""The plan comment carries the plan digests that ``approve`` signs and the reconciler compares.

The world of tests/reconciler/test_approving.py: prod asks for two signed approvals, a pull
request scales prod's deployment. ``gitplane plan --root`` must show, for prod, exactly the
digest computed at merge when nothing changed, and another one after any change of what prod
will be told.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from ledger import gitrepo, roots
from reconciler import approving, planning, render
from reconciler.reconcile import RECONCILER
from tests import clock
from tests.conftest import commit_all, git
from tests.reconciler.conftest import NOW, World
from tests.reconciler.test_approving import (
    APPROVERS,
    listed,
    merge,
    prod_after_merge,
    scale,
    set_policy,
    signed_policy,
)
from tests.sshkeys import Key, make_key


@pytest.fixture
def approvers(tmp_path: Path) -> dict[str, Key]:
    folder = tmp_path / "ssh"
    folder.mkdir()
    return {name: make_key(folder, name) for name in APPROVERS}


@pytest.fixture
def head(world: World, approvers: dict[str, Key]) -> str:
    """Root published, the signed policy on main, a PR branch scaling prod: its head."""
    mirror = gitrepo.Mirror.open(world.root / "publisher.git", world.remote)
    roots.publish(mirror, (world.keys_dir / "root.json").read_bytes(), who=RECONCILER)
    world.change("signed approvals for prod", lambda w: set_policy(w, signed_policy(approvers)))
    git(world.work, "checkout", "-q", "-b", "scale-prod")
    scale(world.work, 4)
    return commit_all(world.work, "scale prod to 4")


def planned(world: World, rev: str) -> dict[str, object]:
    request = planning.PlanRequest(world.work, rev, "main", world.keys_dir / "root.json")
    return render.as_json(planning.make_plan(request, NOW))


def test_the_plan_digest_is_the_one_compared_at_merge(
    world: World, approvers: dict[str, Key], head: str
) -> None:
    shown = planned(world, head)["digests"]
    assert isinstance(shown, dict) and set(shown) == {"prod-eu"}
    for name in ("ann", "bob"):  # approve signs exactly the digests the comment shows
        request = approving.ApprovalRequest(
            planning.PlanRequest(world.work, head, "main", world.keys_dir / "root.json")
        )
        assert approving.approve(request, approvers[name].path, NOW).approval.plans == shown
    merged = merge(world)
    assert listed(world, merged).context.target.plans == shown  # computed as the reconciler does
    issued, _ = prod_after_merge(world)
    assert issued


def test_the_digest_changes_with_what_prod_will_be_told(world: World, head: str) -> None:
    first = planned(world, head)["digests"]
    scale(world.work, 6, was=4)
    another = planned(world, commit_all(world.work, "scale prod to 6"))["digests"]
    assert isinstance(first, dict) and isinstance(another, dict)
    assert another["prod-eu"] != first["prod-eu"]
    assert planned(world, head)["digests"] == first  # the same commit: the same digest


def test_a_policy_change_counts_only_if_it_changes_what_prod_is_told(
    world: World, head: str
) -> None:
    first = planned(world, head)["digests"]
    path = world.work / "policies/prod.yaml"
    path.write_text(path.read_text().replace("maxSeverity: MEDIUM", "maxSeverity: LOW"))
    stricter = planned(world, commit_all(world.work, "stricter scans on prod"))["digests"]
    assert stricter == first  # nothing is scanned yet: prod is told the same (ADR 0019)
    path.write_text(path.read_text().replace("matchLabels: {env: prod}", "matchLabels: {}"))
    everywhere = planned(world, commit_all(world.work, "protect every plane"))["digests"]
    assert isinstance(everywhere, dict) and set(everywhere) == {"local-dev", "prod-eu"}


def test_the_comment_shows_the_digests_or_says_why_not(
    world: World, head: str, gitplane_bin: str
) -> None:
    root = str(world.keys_dir / "root.json")
    common = [gitplane_bin, "plan", str(world.work), "--rev", head, "--base", "main"]
    env = clock.env_at(NOW)

    def run(*extra: str) -> str:
        done = subprocess.run(
            [*common, *extra], capture_output=True, text=True, env=env, check=False
        )
        assert done.returncode == 0, done.stderr
        return done.stdout

    comment = run("--root", root, "-o", "markdown")
    digest = json.loads(run("--root", root, "-o", "json"))["digests"]["prod-eu"]
    assert f"* `prod-eu`: `{digest}`" in comment
    unbound = run("-o", "markdown")
    assert render.UNBOUND in unbound and "sha256:" not in unbound
