"""Where the local runtime keeps things: shared by every kind's module."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ledger import gitrepo


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
