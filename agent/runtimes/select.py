"""The one place a runtime is chosen: from the agent's ``runtime.type``.

The agent core builds its runtime here and knows it only through
:class:`agent.runtimes.base.Runtime`; a second runtime (``kubernetes``) joins by
adding its configuration to the union in ``agent.config`` and a branch here.
"""

from __future__ import annotations

import importlib.util

from agent.config import AgentConfig, LocalRuntimeConfig
from agent.runtimes.base import Runtime
from agent.runtimes.local import LocalRuntime
from agent.runtimes.local.env import LocalEnv
from ledger import gitrepo
from schemas.errors import UsageError

NEEDS = {
    "local": ("mlflow", "pandas", "pyarrow", "sklearn", "skops", "picklescan"),
    "kubernetes": ("kubernetes",),
}
"""The modules each runtime imports as it works (``gitplane[ml]``): checked at start, so an
install without them is refused at once, not at its first feature set or build."""


def for_config(config: AgentConfig, repo: gitrepo.GitRepo) -> Runtime:
    """The runtime ``config.runtime`` names, set up on ``repo`` (the agent's mirror, where
    MLflow Projects are read at the commit each command names)."""
    missing = [name for name in NEEDS.get(config.runtime.type, ()) if not _installed(name)]
    if missing:
        raise UsageError(
            f"the {config.runtime.type} runtime needs gitplane's ml extra (install gitplane from "
            f"where you did, with [ml]: pip install '.[ml]' in a clone); missing: "
            f"{', '.join(missing)}"
        )
    match config.runtime:
        case LocalRuntimeConfig() as local:
            return LocalRuntime(
                LocalEnv(
                    repo=repo,
                    tracking_uri=local.tracking_uri(config.state_dir),
                    state_dir=config.state_dir,
                    data_dir=local.data_path(config.state_dir),
                    ports=local.port_range(),
                    standby=local.standby_replicas,
                )
            )


def _installed(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):  # ValueError: None in sys.modules, as if uninstalled
        return False
