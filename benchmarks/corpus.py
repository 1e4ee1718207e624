"""A synthetic, valid Gitplane spec repository, for benchmarks.

``write_corpus(root, n)`` writes ``n`` spec files under ``root`` in a realistic
mix of kinds (2% DataPlane, 25% Model, 45% Deployment, 15% FeatureSet, 8% DAG,
5% Policy) across 40 directories, each file 0.6-1.2 KB, plus ten MLflow
Projects under ``projects/`` (an ``MLproject``, a ``train.py`` and a
``python_env.yaml`` each, which are project files, not specs). Every document
is valid on its own and against the others: names are unique DNS-1123 labels
per kind, every plane selector matches a DataPlane, deployments name existing
models (and pin, when they do, the version the model declares), DAG steps run
existing projects and depend only on earlier steps.

``commit_all(root)`` makes ``root`` a git repository (if it is not one yet)
and commits everything in it. The output depends only on ``n`` and ``seed``.
"""

from __future__ import annotations

import gc
import math
import os
import random
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

API_VERSION = "gitplane.dev/v1alpha1"
KIND_SHARES = {
    "DataPlane": 0.02,
    "Model": 0.25,
    "Deployment": 0.45,
    "FeatureSet": 0.15,
    "DAG": 0.08,
    "Policy": 0.05,
}
TEAMS = (
    "growth",
    "risk",
    "search",
    "ads",
    "payments",
    "fraud",
    "support",
    "logistics",
    "pricing",
    "infra",
)
ENVS = ("dev", "staging", "prod")
REGIONS = ("eu-west-1", "eu-central-1", "us-east-1", "us-west-2", "ap-south-1")
SUBJECTS = (
    "churn",
    "ltv",
    "ranker",
    "ctr",
    "eta",
    "demand",
    "propensity",
    "anomaly",
    "embedder",
    "classifier",
    "forecast",
    "recommender",
)
DOMAINS = ("customer", "merchant", "device", "session", "order", "product")
DEPLOY_DIRS = (*TEAMS, "shared", "canary", "shadow")
STEPS = (
    "extract",
    "validate",
    "clean",
    "featurize",
    "train",
    "evaluate",
    "score",
    "report",
    "publish",
)
FLAVORS = ("sklearn", "xgboost", "lightgbm", "pytorch", "onnx", "python_function")
PROJECTS = tuple(f"projects/p{k}" for k in range(10))
DAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")

GIT_IDENTITY = {
    "GIT_AUTHOR_NAME": "Gitplane Bench",
    "GIT_AUTHOR_EMAIL": "bench@example.invalid",
    "GIT_COMMITTER_NAME": "Gitplane Bench",
    "GIT_COMMITTER_EMAIL": "bench@example.invalid",
    "GIT_CONFIG_NOSYSTEM": "1",
}


@dataclass(frozen=True)
class Plane:
    """A DataPlane's name and the labels selectors match."""

    name: str
    env: str
    region: str


@dataclass(frozen=True)
class Plan:
    """The names every document may refer to, decided before any file is written."""

    planes: list[Plane]
    models: list[tuple[str, str]]
    """(name, version) of every Model."""
    feature_sets: list[str]


Writer = Callable[[random.Random, Plan, int], tuple[str, str]]


def kind_counts(n: int) -> dict[str, int]:
    """How many documents of each kind make ``n``, by largest remainder.

    Tiny corpora still hold what the others refer to: a DataPlane for the
    selectors, and a Model when there is a Deployment.
    """
    exact = {kind: n * share for kind, share in KIND_SHARES.items()}
    counts = {kind: int(value) for kind, value in exact.items()}
    by_remainder = sorted(exact, key=lambda kind: counts[kind] - exact[kind])
    for kind in by_remainder[: n - sum(counts.values())]:
        counts[kind] += 1
    _ensure(counts, "DataPlane")
    if counts["Deployment"]:
        _ensure(counts, "Model")
    return counts


def _ensure(counts: dict[str, int], needed: str) -> None:
    if counts[needed]:
        return
    donor = max(("Deployment", "FeatureSet", "DAG", "Policy", "Model"), key=counts.__getitem__)
    counts[donor] -= 1
    counts[needed] = 1


def write_corpus(root: Path, n: int, seed: int = 0) -> None:
    """Write ``n`` valid spec files and the projects they build under ``root``."""
    rng = random.Random(seed)
    counts = kind_counts(n)
    plan = _plan(rng, counts)
    _write_projects(root)
    (root / "README.md").write_text(f"# Benchmark corpus\n\n{n} Gitplane specs, seed {seed}.\n")
    for kind, count in counts.items():
        for index in range(count):
            path, text = WRITERS[kind](rng, plan, index)
            _write(root / path, text)


def commit_all(root: Path, message: str = "Benchmark corpus") -> str:
    """Stage and commit everything under ``root`` (``git init`` first if needed)."""
    if not (root / ".git").exists():
        git(root, "init", "-q", "-b", "main")
    git(root, "add", "-A")
    git(root, "-c", "commit.gpgsign=false", "commit", "-q", "--no-verify", "-m", message)
    return git(root, "rev-parse", "HEAD").strip()


def git(cwd: Path, *args: str, check: bool = True) -> str:
    """Run git with a fixed identity; raise on failure unless ``check`` is false."""
    done = subprocess.run(
        ["git", *args],
        cwd=cwd,
        env={**os.environ, **GIT_IDENTITY},
        capture_output=True,
        text=True,
        check=False,
    )
    if check and done.returncode != 0:
        raise RuntimeError(f"git {' '.join(args)} failed: {done.stderr.strip()}")
    return done.stdout


def best_of(repeat: int, run: Callable[[], object]) -> float:
    """The shortest of ``repeat`` runs, each after the last one's result is collected."""
    best = math.inf
    for _ in range(repeat):
        gc.collect()
        start = time.perf_counter()
        result = run()
        best = min(best, time.perf_counter() - start)
        del result
    return best


def _write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


# Names -------------------------------------------------------------------------------


def _plan(rng: random.Random, counts: dict[str, int]) -> Plan:
    planes = [_plane(i) for i in range(counts["DataPlane"])]
    models = [(_model_name(i), _version(rng)) for i in range(counts["Model"])]
    feature_sets = [_feature_set_name(i) for i in range(counts["FeatureSet"])]
    return Plan(planes, models, feature_sets)


def _plane(i: int) -> Plane:
    env = ENVS[i % len(ENVS)]
    local = env == "dev" and i % 2 == 0  # half the dev planes are laptops and CI runners
    region = "local" if local else REGIONS[(i // len(ENVS)) % len(REGIONS)]
    return Plane(f"{env}-{region}-{i:03d}", env, region)


def _model_name(i: int) -> str:
    return f"{TEAMS[i % len(TEAMS)]}-{SUBJECTS[(i // len(TEAMS)) % len(SUBJECTS)]}-{i:05d}"


def _feature_set_name(i: int) -> str:
    return f"{DOMAINS[i % len(DOMAINS)]}-activity-{i:05d}"


def _version(rng: random.Random) -> str:
    return f"{rng.randint(0, 4)}.{rng.randint(0, 20)}.{rng.randint(0, 9)}"


# Shared fragments ----------------------------------------------------------------------


def _flow(mapping: dict[str, object]) -> str:
    return "{" + ", ".join(f"{key}: {value}" for key, value in mapping.items()) + "}"


def _document(
    kind: str, name: str, labels: dict[str, object], meta: list[str], spec: list[str]
) -> str:
    head = [
        f"# yaml-language-server: $schema=../../schemas/json/{kind.lower()}.json",
        f"apiVersion: {API_VERSION}",
        f"kind: {kind}",
        "metadata:",
        f"  name: {name}",
        f"  labels: {_flow(labels)}",
        *meta,
        "spec:",
    ]
    return "\n".join([*head, *(f"  {line}" for line in spec)]) + "\n"


def _selector(rng: random.Random, plan: Plan, env: str | None = None) -> list[str]:
    """A selector built from the labels of a random plane (of ``env``, if any has it)."""
    planes = [p for p in plan.planes if p.env == env] if env else []
    plane = rng.choice(planes or plan.planes)
    draw = rng.random()
    if draw < 0.6:
        return ["planeSelector:", f"  matchLabels: {{env: {plane.env}}}"]
    if draw < 0.9:
        labels = {"env": plane.env, "region": plane.region}
        return ["planeSelector:", f"  matchLabels: {_flow(labels)}"]
    other = rng.choice(REGIONS)
    return [
        "planeSelector:",
        f"  matchLabels: {{env: {plane.env}}}",
        "  matchExpressions:",
        f"    - {{key: region, operator: In, values: [{plane.region}, {other}]}}",
    ]


def _public_key(rng: random.Random) -> str:
    """A real Ed25519 public key from seeded bytes (validate refuses non-canonical points)."""
    private = Ed25519PrivateKey.from_private_bytes(rng.randbytes(32))
    return private.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw).hex()


def _cpu(rng: random.Random) -> str:
    return rng.choice(('"250m"', '"500m"', '"1"', '"2"', '"1.5"', '"4"'))


def _memory(rng: random.Random) -> str:
    return rng.choice(("256Mi", "512Mi", "1Gi", "2Gi", "4Gi", "8Gi"))


def _cron(rng: random.Random) -> str:
    return f'"{rng.randint(0, 59)} {rng.choice(("*/4", "2", "*/6", "1", "3"))} * * *"'


def _sample(rng: random.Random, items: tuple[str, ...] | list[str], low: int, high: int) -> str:
    return ", ".join(rng.sample(list(items), min(len(items), rng.randint(low, high))))


# DataPlane -----------------------------------------------------------------------------


def _data_plane(rng: random.Random, plan: Plan, i: int) -> tuple[str, str]:
    plane = plan.planes[i]
    local = plane.region == "local"
    spec = [
        f"runtime: {'local' if local else 'kubernetes'}",
        f"agentKey: {{type: ed25519, public: {_public_key(rng)}}}",
        "sync:",
        f"  prune: {'true' if plane.env != 'prod' else 'false'}",
        f"  selfHeal: {rng.choice(('true', 'false'))}",
        f"statusStaleAfter: {rng.choice(('2m', '5m', '10m', '15m'))}",
        "capacity:",
        f"  maxReplicas: {rng.randint(8, 400)}",
        f"  maxDeployments: {rng.randint(10, 500)}",
        *_runtime(rng, plane, local),
    ]
    meta = [
        f"  description: {plane.env} data plane in {plane.region}, shard {i}.",
        f"  owner: {rng.choice(TEAMS)}-platform",
        "  annotations:",
        f"    runbook: https://wiki.example.internal/planes/{plane.name}",
    ]
    labels = {"env": plane.env, "region": plane.region, "tier": rng.choice(("gold", "silver"))}
    return f"planes/{plane.env}/{plane.name}.yaml", _document(
        "DataPlane", plane.name, labels, meta, spec
    )


def _runtime(rng: random.Random, plane: Plane, local: bool) -> list[str]:
    if local:
        start = 20000 + 1000 * rng.randint(0, 20)
        return ["local:", f"  ports: {{start: {start}, end: {start + 999}}}"]
    return [
        "kubernetes:",
        f"  namespace: ml-{plane.env}",
        f"  context: {plane.region}-{rng.randint(1, 9)}",
        f"  mlflowTrackingUri: https://mlflow.{plane.region}.example.internal",
    ]


# Model ---------------------------------------------------------------------------------


def _model(rng: random.Random, plan: Plan, i: int) -> tuple[str, str]:
    name, version = plan.models[i]
    team, subject = name.split("-")[:2]
    spec = [
        f'version: "{version}"',
        "source:",
        *_model_source(rng, name),
        f"flavor: {rng.choice(FLAVORS)}",
        "scan:",
        f"  tools: [{_sample(rng, ('picklescan', 'modelscan'), 1, 2)}]",
        f"  failOn: {rng.choice(('HIGH', 'CRITICAL', 'MEDIUM'))}",
        "metricsGate:",
        f'  - {{metric: accuracy, op: ">=", threshold: {rng.uniform(0.6, 0.95):.2f}}}',
        f'  - {{metric: p95_latency_ms, op: "<", threshold: {rng.randint(20, 400)}.0}}',
        f"aliases: [{rng.choice(('champion', 'candidate', 'stable'))}]",
        f"tags: {{domain: {rng.choice(DOMAINS)}, dataset: {team}-v{rng.randint(1, 30)}}}",
        f"resources: {{cpu: {_cpu(rng)}, memory: {_memory(rng)}}}",
        f"timeout: {rng.choice(('30m', '1h', '1h30m', '2h'))}",
    ]
    meta = [
        f"  description: Predicts {subject} for the {team} team, variant {i}.",
        f"  owner: {team}-ml",
    ]
    labels = {"team": team, "stage": rng.choice(("experimental", "ga", "beta"))}
    return f"models/{team}/{name}.yaml", _document("Model", name, labels, meta, spec)


def _model_source(rng: random.Random, name: str) -> list[str]:
    if rng.random() < 0.1:
        ref = rng.choice((f"/{rng.randint(1, 40)}", "@champion"))
        return [f'  registry: {{uri: "models:/{name}{ref}"}}']
    return [
        "  project:",
        f"    path: {rng.choice(PROJECTS)}",
        "    entryPoint: main",
        "    parameters:",
        f"      n_samples: {rng.randint(1000, 100000)}",
        f"      c: {rng.uniform(0.01, 2.0):.3f}",
        f"      seed: {rng.randint(0, 999)}",
    ]


# Deployment ----------------------------------------------------------------------------


def _deployment(rng: random.Random, plan: Plan, i: int) -> tuple[str, str]:
    model, version = rng.choice(plan.models)
    name = f"{model}-d{i:05d}"
    spec = [
        "model:",
        *_model_ref(rng, model, version),
        *_selector(rng, plan),
        *_scaling(rng),
        f"resources: {{cpu: {_cpu(rng)}, memory: {_memory(rng)}}}",
        f"server: {{workers: {rng.randint(1, 8)}, requestTimeout: {rng.randint(5, 60)}s}}",
        f"rollout: {{strategy: rolling, maxSurge: {rng.randint(1, 3)}, maxUnavailable: 0}}",
        f"health: {{path: /ping, initialDelay: {rng.randint(0, 30)}s, period: 5s, timeout: 2s}}",
        *_feature_refs(rng, plan),
        f"env: {{LOG_LEVEL: {rng.choice(('info', 'debug', 'warning'))}, "
        f"API_TOKEN_SECRET: {model[:20]}-token}}",
    ]
    labels = {"team": model.split("-")[0], "app": model[:40]}
    folder = DEPLOY_DIRS[i % len(DEPLOY_DIRS)]
    return f"deployments/{folder}/{name}.yaml", _document("Deployment", name, labels, [], spec)


def _model_ref(rng: random.Random, model: str, version: str) -> list[str]:
    draw = rng.random()
    if draw < 0.4:
        return [
            f"  name: {model}",
            f'  version: "{version}"    # pinned to what the Model declares',
        ]
    if draw < 0.55:
        return [f"  name: {model}", "  alias: champion"]
    return [f"  name: {model}          # follows the version the Model declares"]


def _scaling(rng: random.Random) -> list[str]:
    if rng.random() < 0.3:
        return [f"replicas: {rng.randint(1, 6)}"]
    low = rng.randint(1, 3)
    return [
        "autoscaling:",
        f"  minReplicas: {low}",
        f"  maxReplicas: {low + rng.randint(1, 20)}",
        "  targets:",
        f"    rpsPerReplica: {rng.randint(20, 200)}",
        f"    p95LatencyMs: {rng.randint(50, 500)}",
        f"  scaleDownStabilization: {rng.choice(('1m', '5m', '10m'))}",
    ]


def _feature_refs(rng: random.Random, plan: Plan) -> list[str]:
    if not plan.feature_sets or rng.random() < 0.5:
        return []
    return [f"featureSets: [{_sample(rng, plan.feature_sets, 1, 2)}]"]


# FeatureSet ----------------------------------------------------------------------------


def _feature_set(rng: random.Random, plan: Plan, i: int) -> tuple[str, str]:
    name = plan.feature_sets[i]
    domain = DOMAINS[i % len(DOMAINS)]
    window = rng.choice(("1d", "7d", "30d"))
    suffix = window.rstrip("d")
    spec = [
        f"entities: [{{name: {domain}, joinKeys: [{domain}_id], valueType: int64}}]",
        "source:",
        "  type: file",
        f"  path: data/{domain}/events-{i}.parquet",
        "  format: parquet",
        "  timestampField: event_time",
        "  readPolicy: new-only",
        "transformation:",
        "  sql: |",
        f"    SELECT {domain}_id, COUNT(*) AS events_{suffix}d,",
        f"           SUM(amount) AS spend_{suffix}d, MAX(event_time) AS last_event_time",
        f"    FROM source WHERE amount > {rng.randint(0, 50)} GROUP BY {domain}_id",
        "features:",
        f"  - {{name: events_{suffix}d, dtype: int64}}",
        f"  - {{name: spend_{suffix}d, dtype: float64}}",
        "  - {name: last_event_time, dtype: timestamp}",
        *_selector(rng, plan),
        f"schedule: {{cron: {_cron(rng)}, timezone: UTC}}",
        f'backfill: {{start: "2026-0{rng.randint(1, 9)}-01", chunk: 7d, parallelism: 2}}',
        f"ttl: {rng.choice(('1d', '2d', '7d'))}",
        f"retry: {{limit: {rng.randint(0, 5)}, backoff: 30s}}",
    ]
    meta = [f"  description: {domain} activity over {window}, set {i}."]
    labels = {"team": rng.choice(TEAMS), "domain": domain}
    return f"features/{domain}/{name}.yaml", _document("FeatureSet", name, labels, meta, spec)


# DAG -----------------------------------------------------------------------------------


def _dag(rng: random.Random, plan: Plan, i: int) -> tuple[str, str]:
    team = TEAMS[i % 5]
    name = f"{team}-pipeline-{i:05d}"
    steps = [STEPS[k] for k in sorted(rng.sample(range(len(STEPS)), rng.randint(2, 4)))]
    spec = [
        *_selector(rng, plan),
        f"parameters: {{shards: {rng.randint(1, 16)}, date: today}}",
        "steps:",
        *[line for index in range(len(steps)) for line in _step(rng, steps, index)],
        f"schedule: {{cron: {_cron(rng)}, concurrencyPolicy: Forbid}}",
        f"tracking: {{experiment: {name}}}",
        "failurePolicy: abort",
    ]
    labels = {"team": team}
    meta = [f"  description: Batch pipeline {i} of {team}."]
    return f"dags/{team}/{name}.yaml", _document("DAG", name, labels, meta, spec)


def _step(rng: random.Random, steps: list[str], index: int) -> list[str]:
    params = f", parameters: {{rows: {rng.randint(100, 9000)}}}" if rng.random() < 0.5 else ""
    lines = [f"  - name: {steps[index]}", f"    project: {{path: {rng.choice(PROJECTS)}{params}}}"]
    if index == 0:
        return lines
    upstream = steps[index - 1]
    lines.append(f"    dependsOn: [{upstream}]")
    if rng.random() < 0.4:
        lines.append(f"    partition: {{from: {upstream}, instances: {rng.randint(2, 16)}}}")
    lines.append(f"    retry: {{limit: {rng.randint(0, 3)}, backoff: 5s}}")
    return lines


# Policy --------------------------------------------------------------------------------


def _policy(rng: random.Random, plan: Plan, i: int) -> tuple[str, str]:
    env = ENVS[i % len(ENVS)]
    name = f"{env}-gates-{i:05d}"
    day = rng.choice(DAYS)
    spec = [
        *_selector(rng, plan, env),
        f"kinds: [{_sample(rng, ('Model', 'Deployment', 'FeatureSet', 'DAG'), 1, 4)}]",
        "approvals:",
        f"  minimum: {rng.randint(1, 3)}",
        "  trailer: Approved-by",
        f"  requireMergeCommit: {rng.choice(('true', 'false'))}",
        "security:",
        "  requireScan: true",
        f"  maxSeverity: {rng.choice(('MEDIUM', 'HIGH', 'CRITICAL'))}",
        "changeWindows:",
        "  deny:",
        f'    - {{days: [{day}], start: "{rng.randint(12, 18)}:00", end: "23:59"}}',
        '    - {days: [Sat, Sun], start: "00:00", end: "23:59"}',
    ]
    meta = [
        f"  description: Approval, scan and freeze gates for {env} changes, rule set {i}.",
        "  owner: platform-team",
    ]
    return f"policies/{env}/{name}.yaml", _document("Policy", name, {"env": env}, meta, spec)


WRITERS: dict[str, Writer] = {
    "DataPlane": _data_plane,
    "Model": _model,
    "Deployment": _deployment,
    "FeatureSet": _feature_set,
    "DAG": _dag,
    "Policy": _policy,
}


# Projects ------------------------------------------------------------------------------

MLPROJECT = """name: {name}
python_env: python_env.yaml
entry_points:
  main:
    parameters:
      n_samples: {{type: float, default: 4000}}
      c: {{type: float, default: 1.0}}
      seed: {{type: float, default: 7}}
      rows: {{type: float, default: 1000}}
      shards: {{type: float, default: 1}}
      date: {{type: string, default: today}}
    command: "python train.py --n-samples {{n_samples}} --c {{c}} --seed {{seed}}"
"""
PYTHON_ENV = 'python: "3.11"\ndependencies:\n  - mlflow>=2.14\n  - scikit-learn>=1.3\n'
TRAIN = '"""Train a model on generated data (benchmark placeholder)."""\n\nprint("trained")\n'


def _write_projects(root: Path) -> None:
    for path in PROJECTS:
        _write(root / path / "MLproject", MLPROJECT.format(name=path.rpartition("/")[2]))
        _write(root / path / "python_env.yaml", PYTHON_ENV)
        _write(root / path / "train.py", TRAIN)
