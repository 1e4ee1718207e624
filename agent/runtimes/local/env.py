"""Where the local runtime keeps things: shared by every kind's module.

Also which MLflow environment managers this machine has (``detect_env_managers``): found
once, when the runtime is built, never assumed. A project that asks for one it lacks is
refused with the reason (``env_manager_refusal``), never run in another environment.
"""

from __future__ import annotations

import os
import shutil
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from ledger import gitrepo

_MISSING = {
    "uv": "no uv executable was found beside the agent's Python or on PATH",
    "virtualenv": "MLflow's virtualenv manager installs the project's Python with pyenv, "
    "and no pyenv was found on PATH",
    "conda": "no conda executable was found (MLFLOW_CONDA_HOME, CONDA_EXE or conda on PATH)",
}
"""Why each manager is missing when it is: the tool MLflow needs for it."""


def detect_env_managers(environ: Mapping[str, str]) -> frozenset[str]:
    """The managers whose tool is found with ``environ`` (the agent's environment), looking
    where MLflow looks, on the PATH projects run with (the agent's Python's directory first):
    ``uv``; ``pyenv`` for virtualenv (``mlflow.utils.virtualenv._is_pyenv_available``);
    ``conda`` under ``MLFLOW_CONDA_HOME`` or beside ``CONDA_EXE``, or on PATH
    (``mlflow.utils.conda.get_conda_bin_executable``). ``local`` is always there."""
    path = project_path(environ)
    found = {"local"}
    if shutil.which("uv", path=path):
        found.add("uv")
    if shutil.which("pyenv", path=path):
        found.add("virtualenv")
    if _conda(environ, path):
        found.add("conda")
    return frozenset(found)


def _conda(environ: Mapping[str, str], path: str) -> str | None:
    if home := environ.get("MLFLOW_CONDA_HOME"):
        return shutil.which(str(Path(home) / "bin" / "conda"))
    if exe := environ.get("CONDA_EXE"):
        return shutil.which(str(Path(exe).parent / "conda"))
    return shutil.which("conda", path=path)


def project_path(environ: Mapping[str, str]) -> str:
    """The PATH projects and servers run with: the agent's Python's directory first, so
    the tools installed with Gitplane (``mlflow``, ``uv``) are found."""
    return f"{Path(sys.executable).parent}{os.pathsep}{environ.get('PATH', '')}"


def env_manager_refusal(project: str, manager: str, available: frozenset[str]) -> str:
    """Why a project cannot run here with ``manager`` (``available`` has what the plane
    found), or ``""``."""
    if manager in available:
        return ""
    have = ", ".join(sorted(available))
    why = _MISSING.get(manager, "this runtime does not know it")
    return (
        f"{project}: envManager {manager!r} is not available on this plane (it has: {have}); {why}"
    )


def _detected() -> frozenset[str]:
    return detect_env_managers(os.environ)


@dataclass(frozen=True)
class LocalEnv:
    """The local data plane's places and settings."""

    repo: gitrepo.GitRepo
    """Where projects are read from (the agent's mirror, at each command's spec commit)."""
    tracking_uri: str
    """MLflow tracking and registry URI."""
    state_dir: Path
    """The agent's private state directory; each kind keeps its files under it."""
    data_dir: Path
    """Where relative data paths in specs (feature sources, DAG inputs) are resolved."""
    ports: tuple[int, int] = (20000, 29999)
    """Inclusive TCP port range endpoints are given from."""
    standby: int = 1
    """Warm replicas each endpoint keeps outside its pool, so a scale-up is ready at once."""
    env_managers: frozenset[str] = field(default_factory=_detected)
    """The MLflow ``envManager`` values builds and steps honour: found on this machine when
    the environment is built (:func:`detect_env_managers`)."""

    @property
    def env_root(self) -> Path:
        """Where MLflow keeps the environments it creates for projects and models
        (``MLFLOW_ENV_ROOT``), each named by a hash of its Python version and requirements:
        a build with the same requirements reuses the environment."""
        return self.state_dir / "envs"

    def kind_dir(self, kind: str, name: str) -> Path:
        """A resource's own directory, e.g. ``<stateDir>/featuresets/customer-activity``."""
        path = self.state_dir / f"{kind.lower()}s" / name
        path.mkdir(parents=True, exist_ok=True)
        return path
