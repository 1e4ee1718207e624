"""``gitplane status`` against real logs: a reporting plane, a silent one, a failing one."""

from __future__ import annotations

import json
import subprocess
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from reconciler import planning, status_view
from reconciler import reconcile as reconciling
from reconciler.planned import Action, Plan, PlanePlan
from reconciler.recorded import Issued, RecordedPlane
from schemas import signed
from tests import clock
from tests.reconciler.conftest import NOW, TestAgent, World, world  # noqa: F401 - the fixture


def _status(
    gitplane_bin: str,
    world: World,  # noqa: F811
    *args: str,
    at: datetime = NOW,
) -> subprocess.CompletedProcess[str]:
    bare = world.remote.removeprefix("file://")
    return subprocess.run(
        [gitplane_bin, "status", bare, "--root", str(world.keys_dir / "root.json"), *args],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
        env=clock.env_at(at),  # the clock the fixtures were signed at, unless told
    )


def _retry_backoff_on_prod(repo: Path) -> None:
    """The DAG on the kubernetes plane too: its steps' retry backoff is not applied there."""
    dag = repo / "dags" / "churn-batch.yaml"
    dag.write_text(dag.read_text().replace("matchLabels: {env: dev}", "matchLabels: {}"))


def test_status_shows_each_plane_and_resource(gitplane_bin: str, world: World) -> None:  # noqa: F811
    world.change("the DAG on every plane", _retry_backoff_on_prod)
    reconciler = reconciling.Reconciler(world.settings())
    reconciler.reconcile(NOW)
    TestAgent(world, "local-dev").sync()
    reconciler.reconcile(NOW)

    done = _status(gitplane_bin, world, "--output", "json")
    assert done.returncode == 0, done.stderr
    body = json.loads(done.stdout)
    assert body["apiVersion"] == "gitplane.dev/status/v1"
    planes = {p["name"]: p for p in body["planes"]}
    local, prod = planes["local-dev"], planes["prod-eu"]
    assert local["reportedAt"] is not None and local["appliedSequence"] == 1
    assert local["issuedSequence"] == 2  # the deployment went out once the model was ready
    model = next(r for r in local["resources"] if r["kind"] == "Model")
    assert (model["sync"], model["phase"]) == ("Synced", "Ready")
    assert model["issued"].startswith("#1 sha256:") and model["applied"].startswith("sha256:")
    deployment = next(r for r in local["resources"] if r["name"] == "churn-dev")
    assert (deployment["sync"], deployment["phase"]) == ("Issued", "Unknown")  # not applied yet
    assert deployment["message"] == "issued in #2; the plane has applied #1"
    assert prod["reportedAt"] is None
    assert prod["flags"] == ["no signed status report yet: is its agent running?"]
    assert [w["path"] for w in body["specWarnings"]] == ["spec.steps[1].retry.backoff"]
    assert "warning: " in done.stderr
    assert "a Job has no field for it (planes: prod-eu)" in done.stderr


def test_status_text_fits_100_columns_and_filters_planes(gitplane_bin: str, world: World) -> None:  # noqa: F811
    reconciling.Reconciler(world.settings()).reconcile(NOW)
    TestAgent(world, "local-dev").sync(phase="Failed")
    done = _status(gitplane_bin, world)
    assert done.returncode == 0, done.stderr
    assert max(len(line) for line in done.stdout.splitlines()) <= 100
    assert "local-dev (local): reported" in done.stdout
    assert "prod-eu (kubernetes): never reported" in done.stdout
    only = _status(gitplane_bin, world, "--plane", "local-dev")
    assert "prod-eu" not in only.stdout
    missing = _status(gitplane_bin, world, "--plane", "nowhere")
    assert missing.returncode == 2
    assert "no DataPlane named 'nowhere'" in missing.stderr


def test_status_needs_a_repository(gitplane_bin: str, tmp_path: Path, world: World) -> None:  # noqa: F811
    done = subprocess.run(
        [gitplane_bin, "status", str(tmp_path), "--root", str(world.keys_dir / "root.json")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 2
    assert "not a directory inside a git repository" in done.stderr


def test_status_in_a_clone_reads_the_logs_from_its_origin(
    gitplane_bin: str,
    tmp_path: Path,
    world: World,  # noqa: F811
) -> None:
    reconciling.Reconciler(world.settings()).reconcile(NOW)
    TestAgent(world, "local-dev").sync()
    clone = tmp_path / "clone"
    bare = world.remote.removeprefix("file://")
    subprocess.run(["git", "clone", "-q", bare, str(clone)], check=True)
    done = subprocess.run(
        [gitplane_bin, "status", str(clone), "--root", str(world.keys_dir / "root.json")],
        capture_output=True,
        text=True,
        check=False,
        env=clock.env_at(NOW),
    )
    assert done.returncode == 0, done.stderr
    assert "local-dev (local): reported" in done.stdout  # not "never reported"


def test_status_of_an_expired_log_shows_the_last_verified_state_flagged(
    gitplane_bin: str,
    world: World,  # noqa: F811
) -> None:
    """The reconciler stopped: its timestamps expired a week after the last cycle. The agent
    refuses such a log (a freeze), but a read-only view still shows what was last verified,
    with the flag that says why nothing moves."""
    reconciler = reconciling.Reconciler(world.settings())
    reconciler.reconcile(NOW)
    TestAgent(world, "local-dev").sync()
    reconciler.reconcile(NOW)  # issues #2: its timestamp expires at NOW + 7 days

    done = _status(gitplane_bin, world, "--output", "json", at=NOW + timedelta(days=19))
    assert done.returncode == 0, done.stderr
    local = next(p for p in json.loads(done.stdout)["planes"] if p["name"] == "local-dev")
    assert local["flags"][0] == "timestamp expired 12 days ago: is the reconciler running?"
    assert (local["issuedSequence"], local["appliedSequence"]) == (2, 1)
    model = next(r for r in local["resources"] if r["kind"] == "Model")
    assert (model["sync"], model["phase"]) == ("Synced", "Ready")  # not Unknown

    text = _status(gitplane_bin, world, "--plane", "local-dev", at=NOW + timedelta(days=19))
    assert text.stdout.splitlines()[:3] == [
        "local-dev (local): reported 19d ago, applied #1 of #2",
        "  ! timestamp expired 12 days ago: is the reconciler running?",
        "  ! stale: bundle 2 issued 2026-11-24T12:00:00Z is not applied yet",
    ]


def test_a_bad_spec_on_main_lists_its_problems_and_still_shows_every_plane(
    gitplane_bin: str,
    world: World,  # noqa: F811
) -> None:
    """As Argo CD shows the live state beside a comparison error: the problems with file,
    line and column, then each plane as it last recorded (nothing compared: sync Unknown);
    a plane whose own DataPlane spec is broken cannot be verified and is left out."""
    reconciler = reconciling.Reconciler(world.settings())
    reconciler.reconcile(NOW)
    TestAgent(world, "local-dev").sync()

    def typo(work: Path) -> None:
        path = work / "deployments" / "churn-dev.yaml"
        path.write_text(
            path.read_text().replace("  planeSelector:", "  replcas: 3\n  planeSelector:")
        )
        prod = work / "planes" / "prod.yaml"
        prod.write_text(prod.read_text().replace("runtime: kubernetes", "runtime: nomad"))

    world.change("a typo and an unknown runtime", typo)
    done = _status(gitplane_bin, world, "--output", "json")
    assert done.returncode == 1
    lines = done.stderr.splitlines()
    problems = [line for line in lines if ".yaml:" in line and not line.startswith("warning: ")]
    assert len(problems) == 2, done.stderr
    bare = world.remote.removeprefix("file://")  # files are named as PATH was given
    assert problems[0] == (
        f"{bare}/deployments/churn-dev.yaml:10:3: spec.replcas: "
        "unknown field 'replcas' (did you mean 'replicas'?)"
    )
    assert problems[1].startswith(f"{bare}/planes/prod.yaml:")
    assert "2 problem(s) in the specs at HEAD" in done.stderr
    assert "Traceback" not in done.stderr
    body = json.loads(done.stdout)
    assert [p["file"] for p in body["specProblems"]] == [
        f"{bare}/deployments/churn-dev.yaml",
        f"{bare}/planes/prod.yaml",
    ]
    assert [p["name"] for p in body["planes"]] == ["local-dev"]  # prod-eu cannot be verified
    [local] = body["planes"]
    assert local["reportedAt"] is not None and local["appliedSequence"] == 1
    model = next(r for r in local["resources"] if r["kind"] == "Model")
    assert (model["sync"], model["phase"]) == ("Unknown", "Ready")

    text = _status(gitplane_bin, world)
    assert text.returncode == 1
    assert "local-dev (local): reported" in text.stdout
    assert any(
        line.split()[:3] == ["Model/churn", "Unknown", "Ready"] for line in text.stdout.splitlines()
    )


def test_a_failed_build_shows_its_cause_line_not_only_the_first() -> None:
    message = (
        "the project run failed (exit 1; run ab12, log in its logs/ artifact):\n"
        'Traceback (most recent call last):\n  File "train.py", line 9\n'
        "FileNotFoundError: training data not found: /data/customers.parquet\n"
        "2026/11/24 12:00:00 ERROR mlflow.cli: === Run (ID 'ab12') failed ==="
    )
    failed = status_view.Resource("Model", "churn", "Synced", "Failed", "", "", "", message, {})
    plane = status_view.PlaneStatus("dev", "local", None, None, 1, 1, (), (failed,))
    lines = status_view.text([plane]).splitlines()
    cause = "FileNotFoundError: training data not found: /data/customers.parquet (the project run"
    assert lines[-1].startswith(f"      {cause}")
    assert len(lines[-1]) == 100


def test_exit_code_says_whether_every_plane_shown_is_healthy(
    gitplane_bin: str,
    world: World,  # noqa: F811
) -> None:
    """``status`` exited 0 with a refused log or an attack report: scripts could not gate on
    it. ``--exit-code`` is 1 while anything shown is flagged, failed or not ready."""
    reconciler = reconciling.Reconciler(world.settings())
    agent = TestAgent(world, "local-dev")
    for _ in range(3):  # the model, then what waited for it, then nothing new
        reconciler.reconcile(NOW)
        agent.sync()
    healthy = _status(gitplane_bin, world, "--plane", "local-dev", "--exit-code")
    assert healthy.returncode == 0, healthy.stdout + healthy.stderr
    silent = _status(gitplane_bin, world, "--plane", "prod-eu", "--exit-code")
    assert silent.returncode == 1
    assert "not healthy: prod-eu: no signed status report yet" in silent.stderr
    assert _status(gitplane_bin, world, "--plane", "prod-eu").returncode == 0  # as before
    world.change("scale churn-dev", lambda work: _scale(work, 6))
    reconciler.reconcile(NOW)
    agent.sync(phase="Failed")
    failed = _status(gitplane_bin, world, "--plane", "local-dev", "--exit-code")
    assert failed.returncode == 1
    assert "local-dev: Deployment/churn-dev " in failed.stderr and " Failed" in failed.stderr


def _scale(work: Path, replicas: int) -> None:
    path = work / "deployments" / "churn-dev.yaml"
    text = path.read_text()
    path.write_text(text.replace("maxReplicas: 4", f"maxReplicas: {replicas}", 1))


def test_the_reasons_exit_code_prints_are_inert() -> None:
    """A flag quotes what a plane or git said: no escape sequence reaches the terminal."""
    flagged = status_view.PlaneStatus(
        name="dev", runtime="local", reported_at=None, age_seconds=None, issued=0, applied=0,
        flags=("agent reports rollback: \x1b]2;owned\x07\x1b[31mred",), resources=(),
    )  # fmt: skip
    [reason] = status_view.unhealthy([flagged])
    assert reason.startswith("dev: agent reports rollback: ")
    assert "\x1b" not in reason and "\x07" not in reason


DIGEST_A, DIGEST_B = "sha256:" + "a" * 64, "sha256:" + "b" * 64
KEY = ("Deployment", "churn-dev")


def _seen(digest: str, phase: str = "Ready") -> signed.ResourceStatus:
    return signed.ResourceStatus(kind=KEY[0], name=KEY[1], phase=phase, digest=digest)  # type: ignore[arg-type]


def _view(
    issued: Issued, applied: int, seen: signed.ResourceStatus | None, action: Action | None = None
) -> list[status_view.Resource]:
    """The resources ``status`` shows for one plane that was issued ``issued`` and reports
    having applied bundle ``applied`` and the resource as ``seen``."""
    observed = {KEY: seen} if seen is not None else {}
    state = RecordedPlane("dev", {KEY: issued}, observed, head=issued.sequence, applied=applied)
    planned = PlanePlan("dev", "local", {}, (action,) if action else ())
    [plane] = status_view.build(Plan("c" * 40, (planned,)), {"dev": state}, {}, NOW)
    return list(plane.resources)


@pytest.mark.parametrize(
    ("issued", "applied", "seen", "sync", "message"),
    [
        (Issued("apply", DIGEST_B, 2), 2, _seen(DIGEST_B), "Synced", ""),
        (Issued("apply", DIGEST_B, 2), 3, _seen(DIGEST_B, "Failed"), "Synced", ""),
        (Issued("apply", DIGEST_B, 2), 1, None, "Issued", "issued in #2; the plane has applied #1"),
        (
            Issued("apply", DIGEST_B, 2),
            1,
            _seen(DIGEST_A),
            "Issued",
            "issued in #2; the plane has applied #1",
        ),
        (  # applying: the plane reports the new digest Progressing before its bundle is done
            Issued("apply", DIGEST_B, 2),
            1,
            _seen(DIGEST_B, "Progressing"),
            "Issued",
            "issued in #2; the plane has applied #1",
        ),
        (
            Issued("apply", DIGEST_B, 2),
            2,
            _seen(DIGEST_A),
            "Issued",
            "issued in #2; the plane does not report it applied yet",
        ),
        (
            Issued("delete", DIGEST_B, 3),
            2,
            _seen(DIGEST_A),
            "Issued",
            "delete issued in #3; the plane has applied #2",
        ),
        (Issued("delete", DIGEST_B, 3), 3, _seen(DIGEST_B, "Failed"), "Synced", ""),
    ],
    ids=[
        "applied",
        "applied-and-failed",
        "sent-never-reported",
        "sent-older-version-runs",
        "applying",
        "bundle-covered-other-digest",
        "delete-not-applied",
        "delete-failed-on-the-plane",
    ],
)
def test_synced_means_the_plane_applied_what_was_issued(
    issued: Issued, applied: int, seen: signed.ResourceStatus | None, sync: str, message: str
) -> None:
    [resource] = _view(issued, applied, seen)
    assert (resource.sync, resource.message) == (sync, message)


def test_an_applied_delete_is_gone_from_the_view() -> None:
    assert _view(Issued("delete", DIGEST_B, 3), 3, None) == []
    assert _view(Issued("delete", DIGEST_B, 3), 3, _seen(DIGEST_B, "Deleted")) == []


def test_a_due_action_outranks_what_was_applied() -> None:
    due = Action("update", *KEY, "spec changed in git")
    [resource] = _view(Issued("apply", DIGEST_A, 1), 1, _seen(DIGEST_A), due)
    assert (resource.sync, resource.message) == ("OutOfSync", "spec changed in git")
    held = Action("wait", *KEY, "waiting for Model/churn 1.2.0 to be built and scanned")
    assert _view(Issued("apply", DIGEST_A, 1), 1, _seen(DIGEST_A), held)[0].sync == "Waiting"


def test_only_an_issued_and_unapplied_resource_is_unhealthy_for_exit_code() -> None:
    [issued] = _view(Issued("apply", DIGEST_B, 2), 1, _seen(DIGEST_A))
    [synced] = _view(Issued("apply", DIGEST_B, 2), 2, _seen(DIGEST_B))
    plane = status_view.PlaneStatus("dev", "local", None, None, 2, 1, (), (issued, synced))
    assert status_view.unhealthy([plane]) == ["dev: Deployment/churn-dev Issued Ready"]


def test_every_sync_state_is_in_the_docs_table_beside_argo_cds() -> None:
    docs = (Path(__file__).resolve().parents[2] / "docs" / "status.md").read_text()
    rows = [line for line in docs.splitlines() if line.startswith("| `")]
    for state in status_view.SYNC_STATES:
        assert any(row.startswith(f"| `{state}` |") for row in rows), state


def test_a_deleted_resource_shows_until_the_plane_applied_the_delete(world: World) -> None:  # noqa: F811
    reconciler = reconciling.Reconciler(world.settings())
    agent = TestAgent(world, "local-dev")
    for _ in range(3):  # the model, then what waited for it, then nothing new
        reconciler.reconcile(NOW)
        agent.sync()
    world.change("retire the batch DAG", lambda work: (work / "dags" / "churn-batch.yaml").unlink())
    request = planning.PlanRequest(world.work, root=world.keys_dir / "root.json")
    [due] = _dag(planning.make_status(request, NOW))
    assert (due.sync, due.message) == ("OutOfSync", "removed from git (pruning is on)")
    reconciler.reconcile(NOW)
    [issued] = _dag(planning.make_status(request, NOW))
    assert (issued.sync, issued.message) == (
        "Issued",
        "delete issued in #3; the plane has applied #2",
    )
    agent.sync()
    assert _dag(planning.make_status(request, NOW)) == []


def _dag(result: planning.StatusResult) -> list[status_view.Resource]:
    [local] = [p for p in result.planes if p.name == "local-dev"]
    return [r for r in local.resources if r.kind == "DAG"]
