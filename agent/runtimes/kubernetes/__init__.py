"""The ``kubernetes`` runtime: the same commands as Kubernetes workloads (issue 20; ADR 0015).

Only this package imports the official ``kubernetes`` client (an import-linter contract).
It renders what a plane applies (:mod:`.render`), reaches the cluster through
:mod:`.cluster`, observes it through watches (:mod:`.inventory`), and so far runs
Deployments (:mod:`.deployments`, autoscaled as :mod:`.scalers` chooses: KEDA when the
cluster serves it, found by discovery when the runtime connects), Models
(:mod:`.models`: a build Job, then the local plane's own scan, gates and registration),
feature sets (:mod:`.features`) and DAGs (:mod:`.dags`).

Where and with what images objects run is the plane's signed ``spec.kubernetes`` (ADR
0016), handed in with every apply and observation (``ApplyContext.kubernetes``). The
runtime builds its :class:`Target` from them and, when they change, its cluster
connection, watches and kind handlers; until a bundle carried them, every command is
``Blocked``, never run with guessed settings.
"""

from __future__ import annotations

import dataclasses
import functools
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from agent.runtimes.base import ApplyContext, Capabilities
from agent.runtimes.kubernetes import dagrender, dags, deployments, features, models, render
from agent.runtimes.kubernetes.cluster import Cluster, Manifest
from agent.runtimes.kubernetes.connect import Connect
from agent.runtimes.kubernetes.inventory import Inventory
from agent.runtimes.kubernetes.render import Target
from schemas import dataplane, signed
from schemas.errors import GitplaneError

UNSIGNED = "no kubernetes settings signed for this plane yet"


class UnsettledError(GitplaneError):
    """The plane's signed settings do not say how to run a command."""


class Handler(Protocol):
    """Applies, observes and deletes the commands of one kind (``X(cluster, target,
    inventory=...)``, as :class:`~.deployments.Deployments`)."""

    def apply(self, command: signed.Command, context: ApplyContext) -> signed.ResourceStatus:
        """Make the resource match the command."""
        ...

    def observe(
        self, command: signed.Command, last: signed.ResourceStatus, context: ApplyContext
    ) -> signed.ResourceStatus:
        """What the resource looks like now."""
        ...

    def delete(self, command: signed.Command) -> None:
        """Remove every object of the resource."""
        ...


@dataclass(frozen=True)
class Kind:
    """How the runtime runs one kind of command."""

    handler: Callable[..., Handler]
    """``handler(cluster, target, inventory=...)``."""
    owned: Callable[[Target], tuple[tuple[str, str], ...]]
    """The (apiVersion, kind) of the objects it makes on a cluster (KEDA's only where it is
    served): what the inventory watches."""
    render: Callable[[signed.Command, Target, render.Issue], list[Manifest]]
    """The objects a command becomes, as apply sends them (``gitplane agent render``), from
    the command, the plane and what its bundle gave it (ADR 0020)."""


KINDS: dict[str, Kind] = {
    "Deployment": Kind(
        deployments.Deployments,
        lambda target: deployments.owned(keda=target.keda),
        lambda command, target, _: render.deployment(command, target),
    ),
    "Model": Kind(
        models.Models,
        lambda _: models.OWNED,
        lambda command, target, issue: render.model(command, issue.spec_commit, target),
    ),
    "FeatureSet": Kind(
        features.FeatureSets,
        lambda _: features.OWNED,
        lambda command, target, issue: render.featureset(command, target, issue.issued_at),
    ),
    "DAG": Kind(
        dags.Dags,
        lambda _: dags.OWNED,
        lambda command, target, issue: dagrender.dag_run(command, issue.spec_commit, target),
    ),
}
"""The kinds the runtime runs, by command kind."""


def kinds_with_state(state_dir: Path, kinds: Mapping[str, Kind] = KINDS) -> dict[str, Kind]:
    """``kinds`` whose model builds keep their MLflow experiments' artifacts under
    ``<state_dir>/mlartifacts`` when the tracking URI is a store rather than a server (a
    server keeps its own; the agent's tests use a SQLite store): :func:`render.with_state`,
    which ``gitplane agent render`` applies too."""
    model = kinds["Model"]
    builds = functools.partial(models.Models, state_dir=state_dir)
    draw = functools.partial(_with_state, model.render, state_dir)
    return {**kinds, "Model": dataclasses.replace(model, handler=builds, render=draw)}


def _with_state(
    draw: Callable[[signed.Command, Target, render.Issue], list[Manifest]],
    state_dir: Path,
    command: signed.Command,
    target: Target,
    issue: render.Issue,
) -> list[Manifest]:
    return draw(command, render.with_state(target, state_dir), issue)


@dataclass
class _Plane:
    """What the runtime built from one Target: a connection, its watches, its handlers."""

    wanted: tuple[Target, str | None]
    """The Target and context the settings made (before discovery): what a change is."""
    target: Target
    """That Target as the cluster showed it (``keda``)."""
    inventory: Inventory
    handlers: dict[str, Handler]


class KubernetesRuntime:
    """Applies, observes and deletes the kinds it runs in one namespace of one cluster."""

    kinds = frozenset(KINDS)
    jobs: frozenset[str] = frozenset({"DAG"})
    """Kinds whose apply takes as long as its run: the agent's jobs thread applies them (a
    feature set's schedule is its CronJob's: observing it is quick)."""
    capabilities = Capabilities(env_managers=models.BUILD_ENV_MANAGERS, enforces_resources=True)
    retried = frozenset({"Deployment", "Model"})

    def __init__(
        self,
        connect: Connect,
        plane: str,
        *,
        settings: dataplane.KubernetesRuntime | None = None,
        kinds: Mapping[str, Kind] = KINDS,
    ) -> None:
        self.connect = connect
        """An API client for a kubeconfig context (:mod:`.connect`)."""
        self.plane = plane
        self.settings = settings
        """The newest signed settings handed in (the agent's journal's at start): where
        ``delete``, which takes no context, looks."""
        self.handlers = dict(kinds)
        """How each kind runs (tests tune a handler's polling here)."""
        self.kinds = frozenset(self.handlers)
        self.jobs = type(self).jobs & self.kinds
        self.retried = type(self).retried & self.kinds
        self._built: _Plane | None = None
        self._lock = threading.Lock()

    def close(self) -> None:
        """Stop watching the cluster."""
        with self._lock:
            built, self._built = self._built, None
        if built is not None:
            built.inventory.stop()

    def apply(self, command: signed.Command, context: ApplyContext) -> signed.ResourceStatus:
        """Make the resource match the command; report what it became (``Blocked`` when the
        plane's settings do not say how)."""
        try:
            handler = self._handler(command, context.kubernetes)
        except UnsettledError as exc:
            return _blocked(command, str(exc))
        return handler.apply(command, context)

    def observe(
        self, command: signed.Command, last: signed.ResourceStatus, context: ApplyContext
    ) -> signed.ResourceStatus:
        """What the resource looks like now; drift healed when ``context.self_heal``. A
        command ``Blocked`` for want of settings was never applied: once they are signed,
        its objects are sent now, whatever ``selfHeal`` says (it is no heal, but the apply
        that waited), and the observations that follow see its rollout."""
        try:
            handler = self._handler(command, context.kubernetes)
        except UnsettledError as exc:
            blocked = _blocked(command, str(exc))
            return last if blocked == last else blocked
        if last.phase == "Blocked":
            context = dataclasses.replace(context, self_heal=True)
        return handler.observe(command, last, context)

    def delete(self, command: signed.Command) -> None:
        """Remove every object of the resource, where the newest settings put them. With no
        settings ever signed, nothing was applied: there is nothing to remove."""
        kind = self._known(command)
        if self.settings is None:
            return
        target = render.target_of(self.plane, self.settings)
        self._build(target, self.settings.context).handlers[kind].delete(command)

    def stop_serving(self) -> int:
        """Nothing to stop: what runs on a cluster is the cluster's to keep running."""
        return 0

    @property
    def inventory(self) -> Inventory | None:
        """The watches of the objects it manages (None before any settings)."""
        return None if self._built is None else self._built.inventory

    @property
    def target(self) -> Target | None:
        """The Target the runtime works with now, as discovery found the cluster (None
        before any settings)."""
        return None if self._built is None else self._built.target

    def _handler(
        self, command: signed.Command, settings: dataplane.KubernetesRuntime | None
    ) -> Handler:
        kind = self._known(command)
        if settings is None:
            raise UnsettledError(UNSIGNED)
        self.settings = settings
        target = render.target_of(self.plane, settings)
        missing = render.unset(target, kind)
        if missing:
            raise UnsettledError(f"the plane's spec.kubernetes sets no {', '.join(missing)}")
        return self._build(target, settings.context).handlers[kind]

    def _known(self, command: signed.Command) -> str:
        if command.kind not in self.handlers:
            raise GitplaneError(f"the kubernetes runtime does not run {command.kind}s yet")
        return command.kind

    def _build(self, target: Target, context: str | None) -> _Plane:
        """The handlers for ``target``, built again (connection, watches) when it changed."""
        with self._lock:
            built = self._built
            if built is not None and built.wanted == (target, context):
                return built
            cluster = Cluster(self.connect(context), target.namespace)
            selector = {render.MANAGED_BY: "gitplane", render.PLANE: target.plane}
            # discovered when connecting: KEDA installed later is used once the settings
            # change or the agent starts again
            found = dataclasses.replace(target, keda=cluster.serves(*deployments.SCALED_OBJECT))
            kinds = self.handlers.values()
            owned = tuple(dict.fromkeys(k for kind in kinds for k in kind.owned(found)))
            inventory = Inventory(cluster, selector, owned).start()
            handlers = {
                name: kind.handler(cluster, found, inventory=inventory)
                for name, kind in self.handlers.items()
            }
            self._built = _Plane((target, context), found, inventory, handlers)
        if built is not None:
            built.inventory.stop()
        return self._built


def _blocked(command: signed.Command, why: str) -> signed.ResourceStatus:
    return signed.ResourceStatus(
        kind=command.kind, name=command.name, phase="Blocked", digest=command.digest, message=why
    )


__all__ = ["KINDS", "Cluster", "Kind", "KubernetesRuntime", "Target", "kinds_with_state"]
