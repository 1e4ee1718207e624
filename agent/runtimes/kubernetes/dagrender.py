"""A DAG's step Jobs as ``gitplane agent render`` prints them: one run, its ids to be made.

A step's Job (:func:`render.dag_step`) is made when a run reaches the step, and holds what
only the run makes: the parent MLflow run (the Job name's suffix, the ``gitplane.dev/run``
label), each instance's child run and the upstream steps' runs (in the staging plan). A
render before any run cannot know them, so, as Terraform prints "(known after apply)",
:func:`dag_run` renders them as marked placeholders, with the same :func:`render.dag_step`
apply uses; everything else is what apply sends:

* the parent run is :data:`RUN_PLACEHOLDER`, 32 ``x``: the shape of an MLflow run id
  (32 characters), a valid label value, and ``xxxxxxxx`` as the Job name's suffix (its
  first 8 characters), so a rendered Job's name is a valid DNS label as an applied one is;
* instance ``k`` of step ``s`` runs in ``<RUN_PLACEHOLDER>/s/k`` (:func:`placeholder`).

:func:`bind_run` puts a real run's ids in their place: a rendered Job, bound, equals the Job
applied for that run (``==``), which is how the tests hold render to apply.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from agent.runtimes.kubernetes import render
from agent.runtimes.kubernetes.cluster import Manifest
from agent.runtimes.local.dags import _plan as _dagplan
from schemas import commands, signed
from schemas.dag import Step

RUN_PLACEHOLDER = "x" * 32
"""The parent MLflow run of a DAG run not yet made (never a run id: ``x`` is not hex)."""
_SUFFIX = f"-{RUN_PLACEHOLDER[:8]}"
_PLACED = re.compile(re.escape(RUN_PLACEHOLDER) + r"(?:/(?P<step>[a-z0-9-]+)/(?P<index>\d+))?")


def placeholder(step: str, index: int) -> str:
    """The child run of ``step``'s instance ``index`` (its completion index) in a render."""
    return f"{RUN_PLACEHOLDER}/{step}/{index}"


def _instances(step: Step) -> int:
    """How many instances (pods that must succeed: the Job's completions) ``step`` has."""
    return step.partition.instances if step.partition else 1


def dag_run(command: signed.Command, commit: str, target: render.Target) -> list[Manifest]:
    """Every step's Job of one run of a DAG command at spec ``commit``, in the order the run
    applies them (``dependsOn``; declaration order among steps ready together), as
    :func:`render.dag_step` makes them when each step starts: a run in which every step
    starts, and every instance succeeds, so each dependent gets all its upstream runs.
    The run's MLflow ids are placeholders (:data:`RUN_PLACEHOLDER`, :func:`placeholder`)."""
    steps = commands.read(command, commands.DAGCommand).spec.steps
    runs: dict[str, tuple[str, ...]] = {}
    jobs: list[Manifest] = []
    for step in _dagplan.order(steps):
        runs[step.name] = tuple(placeholder(step.name, k) for k in range(_instances(step)))
        inputs = tuple((upstream, runs[upstream]) for upstream in step.depends_on)
        given = render.StepRun(RUN_PLACEHOLDER, runs[step.name], inputs)
        jobs.append(render.dag_step(command, step.name, commit, given, target))
    return jobs


def bind_run(rendered: Manifest, parent: str, runs: Mapping[str, Sequence[str]]) -> Manifest:
    """``rendered`` (a Job of :func:`dag_run`) with a real run's ids in place of the
    placeholders: the parent run ``parent``, and each step's instances' runs ``runs``
    (by step name, in completion index order). A copy; ``ValueError`` for a Job that is
    not a rendered one, or a run ``runs`` does not give."""
    name = rendered["metadata"]["name"]
    if not name.endswith(_SUFFIX):
        raise ValueError(f"Job {name} is not a rendered DAG step (no -{RUN_PLACEHOLDER[:8]})")

    def real(found: re.Match[str]) -> str:
        if found["step"] is None:
            return parent
        given = runs.get(found["step"], ())
        index = int(found["index"])
        if index >= len(given):
            raise ValueError(f"no run given for step {found['step']} instance {index}")
        return given[index]

    bound: Manifest = _each_string(rendered, lambda text: _PLACED.sub(real, text))
    bound["metadata"]["name"] = f"{name.removesuffix(_SUFFIX)}-{parent[:8]}"
    return bound


def _each_string(value: Any, change: Callable[[str], str]) -> Any:
    """``value`` (JSON-shaped) copied with ``change`` applied to every string in it."""
    if isinstance(value, str):
        return change(value)
    if isinstance(value, dict):
        return {key: _each_string(item, change) for key, item in value.items()}
    if isinstance(value, list):
        return [_each_string(item, change) for item in value]
    return value
