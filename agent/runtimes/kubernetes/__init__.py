"""The ``kubernetes`` runtime: the same commands as Kubernetes workloads (issue 20; ADR 0015).

Only this package imports the official ``kubernetes`` client (an import-linter contract).
It renders what a plane applies (:mod:`.render`), reaches the cluster through
:mod:`.cluster`, observes it through watches (:mod:`.inventory`), and so far runs
Deployments (:mod:`.deployments`, autoscaled as :mod:`.scalers` chooses: KEDA when the
cluster serves it, found by discovery at start), feature sets (:mod:`.features`) and DAGs
(:mod:`.dags`).
"""

from __future__ import annotations

import dataclasses

from agent.runtimes.base import ApplyContext, Capabilities
from agent.runtimes.kubernetes import dags as _dags
from agent.runtimes.kubernetes import features, render
from agent.runtimes.kubernetes.cluster import Cluster
from agent.runtimes.kubernetes.dags import Dags
from agent.runtimes.kubernetes.deployments import SCALED_OBJECT, Deployments, owned
from agent.runtimes.kubernetes.features import FeatureSets
from agent.runtimes.kubernetes.inventory import Inventory
from agent.runtimes.kubernetes.render import Target
from schemas import signed
from schemas.errors import GitplaneError


class KubernetesRuntime:
    """Applies, observes and deletes the kinds it runs in one namespace of one cluster."""

    kinds = frozenset({"Deployment", "FeatureSet", "DAG"})
    jobs: frozenset[str] = frozenset({"DAG"})
    """Kinds whose apply takes as long as its run: the agent's jobs thread applies them (a
    feature set's schedule is its CronJob's: observing it is quick)."""
    capabilities = Capabilities(env_managers=frozenset({"local"}), enforces_resources=True)
    retried = frozenset({"Deployment"})

    def __init__(self, cluster: Cluster, target: Target) -> None:
        selector = {render.MANAGED_BY: "gitplane", render.PLANE: target.plane}
        # discovered once: KEDA installed later is used from the agent's next start
        target = dataclasses.replace(target, keda=cluster.serves(*SCALED_OBJECT))
        kinds = tuple(dict.fromkeys((*owned(keda=target.keda), *features.OWNED, *_dags.OWNED)))
        self.inventory = Inventory(cluster, selector, kinds).start()
        """What runs, kept current by watches: observing sends no request per cycle."""
        self.deployments = Deployments(cluster, target, inventory=self.inventory)
        self.featuresets = FeatureSets(cluster, target, inventory=self.inventory)
        self.dags = Dags(cluster, target, inventory=self.inventory)

    def close(self) -> None:
        """Stop watching the cluster."""
        self.inventory.stop()

    def apply(self, command: signed.Command, context: ApplyContext) -> signed.ResourceStatus:
        """Make the resource match the command; report what it became."""
        return self._kind(command).apply(command, context)

    def observe(
        self, command: signed.Command, last: signed.ResourceStatus, context: ApplyContext
    ) -> signed.ResourceStatus:
        """What the resource looks like now; drift healed when ``context.self_heal``."""
        return self._kind(command).observe(command, last, context)

    def delete(self, command: signed.Command) -> None:
        """Remove every object of the resource."""
        self._kind(command).delete(command)

    def _kind(self, command: signed.Command) -> Deployments | FeatureSets | Dags:
        if command.kind == "FeatureSet":
            return self.featuresets
        if command.kind == "DAG":
            return self.dags
        if command.kind != "Deployment":
            raise GitplaneError(f"the kubernetes runtime does not run {command.kind}s yet")
        return self.deployments


__all__ = ["Cluster", "KubernetesRuntime", "Target"]
