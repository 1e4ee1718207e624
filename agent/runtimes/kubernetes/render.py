"""The manifests a Kubernetes plane applies for a command: pure, so what is shown is applied.

One function per kind turns a verified command into the objects that run it, as plain
dicts in the API's own JSON form (``apiVersion``, ``kind``, ``metadata``, ``spec``). The
apply path sends exactly these with server-side apply (field manager ``gitplane``);
``gitplane agent render`` prints them. Nothing here talks to a cluster or imports the
client: tests check every object against the official client's models.

Every object carries the inventory labels (:func:`labels`): Gitplane finds what it manages
by label selection, prunes by it, and tells its objects from anyone else's. The command's
digest is a label of the primary object (the Deployment, the Job: 63 characters at most,
``sha256-`` and the first 56 hex digits) for selection, and an annotation in full. It is
never on a pod template, where a change of ``replicas`` alone would roll every pod, nor on
a Service or autoscaler, which would then be sent again for every command.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from agent.runtimes.kubernetes import scalers
from agent.runtimes.local import _mlflow, features
from schemas import commands, dataplane, signed
from schemas.common import ProjectRef, Resources
from schemas.common import parse_duration as seconds
from schemas.deployment import Autoscaling, DeploymentSpec, Rollout
from schemas.errors import GitplaneError
from schemas.featureset import FeatureSetSpec

MANAGED_BY = "app.kubernetes.io/managed-by"
PLANE = "gitplane.dev/plane"
RESOURCE = "gitplane.dev/resource"
DIGEST = "gitplane.dev/digest"
COMMAND = "gitplane.dev/command"
SERVE_PORT = 8080
"""The MLflow scoring server's port in each pod (on loopback, behind the proxy)."""
PROXY_PORT = 8000
"""The measuring proxy's port in each pod: the Service's ``http``, and ``/metrics``."""
SIDECAR = "agent.runtimes.local.serving.sidecar"
"""The module the ``proxy`` container runs: the local runtime's proxy, on its own."""
PROXY_RESOURCES = {"cpu": "500m", "memory": "128Mi"}
"""The proxy's requests and limits: an HPA on CPU needs every container's request."""

Manifest = dict[str, Any]


@dataclass(frozen=True)
class Issue:
    """What a command came with from the log: the spec commit and the signed issue time of
    the bundle that carried it. Objects that need more than the command take it from here,
    never from the time they are applied, so a render of the log is what apply sends."""

    spec_commit: str
    issued_at: datetime


@dataclass(frozen=True)
class Target:
    """What the objects of one plane need to know about where they run."""

    plane: str
    namespace: str
    serving_image: str
    """An image with MLflow and the model's runtime (``mlflow models serve`` on its PATH)."""
    tracking_uri: str
    """The plane's MLflow tracking server, as pods reach it."""
    build_image: str = ""
    """An image with git-free MLflow Projects tooling (``mlflow run``, uv, virtualenv)."""
    agent_image: str = ""
    """Gitplane's own image: fetches and checks sources (the init container of Jobs)."""
    repo_url: str = ""
    """The spec repository as pods fetch it."""
    source_secret: str | None = None
    """A Secret (by name; its values never pass through Gitplane) with git credentials for
    ``repo_url``: its keys become the source container's environment (``GIT_ASKPASS``...)."""
    prometheus_url: str = ""
    """The Prometheus that scrapes the proxies, for KEDA's triggers (empty: none)."""
    keda: bool = False
    """The cluster serves KEDA's ``ScaledObject`` (discovered by the runtime at start)."""
    redis_secret: str | None = None
    """Feature sets' online store: a Secret whose ``REDIS_URL`` key reaches the plane's Redis
    (``spec.kubernetes.onlineStore.redis.secret``)."""
    features_volume: str | None = None
    """Feature sets' PersistentVolumeClaim: sources, offline store, run state
    (``spec.kubernetes.offlineStore.volume``)."""
    features_path: str = "features"
    """The stores' folder in that volume (``spec.kubernetes.offlineStore.path``)."""
    artifacts: str = ""
    """Where a build's new MLflow experiment keeps its artifacts when ``tracking_uri`` is
    a store, not a server (which keeps them itself): the agent's ``<stateDir>/mlartifacts``
    (:func:`with_state`), which build pods reach only on the agent's own file system (the
    test double's kubelet). Empty: the tracking server's default."""


def target_of(plane: str, settings: dataplane.KubernetesRuntime) -> Target:
    """The Target of ``plane`` from its signed ``spec.kubernetes`` (ADR 0016). What is not
    set stays empty (:func:`unset` names what a kind cannot do without); the build image
    defaults to the serving image, as the DataPlane schema documents."""
    images, source = settings.images, settings.source
    serving = images.serving if images else ""
    scaling, online, offline = settings.autoscaling, settings.online_store, settings.offline_store
    prometheus = scaling.prometheus if scaling else None
    return Target(
        plane=plane,
        namespace=settings.namespace,
        serving_image=serving,
        tracking_uri=settings.mlflow_tracking_uri or "",
        build_image=(images.build if images else None) or serving,
        agent_image=(images.agent if images else None) or "",
        repo_url=source.url if source else "",
        source_secret=source.secret if source else None,
        prometheus_url=prometheus.url if prometheus else "",
        redis_secret=online.redis.secret if online else None,
        features_volume=offline.volume if offline else None,
        features_path=offline.path if offline else "features",
    )


ARTIFACTS = "mlartifacts"
"""The folder of the agent's state directory where build experiments keep artifacts when
the plane's tracking URI is a store (the local plane's, too)."""


def with_state(target: Target, state_dir: Path) -> Target:
    """``target`` as the agent whose state is in ``state_dir`` applies (and renders) it:
    its builds' experiments keep their artifacts in ``<state_dir>/mlartifacts`` unless the
    tracking URI is a server (pure; the agent config names ``state_dir``, so ``agent
    render`` knows it too)."""
    if _mlflow.is_served(target.tracking_uri):
        return target
    return dataclasses.replace(target, artifacts=str(state_dir / ARTIFACTS))


NEEDED: dict[str, tuple[tuple[str, str], ...]] = {
    "Deployment": (
        ("serving_image", "images.serving"),
        ("tracking_uri", "mlflowTrackingUri"),
        ("agent_image", "images.agent"),  # the measuring proxy sidecar
    ),
    "Model": (
        ("build_image", "images.serving"),
        ("agent_image", "images.agent"),
        ("tracking_uri", "mlflowTrackingUri"),
        ("repo_url", "source.url"),
    ),
    "FeatureSet": (("agent_image", "images.agent"), ("features_volume", "offlineStore.volume")),
    "DAG": (
        ("build_image", "images.serving"),
        ("agent_image", "images.agent"),
        ("tracking_uri", "mlflowTrackingUri"),
        ("repo_url", "source.url"),
    ),
}
"""Per kind, the Target fields its objects cannot do without, and the DataPlane setting
(under ``spec.kubernetes``) each comes from."""


def unset(target: Target, kind: str) -> list[str]:
    """The settings ``kind`` needs that the plane did not sign (pure)."""
    return [setting for field, setting in NEEDED.get(kind, ()) if not getattr(target, field)]


def labels(target: Target, kind: str, name: str) -> dict[str, str]:
    """The inventory labels of every object made for ``kind``/``name`` on the plane."""
    return {MANAGED_BY: "gitplane", PLANE: target.plane, RESOURCE: f"{kind.lower()}.{name}"}


def digest_label(digest: str) -> str:
    """``sha256:<64 hex>`` as a label value (at most 63 characters)."""
    algorithm, _, hexits = digest.partition(":")
    return f"{algorithm}-{hexits}"[:63]


def _metadata(target: Target, command: signed.Command, name: str) -> Manifest:
    """The primary object's metadata: inventory labels and the command's digest."""
    return {
        "name": name,
        "namespace": target.namespace,
        "labels": {
            **labels(target, command.kind, command.name),
            DIGEST: digest_label(command.digest),
        },
        "annotations": {DIGEST: command.digest, COMMAND: command.id},
    }


def _companion(target: Target, command: signed.Command, name: str) -> Manifest:
    """A companion object's metadata (a Service, an autoscaler): inventory labels only, so
    a command that changes nothing of it sends nothing for it."""
    return {
        "name": name,
        "namespace": target.namespace,
        "labels": labels(target, command.kind, command.name),
    }


def deployment(command: signed.Command, target: Target) -> list[Manifest]:
    """A Deployment command: the scoring server's ``apps/v1`` Deployment with the measuring
    proxy beside it, its Service (to the proxy), and when the spec autoscales a KEDA
    ``ScaledObject`` or an ``autoscaling/v2`` HPA (:func:`scaler` says which)."""
    if not target.agent_image:
        raise GitplaneError(
            "the plane names no agent image (spec.kubernetes.images.agent): "
            "the measuring proxy of every Deployment's pods runs in it"
        )
    typed = commands.read(command, commands.DeploymentCommand)
    spec, model = typed.spec, typed.resolved.model
    selector = labels(target, command.kind, command.name)
    objects = [
        {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": _metadata(target, command, command.name),
            "spec": {
                **({} if spec.replicas is None else {"replicas": spec.replicas}),
                "selector": {"matchLabels": dict(selector)},
                "strategy": _strategy(spec.rollout),
                "progressDeadlineSeconds": int(seconds(spec.rollout.progress_deadline)),
                "template": {
                    "metadata": {"labels": dict(selector), "annotations": dict(SCRAPE)},
                    "spec": {
                        "containers": [
                            _server(spec, model.uri, target),
                            _proxy(spec, command.name, target),
                        ]
                    },
                },
            },
        },
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": _companion(target, command, command.name),
            "spec": {
                "selector": dict(selector),
                "ports": [{"name": "http", "port": 80, "targetPort": "http"}],
            },
        },
    ]
    if spec.autoscaling is not None:
        objects.append(
            scalers.manifest(
                _choose(spec.autoscaling, target),
                spec.autoscaling,
                name=command.name,
                metadata=_companion(target, command, command.name),
                prometheus_url=target.prometheus_url,
            )
        )
    return objects


SCRAPE = {
    "prometheus.io/scrape": "true",
    "prometheus.io/port": str(PROXY_PORT),
    "prometheus.io/path": "/metrics",
}
"""Pod annotations a Prometheus's ``kubernetes-pods`` job scrapes the proxy by."""


def scaler(command: signed.Command, target: Target) -> scalers.Scaler | None:
    """The autoscaler of a Deployment command on the plane, None without ``autoscaling``."""
    scaling = commands.read(command, commands.DeploymentCommand).spec.autoscaling
    return None if scaling is None else _choose(scaling, target)


def _choose(scaling: Autoscaling, target: Target) -> scalers.Scaler:
    return scalers.choose(scaling, keda=target.keda, prometheus_url=target.prometheus_url)


def _strategy(rollout: Rollout) -> Manifest:
    if rollout.strategy == "recreate":
        return {"type": "Recreate"}
    return {
        "type": "RollingUpdate",
        "rollingUpdate": {"maxSurge": rollout.max_surge, "maxUnavailable": rollout.max_unavailable},
    }


def _server(spec: DeploymentSpec, uri: str, target: Target) -> Manifest:
    """MLflow's scoring server on loopback: the proxy beside it is the pod's way in."""
    server = ["mlflow", "models", "serve", "--model-uri", uri, "--env-manager", "local"]
    server += ["--host", "127.0.0.1", "--port", str(SERVE_PORT)]
    server += ["--workers", str(spec.server.workers)]
    server += ["--timeout", str(_timeout(spec))]
    env = {"MLFLOW_TRACKING_URI": target.tracking_uri, **spec.env}
    return {
        "name": "server",
        "image": target.serving_image,
        "args": server,
        "ports": [{"name": "server", "containerPort": SERVE_PORT}],
        "env": [{"name": k, "value": v} for k, v in sorted(env.items())],
        "resources": container_resources(spec.resources),
    }


def _timeout(spec: DeploymentSpec) -> int:
    return max(1, round(seconds(spec.server.request_timeout)))


def _proxy(spec: DeploymentSpec, name: str, target: Target) -> Manifest:
    """The measuring proxy (the local runtime's, :data:`SIDECAR`): the pod's ``http`` port
    and ``/metrics``. The readiness probe goes through it to the server's health path,
    so a pod is ready when the whole path answers; the probe is not measured."""
    health = spec.health
    args = ["--listen", f"0.0.0.0:{PROXY_PORT}"]
    args += ["--upstream", f"http://127.0.0.1:{SERVE_PORT}", "--deployment", name]
    args += ["--timeout", str(_timeout(spec)), "--unmetered", health.path]
    if spec.server.max_batch_size is not None:
        args += ["--max-batch-size", str(spec.server.max_batch_size)]
    return {
        "name": "proxy",
        "image": target.agent_image,
        "command": ["python", "-m", SIDECAR],  # not the image's entrypoint (``gitplane``)
        "args": args,
        "ports": [{"name": "http", "containerPort": PROXY_PORT}],
        "resources": {"requests": dict(PROXY_RESOURCES), "limits": dict(PROXY_RESOURCES)},
        "readinessProbe": {
            "httpGet": {"path": health.path, "port": "http"},
            "initialDelaySeconds": int(seconds(health.initial_delay)),
            "periodSeconds": max(1, int(seconds(health.period))),
            "timeoutSeconds": max(1, int(seconds(health.timeout))),
            "failureThreshold": health.failure_threshold,
        },
    }


def container_resources(resources: Resources) -> Manifest:
    """Requests equal to limits (the Guaranteed class for what is set); GPUs as
    ``nvidia.com/gpu`` limits, which Kubernetes requires to equal their requests."""
    wanted: dict[str, str] = {}
    if resources.cpu is not None:
        wanted["cpu"] = resources.cpu
    if resources.memory is not None:
        wanted["memory"] = resources.memory
    if resources.gpu:
        wanted["nvidia.com/gpu"] = str(resources.gpu)  # a quantity, as every resource
    return {"requests": dict(wanted), "limits": dict(wanted)} if wanted else {}


FEATURES = "/features"
"""Where a feature set's pod mounts the plane's feature volume."""
SPEC_DIR = "/etc/gitplane/command"
"""Where it mounts the ConfigMap holding the command's spec (``spec.json``)."""
TERMINATION_LOG = "/dev/termination-log"
"""Where the pod writes its one-line JSON outcome; the agent reads it from the pod status."""
UNTIL = "gitplane.dev/backfill-until"
"""The ConfigMap's record of the time the backfill reads up to (the command's issue time)."""


def featureset(command: signed.Command, target: Target, until: datetime) -> list[Manifest]:
    """A FeatureSet command: a ConfigMap holding its spec (what the pods run, checked
    against the digest in their arguments), a CronJob for its schedule, and an Indexed Job
    computing the backfill's chunks (one completion each, ``backfill.parallelism`` at once)
    up to ``until``. ``ValueError`` when the plane has no store the spec needs."""
    typed = commands.read(command, commands.FeatureSetCommand)
    spec = typed.spec
    if target.features_volume is None:
        raise ValueError("the plane has no spec.kubernetes.offlineStore: feature sets need one")
    if spec.stores.online.enabled and target.redis_secret is None:
        raise ValueError("the plane has no spec.kubernetes.onlineStore: this spec needs one")
    metadata = _metadata(target, command, f"{command.name}-featureset")
    metadata["annotations"][UNTIL] = _iso(until)
    data = {"spec.json": command.spec}
    objects = [{"apiVersion": "v1", "kind": "ConfigMap", "metadata": metadata, "data": data}]
    if spec.schedule is not None:
        objects.append(_cron_job(command, target, spec, until))
    chunks = len(features.backfill_chunks(spec, until))
    if chunks:
        objects.append(_backfill(command, target, spec, until, chunks))
    return objects


def _cron_job(
    command: signed.Command, target: Target, spec: FeatureSetSpec, until: datetime
) -> Manifest:
    schedule = spec.schedule
    assert schedule is not None  # noqa: S101 - featureset() renders a CronJob only with one
    return {
        "apiVersion": "batch/v1",
        "kind": "CronJob",
        "metadata": _metadata(target, command, command.name),
        "spec": {
            "schedule": schedule.cron,
            "timeZone": schedule.timezone,
            "concurrencyPolicy": schedule.concurrency_policy,
            "suspend": schedule.suspend,
            "jobTemplate": {
                "metadata": {"labels": labels(target, command.kind, command.name)},
                "spec": _features_job(command, target, spec, until, backfill=False),
            },
        },
    }


def _backfill(
    command: signed.Command, target: Target, spec: FeatureSetSpec, until: datetime, chunks: int
) -> Manifest:
    parallelism = spec.backfill.parallelism if spec.backfill else 1
    job = _features_job(command, target, spec, until, backfill=True)
    job.update(completionMode="Indexed", completions=chunks, parallelism=min(parallelism, chunks))
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": _metadata(target, command, backfill_name(command)),
        "spec": job,
    }


def backfill_name(command: signed.Command) -> str:
    """The backfill Job of a FeatureSet command (one per command: a Job's pods cannot change)."""
    return f"{command.name}-backfill-{digest_label(command.digest)[7:15]}"


def _features_job(
    command: signed.Command,
    target: Target,
    spec: FeatureSetSpec,
    until: datetime,
    *,
    backfill: bool,
) -> Manifest:
    """A Job's spec running the feature set's computation once; its retries are the Job's
    (``retry.limit``), its ``timeout`` the Job's deadline."""
    run = ["python", "-m", "agent.runtimes.kubernetes.features_job", "--name", command.name]
    run += ["--digest", command.digest, "--spec", f"{SPEC_DIR}/spec.json"]
    run += ["--volume", FEATURES, "--path", target.features_path, "--until", _iso(until)]
    run += ["--termination-log", TERMINATION_LOG]
    container: Manifest = {
        "name": "features",
        "image": target.agent_image,
        **agent_image([*run, "--backfill"] if backfill else run),
        "resources": container_resources(spec.resources),
        "terminationMessagePath": TERMINATION_LOG,
        "terminationMessagePolicy": "File",
        "volumeMounts": [
            {"name": "spec", "mountPath": SPEC_DIR, "readOnly": True},
            {"name": "features", "mountPath": FEATURES},
        ],
    }
    if spec.stores.online.enabled:
        container["envFrom"] = [{"secretRef": {"name": target.redis_secret}}]
    volumes = [
        {"name": "spec", "configMap": {"name": f"{command.name}-featureset"}},
        {"name": "features", "persistentVolumeClaim": {"claimName": target.features_volume}},
    ]
    return {
        "backoffLimit": spec.retry.limit,
        "activeDeadlineSeconds": int(seconds(spec.timeout)),
        "template": {
            "metadata": {"labels": labels(target, command.kind, command.name)},
            "spec": {"restartPolicy": "Never", "containers": [container], "volumes": volumes},
        },
    }


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def agent_image(argv: list[str]) -> Manifest:
    """``python -m MODULE ARGS...`` as a container of the agent's image runs it: its
    ``command`` replaces the image's entrypoint (``gitplane``), its ``args`` follow."""
    return {"command": argv[:3], "args": argv[3:]}


WORKSPACE = "/workspace"
STAGE = "stage"
"""The init container that stages a build or a DAG step in the agent's image (after
``source``); a build's says its MLflow run in its termination message."""


def model(command: signed.Command, commit: str, target: Target) -> list[Manifest]:
    """What a Model command sends when it builds: its build Job; nothing for a model
    imported from a registry, which the agent downloads itself."""
    if commands.read(command, commands.ModelCommand).spec.source.project is None:
        return []
    return [model_build(command, commit, target)]


def model_build(command: signed.Command, commit: str, target: Target) -> Manifest:
    """A Model build command: a Job, a pure function of the command, the spec ``commit``
    of the bundle that carried it and the plane, so ``gitplane agent render`` prints what
    apply sends. Its pod fetches the project at ``commit`` and checks it is the tree the
    command names; :mod:`.build` then makes the build's MLflow run in the agent's image
    (the local plane's experiment and provenance tags), reports its id in its termination
    message and writes the ``mlflow run . --run-id`` the ``run`` container (the build
    image) runs. Scanning, gates and registration then run in the agent, the code the
    local plane runs. ``backoffLimit`` 0: a failed build is retried by the agent with its
    backoff (ADR 0012), not by the Job."""
    typed = commands.read(command, commands.ModelCommand)
    project = typed.spec.source.project
    if project is None:
        raise ValueError(f"Model/{command.name} imports from a registry: there is nothing to build")
    plan = {
        "model": command.name,
        "version": typed.spec.version,
        "commit": commit,
        "project": project.model_dump(mode="json", by_alias=True),
        "artifacts": target.artifacts or None,
    }
    stage = ["python", "-m", "agent.runtimes.kubernetes.build", "--into", WORKSPACE]
    stage += ["--plan", json.dumps(plan, sort_keys=True, separators=(",", ":"))]
    stage += ["--termination-log", TERMINATION_LOG]
    name = f"{command.name}-build-{digest_label(command.digest)[7:15]}"
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": _metadata(target, command, name),
        "spec": {
            "backoffLimit": 0,
            "activeDeadlineSeconds": int(seconds(typed.spec.timeout)),
            "ttlSecondsAfterFinished": 86400,
            "template": {
                "metadata": {"labels": labels(target, command.kind, command.name)},
                "spec": _pod(
                    target,
                    project,
                    commit=commit,
                    tree=typed.inputs.get(project.path, ""),
                    args=["sh", "../run.sh"],
                    resources=typed.spec.resources,
                    stage=stage,
                    reports=True,
                ),
            },
        },
    }


def _pod(
    target: Target,
    project: ProjectRef,
    *,
    commit: str,
    tree: str,
    args: list[str],
    resources: Resources,
    stage: list[str] | None = None,
    reports: bool = False,
) -> Manifest:
    """A pod that runs ``args`` in the project's directory once its source checked out
    (and, given ``stage``, once a second init container ran it in the agent's image; one
    that ``reports`` its outcome in its termination message, read from the pod status)."""
    source = ["python", "-m", "agent.runtimes.kubernetes.source", "--repo", target.repo_url]
    source += ["--commit", commit, "--path", project.path, "--tree", tree, "--into", WORKSPACE]
    mount = [{"name": "workspace", "mountPath": WORKSPACE}]
    fetcher: Manifest = {"name": "source", "image": target.agent_image, **agent_image(source)}
    if target.source_secret:
        fetcher["envFrom"] = [{"secretRef": {"name": target.source_secret}}]
    staging: list[Manifest] = []
    if stage is not None:
        tracking = [{"name": "MLFLOW_TRACKING_URI", "value": target.tracking_uri}]
        staging.append(
            {"name": STAGE, "image": target.agent_image, **agent_image(stage), "env": tracking}
        )
        if reports:
            staging[0] |= {
                "terminationMessagePath": TERMINATION_LOG,
                "terminationMessagePolicy": "FallbackToLogsOnError",
            }
    return {
        "restartPolicy": "Never",
        "initContainers": [
            {**c, "volumeMounts": [dict(m) for m in mount]} for c in [fetcher, *staging]
        ],
        "containers": [
            {
                "name": "run",
                "image": target.build_image,
                "args": args,
                "workingDir": f"{WORKSPACE}/project",
                "env": [{"name": "MLFLOW_TRACKING_URI", "value": target.tracking_uri}],
                "resources": container_resources(resources),
                "volumeMounts": [dict(m) for m in mount],
            }
        ],
        "volumes": [{"name": "workspace", "emptyDir": {}}],
    }


STEP = "gitplane.dev/step"
RUN = "gitplane.dev/run"
"""Labels of a DAG step's Job: the step, and the DAG run (its parent MLflow run) it is of."""


@dataclass(frozen=True)
class StepRun:
    """What the agent gives one step's Job: where it logs and where its inputs are."""

    parent: str
    """The DAG run's parent MLflow run."""
    runs: tuple[str, ...]
    """The child run of each instance (completion index), made by the agent beforehand."""
    inputs: tuple[tuple[str, tuple[str, ...]], ...] = ()
    """Each upstream step and its instances' runs ("" where an instance failed)."""


def dag_step(
    command: signed.Command, step_name: str, commit: str, run: StepRun, target: Target
) -> Manifest:
    """One step of a DAG run: a Job, Indexed (completions = instances) when the step is
    partitioned. The pod fetches the project at the spec commit, checks its tree, then
    :mod:`.step` stages it in the agent's image: it picks the instance's run by
    ``JOB_COMPLETION_INDEX``, downloads the upstream runs' artifacts (the same input
    directory as on the local plane) and writes the ``mlflow run`` the step container runs.
    Retries are the Job's: ``backoffLimit`` (``backoffLimitPerIndex`` when Indexed) is
    ``retry.limit``; ``activeDeadlineSeconds`` the step's ``timeout``."""
    typed = commands.read(command, commands.DAGCommand)
    step = next(s for s in typed.spec.steps if s.name == step_name)
    plan = {
        "entryPoint": step.project.entry_point,
        "envManager": step.project.env_manager,
        "runs": list(run.runs),
        "parameters": {**typed.spec.parameters, **step.project.parameters},
        "inputs": {upstream: list(runs) for upstream, runs in run.inputs},
        "partitioned": sorted(s.name for s in typed.spec.steps if s.partition),
        "partition": step.partition.model_dump(by_alias=True) if step.partition else None,
    }
    stage = ["python", "-m", "agent.runtimes.kubernetes.step", "--into", WORKSPACE]
    stage += ["--plan", json.dumps(plan, sort_keys=True, separators=(",", ":"))]
    name = f"{f'{command.name}-{step.name}'[:54].rstrip('-')}-{run.parent[:8]}"  # 63 at most
    metadata = _metadata(target, command, name)
    metadata["labels"] |= {STEP: step.name, RUN: run.parent}
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": metadata,
        "spec": {
            **_completions(len(run.runs), step.retry.limit),
            "activeDeadlineSeconds": int(seconds(step.timeout)),
            "ttlSecondsAfterFinished": 86400,
            "template": {
                "metadata": {
                    "labels": {**labels(target, command.kind, command.name), RUN: run.parent}
                },
                "spec": _pod(
                    target,
                    step.project,
                    commit=commit,
                    tree=typed.inputs.get(step.project.path, ""),
                    args=["sh", "../run.sh"],
                    resources=step.resources,
                    stage=stage,
                ),
            },
        },
    }


def _completions(instances: int, retries: int) -> Manifest:
    """One pod, retried ``retries`` times; or ``instances`` indexes, each retried as often
    (``backoffLimit`` then only bounds the whole, as it would every index failing)."""
    if instances == 1:
        return {"backoffLimit": retries}
    return {
        "completions": instances,
        "parallelism": instances,
        "completionMode": "Indexed",
        "backoffLimitPerIndex": retries,
        "backoffLimit": (retries + 1) * instances,
    }
