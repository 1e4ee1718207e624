"""The plan comment carries the plan digests that ``approve`` signs and the reconciler compares.

The world of tests/reconciler/test_approving.py: prod asks for two signed approvals, a pull
request scales prod's deployment. ``gitplane plan --root`` must show, for prod, exactly the
digest computed at merge when nothing changed, and another one after any change of what prod
will be told.
"""

from __future__ import annotations

import json
import subprocess

from reconciler import approving, planning, render
from tests import clock
from tests.conftest import commit_all
from tests.reconciler import test_approving
from tests.reconciler.conftest import NOW, World
from tests.reconciler.test_approving import (
    listed,
    merge,
    prod_after_merge,
    scale,
)
from tests.sshkeys import Key

keys = test_approving.keys  # the same fixtures: one world
pr = test_approving.pr


def planned(world: World, rev: str) -> dict[str, object]:
    request = planning.PlanRequest(world.work, rev, "main", world.keys_dir / "root.json")
    return render.as_json(planning.make_plan(request, NOW))


def test_the_plan_digest_is_the_one_compared_at_merge(
    world: World, keys: dict[str, Key], pr: str
) -> None:
    shown = planned(world, pr)["digests"]
    assert isinstance(shown, dict) and set(shown) == {"prod-eu"}
    for name in ("ann", "bob"):  # approve signs exactly the digests the comment shows
        request = approving.ApprovalRequest(
            planning.PlanRequest(world.work, pr, "main", world.keys_dir / "root.json")
        )
        assert approving.approve(request, keys[name].path, NOW).approval.plans == shown
    merged = merge(world)
    assert listed(world, merged).context.target.plans == shown  # computed as the reconciler does
    issued, _ = prod_after_merge(world)
    assert issued


def test_the_digest_changes_with_what_prod_will_be_told(world: World, pr: str) -> None:
    first = planned(world, pr)["digests"]
    scale(world.work, 6, was=4)
    another = planned(world, commit_all(world.work, "scale prod to 6"))["digests"]
    assert isinstance(first, dict) and isinstance(another, dict)
    assert another["prod-eu"] != first["prod-eu"]
    assert planned(world, pr)["digests"] == first  # the same commit: the same digest


def test_a_policy_change_counts_only_if_it_changes_what_prod_is_told(world: World, pr: str) -> None:
    first = planned(world, pr)["digests"]
    path = world.work / "policies/prod.yaml"
    path.write_text(path.read_text().replace("maxSeverity: MEDIUM", "maxSeverity: LOW"))
    stricter = planned(world, commit_all(world.work, "stricter scans on prod"))["digests"]
    assert stricter == first  # nothing is scanned yet: prod is told the same (ADR 0019)
    path.write_text(path.read_text().replace("matchLabels: {env: prod}", "matchLabels: {}"))
    everywhere = planned(world, commit_all(world.work, "protect every plane"))["digests"]
    assert isinstance(everywhere, dict) and set(everywhere) == {"local-dev", "prod-eu"}


def test_the_comment_shows_the_digests_or_says_why_not(
    world: World, pr: str, gitplane_bin: str
) -> None:
    root = str(world.keys_dir / "root.json")
    common = [gitplane_bin, "plan", str(world.work), "--rev", pr, "--base", "main"]
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


def test_the_text_plan_lists_the_digests(world: World, pr: str) -> None:
    request = planning.PlanRequest(world.work, pr, "main", world.keys_dir / "root.json")
    result = planning.make_plan(request, NOW)
    assert result.digests is not None
    shown = render.text(result, title="t")
    assert f"  prod-eu: {result.digests['prod-eu']}\n" in shown
    unbound = planning.make_plan(planning.PlanRequest(world.work, pr, "main"), NOW)
    assert unbound.digests is None
    assert "warning: a plane is protected by signed approvals" in render.text(unbound, title="t")
