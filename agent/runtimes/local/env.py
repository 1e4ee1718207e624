"""Where the local runtime keeps things: shared by every kind's module."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ledger import gitrepo

ENV_MANAGERS = frozenset({"local"})
"""The MLflow Project ``envManager`` values this runtime honours: builds and DAG steps run
in the agent's own environment. Any other is refused, never run as ``local``."""


def env_manager_refusal(project: str, manager: str) -> str:
    """Why a project cannot run here with ``manager``, or ``""``."""
    if manager in ENV_MANAGERS:
        return ""
    have = ", ".join(sorted(ENV_MANAGERS))
    return (
        f"{project}: envManager {manager!r} is not available on this plane (it has: {have}); "
        "it would run in the agent's own environment, ignoring the project's pins"
    )


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

    def kind_dir(self, kind: str, name: str) -> Path:
        """A resource's own directory, e.g. ``<stateDir>/featuresets/customer-activity``."""
        path = self.state_dir / f"{kind.lower()}s" / name
        path.mkdir(parents=True, exist_ok=True)
        return path
