"""Which autoscaler a Deployment gets on a Kubernetes plane, and its manifest: pure.

With KEDA's ``ScaledObject`` served by the cluster and a Prometheus on the plane
(``spec.kubernetes.autoscaling.prometheus.url``), a ``ScaledObject`` scales on what the
pods' measuring proxies export (``gitplane_endpoint_*``, the local runtime's names): one
``prometheus`` trigger per target of the spec, so the highest ask wins as on a local plane,
and ``minReplicas: 0`` is honoured. Otherwise an ``autoscaling/v2`` HPA holds CPU
(:data:`HPA_CPU_UTILIZATION`): it cannot see requests or latency and keeps one replica at
least. Either way :func:`choose` says which and names what the spec asks that is not
honoured, for the status: never silent.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from schemas.common import parse_duration as seconds
from schemas.deployment import Autoscaling

Manifest = dict[str, Any]

HPA_CPU_UTILIZATION = 70
"""Where an ``autoscaling/v2`` HPA holds average CPU when KEDA is not there to scale on
the measured request rate and latency (the plane's status says which scaler it uses)."""
RATE_WINDOW = "1m"
"""The range of ``rate()`` in the queries: a few scrapes of the proxies."""
REQUESTS = "gitplane_endpoint_requests_total"
LATENCY = "gitplane_endpoint_request_seconds_bucket"


@dataclass(frozen=True)
class Scaler:
    """The autoscaler a Deployment gets, and what of its spec it does not honour."""

    kind: Literal["keda", "hpa-cpu"]
    unhonoured: tuple[str, ...] = ()
    """The spec's fields this scaler ignores or changes, each with why."""
    why: str = ""
    """Why not KEDA (empty under KEDA)."""

    @property
    def warning(self) -> str:
        """One sentence for the status; empty when everything is honoured."""
        if not self.unhonoured:
            return ""
        because = f" ({self.why})" if self.why else ""
        return f"autoscaling by {self.kind}{because}: not honoured: " + "; ".join(self.unhonoured)


def choose(scaling: Autoscaling, *, keda: bool, prometheus_url: str) -> Scaler:
    """KEDA when it is served and there is a Prometheus to query, else HPA on CPU."""
    if keda and prometheus_url:
        return Scaler("keda", (*_zero(scaling), *_cooldown(scaling)))
    why = "no Prometheus URL on the plane" if keda else "KEDA is not installed in the cluster"
    return Scaler("hpa-cpu", (*_ignored_by_hpa(scaling), *_cooldown(scaling)), why)


def _ignored_by_hpa(scaling: Autoscaling) -> tuple[str, ...]:
    targets = scaling.targets
    ignored = [
        f"targets.{name} (an HPA scales on CPU only)"
        for name, value in (
            ("rpsPerReplica", targets.rps_per_replica),
            ("p95LatencyMs", targets.p95_latency_ms),
            ("errorRate", targets.error_rate),
        )
        if value is not None
    ]
    if scaling.min_replicas == 0:
        ignored.append("minReplicas 0 (an HPA keeps 1)")
    if "polling_interval" in scaling.model_fields_set:
        ignored.append("pollingInterval (the cluster's HPA sync period applies)")
    return tuple(ignored)


def _cooldown(scaling: Autoscaling) -> tuple[str, ...]:
    """Kubernetes paces scaling by the stabilisation windows, with no minimum time between
    two events; KEDA's ``cooldownPeriod`` (set from it) applies only before scaling to 0."""
    if "cooldown" not in scaling.model_fields_set or scaling.min_replicas == 0:
        return ()
    return ("cooldown (Kubernetes paces scaling by the stabilization windows)",)


def _zero(scaling: Autoscaling) -> tuple[str, ...]:
    if scaling.min_replicas > 0:
        return ()
    return (
        "a request at 0 replicas (nothing is there to measure it: only another trigger, "
        "or a raised minReplicas, brings the endpoint back)",
    )


def manifest(
    scaler: Scaler,
    scaling: Autoscaling,
    *,
    name: str,
    metadata: Manifest,
    prometheus_url: str,
) -> Manifest:
    """The ``ScaledObject`` or the HPA of Deployment ``name``."""
    if scaler.kind == "keda":
        return scaled_object(scaling, name=name, metadata=metadata, prometheus_url=prometheus_url)
    return hpa(scaling, name=name, metadata=metadata)


def _behavior(scaling: Autoscaling) -> Manifest:
    return {
        "scaleUp": {"stabilizationWindowSeconds": int(seconds(scaling.scale_up_stabilization))},
        "scaleDown": {"stabilizationWindowSeconds": int(seconds(scaling.scale_down_stabilization))},
    }


def _target(name: str) -> Manifest:
    return {"apiVersion": "apps/v1", "kind": "Deployment", "name": name}


def hpa(scaling: Autoscaling, *, name: str, metadata: Manifest) -> Manifest:
    """An ``autoscaling/v2`` HPA holding the pods' average CPU."""
    cpu = {"type": "Utilization", "averageUtilization": HPA_CPU_UTILIZATION}
    return {
        "apiVersion": "autoscaling/v2",
        "kind": "HorizontalPodAutoscaler",
        "metadata": metadata,
        "spec": {
            "scaleTargetRef": _target(name),
            "minReplicas": max(1, scaling.min_replicas),  # an HPA cannot scale to zero
            "maxReplicas": scaling.max_replicas,
            "metrics": [{"type": "Resource", "resource": {"name": "cpu", "target": cpu}}],
            "behavior": _behavior(scaling),
        },
    }


def scaled_object(
    scaling: Autoscaling, *, name: str, metadata: Manifest, prometheus_url: str
) -> Manifest:
    """A KEDA ``ScaledObject`` with a ``prometheus`` trigger per target of the spec."""
    return {
        "apiVersion": "keda.sh/v1alpha1",
        "kind": "ScaledObject",
        "metadata": metadata,
        "spec": {
            "scaleTargetRef": _target(name),
            "minReplicaCount": scaling.min_replicas,
            "maxReplicaCount": scaling.max_replicas,
            "pollingInterval": max(1, int(seconds(scaling.polling_interval))),
            "cooldownPeriod": int(seconds(scaling.cooldown)),
            "advanced": {"horizontalPodAutoscalerConfig": {"behavior": _behavior(scaling)}},
            "triggers": triggers(scaling, metadata["namespace"], name, prometheus_url),
        },
    }


def triggers(
    scaling: Autoscaling, namespace: str, name: str, prometheus_url: str
) -> list[Manifest]:
    """The spec's targets as PromQL over the proxies' metrics. Requests per second is an
    ``AverageValue`` (KEDA divides by the replicas); p95 and the error rate are ``Value``s
    (the HPA asks ``ceil(replicas * measured / target)``, as the local autoscaler does). A
    query with no data (no requests yet) reads 0, never NaN."""
    of = f'namespace="{namespace}",deployment="{name}"'
    targets, found = scaling.targets, []
    if targets.rps_per_replica is not None:
        rps = f"sum(rate({REQUESTS}{{{of}}}[{RATE_WINDOW}])) or vector(0)"
        found.append(_trigger(prometheus_url, rps, targets.rps_per_replica, "AverageValue"))
    if targets.p95_latency_ms is not None:
        buckets = f"sum by (le) (rate({LATENCY}{{{of}}}[{RATE_WINDOW}]))"
        p95 = f"(1000 * histogram_quantile(0.95, {buckets}) >= 0) or vector(0)"
        found.append(_trigger(prometheus_url, p95, targets.p95_latency_ms, "Value"))
    if targets.error_rate is not None:
        failed = f'sum(rate({REQUESTS}{{{of},code=~"5.."}}[{RATE_WINDOW}]))'
        every = f"sum(rate({REQUESTS}{{{of}}}[{RATE_WINDOW}]))"
        errors = f"({failed} / {every} >= 0) or vector(0)"
        found.append(_trigger(prometheus_url, errors, targets.error_rate, "Value"))
    return found


def _trigger(server: str, query: str, threshold: float, metric_type: str) -> Manifest:
    metadata = {"serverAddress": server, "query": query, "threshold": f"{threshold:g}"}
    return {"type": "prometheus", "metricType": metric_type, "metadata": metadata}
