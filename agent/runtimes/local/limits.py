"""A spec's ``resources`` as limits on the local runtime's processes.

The local runtime has no cgroups to give (a container's are read-only), so it
enforces what a process can be held to by the kernel without them:

* ``memory`` → ``RLIMIT_DATA`` of every process (its heap and private memory):
  an allocation past it fails, a Python process raises ``MemoryError``. Each
  process of a build or replica (the entry point ``mlflow run`` starts, each
  scoring-server worker) is held to it on its own: it is a limit per process,
  where Kubernetes limits the container's processes together;
* ``cpu`` → the CPUs the process may run on (its affinity), rounded up to whole
  cores (``500m`` is one core, ``1.5`` two); more cores than the plane has is
  refused;
* ``gpu`` → ``CUDA_VISIBLE_DEVICES``: with ``gpu: 0`` every process sees no GPU;
  the local runtime schedules no GPUs, so ``gpu`` above 0 is refused.

The limits are set by a small launcher (``launch.py`` beside this module, run
as a script so that it imports nothing of Gitplane's) that sets them on itself
and ``exec``s the command: nothing of the agent's runs in the child between
``fork`` and ``exec`` (its threads make ``preexec_fn`` unsafe).
"""

from __future__ import annotations

import math
import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from schemas.common import Resources, parse_quantity

LAUNCHER = Path(__file__).with_name("launch.py")


@dataclass(frozen=True)
class Limits:
    """What one process is held to."""

    memory: int | None = None
    """Bytes of data segment (``RLIMIT_DATA``); None: unlimited."""
    cpus: int | None = None
    """Whole CPUs it may run on; None: every CPU of the plane."""

    def command(self, command: Sequence[str]) -> list[str]:
        """``command``, started through the launcher when anything is limited."""
        if self.memory is None and self.cpus is None:
            return list(command)
        launcher = [sys.executable, str(LAUNCHER)]
        if self.memory is not None:
            launcher += ["--memory", str(self.memory)]
        if self.cpus is not None:
            launcher += ["--cpus", str(self.cpus)]
        return [*launcher, "--", *command]

    @staticmethod
    def env() -> dict[str, str]:
        """The environment every process gets: no GPU (none is ever assigned here)."""
        return {"CUDA_VISIBLE_DEVICES": ""}


def of(resources: Resources) -> Limits:
    """The limits ``resources`` asks for (check :func:`refusal` first)."""
    memory = None if resources.memory is None else int(parse_quantity(resources.memory))
    cpus = None if resources.cpu is None else max(1, math.ceil(parse_quantity(resources.cpu)))
    return Limits(memory, cpus)


def refusal(resources: Resources, where: str) -> str:
    """Why ``resources`` cannot be given on this machine, or ``""``."""
    if resources.gpu > 0:
        return (
            f"{where}: resources.gpu {resources.gpu}: the local runtime schedules no GPUs "
            "(use a plane whose runtime does, or gpu: 0)"
        )
    have = len(os.sched_getaffinity(0))
    wanted = of(resources).cpus
    if wanted is not None and wanted > have:
        return f"{where}: resources.cpu {resources.cpu} needs {wanted} CPUs; this plane has {have}"
    return ""
