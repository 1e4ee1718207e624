"""``gitplane agent render``: the objects a plane's current commands become, as text.

The same :data:`~agent.runtimes.kubernetes.KINDS` renderers apply sends (a pure function of
the command and the plane's signed settings), printed the way ``helm template`` and
``kustomize build`` print: a YAML stream (``---`` between objects) or a JSON ``List``.
A command whose objects depend on what happens at apply time (a model build names the
MLflow run the agent makes then), or of a kind the runtime does not run yet, is not
rendered: it is named on stderr, and the rest is printed.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field

import yaml

from agent.runtimes.kubernetes import KINDS, render
from agent.runtimes.kubernetes.cluster import Manifest
from schemas import dataplane, signed

FORMATS = ("yaml", "json")


@dataclass(frozen=True)
class Rendered:
    """What the commands became, and those left out with why."""

    objects: list[Manifest]
    skipped: list[str] = field(default_factory=list)
    """``Kind/name: why`` of every command not rendered."""


def manifests(
    plane: str, settings: dataplane.KubernetesRuntime, commands: Iterable[signed.Command]
) -> Rendered:
    """The objects ``commands`` become on ``plane`` with its signed ``settings`` (pure)."""
    target = render.target_of(plane, settings)
    objects: list[Manifest] = []
    skipped: list[str] = []
    for command in commands:
        kind = KINDS.get(command.kind)
        draw = None if kind is None else kind.render
        why = _why_not(command.kind, kind is not None, draw is not None, target)
        if draw is None or why:
            skipped.append(f"{command.kind}/{command.name}: {why}")
            continue
        objects += draw(command, target)
    return Rendered(objects, skipped)


def _why_not(kind: str, runs: bool, renders: bool, target: render.Target) -> str:
    """Why a command of ``kind`` is not rendered; empty when it is."""
    if not runs:
        return f"the kubernetes runtime does not run {kind}s yet"
    if not renders:
        return "its objects depend on when it is applied (a build's MLflow run, a backfill)"
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
