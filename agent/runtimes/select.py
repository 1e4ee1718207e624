"""The one place a runtime is chosen: from the agent's ``runtime.type``.

The agent core builds its runtime here and knows it only through
:class:`agent.runtimes.base.Runtime`; a second runtime (``kubernetes``) joins by
adding its configuration to the union in ``agent.config`` and a branch here.
"""

from __future__ import annotations

from agent.config import AgentConfig, LocalRuntimeConfig
from agent.runtimes.base import Runtime
from agent.runtimes.local import LocalRuntime
from agent.runtimes.local.env import LocalEnv
from ledger import gitrepo


def for_config(config: AgentConfig, repo: gitrepo.GitRepo) -> Runtime:
    """The runtime ``config.runtime`` names, set up on ``repo`` (the agent's mirror, where
    MLflow Projects are read at the commit each command names)."""
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
