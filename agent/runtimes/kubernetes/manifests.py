"""``gitplane agent render``: the objects a plane's current commands become, as text.

The same :data:`~agent.runtimes.kubernetes.KINDS` renderers apply sends (pure functions of
the command, what its bundle gave it and the plane's signed settings: ADR 0020), printed
the way ``helm template`` and ``kustomize build`` print: a YAML stream (``---`` between
objects) or a JSON ``List``. What is not exact is said on stderr, and the rest printed: a
command that cannot be rendered (the plane lacks a setting it needs), an assumption about
the cluster (KEDA served or not), and a DAG's run ids (placeholders until a run starts).
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

import yaml

from agent.runtimes.kubernetes import KINDS, Kind, dagrender, deployments, render
from agent.runtimes.kubernetes.cluster import Manifest
from schemas import dataplane, signed
from schemas.errors import GitplaneError

FORMATS = ("yaml", "json")


@dataclass(frozen=True)
class Rendered:
    """What the commands became, and those left out with why."""

    objects: list[Manifest]
    skipped: list[str] = field(default_factory=list)
    """``Kind/name: why`` of every command not rendered."""
    assumed: list[str] = field(default_factory=list)
    """``Kind/name: ...`` of every command rendered on an assumption about the cluster that
    the agent settles by discovery (KEDA served or not)."""

    runs: list[str] = field(default_factory=list)
    """``Kind/name: ...`` of every command rendered for a run not made yet (a DAG's): its
    MLflow ids are placeholders, known when the run starts."""

    @property
    def warnings(self) -> list[str]:
        """What ``gitplane agent render`` says on stderr."""
        return (
            [f"not rendered: {line}" for line in self.skipped]
            + [f"assumed: {line}" for line in self.assumed]
            + [f"known after apply: {line}" for line in self.runs]
        )


def manifests(
    plane: str,
    settings: dataplane.KubernetesRuntime,
    commands: Iterable[tuple[signed.Command, render.Issue]],
    *,
    kinds: Mapping[str, Kind] = KINDS,
    served: frozenset[str] = frozenset(),
) -> Rendered:
    """The objects ``commands`` (each with what its bundle gave it) become on ``plane`` with
    its signed ``settings``, in a cluster serving ``served`` beyond the built-in APIs
    (pure)."""
    keda = deployments.SCALED_OBJECT[0] in served
    target = dataclasses.replace(render.target_of(plane, settings), keda=keda)
    objects: list[Manifest] = []
    skipped: list[str] = []
    assumed: list[str] = []
    runs: list[str] = []
    for command, issue in commands:
        kind = kinds.get(command.kind)
        why = _why_not(command.kind, kind is not None, target)
        if kind is None or why:
            skipped.append(f"{command.kind}/{command.name}: {why}")
            continue
        try:
            objects += kind.render(command, target, issue)
        except (ValueError, GitplaneError) as exc:  # apply reports it Failed, sends nothing
            skipped.append(f"{command.kind}/{command.name}: {exc}")
            continue
        if not keda and _would_use_keda(command, target):
            assumed.append(
                f"{command.kind}/{command.name}: a cluster without KEDA (an HPA on CPU); "
                f"where KEDA is installed the agent sends a ScaledObject "
                f"(render it with --api-versions {deployments.SCALED_OBJECT[0]})"
            )
        if command.kind == "DAG":
            runs.append(
                f"{command.kind}/{command.name}: the step Jobs of one run; the run's MLflow ids "
                f"are shown as {dagrender.RUN_PLACEHOLDER[:8]}... (made when the run starts)"
            )
    return Rendered(objects, skipped, assumed, runs)


def _would_use_keda(command: signed.Command, target: render.Target) -> bool:
    """Whether ``command`` renders otherwise where the cluster serves KEDA."""
    if command.kind != "Deployment":
        return False
    chosen = render.scaler(command, target)
    served = render.scaler(command, dataclasses.replace(target, keda=True))
    return chosen is not None and served is not None and served.kind != chosen.kind


def _why_not(kind: str, runs: bool, target: render.Target) -> str:
    """Why a command of ``kind`` is not rendered; empty when it is."""
    if not runs:
        return f"the kubernetes runtime does not run {kind}s yet"
    missing = render.unset(target, kind)
    return f"the plane's spec.kubernetes sets no {', '.join(missing)}" if missing else ""


def dumps(objects: list[Manifest], output: str) -> str:
    """``objects`` as a YAML stream or a JSON ``List`` (``output``: one of :data:`FORMATS`)."""
    if output == "json":
        listed = {"apiVersion": "v1", "kind": "List", "items": objects}
        return json.dumps(listed, indent=2) + "\n"
    return "".join(
        f"---\n{yaml.safe_dump(o, sort_keys=False, default_flow_style=False)}" for o in objects
    )
