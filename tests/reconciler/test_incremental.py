"""The incremental path equals the full one: ``tracker.Tracker`` against
``desired.load_commit`` and ``replan.Planner`` against ``plan()``, over random
sequences of real commits (edits, additions, deletions, renames, project code
changes, invalid files, plane and policy changes) and random agent reports,
at times inside and outside a change window."""

from __future__ import annotations

import json
import random
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from ledger import gitrepo
from reconciler import desired, tracker
from reconciler.plan import Plan, plan
from reconciler.reconcile import desired_at
from reconciler.recorded import Issued, Key, RecordedPlane
from reconciler.replan import Planner
from schemas import parse, signed
from tests.conftest import git, init_repo
from tests.reconciler.test_plan import built

H = "apiVersion: gitplane.dev/v1alpha1\n"
TUESDAY_NOON = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)
FRIDAY_EVENING = datetime(2026, 11, 27, 18, 0, tzinfo=UTC)
ENVS = ("dev", "prod", "stage")
PROJECTS = 3


CAPACITY = ("{maxDeployments: 2}", "{maxReplicas: 5}", "{maxDeployments: 3, maxReplicas: 7}")
"""Planes' capacities, in turn (and one plane in four without): deployments come, go, are
issued and change replicas at random, so who fits moves."""


def plane_spec(name: str, env: str, region: str, prune: bool, capacity: str = "{}") -> str:
    return (
        H + f"kind: DataPlane\nmetadata: {{name: {name}, labels: {{env: {env}, region: {region}}}}}"
        f"\nspec: {{runtime: local, sync: {{prune: {str(prune).lower()}}}, capacity: {capacity}}}\n"
    )


def policy_spec(minimum: int) -> str:
    return (
        H + "kind: Policy\nmetadata: {name: prod-gates}\nspec:\n"
        "  planeSelector: {matchLabels: {env: prod}}\n  kinds: [Model, Deployment]\n"
        f"  approvals: {{minimum: {minimum}}}\n"
        '  changeWindows: {deny: [{days: [Fri], start: "16:00", end: "23:59"}]}\n'
    )


def model_spec(name: str, version: int, project: int, env: str | None) -> str:
    selector = f"  planeSelector: {{matchLabels: {{env: {env}}}}}\n" if env else ""
    return (
        H + f"kind: Model\nmetadata: {{name: {name}}}\nspec:\n"
        f'  version: "1.0.{version}"\n  source: {{project: {{path: projects/p{project}}}}}\n'
        f"  aliases: [champion]\n{selector}"
    )


def features_spec(name: str, env: str) -> str:
    return (
        H + f"kind: FeatureSet\nmetadata: {{name: {name}}}\nspec:\n"
        "  entities: [{name: customer, joinKeys: [id]}]\n"
        "  source: {type: file, path: events.csv, timestampField: ts}\n"
        '  transformation: {sql: "SELECT 1"}\n  features: [{name: n, dtype: int64}]\n'
        f"  planeSelector: {{matchLabels: {{env: {env}}}}}\n"
    )


def deployment_spec(name: str, model: str, env: str, replicas: int, features: list[str]) -> str:
    return (
        H + f"kind: Deployment\nmetadata: {{name: {name}}}\nspec:\n  model: {{name: {model}}}\n"
        f"  planeSelector: {{matchLabels: {{env: {env}}}}}\n  replicas: {replicas}\n"
        f"  featureSets: [{', '.join(features)}]\n"
    )


def dag_spec(name: str, env: str, project: int, features: list[str]) -> str:
    return (
        H + f"kind: DAG\nmetadata: {{name: {name}}}\nspec:\n"
        f"  planeSelector: {{matchLabels: {{env: {env}}}}}\n"
        f"  featureSets: [{', '.join(features)}]\n"
        f"  steps: [{{name: a, project: {{path: projects/p{project}}}}}]\n"
    )


@dataclass
class Corpus:
    """A spec repository in a working tree, edited at random."""

    root: Path
    rng: random.Random
    counter: int = 0
    models: list[str] = field(default_factory=list)
    features: list[str] = field(default_factory=list)
    hidden: dict[Path, str] = field(default_factory=dict)

    def write(self, path: str, text: str) -> None:
        (self.root / path).parent.mkdir(parents=True, exist_ok=True)
        (self.root / path).write_text(text)

    def files(self, folder: str) -> list[Path]:
        """The corpus's own specs (not the broken or copied ones an edit left for a commit)."""
        return sorted(
            p for p in (self.root / folder).glob("*.yaml") if not p.name.startswith("zz-")
        )

    def seed(self) -> None:
        for i, (env, region) in enumerate([(e, r) for e in ENVS for r in ("a", "b")]):
            self.write(
                f"planes/{env}-{region}.yaml",
                plane_spec(f"{env}-{region}", env, region, i % 2 == 0, ([*CAPACITY, "{}"])[i % 4]),
            )
        self.write("policies/prod.yaml", policy_spec(2))
        for p in range(PROJECTS):
            self.write(
                f"projects/p{p}/MLproject",
                f"name: p{p}\nentry_points: {{main: {{command: 'true'}}}}\n",
            )
            self.write(f"projects/p{p}/train.py", "print(0)\n")
        for i in range(6):
            self.models.append(f"m{i}")
            selector = ENVS[i % 3] if i % 2 else None
            self.write(f"models/m{i}.yaml", model_spec(f"m{i}", 0, i % PROJECTS, selector))
        for i, env in enumerate(ENVS):
            self.features.append(f"f{i}")
            self.write(f"features/f{i}.yaml", features_spec(f"f{i}", env))
        for _ in range(8):
            self.add_deployment()
        for i in range(2):
            self.write(f"dags/g{i}.yaml", dag_spec(f"g{i}", ENVS[i], i, self.features[:1]))

    def add_deployment(self) -> None:
        self.counter += 1
        name = f"d{self.counter}"
        features = self.rng.sample(self.features, self.rng.randint(0, 2))
        text = deployment_spec(
            name, self.rng.choice(self.models), self.rng.choice(ENVS), 1, features
        )
        self.write(f"deployments/{name}.yaml", text)

    def edit(self) -> str:
        """One random change; returns what it did."""
        op = self.rng.choice(EDITS)
        op(self)
        return op.__name__


def _retext(path: Path, old: str, new: str) -> None:
    path.write_text(path.read_text().replace(old, new, 1))


def replicas(c: Corpus) -> None:
    path = c.rng.choice(c.files("deployments"))
    text = path.read_text()
    count = int(text.split("replicas: ")[1].split("\n")[0])
    _retext(path, f"replicas: {count}", f"replicas: {count % 5 + 1}")


def add_deployment(c: Corpus) -> None:
    c.add_deployment()


def delete_deployment(c: Corpus) -> None:
    files = c.files("deployments")
    if len(files) > 2:
        c.rng.choice(files).unlink()


def rename_deployment(c: Corpus) -> None:
    path = c.rng.choice(c.files("deployments"))
    path.rename(path.with_name(f"renamed-{c.rng.randint(0, 999)}-{path.name}"))


def repoint_deployment(c: Corpus) -> None:
    path = c.rng.choice(c.files("deployments"))
    text = path.read_text()
    model = text.split("model: {name: ")[1].split("}")[0]
    _retext(path, f"model: {{name: {model}}}", f"model: {{name: {c.rng.choice(c.models)}}}")


def move_deployment(c: Corpus) -> None:
    path = c.rng.choice(c.files("deployments"))
    env = path.read_text().split("matchLabels: {env: ")[1].split("}")[0]
    _retext(path, f"matchLabels: {{env: {env}}}", f"matchLabels: {{env: {c.rng.choice(ENVS)}}}")


def bump_model(c: Corpus) -> None:
    path = c.rng.choice(c.files("models"))
    version = int(path.read_text().split('version: "1.0.')[1].split('"')[0])
    _retext(path, f'version: "1.0.{version}"', f'version: "1.0.{version + 1}"')


def toggle_model_selector(c: Corpus) -> None:
    path = c.rng.choice(c.files("models"))
    text = path.read_text()
    if "planeSelector" in text:
        path.write_text(text.split("  planeSelector")[0])
    else:
        path.write_text(text + f"  planeSelector: {{matchLabels: {{env: {c.rng.choice(ENVS)}}}}}\n")


def change_project(c: Corpus) -> None:
    path = c.root / f"projects/p{c.rng.randrange(PROJECTS)}/train.py"
    path.write_text(path.read_text() + "print(1)\n")


def declare_parameter(c: Corpus) -> None:
    """An MLproject starts or stops declaring ``lr``: models passing it become valid or not."""
    path = c.root / f"projects/p{c.rng.randrange(PROJECTS)}/MLproject"
    text = path.read_text()
    declared = "{main: {parameters: {lr: {type: float, default: 0.1}}, command: 'true'}}"
    bare = "{main: {command: 'true'}}"
    path.write_text(text.replace(bare, declared) if bare in text else text.replace(declared, bare))


def pass_parameter(c: Corpus) -> None:
    """A model starts or stops passing ``lr`` (a problem where its entry point lacks it)."""
    _toggle_in_project(c, ", parameters: {lr: 0.5}")


def toggle_env_manager(c: Corpus) -> None:
    """A model asks for conda: some planes report they have it, some not, some nothing."""
    _toggle_in_project(c, ", envManager: conda")


def _toggle_in_project(c: Corpus, piece: str) -> None:
    path = c.rng.choice(c.files("models"))
    text = path.read_text()
    if piece in text:
        path.write_text(text.replace(piece, ""))
    else:
        path.write_text(text.replace("}}\n  aliases", piece + "}}\n  aliases"))


def move_feature_set(c: Corpus) -> None:
    path = c.rng.choice(c.files("features"))
    env = path.read_text().split("matchLabels: {env: ")[1].split("}")[0]
    _retext(path, f"matchLabels: {{env: {env}}}", f"matchLabels: {{env: {c.rng.choice(ENVS)}}}")


def relabel_plane(c: Corpus) -> None:
    path = c.rng.choice(c.files("planes"))
    env = path.read_text().split("labels: {env: ")[1].split(",")[0]
    _retext(path, f"labels: {{env: {env},", f"labels: {{env: {c.rng.choice(ENVS)},")


def change_policy(c: Corpus) -> None:
    c.write("policies/prod.yaml", policy_spec(c.rng.randint(0, 3)))


def break_then_mend(c: Corpus) -> None:
    """An invalid file (syntax, or a dangling reference): the next edit removes it."""
    bad = c.rng.choice(
        ["kind: [unclosed\n", deployment_spec("dangling", "no-such-model", "dev", 1, [])]
    )
    c.write("deployments/zz-broken.yaml", bad)


def hide_referenced(c: Corpus) -> None:
    """A model or feature set others use disappears (their references dangle) until the
    next edit brings it back."""
    path = c.rng.choice([*c.files("models"), *c.files("features")])
    c.hidden[path] = path.read_text()
    path.unlink()


def duplicate_name(c: Corpus) -> None:
    path = c.rng.choice(c.files("models"))
    c.write("models/zz-copy.yaml", path.read_text())


EDITS = [
    replicas,
    replicas,
    add_deployment,
    delete_deployment,
    rename_deployment,
    repoint_deployment,
    move_deployment,
    bump_model,
    toggle_model_selector,
    change_project,
    declare_parameter,
    pass_parameter,
    toggle_env_manager,
    move_feature_set,
    relabel_plane,
    change_policy,
    break_then_mend,
    duplicate_name,
    hide_referenced,
]


def mend(c: Corpus) -> None:
    for leftover in ("deployments/zz-broken.yaml", "models/zz-copy.yaml"):
        (c.root / leftover).unlink(missing_ok=True)
    for path in c.files("models"):  # lr stays only where its project declares it
        text = path.read_text()
        project = text.split("path: ")[1].split(",")[0].split("}")[0]
        if "lr:" not in (c.root / project / "MLproject").read_text():
            path.write_text(text.replace(", parameters: {lr: 0.5}", ""))
    for path, text in c.hidden.items():
        path.write_text(text)
    c.hidden.clear()


def report(
    rng: random.Random, result: Plan, recorded: dict[str, RecordedPlane], now: datetime
) -> None:
    """A random plane applies what it was told, some of it failing."""
    planes = [p for p in result.planes if p.commands]
    if not planes:
        return
    chosen = rng.choice(planes)
    before = recorded.get(chosen.plane) or RecordedPlane(chosen.plane)
    sequence = before.head + 1
    stamp = (now - timedelta(seconds=rng.choice([0, 45, 3600]))).strftime("%Y-%m-%dT%H:%M:%SZ")
    issued = dict(before.issued)
    observed = dict(before.observed)
    for command in chosen.commands:
        key: Key = (command.kind, command.name)
        last = issued.get(key)
        attempts = last.attempts + 1 if last and last.digest == command.digest else 1
        issued[key] = Issued(command.action, command.digest, sequence, stamp, attempts)
        observed[key] = _status(rng, command)
    capabilities = rng.choice(CAPABILITIES)
    recorded[chosen.plane] = RecordedPlane(
        chosen.plane, issued, observed, sequence, sequence, capabilities=capabilities
    )


CAPABILITIES = [
    None,
    signed.PlaneCapabilities(env_managers=["local"], enforces_resources=False),
    signed.PlaneCapabilities(env_managers=["conda", "local"], enforces_resources=True),
]


def _status(rng: random.Random, command: signed.Command) -> signed.ResourceStatus:
    phase = rng.choice(["Ready", "Ready", "Ready", "Failed", "Progressing"])
    if command.kind == "Model" and command.action != "delete":
        version = json.loads(command.spec)["spec"]["version"]
        status = built(version=version, phase=phase)
        return status.model_copy(update={"name": command.name, "digest": command.digest})
    return signed.ResourceStatus(
        kind=command.kind, name=command.name, phase=phase, digest=command.digest, message="x"
    )


def same(got: Plan, expected: Plan, step: str) -> None:
    """Equal plans, or the first plane and action where they part."""
    for mine, theirs in zip(got.planes, expected.planes, strict=True):
        if mine != theirs:
            ours = [(a.op, a.ref, a.reason) for a in mine.actions]
            full = [(a.op, a.ref, a.reason) for a in theirs.actions]
            extra = [a for a in ours if a not in full]
            missing = [a for a in full if a not in ours]
            raise AssertionError(f"after {step}, {mine.plane}: extra {extra}, missing {missing}")
    assert got == expected, step


@pytest.mark.parametrize("seed", range(6))
def test_incremental_load_and_plan_equal_the_full_ones(tmp_path: Path, seed: int) -> None:
    rng = random.Random(seed)
    corpus = Corpus(init_repo(tmp_path / "specs"), rng)
    corpus.seed()
    repo = gitrepo.GitRepo(corpus.root)
    follow = tracker.Tracker(repo)
    planner = Planner()
    recorded: dict[str, RecordedPlane] = {}
    pending: frozenset[Key] | None = frozenset()
    followed = 0
    for step in range(40):
        done = "seed" if step == 0 else corpus.edit()
        if step and done not in (
            "break_then_mend",
            "duplicate_name",
            "hide_referenced",
            "pass_parameter",
        ):
            mend(corpus)
        approvals = "".join(
            f"\nApproved-by: {w}" for w in rng.sample(["a", "b", "c"], rng.randint(0, 3))
        )
        git(corpus.root, "add", "-A")
        git(corpus.root, "commit", "-q", "--allow-empty", "-m", f"{done}\n{approvals}")
        commit = git(corpus.root, "rev-parse", "HEAD")
        snap = follow.load(commit)
        full = desired.load_commit(repo, commit)
        assert snap.state.documents == full.documents, done
        assert snap.state.problems == full.problems, done
        followed += snap.changed is not None
        pending = None if pending is None or snap.changed is None else pending | snap.changed
        if not full.valid:
            assert snap.want is None
            continue
        assert snap.want is not None
        now = rng.choice([TUESDAY_NOON, FRIDAY_EVENING]) + timedelta(minutes=step)
        expected = plan(desired_at(repo, commit, "", full), recorded, now)
        lookup = snap.documents if step % 2 else None  # both ways of finding them
        same(planner.plan(snap.want, recorded, now, pending, lookup), expected, done)
        pending = frozenset()
        for _ in range(rng.randint(0, 2)):
            report(rng, expected, recorded, now)
            later = now + timedelta(seconds=rng.choice([1, 40, 700]))
            expected = plan(desired_at(repo, commit, "", full), recorded, later)
            same(planner.plan(snap.want, recorded, later, frozenset()), expected, "report")
    assert followed > 20  # most commits were followed, not reloaded


def test_a_parse_is_reused_for_an_unchanged_blob(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    corpus = Corpus(init_repo(tmp_path / "specs"), random.Random(0))
    corpus.seed()
    repo = gitrepo.GitRepo(corpus.root)
    follow = tracker.Tracker(repo)
    git(corpus.root, "add", "-A")
    git(corpus.root, "commit", "-q", "-m", "seed")
    follow.load(git(corpus.root, "rev-parse", "HEAD"))
    replicas(corpus)
    git(corpus.root, "commit", "-q", "-am", "replicas")
    parsed: list[str] = []
    original = parse.parse_spec

    def counting(file: str, data: bytes, **kwargs: parse.Limits) -> parse.Parsed:
        parsed.append(file)
        return original(file, data, **kwargs)

    monkeypatch.setattr(parse, "parse_spec", counting)
    snap = follow.load(git(corpus.root, "rev-parse", "HEAD"))
    assert len(parsed) == 1 and parsed[0].startswith("deployments/")
    assert snap.changed is not None and len(snap.changed) == 1
